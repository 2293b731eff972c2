import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genbook
from genbook import data, fit
from genbook.gan import GAN, discriminator_loss, generator_loss, r1_penalty


def _digits_gan(**kwargs) -> GAN:
    return GAN(kind="levels", dim=64, latent=4, hidden=16, layers=1, **kwargs)


# ---------------------------------------------------------------- the losses
def test_discriminator_loss_is_the_cross_entropy_of_real_1_and_generated_0(gen):
    real, fake = torch.randn(7, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)
    want = F.binary_cross_entropy_with_logits(real, torch.ones(7, dtype=torch.float64))
    want = want + F.binary_cross_entropy_with_logits(fake, torch.zeros(5, dtype=torch.float64))
    assert discriminator_loss(real, fake).item() == pytest.approx(want.item(), abs=1e-14)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)  # and -V(D, G) written with D itself
    v = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
    assert discriminator_loss(real, fake).item() == pytest.approx(-v.item(), abs=1e-12)


def test_discriminator_loss_is_stationary_at_the_optimal_discriminator():
    # one point seen 3 times among real and once among generated points: D* = p / (p + q) = 3/4
    logit = torch.tensor(math.log(3.0), dtype=torch.float64, requires_grad=True)
    other = torch.zeros((), dtype=torch.float64)
    real = torch.stack([logit, logit, logit, other])  # the other real point stands elsewhere
    fake = torch.stack([logit, other, other, other])
    (grad,) = torch.autograd.grad(discriminator_loss(real, fake), logit)
    assert abs(grad.item()) < 1e-15
    assert torch.sigmoid(logit).item() == pytest.approx(0.75, abs=1e-15)


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_generator_losses_have_their_closed_forms(kind):
    logits = torch.tensor([-3.0, -0.5, 0.0, 2.0], dtype=torch.float64)
    d = torch.sigmoid(logits)
    want = torch.log(1 - d).mean() if kind == "minimax" else -torch.log(d).mean()
    assert generator_loss(logits, kind).item() == pytest.approx(want.item(), abs=1e-14)


