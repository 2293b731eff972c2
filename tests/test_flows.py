"""Normalising flows: invertibility, log-determinants against brute force, normalisation, bounds, errors.

The references are independent of the package: Jacobians come from
``torch.autograd.functional.jacobian`` + ``slogdet`` on single points, normalisation from a
midpoint rule on a 2-D grid, Lipschitz constants from exact singular values, and the
dequantisation bound from a fine grid over each integer bin. Models are randomised first
(their last layers start at zero, and an identity map would hide most bugs), in float64.
"""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

import genbook
from genbook import data
from genbook.flows import (
    ActNorm,
    AffineCoupling,
    DigitsFlow,
    LogitTransform,
    NotConvergedError,
    RealNVP,
    ResidualBlock,
    ResidualFlow,
    SpectralLinear,
    StandardNormal,
    coupling_masks,
    dequantize,
    power_series_log_det,
)

Z = 4.0  # tolerance, in Monte Carlo standard errors


# ================================================================ helpers
def _refresh_spectral_norms(model):
    for m in model.modules():
        if isinstance(m, SpectralLinear):
            m.power_iteration(200)


def _randomise(model, scale=0.3, seed=0):
    """Add N(0, scale^2) to every parameter (so couplings and ActNorm are far from the identity); float64, eval mode."""
    g = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    _refresh_spectral_norms(model)
    return model.eval()


