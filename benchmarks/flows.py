"""Chapter 5: flows on the 2-D toys against their true entropy, and RealNVP on the digits.

- ``flows/<toy>/true_entropy_nats``: the differential entropy of each toy of
  ``genbook.data.TOYS`` (moons, 8gaussians, checkerboard), from its known generating
  density (ln 8 exactly for the checkerboard, Monte Carlo with 200,000 points otherwise).
- ``flows/<toy>/realnvp/gap_nats``: test NLL of a ``RealNVP`` minus the true entropy, an
  estimate of KL(p || q) (Monte Carlo error about 0.005 with ``N_TEST`` points); the
  recipes in ``NVP`` train longer than the chapter. The checkerboard's is the chapter's
  model and recipe (gradients clipped to norm 1) for twice the steps: without clipping its
  gap varied between 0.08 and 0.2 from seed to seed, and an unclipped 8 x 128 model moved
  from 0.086 to 0.116 when the optimiser's update changed only in rounding (fused AdamW).
  Goal: below 0.1 on every toy.
- ``flows/<toy>/iresnet/gap_nats``: the same for a ``ResidualFlow`` (invertible residual
  blocks, Lipschitz 0.9, exact 2-D log-determinant, actnorm), recipes in ``RES``; goal
  below 0.1.
- ``flows/<toy>/<model>/train_seconds``: the wall-clock seconds of each toy's training.
- ``flows/digits/realnvp/test_nll_nats``: ``DigitsFlow`` (logit + 8 couplings with image
  masks, 256 tanh units, dropout 0.5) trained with AdamW (lr 1e-3, batch 64, up to 300
  epochs, best on validation, patience 20); the dequantization bound on the test split,
  nats per image, with 10 uniform noise draws per image, the same noise as in training.
  Goal at most 100; the independent per-pixel categorical model reaches about 106.4.
  Tomczak's RealNVP on these digits (about 125 nats, read off a validation curve) is a
  continuous density on unscaled data with noise in (0, 0.5], not a bound on the discrete
  likelihood, so it is no anchor for this number.
- ``flows/digits/realnvp/test_iw_nll_nats``: the same flow's importance-weighted bound
  ``-log (1/S) sum_s p(x + u_s)`` with S = 10 draws per image (Ho et al. 2019), an upper
  bound in expectation and at most ``test_nll_nats`` for the same draws. The flow is saved as
  ``_build/bench/models/flows.DIGITS_FIT.pt`` for the leaderboard (``benchmarks/leaderboard.py``).

Every model trains with AdamW and a learning rate decayed linearly to zero (the toys) on
``N_TRAIN`` fresh samples of each toy. About 5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import torch

import genbook
from genbook import data, metrics
from genbook.flows import DigitsFlow, RealNVP, ResidualFlow

from ._models import BenchModel

N_TRAIN, N_TEST = 100_000, 50_000
NVP = {  # toy: (model, fit)
    "moons": (dict(hidden=32, couplings=16, layers=2), dict(steps=5000, batch_size=256, lr=5e-3)),
    "8gaussians": (dict(hidden=32, couplings=16, layers=2), dict(steps=8000, batch_size=256, lr=5e-3)),
    "checkerboard": (dict(hidden=64, couplings=12, layers=3), dict(steps=8000, batch_size=256, lr=3e-3, grad_clip=1.0)),
}
RES = {
    "moons": (dict(hidden=32, blocks=12, layers=2), dict(steps=1500, batch_size=256, lr=1e-2)),
    "8gaussians": (dict(hidden=32, blocks=12, layers=2), dict(steps=1500, batch_size=256, lr=1e-2)),
    "checkerboard": (dict(hidden=32, blocks=20, layers=2), dict(steps=5000, batch_size=512, lr=1e-2)),
}
DIGITS_FIT = dict(epochs=300, batch_size=64, lr=1e-3, patience=20)


def _toy_gap(
    cls, model_kw: dict, fit_kw: dict, train: torch.Tensor, test: torch.Tensor, entropy: float, dev: torch.device
) -> tuple[float, float]:
    """Test NLL minus the entropy, and the training seconds."""
    genbook.seed(0)
    flow = cls(dim=2, **model_kw).to(dev)
    hist = genbook.fit(flow, train, schedule="linear", progress=False, **fit_kw)
    return metrics.nll(flow, test.to(dev)) - entropy, hist.seconds


def train_digits(dev: torch.device) -> tuple[DigitsFlow, float]:
    """``DigitsFlow()`` trained with ``DIGITS_FIT``, seed 0 (best epoch on validation), in eval mode,
    and its training seconds."""
    train, val = data.digits("train"), data.digits("val")
    genbook.seed(0)
    flow = DigitsFlow().to(dev)
    hist = genbook.fit(flow, train, val=val, progress=False, **DIGITS_FIT)
    return flow, hist.seconds


DIGITS_MODEL = BenchModel("flows.DIGITS_FIT", DIGITS_FIT, train_digits)


def _digits(dev: torch.device) -> tuple[float, float]:
    flow, seconds = DIGITS_MODEL.train(dev)
    DIGITS_MODEL.save(flow, seconds)
    test = data.digits("test")
    gen = torch.Generator(device=dev).manual_seed(0)
    plain = flow.nll_bound(test.to(dev), n_samples=10, generator=gen).mean().item()
    gen = torch.Generator(device=dev).manual_seed(0)  # the same draws
    iw = flow.iw_nll_bound(test.to(dev), n_samples=10, generator=gen).mean().item()
    return plain, iw


def run() -> dict[str, float]:
    dev = genbook.device()
    out = {}
    for name, toy in ((n, data.toy(n)) for n in data.TOYS):
        g = torch.Generator().manual_seed(0)
        train, test = toy.sample(N_TRAIN, generator=g), toy.sample(N_TEST, generator=g)
        entropy = toy.entropy(generator=g)[0]
        out[f"flows/{name}/true_entropy_nats"] = entropy
        for key, cls, recipes in (("realnvp", RealNVP, NVP), ("iresnet", ResidualFlow, RES)):
            gap, seconds = _toy_gap(cls, *recipes[name], train, test, entropy, dev)
            out[f"flows/{name}/{key}/gap_nats"] = gap
            out[f"flows/{name}/{key}/train_seconds"] = seconds
    out["flows/digits/realnvp/test_nll_nats"], out["flows/digits/realnvp/test_iw_nll_nats"] = _digits(dev)
    return out