def test_minimax_gradient_vanishes_where_the_discriminator_rejects_and_non_saturating_does_not():
    logits = torch.tensor([-12.0, -6.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    d = torch.sigmoid(logits.detach())
    (g_mm,) = torch.autograd.grad(generator_loss(logits, "minimax"), logits)
    (g_ns,) = torch.autograd.grad(generator_loss(logits, "non_saturating"), logits)
    n = len(logits)
    assert torch.allclose(g_mm, -d / n, rtol=1e-13, atol=0)  # d/dl ln(1 - sigmoid(l)) = -D
    assert torch.allclose(g_ns, -(1 - d) / n, rtol=1e-13, atol=0)  # d/dl -ln sigmoid(l) = -(1 - D)
    assert abs(g_mm[0].item()) * n < 1e-5 and abs(g_ns[0].item()) * n > 0.99999  # D(g(z)) = 6e-6
    assert g_mm[2].item() == g_ns[2].item()  # the same push where D = 1/2


def test_generator_loss_through_the_model_when_the_discriminator_rejects_everything():
    model = GAN(hidden=8, layers=1)
    with torch.no_grad():
        model.d_net[-1].bias.fill_(-15.0)  # D(x) ~ 3e-7 everywhere near the data
    z = torch.randn(64, 2)
    norms = {}
    for kind in ("minimax", "non_saturating"):
        model.zero_grad()
        generator_loss(model.d_net(model.g(z))[:, 0], kind).backward()
        norms[kind] = torch.cat([p.grad.flatten() for p in model.g_net.parameters()]).norm().item()
    assert norms["minimax"] < 1e-5 * norms["non_saturating"]


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm(gen):
    lin = nn.Linear(3, 1).double()
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    penalty = r1_penalty(lin, x)
    assert penalty.item() == pytest.approx(lin.weight.pow(2).sum().item(), abs=1e-14)
    (grad,) = torch.autograd.grad(penalty, lin.weight)  # differentiable in the discriminator
    assert torch.allclose(grad, 2 * lin.weight, atol=1e-14)


# ---------------------------------------------------------------- the two players, the samples
def test_points_shapes_and_dtypes():
    model = GAN(hidden=8, layers=1)
    x = model.sample(5)
    assert x.shape == (5, 2) and x.dtype == torch.float32
    assert model.g(torch.randn(3, 2)).shape == (3, 2)
    d = model.d(torch.randn(4, 2))
    assert d.shape == (4,) and ((d > 0) & (d < 1)).all()
    assert torch.equal(model.d(torch.ones(2, 2, dtype=torch.long)), model.d(torch.ones(2, 2)))


def test_levels_sample_is_g_rounded_to_the_nearest_level():
    model = _digits_gan()
    s = model.sample(50, generator=torch.Generator().manual_seed(1))
    assert s.shape == (50, 64) and s.dtype == torch.long
    assert s.min() >= 0 and s.max() <= 16
    y = model.g(torch.randn(50, 4, generator=torch.Generator().manual_seed(1)))  # the same z
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 16
    assert torch.equal(s, y.round().long()) and (s - y).abs().max() <= 0.5
    for bias, level in ((-40.0, 0), (40.0, 16)):  # saturated sigmoids land on the end levels
        with torch.no_grad():
            model.g_net[-1].bias.fill_(bias)
        assert (model.sample(3) == level).all()


def test_levels_discriminator_takes_integers_or_reals_in_range():
    model = _digits_gan()
    x = data.digits("train")[:4]
    assert torch.equal(model.d(x), model.d(x.float()))
    assert model.d(model.g(torch.randn(3, 4))).shape == (3,)


def test_sample_is_reproducible_with_a_generator_and_moves_with_the_model():
    model = GAN(hidden=8, layers=1).double()
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.float64 and torch.equal(a, b)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(kind="images"), "kind"),
        (dict(dim=0), "dim"),
        (dict(levels=1), "levels"),
        (dict(latent=0), "latent"),
        (dict(hidden=2.5), "hidden"),
        (dict(layers=-1), "layers"),
        (dict(generator_loss="wasserstein"), "generator_loss"),
        (dict(lr_ratio=0.0), "lr_ratio"),
        (dict(beta1=1.0), "beta1"),
        (dict(r1=-1.0), "r1"),
        (dict(r1=True), "r1"),
    ],
)
def test_bad_constructor_arguments_raise_naming_them(kwargs, word):
    with pytest.raises(ValueError, match=f"^{word} must be"):
        GAN(**kwargs)


def test_bad_inputs_raise_naming_the_argument():
    points, levels = GAN(hidden=8, layers=1), _digits_gan()
    with pytest.raises(ValueError, match=r"^x must be a tensor of shape \(B, 2\)"):
        points.d(torch.randn(3, 3))
    with pytest.raises(ValueError, match="^x contains NaN"):
        points.d(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="^x must hold levels 0..16, found 17"):
        levels.d(torch.full((2, 64), 17))
    with pytest.raises(ValueError, match=r"^x must lie in \[0, 16\]"):
        levels.d(torch.full((2, 64), 16.5))
    with pytest.raises(ValueError, match=r"^z must be a floating-point tensor of shape \(B, 4\)"):
        levels.g(torch.randn(2, 3))
    with pytest.raises(ValueError, match="^n must be an int >= 1"):
        points.sample(0)
    with pytest.raises(ValueError, match="^kind must be"):
        generator_loss(torch.zeros(3), "saturating")
    with pytest.raises(ValueError, match="^lr must be"):
        points.configure_optimizers(0.0)
    with pytest.raises(ValueError, match="^batch must hold levels 0..16"):
        fit(levels, -torch.ones(4, 64, dtype=torch.long), steps=1, progress=False)


def test_training_step_needs_its_optimisers():
    with pytest.raises(RuntimeError, match=r"configure_optimizers\(lr\) first"):
        GAN(hidden=8, layers=1).training_step(torch.randn(4, 2), 0)


def test_fit_refuses_val_and_grad_clip_for_a_gan():
    x = torch.randn(8, 2)
    with pytest.raises(ValueError, match="^val needs a validation loss, and GAN"):
        fit(GAN(hidden=8, layers=1), x, val=x, steps=1, progress=False)
    with pytest.raises(ValueError, match="^grad_clip=1.0 does not apply to GAN"):
        fit(GAN(hidden=8, layers=1), x, grad_clip=1.0, steps=1, progress=False)