def _strong(model, seed=0):
    """Square orthogonal weights times 5 and biases 2 (LipSwish' ~ 0.99 there): every block's Jacobian is
    close to ``lipschitz`` times a rotation, so its log-det is far from zero. Use ``hidden == dim``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SpectralLinear):
                q, _ = torch.linalg.qr(torch.randn(m.weight.shape, generator=g, dtype=m.weight.dtype))
                m.weight.copy_(5 * q)
                m.bias.fill_(2.0)
    _refresh_spectral_norms(model)
    return model


def _realnvp(dim=2, couplings=4, seed=0, **kw):
    return _randomise(RealNVP(dim=dim, hidden=16, couplings=couplings, **kw), seed=seed)


def _residual(dim=2, blocks=3, seed=0, **kw):
    return _randomise(ResidualFlow(dim=dim, hidden=16, blocks=blocks, **kw), scale=1.0, seed=seed)


def _digits_flow(dim=4, levels=5, seed=0):
    side = math.isqrt(dim)
    shape = (side, side) if side * side == dim else None
    return _randomise(DigitsFlow(dim=dim, levels=levels, hidden=16, couplings=4, image_shape=shape), seed=seed)


def _points(n, dim, seed=1, scale=1.5):
    return scale * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _brute_logdet(f, x):
    """``log|det df/dx|`` at each row of ``x``, one autograd Jacobian per point."""
    return torch.stack([torch.linalg.slogdet(jacobian(lambda v: f(v[None])[0], xi))[1] for xi in x])


def _lipschitz_bound(block):
    """Product of the exact spectral norms of the normalised weights (LipSwish is 1-Lipschitz)."""
    out = 1.0
    for m in block.g:
        if isinstance(m, SpectralLinear):
            out *= float(torch.linalg.matrix_norm(m.normalised_weight().detach(), ord=2))
    return out


BIJECTIONS = {
    "coupling": lambda: _randomise(AffineCoupling(dim=3, mask=[1, 0, 1], hidden=8, activation="tanh")),
    "actnorm": lambda: _randomise(ActNorm(dim=3)),
    "residual block": lambda: _randomise(ResidualBlock(dim=3, hidden=8, exact=True), scale=1.0),
    "logit": lambda: LogitTransform(levels=5, alpha=0.1).double(),
}

FLOWS = {
    "realnvp 2-D": lambda: _realnvp(2),
    "realnvp 5-D": lambda: _realnvp(5, couplings=6, activation="silu"),
    "residual 2-D exact": lambda: _residual(2),
    "residual 3-D exact": lambda: _residual(3, exact=True),
    "digits": lambda: _digits_flow(),
}


def _inputs_for(name, dim, n=6):
    if name in ("logit", "digits"):
        return 5 * torch.rand(n, dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return _points(n, dim)


# ================================================================ inverse and log-determinant
@pytest.mark.parametrize("name", list(BIJECTIONS))
def test_bijections_invert_and_their_logdet_is_the_jacobian(name):
    layer = BIJECTIONS[name]()
    x = _inputs_for(name, 3)
    y, logdet = layer(x)
    assert logdet.shape == (x.shape[0],)
    torch.testing.assert_close(layer.inverse(y), x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(logdet, _brute_logdet(lambda v: layer(v)[0], x), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("name", list(FLOWS))
def test_flows_invert_and_their_logdet_is_the_jacobian(name):
    flow = FLOWS[name]()
    x = _inputs_for(name, flow.dim)
    z, logdet = flow(x)
    assert z.shape == x.shape and logdet.shape == (x.shape[0],)
    assert not torch.allclose(z, x, atol=0.1) and logdet.abs().max() > 0.1  # randomised: far from the identity
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet, _brute_logdet(lambda v: flow(v)[0], x), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(flow.log_prob(x), flow.base.log_prob(z) + logdet)


def test_float32_residual_flow_inverts_with_the_default_tolerance():
    flow = _residual(2, lipschitz=0.95).float()
    x = _points(64, 2).float()
    torch.testing.assert_close(flow.inverse(flow(x)[0]), x, atol=1e-4, rtol=1e-4)


def test_fresh_couplings_start_as_the_identity_and_pass_the_conditioning_part_through():
    x = _points(5, 4)
    fresh = AffineCoupling(dim=4, mask=[1, 1, 0, 0], hidden=8).double()
    y, logdet = fresh(x)
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(5, dtype=torch.float64))
    coupling = _randomise(AffineCoupling(dim=4, mask=[1, 0, 1, 0], hidden=8))
    y, _ = coupling(x)
    assert torch.equal(y[:, [0, 2]], x[:, [0, 2]]) and (y[:, [1, 3]] - x[:, [1, 3]]).abs().min() > 1e-3


@pytest.mark.parametrize("dim", [2, 3, 5, 64])
def test_coupling_masks_transform_every_dimension_in_every_pair(dim):
    masks = torch.tensor(coupling_masks(dim, 8))
    assert ((masks == 0) | (masks == 1)).all()
    for k in range(0, 8, 2):
        assert torch.equal(masks[k] + masks[k + 1], torch.ones(dim, dtype=torch.long))  # complementary
        assert 0 < masks[k].sum() < dim
    if dim == 2:
        assert masks.tolist() == [[1, 0], [0, 1]] * 4
    else:
        assert not torch.equal(masks[0], masks[2]) and not torch.equal(masks[0], 1 - masks[2])  # two patterns


def test_image_masks_cycle_through_checkerboard_and_halves():
    masks = torch.tensor(coupling_masks(16, 6, image_shape=(4, 4))).reshape(6, 4, 4)
    r, c = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    assert torch.equal(masks[0], 1 - (r + c) % 2) and torch.equal(masks[1], (r + c) % 2)
    assert torch.equal(masks[2], (r < 2).long()) and torch.equal(masks[4], (c < 2).long())
    assert torch.equal(masks[3] + masks[2], torch.ones(4, 4, dtype=torch.long))
    thin = coupling_masks(3, 4, image_shape=(1, 3))  # one row: no top/bottom halves to use
    assert thin == [[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match=r"image_shape must have rows \* cols = dim = 16, got \(4, 5\)"):
        coupling_masks(16, 2, image_shape=(4, 5))


def test_dropout_acts_in_training_mode_only_and_sampling_runs_in_eval_mode():
    flow = _randomise(RealNVP(dim=3, hidden=32, couplings=2, dropout=0.5)).train()
    x = _points(8, 3)
    assert not torch.equal(flow(x)[0], flow(x)[0])  # a different dropout mask each call
    flow.eval()
    assert torch.equal(flow(x)[0], flow(x)[0])
    flow.train()
    a = flow.sample(5, generator=torch.Generator().manual_seed(0))
    assert flow.training and torch.equal(a, flow.eval().sample(5, generator=torch.Generator().manual_seed(0)))
    digits = _randomise(DigitsFlow(dim=4, levels=5, hidden=8, couplings=2, dropout=0.5, image_shape=(2, 2))).train()
    x = torch.tensor([[0, 1, 4, 2]])
    bound = digits.nll_bound(x, generator=torch.Generator().manual_seed(0))
    assert digits.training
    assert torch.equal(bound, digits.eval().nll_bound(x, generator=torch.Generator().manual_seed(0)))


def test_realnvp_uses_the_masks_and_actnorm_layers():
    flow = RealNVP(dim=5, couplings=4)
    couplings = [t for t in flow.transforms if isinstance(t, AffineCoupling)]
    assert [c.mask.long().tolist() for c in couplings] == coupling_masks(5, 4)
    assert sum(isinstance(t, ActNorm) for t in flow.transforms) == 4
    assert not any(isinstance(t, ActNorm) for t in RealNVP(dim=5, couplings=4, actnorm=False).transforms)


# ================================================================ residual blocks
@pytest.mark.parametrize("strong", [False, True])
def test_spectral_normalisation_bounds_the_lipschitz_constant(strong):
    block = _randomise(ResidualBlock(dim=2, hidden=2 if strong else 32, layers=3, lipschitz=0.8), scale=5.0)
    block = _strong(block) if strong else block
    assert 0.79 < _lipschitz_bound(block) <= 0.8 * (1 + 1e-6)  # active, and holding
    x = _points(200, 2, scale=3.0)
    _, J = block.g_and_jacobian(x)
    for i in range(3):
        torch.testing.assert_close(J[i], jacobian(lambda v: block.g(v[None])[0], x[i]))
    lip = torch.linalg.matrix_norm(J, ord=2).max()  # local Lipschitz constants of g
    assert lip < 0.8 and (lip > 0.6 if strong else True)


def _block_with_one_clamp_inactive(dim, hidden, layers, seed=0):
    """A randomised exact block whose first layer has ``sigma < coeff`` (spectral scale clamped at 1),
    the others ``sigma > coeff``: both branches of ``max(1, sigma / coeff)`` are exercised."""
    block = _randomise(
        ResidualBlock(dim=dim, hidden=hidden, layers=layers, lipschitz=0.7, exact=True), scale=1.0, seed=seed
    )
    first = block.g[0]
    with torch.no_grad():
        first.weight.mul_(1e-3)
        first.power_iteration(100)
        assert float(first.scale()) == 1.0 and all(float(m.scale()) > 1 for m in block.g[2::2])
    return block


@pytest.mark.parametrize("dim, hidden, layers", [(2, 5, 2), (3, 4, 1), (2, 3, 3)])
def test_exact_block_matches_autograd_and_finite_differences(dim, hidden, layers):
    """The readable exact block: ``g`` and ``J`` against autograd point by point, the log-determinant
    against ``jacobian`` + ``slogdet``, and ``gradcheck`` of its forward (both outputs, in the point
    and every parameter: weights, biases, LipSwish betas) against finite differences."""
    block = _block_with_one_clamp_inactive(dim, hidden, layers)
    x = _points(5, dim)
    g, J = block.g_and_jacobian(x)
    torch.testing.assert_close(g, block.g(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(J, torch.stack([jacobian(lambda v: block.g(v[None])[0], xi) for xi in x]))
    z, logdet = block(x)
    torch.testing.assert_close(z, x + g)
    torch.testing.assert_close(logdet, _brute_logdet(lambda v: block(v)[0], x))
    names = [name for name, _ in block.named_parameters()]

    def forward(x, *params):  # the block with its parameters as explicit inputs
        return torch.func.functional_call(block, dict(zip(names, params)), (x,))

    leaves = [p.detach().clone().requires_grad_(True) for p in block.parameters()]
    x = x[:3].requires_grad_(True)
    assert torch.autograd.gradcheck(forward, (x, *leaves))
    assert torch.autograd.gradgradcheck(lambda v: block(v), (x,))  # plain autograd: second derivatives too


def test_a_lone_block_refines_its_spectral_norms_once_per_training_call():
    """The readable block refines ``u, v`` as the flow's fast path does: once per call in training
    mode with gradients, never in eval mode or under ``no_grad``."""
    block = _randomise(ResidualBlock(dim=2, hidden=8, exact=True), scale=1.0).train()
    with torch.no_grad():
        for m in block.linears():
            m.weight.mul_(2.0)  # the stored vectors are now one step behind
    expected = []
    for m in block.linears():
        twin = SpectralLinear(m.weight.shape[1], m.weight.shape[0], coeff=m.coeff).double()
        twin.load_state_dict(m.state_dict())
        twin.power_iteration()
        expected.append((twin.u, twin.v))
    block(_points(4, 2))[1].sum().backward()
    for m, (u, v) in zip(block.linears(), expected):
        assert torch.equal(m.u, u) and torch.equal(m.v, v)
    after = [m.u.clone() for m in block.linears()]
    with torch.no_grad():
        block(_points(4, 2))
    block.eval()(_points(4, 2))
    assert all(torch.equal(m.u, u) for m, u in zip(block.linears(), after))


def test_exact_log_det_gradients_match_autograd_through_the_layers():
    """A flow's loss differentiated through the fused Jacobian (spectral norms of all blocks at once) against
    plain autograd through each block's layers, its Jacobian taken by ``torch.autograd.functional``."""
    flow = _residual(2, blocks=2).train()
    x = _points(5, 2)

    def reference():
        h, logdet = x, torch.zeros(5, dtype=x.dtype)
        for t in flow.transforms:
            if isinstance(t, ResidualBlock):
                J = torch.stack([jacobian(lambda v: t.g(v[None])[0], xi, create_graph=True) for xi in h])
                h, logdet = h + t.g(h), logdet + torch.linalg.slogdet(torch.eye(2, dtype=x.dtype) + J)[1]
            else:
                h, ld = t(h)
                logdet = logdet + ld
        return -(flow.base.log_prob(h) + logdet).mean()

    params = list(flow.parameters())
    fused = torch.autograd.grad(flow.loss(x), params)  # refines the spectral norms first, as in training
    flow.eval()
    expected = torch.autograd.grad(reference(), params)
    fused_eval = torch.autograd.grad(flow.loss(x), params)
    for a, b, c in zip(fused, expected, fused_eval):
        torch.testing.assert_close(c, b, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)  # one power iteration later: nearly the same


