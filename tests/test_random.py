"""genbook._random: one device policy for random draws, and the same draws as torch's on the CPU.

The policy (see the module's docstring): a draw happens on the device of the tensor it goes
with, and a generator must live there. Without a GPU the tests use the ``meta`` device as the
"other" device: a CPU generator must be refused there, before any draw.
"""

from __future__ import annotations

import pytest
import torch

from genbook import _random, flows, mixture, rbm, sampling
from genbook.train import fit


def G(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the same draws as torch's, on the CPU
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda g: _random.randn((3, 2), g), lambda g: torch.randn(3, 2, generator=g)),
        (
            lambda g: _random.randn(5, g, dtype=torch.float64),
            lambda g: torch.randn(5, generator=g, dtype=torch.float64),
        ),
        (lambda g: _random.rand((4,), g), lambda g: torch.rand(4, generator=g)),
        (
            lambda g: _random.randn_like(torch.zeros(2, 3, dtype=torch.float64), g),
            lambda g: torch.randn(2, 3, generator=g, dtype=torch.float64),
        ),
        (lambda g: _random.rand_like(torch.zeros(7), g), lambda g: torch.rand(7, generator=g)),
        (lambda g: _random.randint(0, 9, (6,), g), lambda g: torch.randint(0, 9, (6,), generator=g)),
        (lambda g: _random.randint(2, 5, 6, g), lambda g: torch.randint(2, 5, (6,), generator=g)),
        (
            lambda g: _random.multinomial(torch.tensor([0.2, 0.5, 0.3]), 8, g, replacement=True),
            lambda g: torch.multinomial(torch.tensor([0.2, 0.5, 0.3]), 8, replacement=True, generator=g),
        ),
        (lambda g: _random.randperm(10, g), lambda g: torch.randperm(10, generator=g)),
        (
            lambda g: _random.bernoulli_spins(torch.full((3, 4), 0.3), g),
            lambda g: torch.where(torch.rand(3, 4, generator=g) < 0.3, 1.0, -1.0),
        ),
    ],
)
def test_draws_equal_torchs_on_the_cpu(ours, theirs):
    a, b = ours(G(5)), theirs(G(5))
    assert a.dtype == b.dtype and a.device == b.device
    assert torch.equal(a, b)
    torch.manual_seed(3)
    a = ours(None)
    torch.manual_seed(3)
    assert torch.equal(a, theirs(None))  # without a generator: torch's global one


# ---------------------------------------------------------------- the device policy
def test_check_generator_names_the_argument_and_both_devices():
    _random.check_generator(None, "cuda")  # no generator: the global one of that device
    _random.check_generator(G(), "cpu")
    _random.check_generator(G(), None)  # no tensor to go with: the CPU
    with pytest.raises(ValueError) as err:
        _random.check_generator(G(), torch.device("cuda", 0), name="gen")
    assert str(err.value) == (
        "gen is on cpu but the draws it drives happen on cuda:0; pass torch.Generator(device='cuda:0')"
    )
    with pytest.raises(ValueError, match=r"^generator must be a torch.Generator or None, got 0 \(int\)$"):
        _random.check_generator(0, "cpu")


@pytest.mark.parametrize(
    "draw",
    [
        lambda: _random.randn((2,), G(), device="meta"),
        lambda: _random.rand((2,), G(), device="meta"),
        lambda: _random.randint(0, 3, (2,), G(), device="meta"),
        lambda: _random.multinomial(torch.ones(3, device="meta"), 1, G()),
        lambda: _random.bernoulli_spins(torch.full((2, 2), 0.5, device="meta"), G()),
    ],
    ids=["randn", "rand", "randint", "multinomial", "bernoulli_spins"],
)
def test_a_generator_on_another_device_is_refused(draw):
    with pytest.raises(ValueError, match=r"^generator is on cpu but the draws it drives happen on meta"):
        draw()


LP = lambda x: -0.5 * (x**2).sum(1)  # noqa: E731

MODELS_ON_ANOTHER_DEVICE = {
    "flows.dequantize": lambda g: flows.dequantize(torch.zeros(2, 3, device="meta"), generator=g),
    "StandardNormal.sample": lambda g: flows.StandardNormal(dim=2).to("meta").sample(3, generator=g),
    "GaussianMixture.sample": lambda g: mixture.GaussianMixture().to("meta").sample(3, generator=g),
    "GridLatentModel.sample": lambda g: mixture.GridLatentModel(n_latent=4, hidden=4).to("meta").sample(3, generator=g),
    "kmeans_plusplus": lambda g: mixture.kmeans_plusplus(torch.zeros(5, 2, device="meta"), 2, generator=g),
    "RBM.sample": lambda g: rbm.RBM(n_visible=3, n_hidden=2).to("meta").sample(2, generator=g),
    "RandomWalkMetropolis.init": lambda g: sampling.RandomWalkMetropolis(LP, step_size=1.0, generator=g).init(
        torch.zeros(2, 2, device="meta")
    ),
}


@pytest.mark.parametrize("name", list(MODELS_ON_ANOTHER_DEVICE))
def test_models_draw_on_their_own_device_and_refuse_a_generator_elsewhere(name):
    """Before the policy, flows and mixtures drew on the CPU and copied, the samplers refused: now all refuse."""
    with pytest.raises(ValueError, match=r"generator is on cpu but the draws it drives happen on meta"):
        MODELS_ON_ANOTHER_DEVICE[name](G())


def test_fit_draws_its_batch_order_on_the_cpu():
    """fit's permutation is the exception: drawn on the CPU from a CPU generator (the same batches on every device)."""

    class Mean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mu = torch.nn.Parameter(torch.zeros(()))

        def loss(self, x):
            return ((x - self.mu) ** 2).mean()

    x = torch.arange(10.0)
    seen = []
    model = Mean()
    model.loss = lambda b: (seen.append(b.clone()), ((b - model.mu) ** 2).mean())[1]
    fit(model, x, epochs=1, batch_size=4, progress=False, generator=G(7))
    assert torch.equal(torch.cat(seen), x[torch.randperm(10, generator=G(7))])
    with pytest.raises(ValueError, match=r"^generator must be a torch.Generator or None"):
        fit(Mean(), x, steps=1, progress=False, generator=7)