# ---------------------------------------------------------------- training through fit
def test_configure_optimizers_gives_the_discriminator_lr_ratio_times_lr():
    model = GAN(hidden=8, layers=1, lr_ratio=4.0, beta1=0.3)
    d_opt, g_opt = model.configure_optimizers(1e-3)
    assert d_opt.param_groups[0]["lr"] == pytest.approx(4e-3) and g_opt.param_groups[0]["lr"] == 1e-3
    assert d_opt.param_groups[0]["betas"] == (0.3, 0.999)
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in model.d_net.parameters()}
    assert {id(p) for p in g_opt.param_groups[0]["params"]} == {id(p) for p in model.g_net.parameters()}


def test_fit_records_both_losses_and_each_player_moves_only_its_own_network():
    model = _digits_gan(r1=0.5)
    x = data.digits("train")[:64]
    g0 = [p.detach().clone() for p in model.g_net.parameters()]
    d0 = [p.detach().clone() for p in model.d_net.parameters()]
    hist = fit(model, x, steps=3, batch_size=32, lr=1e-3, progress=False)
    assert list(hist.losses) == ["d_loss", "r1_penalty", "g_loss"] and hist.steps == 3
    assert all(len(v) == 3 and all(math.isfinite(t) for t in v) for v in hist.losses.values())
    # at initialisation D is near 1/2 on everything: -2 ln(1/2) and -ln(1/2)
    assert hist.losses["d_loss"][0] == pytest.approx(2 * math.log(2), abs=0.05)
    assert hist.losses["g_loss"][0] == pytest.approx(math.log(2), abs=0.05)
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.g_net.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d0, model.d_net.parameters()))
    assert all(p.requires_grad for p in model.parameters())  # the generator's step gave d its gradients back

    # a generator update alone leaves the discriminator as it was
    d_opt, g_opt = model.configure_optimizers(1e-3)
    before = [p.detach().clone() for p in model.d_net.parameters()]
    g_opt.zero_grad()
    (-torch.log(model.d(model.g(torch.randn(8, 4)))).mean()).backward()  # the non-saturating loss
    g_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.d_net.parameters()))


def test_fit_of_a_gan_is_deterministic_given_the_seed():
    runs = []
    for _ in range(2):
        genbook.seed(5)
        model = GAN(hidden=8, layers=1)
        hist = fit(model, torch.randn(64, 2), steps=5, batch_size=16, lr=1e-3, progress=False)
        runs.append((hist.losses, model.sample(3, generator=torch.Generator().manual_seed(0))))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_a_nonfinite_gan_loss_names_the_loss_and_the_step():
    model = GAN(hidden=8, layers=1)
    with torch.no_grad():
        model.d_net[-1].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"^d_loss became nan at step 1 of 4"):
        fit(model, torch.randn(8, 2), steps=4, batch_size=8, progress=False)


def _nearest_mode(samples, toy):
    dist, _ = torch.cdist(samples.double(), toy.centres()).min(1)
    return dist.mean().item(), (dist < 3 * toy.std).double().mean().item()


def test_a_short_run_on_the_eight_gaussians_moves_samples_onto_the_modes():
    toy = data.EightGaussians()
    x = toy.sample(2048, generator=torch.Generator().manual_seed(0))
    model = GAN(hidden=64)
    z = torch.Generator().manual_seed(1)
    dist0, near0 = _nearest_mode(model.sample(2000, generator=z), toy)
    fit(model, x, steps=500, batch_size=128, lr=2e-3, schedule="linear", progress=False)
    dist, near = _nearest_mode(model.sample(2000, generator=z.manual_seed(1)), toy)
    assert near0 == 0.0 and dist0 > 1.5  # at init g(z) is a small blob around the origin
    assert dist < 0.6 * dist0 and near > 0.25


def test_save_load_round_trip_keeps_the_samples(tmp_path):
    model = _digits_gan(generator_loss="minimax", r1=1.0)
    fit(model, data.digits("train")[:32], steps=2, batch_size=16, progress=False)
    genbook.save(model, tmp_path / "gan.pt")
    loaded = genbook.load(tmp_path / "gan.pt")
    assert type(loaded) is GAN and loaded.config() == model.config()
    z = torch.Generator().manual_seed(2)
    assert torch.equal(loaded.sample(10, generator=z), model.sample(10, generator=z.manual_seed(2)))