def test_flow_refines_every_blocks_spectral_norm_once_per_training_step():
    flow = _residual(2, blocks=3).train()
    layers = [m for m in flow.modules() if isinstance(m, SpectralLinear)]
    with torch.no_grad():
        for m in layers:
            m.weight.mul_(2.0)  # the stored vectors are now one step behind
    expected = []
    for m in layers:
        twin = SpectralLinear(m.weight.shape[1], m.weight.shape[0], coeff=m.coeff).double()
        twin.load_state_dict(m.state_dict())
        twin.power_iteration()
        expected.append((twin.u, twin.v))
    flow.loss(_points(4, 2)).backward()
    for m, (u, v) in zip(layers, expected):
        torch.testing.assert_close(m.u, u, atol=1e-12, rtol=0)  # batched products round differently
        torch.testing.assert_close(m.v, v, atol=1e-12, rtol=0)
    after_step = [m.u.clone() for m in layers]
    with torch.no_grad():
        flow.loss(_points(4, 2))  # no refinement outside training steps
    flow.eval().loss(_points(4, 2))
    assert all(torch.equal(m.u, u) for m, u in zip(layers, after_step))


def test_lipschitz_bound_is_the_product_of_exact_spectral_norms_and_bounds_the_jacobian():
    block = _randomise(ResidualBlock(dim=2, hidden=8, layers=2, lipschitz=0.8), scale=2.0)
    expected = math.prod(float(torch.linalg.svdvals(m.normalised_weight().detach()).max()) for m in block.linears())
    assert block.lipschitz_bound() == pytest.approx(expected, rel=1e-12)
    assert 0.79 < block.lipschitz_bound() <= 0.8 * (1 + 1e-6)  # power iteration has converged here
    _, J = block.g_and_jacobian(_points(500, 2, scale=3.0))
    assert torch.linalg.matrix_norm(J, ord=2).max() <= block.lipschitz_bound()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in block.linears():  # a new direction: the stored vectors now underestimate sigma
            m.weight.add_(3.0 * torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
    assert block.lipschitz_bound() > 0.8 * 1.05


def test_spectral_linear_power_iteration_finds_the_top_singular_value():
    layer = SpectralLinear(6, 5, coeff=0.5).double()
    sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
    assert float(torch.dot(layer.u, layer.weight.detach() @ layer.v)) == pytest.approx(float(sigma), rel=1e-6)
    with torch.no_grad():
        layer.weight.mul_(0.1 / sigma)  # already below coeff: left alone
    layer.power_iteration(100)
    torch.testing.assert_close(layer.normalised_weight(), layer.weight)


def test_fixed_point_inverse_converges_geometrically():
    block = _randomise(ResidualBlock(dim=2, hidden=16, lipschitz=0.5), scale=3.0)
    z = _points(10, 2)
    x = block.inverse(z)
    torch.testing.assert_close(x + block.g(x), z, atol=1e-12, rtol=0)
    block.max_iter = 60  # contraction 0.5: 60 iterations reach 1e-18 in exact arithmetic
    block.tol = 1e-14
    block.inverse(z)


def test_non_converged_inverse_raises():
    block = _randomise(ResidualBlock(dim=2, hidden=16, lipschitz=0.9, max_iter=1, tol=1e-12), scale=3.0)
    with pytest.raises(NotConvergedError, match=r"did not converge in max_iter=1"):
        block.inverse(_points(4, 2))
    flow = _residual(2, max_iter=2, tol=1e-14)
    with pytest.raises(NotConvergedError, match="did not converge"):
        flow.sample(3)


def _exact_block_logdet(block, x):
    _, J = block.g_and_jacobian(x)
    return torch.linalg.slogdet(torch.eye(x.shape[1], dtype=x.dtype) + J)[1]


def test_hutchinson_power_series_is_unbiased_in_2d():
    block = _strong(_randomise(ResidualBlock(dim=2, hidden=2, lipschitz=0.7)))
    pts = _points(3, 2)
    exact = _exact_block_logdet(block, pts)
    assert exact.abs().min() > 0.2  # a sign error would move the estimate by more than Z standard errors
    reps = 4000
    x = pts.repeat_interleave(reps, 0).requires_grad_(True)
    gx = block.g(x)
    est = power_series_log_det(gx, x, n_terms=40, generator=torch.Generator().manual_seed(3)).reshape(3, reps)
    se = est.std(1) / math.sqrt(reps)
    assert ((est.mean(1) - exact).abs() < Z * se).all(), (est.mean(1), exact, se)
    assert (est.std(1) > 1e-3).all()  # a real estimator, not the exact value


def test_hutchinson_gradient_matches_the_exact_gradient_on_average():
    block = _strong(_randomise(ResidualBlock(dim=2, hidden=2, lipschitz=0.7)))
    weight = block.g[0].weight
    x = _points(1, 2).repeat(2000, 1).requires_grad_(True)
    est = power_series_log_det(block.g(x), x, n_terms=30, create_graph=True, generator=torch.Generator().manual_seed(4))
    (g_est,) = torch.autograd.grad(est.mean(), weight)
    (g_exact,) = torch.autograd.grad(_exact_block_logdet(block, x[:1]).mean(), weight)
    assert g_exact.abs().max() > 1e-2
    torch.testing.assert_close(g_est, g_exact, atol=0.1 * g_exact.abs().max(), rtol=0)


def test_residual_flow_power_series_logdet_matches_brute_force():
    flow = _strong(_randomise(ResidualFlow(dim=2, hidden=2, blocks=2, lipschitz=0.7, exact=False, n_terms=40)))
    pts = _points(2, 2)
    brute = _brute_logdet(lambda v: flow(v)[0], pts)  # z does not depend on the probes
    reps = 2000
    _, logdet = flow(pts.repeat_interleave(reps, 0))
    est = logdet.reshape(2, reps)
    se = est.std(1) / math.sqrt(reps)
    assert ((est.mean(1) - brute).abs() < Z * se).all(), (est.mean(1), brute, se)
    assert (brute.abs() > 0.3).all()


def test_residual_flow_trains_with_the_power_series():
    flow = ResidualFlow(dim=3, hidden=16, blocks=2, exact=False, n_terms=4)
    x = data.toy("moons").sample(512, generator=torch.Generator().manual_seed(0))
    x = torch.cat([x, 0.1 * torch.randn(512, 1)], 1)
    hist = genbook.fit(flow, x, steps=40, batch_size=128, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert sum(hist.train_loss[-5:]) / 5 < hist.train_loss[0] - 0.3


# ================================================================ densities
@pytest.mark.parametrize("make", [lambda: _realnvp(2), lambda: _residual(2, blocks=2)], ids=["realnvp", "residual"])
def test_untrained_density_integrates_to_one(make, grid_integral):
    flow = make()
    with torch.no_grad():
        total = grid_integral(flow.log_prob, (-8, 8, -8, 8), 0.04)
    assert total == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("cls", [RealNVP, ResidualFlow], ids=["realnvp", "residual"])
def test_trained_density_integrates_to_one_and_beats_the_untrained(cls, grid_integral):
    toy = data.toy("moons")
    x = toy.sample(2048, generator=torch.Generator().manual_seed(0))
    flow = cls(dim=2, hidden=32)
    before = genbook.evaluate(flow, x)
    genbook.fit(flow, x, steps=60, batch_size=256, lr=5e-3, generator=torch.Generator().manual_seed(0))
    assert genbook.evaluate(flow, x) < before - 0.5
    with torch.no_grad():
        total = grid_integral(flow.double().log_prob, (-5, 5, -5, 5), 0.025)
    assert total == pytest.approx(1.0, abs=1e-2)


def test_standard_normal_matches_torch_distributions(gen):
    base = StandardNormal(dim=3).double()
    z = _points(7, 3)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(base.log_prob(z), ref)
    s = base.sample(20000, generator=gen)
    assert s.shape == (20000, 3) and s.dtype == torch.float64
    assert s.mean(0).abs().max() < Z / math.sqrt(20000) and (s.var(0) - 1).abs().max() < 0.05


@pytest.mark.parametrize("name", ["realnvp 2-D", "residual 2-D exact"])
def test_sample_is_the_inverse_of_base_noise(name):
    flow = FLOWS[name]()
    x = flow.sample(50, generator=torch.Generator().manual_seed(5))
    assert x.shape == (50, 2) and x.dtype == torch.float64 and x.device == flow.base.loc.device
    z = flow.base.sample(50, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(flow(x)[0], z, atol=1e-9, rtol=1e-9)
    assert torch.equal(x, flow.sample(50, generator=torch.Generator().manual_seed(5)))


def test_float32_model_casts_float64_input():
    flow = RealNVP(dim=2)
    assert flow.log_prob(_points(3, 2)).dtype == torch.float32
    assert flow.sample(4).dtype == torch.float32


# ================================================================ dequantised digits
def test_dequantize_stays_in_the_bins(gen):
    x = torch.randint(0, 17, (200, 64), generator=gen)
    u = dequantize(x, generator=gen) - x
    assert u.dtype == torch.float32 and u.min() >= 0 and u.max() < 1 and u.std() > 0.25


def _unchecked_log_prob(flow, x):
    """``log p(x)`` summed by hand over ``flow.transforms``, without the model's input checks."""
    logdet = 0
    for t in flow.transforms:
        x, ld = t(x)
        logdet = logdet + ld
    return flow.base.log_prob(x) + logdet


def test_digits_flow_density_integrates_to_one_over_its_support(grid_integral):
    flow = _digits_flow(dim=2, levels=3)
    alpha = flow.alpha * flow.levels / (1 - 2 * flow.alpha)  # the support is (-alpha', levels + alpha')
    lo, hi = -alpha, flow.levels + alpha
    with torch.no_grad():
        total = grid_integral(lambda x: _unchecked_log_prob(flow, x), (lo, hi, lo, hi), (hi - lo) / 600)
        inside = grid_integral(flow.log_prob, (0, 3, 0, 3), 3 / 600)
    assert total == pytest.approx(1.0, abs=5e-3)
    assert 0.5 < inside < total


def test_nll_bound_is_the_bin_average_and_bounds_the_discrete_nll():
    flow = _digits_flow(dim=2, levels=3)
    levels = torch.tensor([[i, j] for i in range(3) for j in range(3)])
    m = 200  # midpoint grid inside each bin
    u = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        lp = torch.stack([flow.log_prob(x + grid) for x in levels.double()])  # (9, m^2)
    discrete_nll = -torch.logsumexp(lp, 1) + math.log(m * m)  # -log P(x), P(x) = integral over the bin
    bound = -lp.mean(1)  # -E_u log p(x + u)
    assert torch.logsumexp(-discrete_nll, 0) < 0  # sum_x P(x) <= 1
    assert (bound > discrete_nll).all()  # Jensen
    n = 4000
    est = flow.nll_bound(levels, n_samples=n, generator=torch.Generator().manual_seed(6))
    sd = torch.stack([(-lp[k]).std() for k in range(9)])
    assert ((est - bound).abs() < Z * sd / math.sqrt(n)).all()


def test_iw_nll_bound_with_one_sample_is_the_plain_bound():
    flow = _digits_flow(dim=4, levels=5)
    x = torch.tensor([[0, 1, 4, 2], [3, 3, 0, 1]])
    iw = flow.iw_nll_bound(x, n_samples=1, generator=torch.Generator().manual_seed(2))
    plain = flow.nll_bound(x, n_samples=1, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(iw, plain, rtol=0, atol=1e-12)


def test_iw_nll_bound_is_below_the_plain_bound_for_the_same_draws():
    """log of a mean >= mean of logs (Jensen), draw by draw, so iw <= plain with the same noise."""
    flow = _digits_flow(dim=4, levels=5)
    x = torch.tensor([[0, 1, 4, 2], [3, 3, 0, 1], [4, 4, 4, 4]])
    iw = flow.iw_nll_bound(x, n_samples=16, generator=torch.Generator().manual_seed(3))
    plain = flow.nll_bound(x, n_samples=16, generator=torch.Generator().manual_seed(3))
    assert (iw <= plain + 1e-12).all() and (iw < plain).any()


def test_iw_nll_bound_tends_to_the_exact_discrete_nll():
    """On a 2-D flow -log P(x) is a quadrature over the unit cell; the IW bound approaches it from
    above as S grows (in expectation), the plain bound stays at -E log p."""
    flow = _digits_flow(dim=2, levels=3)
    levels = torch.tensor([[i, j] for i in range(3) for j in range(3)])
    m = 200
    u = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        lp = torch.stack([flow.log_prob(x + grid) for x in levels.double()])
    exact = -torch.logsumexp(lp, 1) + math.log(m * m)
    plain = -lp.mean(1)
    gen = torch.Generator().manual_seed(9)
    iw = flow.iw_nll_bound(levels, n_samples=20_000, generator=gen)
    assert (plain - exact > 0.5).any()  # a loose plain bound for some levels: the test can tell
    assert (iw < plain).all()
    assert ((iw - exact).abs() < 0.05 + 0.2 * (plain - exact)).all()


def test_digits_loss_uses_the_same_noise_as_nll_bound():
    flow = _digits_flow(dim=64, levels=17).float()
    x = data.digits("val")[:32]
    torch.manual_seed(11)
    loss = flow.loss(x)
    torch.manual_seed(11)
    bound = flow.nll_bound(x)
    assert loss.item() == pytest.approx(bound.mean().item(), rel=1e-6)


def test_digits_flow_samples_are_levels():
    flow = _digits_flow(dim=4, levels=5)
    s = flow.sample(500, generator=torch.Generator().manual_seed(0))
    assert s.shape == (500, 4) and s.dtype == torch.long and s.min() >= 0 and s.max() <= 4
    assert len(torch.unique(s)) == 5


def test_digits_flow_trains_below_the_uniform_bound():
    x = data.digits("train")[:256]
    flow = DigitsFlow(hidden=32, couplings=4)  # the digits defaults otherwise: 8 x 8 masks, tanh, dropout
    hist = genbook.fit(flow, x, steps=60, batch_size=64, lr=3e-3, generator=torch.Generator().manual_seed(0))
    assert sum(hist.train_loss[-5:]) / 5 < hist.train_loss[0] - 20
    assert float(flow.nll_bound(x).mean()) < 64 * math.log(17)  # the uniform distribution


# ================================================================ training, save / load
@pytest.mark.parametrize("cls", [RealNVP, ResidualFlow], ids=["realnvp", "residual"])
def test_fit_lowers_the_loss(cls):
    x = data.toy("8gaussians").sample(1024, generator=torch.Generator().manual_seed(0))
    flow = cls(dim=2, hidden=32, **({"couplings": 4} if cls is RealNVP else {"blocks": 4}))
    before = genbook.evaluate(flow, x)
    genbook.fit(flow, x, steps=40, batch_size=128, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert genbook.evaluate(flow, x) < before - (0.5 if cls is RealNVP else 0.2)


@pytest.mark.parametrize("name", list(FLOWS) + ["residual series"])
def test_save_load_round_trip(name, tmp_path):
    flow = FLOWS[name]() if name in FLOWS else _residual(3, exact=False, n_terms=3)
    flow = flow.float()  # the default dtype, which load rebuilds
    path = tmp_path / "flow.pt"
    genbook.save(flow, path)
    loaded = genbook.load(path)
    assert type(loaded) is type(flow) and loaded.config() == flow.config()
    x = _inputs_for(name.split()[0], flow.dim)
    torch.manual_seed(0)
    a = flow.log_prob(x)
    torch.manual_seed(0)
    assert torch.equal(loaded.log_prob(x), a)


# ================================================================ bad input
BAD_X = [
    ("wrong dim", lambda d: torch.zeros(3, d + 1), r"x must be a tensor of shape \(B, {d}\).*\(3, {d1}\)"),
    ("1-D", lambda d: torch.zeros(d), r"x must be a tensor of shape \(B, {d}\).*\({d},\)"),
    ("empty", lambda d: torch.zeros(0, d), r"x must be a tensor of shape \(B, {d}\) with B >= 1"),
    ("list", lambda d: [[0.0] * d], r"x must be a tensor of shape \(B, {d}\).*list"),
    ("nan", lambda d: torch.full((2, d), math.nan), r"x contains NaN or infinite"),
    ("inf", lambda d: torch.full((2, d), math.inf), r"x contains NaN or infinite"),
]


@pytest.mark.parametrize("what, make, message", BAD_X, ids=[b[0] for b in BAD_X])
@pytest.mark.parametrize("name", ["realnvp 2-D", "residual 2-D exact", "digits"])
def test_bad_points_raise_value_error_naming_the_argument(name, what, make, message):
    flow = FLOWS[name]()
    d = flow.dim
    msg = message.format(d=d, d1=d + 1)
    for method in (flow.log_prob, flow.forward) + ((flow.loss,) if name != "digits" else ()):
        with pytest.raises(ValueError, match=msg):
            method(make(d))
    with pytest.raises(ValueError, match=msg.replace("x ", "z ", 1)):
        flow.inverse(make(d))


def test_digits_flow_rejects_values_outside_its_domain():
    flow = _digits_flow(dim=4, levels=5)
    with pytest.raises(ValueError, match=r"x must hold dequantised values in \[0, 5\].*-0\.5"):
        flow.log_prob(torch.tensor([[-0.5, 1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match=r"x must hold dequantised \(floating-point\) values, got dtype torch.int64"):
        flow.log_prob(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must hold integer levels 0\.\.4.*float"):
        flow.loss(torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"x must hold levels 0\.\.4, found 5"):
        flow.nll_bound(torch.tensor([[0, 1, 5, 2]]))
    with pytest.raises(ValueError, match=r"x must have length 4, got 3"):
        flow.loss(torch.zeros(2, 3, dtype=torch.long))


BAD_CONSTRUCTORS = [
    ("realnvp dim 1", lambda: RealNVP(dim=1), "dim"),
    ("realnvp dim 0", lambda: RealNVP(dim=0), "dim"),
    ("realnvp couplings 1", lambda: RealNVP(couplings=1), "couplings"),
    ("realnvp hidden 0", lambda: RealNVP(hidden=0), "hidden"),
    ("coupling mask length", lambda: AffineCoupling(dim=3, mask=[1, 0]), "mask"),
    ("coupling mask all ones", lambda: AffineCoupling(dim=2, mask=[1, 1]), "mask"),
    ("coupling mask values", lambda: AffineCoupling(dim=2, mask=[2, 0]), "mask"),
    ("realnvp activation", lambda: RealNVP(activation="sigmoid"), "activation"),
    ("realnvp dropout 1", lambda: RealNVP(dropout=1.0), "dropout"),
    ("realnvp image_shape", lambda: RealNVP(dim=6, image_shape=(2, 2)), "image_shape"),
    ("digits image_shape", lambda: DigitsFlow(dim=16), "image_shape"),
    ("residual lipschitz 1", lambda: ResidualFlow(lipschitz=1.0), "lipschitz"),
    ("residual lipschitz 0", lambda: ResidualBlock(lipschitz=0.0), "lipschitz"),
    ("residual blocks 0", lambda: ResidualFlow(blocks=0), "blocks"),
    ("residual n_terms 0", lambda: ResidualBlock(n_terms=0), "n_terms"),
    ("residual max_iter 0", lambda: ResidualBlock(max_iter=0), "max_iter"),
    ("residual tol 0", lambda: ResidualBlock(tol=0.0), "tol"),
    ("digits alpha 0.5", lambda: DigitsFlow(alpha=0.5), "alpha"),
    ("digits levels 0", lambda: DigitsFlow(levels=0), "levels"),
]


@pytest.mark.parametrize("what, make, name", BAD_CONSTRUCTORS, ids=[b[0] for b in BAD_CONSTRUCTORS])
def test_bad_constructor_arguments_raise(what, make, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        make()


def test_bad_sample_sizes_raise():
    # genbook._checks.check_int's message names the minimum
    with pytest.raises(ValueError, match=r"^n must be an int >= 1, got 0 \(int\)"):
        RealNVP().sample(0)
    with pytest.raises(ValueError, match=r"^n_samples must be an int >= 1, got 0 \(int\)"):
        _digits_flow().nll_bound(torch.zeros(1, 4, dtype=torch.long), n_samples=0)
