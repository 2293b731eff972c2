"""MCMC kernels, the run() driver, diagnostics and the exact MH transition matrix (chapter 2).

The moment tests compare Monte Carlo estimates with known moments, within ``Z`` Monte
Carlo standard errors ``sqrt(Var f / ESS)``; they assert the ESS is large, so the
tolerance is tight, and the acceptance rate is in a sane band, so that a chain that
never moves cannot pass by standing still at exact draws.
"""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from genbook import sampling
from genbook.sampling import (
    MALA,
    GaussianGibbs,
    IndependentMetropolisHastings,
    Info,
    Langevin,
    RandomWalkMetropolis,
    State,
    autocorrelation,
    effective_sample_size,
    mh_transition_matrix,
    run,
    split_rhat,
)

F64 = torch.float64
Z = 5.0  # tolerance, in Monte Carlo standard errors
KERNELS = ["rwm", "mala", "ula", "gibbs", "imh"]


def _assert_within_mc(what, estimate, expected, var_f, ess, bias=0.0):
    """|estimate - expected| <= Z sqrt(var_f / ess) + |bias|, elementwise, with a readable failure."""
    tol = Z * torch.sqrt(torch.as_tensor(var_f, dtype=F64) / torch.as_tensor(ess, dtype=F64))
    tol = tol + torch.as_tensor(bias, dtype=F64).abs()
    err = (torch.as_tensor(estimate, dtype=F64) - torch.as_tensor(expected, dtype=F64)).abs()
    worst = int(torch.argmax(err / tol))
    assert bool((err <= tol).all()), (
        f"{what}: {int((err > tol).sum())} of {err.numel()} outside tolerance; worst at {worst}: "
        f"error {float(err.flatten()[worst]):.4g} > tolerance {float(tol.flatten()[worst]):.4g}"
    )


def _ula_gaussian_variance(lam, eta, steps=None):
    """Variance of ULA on N(0, lam) along one eigen-direction, started at variance lam.

    ``x' = (1 - eta/lam) x + sqrt(2 eta) eps`` has stationary variance
    ``2 eta / (1 - (1 - eta/lam)^2) = lam / (1 - eta / (2 lam))``; after ``steps`` steps
    from variance lam the gap to it has shrunk by ``(1 - eta/lam)^(2 steps)``.
    """
    stationary = lam / (1 - eta / (2 * lam))
    if steps is None:
        return stationary
    return stationary + (lam - stationary) * (1 - eta / lam) ** (2 * steps)


# ================================================================ targets
# (a) a correlated 2-D Gaussian: correlation 0.9, standard deviations 1 and 2, non-zero mean
MEAN_2D = torch.tensor([1.0, -2.0], dtype=F64)
COV_2D = torch.tensor([[1.0, 0.9 * 2.0], [0.9 * 2.0, 4.0]], dtype=F64)


def _kernel_2d(name, gen):
    log_prob = sampling.gaussian_target(MEAN_2D, COV_2D)
    if name == "rwm":
        return RandomWalkMetropolis(log_prob, step_size=0.8, generator=gen)
    if name == "mala":
        return MALA(log_prob, step_size=0.15, generator=gen)
    if name == "ula":
        return Langevin(log_prob, step_size=ULA_STEP_2D, generator=gen)
    if name == "gibbs":
        return GaussianGibbs(MEAN_2D, COV_2D, generator=gen)
    # a wide proposal: variance 9 in every direction, more than the target's largest (4.84)
    wide = MultivariateNormal(torch.zeros(2, dtype=F64), covariance_matrix=9 * torch.eye(2, dtype=F64))
    return IndependentMetropolisHastings(log_prob, wide)  # torch.distributions take no generator


ULA_STEP_2D = 0.02
# burn_in, n_steps, thin, acceptance band
RUN_2D = {
    "rwm": (200, 800, 1, (0.3, 0.7)),
    "mala": (200, 800, 1, (0.6, 0.99)),
    "ula": (1000, 3000, 10, (1.0, 1.0)),
    "gibbs": (50, 300, 1, (1.0, 1.0)),
    "imh": (100, 800, 1, (0.05, 0.5)),
}


def _target_100d():
    """N(mu, Q diag(lam) Q^T): lam from ill_conditioned_cov(100, 100), a random rotation Q, mu != 0.

    Rotating keeps the condition number at 100 and makes the coordinates correlated,
    which Gibbs (coordinate by coordinate) would otherwise find trivial.
    """
    D = 100
    lam = torch.diagonal(sampling.ill_conditioned_cov(D, 100.0))
    Q, _ = torch.linalg.qr(torch.randn(D, D, dtype=F64, generator=torch.Generator().manual_seed(123)))
    cov = (Q * lam) @ Q.T
    cov = (cov + cov.T) / 2
    mu = torch.linspace(-2.0, 3.0, D, dtype=F64)
    return mu, cov, lam, Q


# ================================================================ moments of known targets
@pytest.mark.parametrize("name, workers", [(k, 1) for k in KERNELS] + [("rwm", 2), ("mala", 3)])
def test_sampler_matches_correlated_2d_gaussian(name, workers, gen):
    C = 1000
    burn_in, n_steps, thin, (acc_lo, acc_hi) = RUN_2D[name]
    chol = torch.linalg.cholesky(COV_2D)
    x0 = MEAN_2D + 4.0 * torch.randn(C, 2, dtype=F64, generator=gen) @ chol.T  # overdispersed starts
    res = run(_kernel_2d(name, gen), x0, n_steps, burn_in=burn_in, thin=thin, workers=workers)
    S = n_steps // thin
    assert res.samples.shape == (S, C, 2)

    # f(x) = x, (x - mu)^2 and (x1 - mu1)(x2 - mu2): their means are mu, the variances, the covariance
    d = res.samples - MEAN_2D
    stats = torch.cat([res.samples, d**2, d[..., :1] * d[..., 1:]], 2)  # (S, C, 5)
    var = torch.diagonal(COV_2D)
    expected = torch.cat([MEAN_2D, var, COV_2D[0, 1:]])
    var_f = torch.cat([var, 2 * var**2, (var[0] * var[1] + COV_2D[0, 1] ** 2)[None]])  # Gaussian moments
    ess = effective_sample_size(stats)
    assert torch.allclose(ess[:2], res.ess)  # run() reports the ESS of x itself
    assert float(ess.min()) > 2000, f"ESS {ess.tolist()} too small for a meaningful test"

    bias = torch.zeros(5, dtype=F64)
    if name == "ula":
        # ULA samples N(mu, cov_eta) exactly, cov_eta = Q diag(lam / (1 - eta / (2 lam))) Q^T
        lam, Q = torch.linalg.eigh(COV_2D)
        cov_eta = (Q * _ula_gaussian_variance(lam, ULA_STEP_2D)) @ Q.T
        bias = torch.cat([torch.zeros(2, dtype=F64), torch.diagonal(cov_eta - COV_2D), (cov_eta - COV_2D)[0, 1:]])
        assert float(bias.abs().max()) < 0.02  # small step, small bias...
    _assert_within_mc(f"{name} moments", stats.mean((0, 1)), expected, var_f, ess, bias)
    corr = stats[..., 4].mean() / torch.sqrt(stats[..., 2].mean() * stats[..., 3].mean())
    corr_bias = float((expected[4] + bias[4]) / torch.sqrt((expected[2] + bias[2]) * (expected[3] + bias[3]))) - 0.9
    assert abs(float(corr) - 0.9) < 0.01 + abs(corr_bias)
    assert float(res.rhat.max()) < 1.2  # the chains agree with each other after burn-in
    assert acc_lo <= res.acceptance_rate <= acc_hi  # the chains do move


# step sizes for the 100-D target: its smallest standard deviation is 1, its largest 10
STEPS_100D = {"rwm": 0.25, "mala": 0.5, "ula": 0.05}
RUN_100D = {  # total steps, acceptance band
    "rwm": (150, (0.15, 0.6)),
    "mala": (150, (0.4, 0.95)),
    "ula": (150, (1.0, 1.0)),
    "gibbs": (40, (1.0, 1.0)),
    "imh": (100, (0.1, 0.8)),
}


@pytest.mark.parametrize("name", KERNELS)
def test_sampler_leaves_100d_ill_conditioned_gaussian_invariant(name, gen):
    """Chains started at C exact draws are, after N steps, C independent exact draws iff the kernel is invariant.

    The final states of independent chains have ESS = C exactly, whatever the mixing,
    so the tolerance needs no autocorrelation estimate: here a run is far shorter than the
    slowest coordinate's autocorrelation time, where autocorrelation-based ESS estimates
    are off by factors of 2 to 5 (either way, depending on the estimator).
    A wrong acceptance ratio moves the chains away from the target within these steps.
    """
    C = 1000
    mu, cov, lam, Q = _target_100d()
    D = mu.shape[0]
    L = torch.linalg.cholesky(cov)
    log_prob = sampling.gaussian_target(mu, cov)
    if name == "rwm":
        kernel = RandomWalkMetropolis(log_prob, step_size=STEPS_100D[name], generator=gen)
    elif name == "mala":
        kernel = MALA(log_prob, step_size=STEPS_100D[name], generator=gen)
    elif name == "ula":
        kernel = Langevin(log_prob, step_size=STEPS_100D[name], generator=gen)
    elif name == "gibbs":
        kernel = GaussianGibbs(mu, cov, generator=gen)
    else:  # wider than the target in every direction (scale 1.1), so the weights p / q are bounded
        kernel = IndependentMetropolisHastings(log_prob, MultivariateNormal(mu, covariance_matrix=1.1**2 * cov))
    n_total, (acc_lo, acc_hi) = RUN_100D[name]
    x0 = mu + torch.randn(C, D, dtype=F64, generator=gen) @ L.T
    res = run(kernel, x0, 10, burn_in=n_total - 10, diagnostics=False)
    x = res.samples[-1]  # (C, D): the states after n_total steps

    # the exact moments after n_total steps; for ULA they drift by a known O(eta) bias
    var_y = lam.clone()
    if name == "ula":
        var_y = _ula_gaussian_variance(lam, STEPS_100D["ula"], n_total)
        assert float((var_y / lam - 1).max()) < 0.03
    y = (x - mu) @ Q  # eigen-coordinates: independent N(0, lam_i) under the target
    _assert_within_mc("mean of x", x.mean(0), mu, torch.diagonal(cov), C)
    _assert_within_mc("variance along eigenvectors", (y**2).mean(0), lam, 2 * lam**2, C, var_y - lam)
    cov_x = (Q * var_y) @ Q.T
    _assert_within_mc(
        "variance of x",
        ((x - mu) ** 2).mean(0),
        torch.diagonal(cov),
        2 * torch.diagonal(cov) ** 2,
        C,
        torch.diagonal(cov_x - cov),
    )
    # aggregate: the whitened squared norm is chi^2_D (mean D, variance 2D) under the target
    w = torch.linalg.solve_triangular(L, (x - mu).T, upper=False).T
    chi2_mean = float(torch.diagonal(torch.linalg.solve(cov, cov_x)).sum())
    _assert_within_mc("|L^-1 (x - mu)|^2", (w**2).sum(1).mean(), D, 2 * D, C, chi2_mean - D)
    # the whitened mean: C |mean|^2 ~ chi^2_D, so |mean|^2 <= (D + Z sqrt(2D)) / C
    assert float((w.mean(0) ** 2).sum()) <= (D + Z * math.sqrt(2 * D)) / C
    # not a vacuous pass: the chains move (a kernel that never moves leaves any target invariant)
    assert acc_lo <= res.acceptance_rate <= acc_hi
    assert float((x != x0).any(1).double().mean()) > 0.9


# ================================================================ ULA's bias and MALA's correction
@pytest.mark.parametrize("eta", [0.2, 0.5, 1.0])
def test_ula_on_standard_gaussian_has_variance_one_over_one_minus_half_step(eta, gen):
    # x' = (1 - eta) x + sqrt(2 eta) eps:  var = 2 eta / (1 - (1 - eta)^2) = 1 / (1 - eta / 2)
    C = 2000
    kernel = Langevin(lambda x: -0.5 * (x**2).sum(1), step_size=eta, generator=gen)
    res = run(kernel, torch.randn(C, 1, dtype=F64, generator=gen), 300, burn_in=30)
    x2 = res.samples**2
    ess = effective_sample_size(x2)
    assert float(ess.min()) > 20_000
    expected = 1 / (1 - eta / 2)
    _assert_within_mc("ULA variance", x2.mean(), expected, 2 * expected**2, ess)
    _assert_within_mc("ULA mean", res.samples.mean(), 0.0, expected, res.ess)
    # the bias is real: 1 is far outside the same tolerance
    assert float(x2.mean()) - 1 > 0.8 * (expected - 1) > 10 * math.sqrt(2 * expected**2 / float(ess))


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_mala_removes_the_langevin_bias(eta, gen):
    C = 2000
    kernel = MALA(lambda x: -0.5 * (x**2).sum(1), step_size=eta, generator=gen)
    res = run(kernel, torch.randn(C, 1, dtype=F64, generator=gen), 300, burn_in=30)
    x2 = res.samples**2
    ess = effective_sample_size(x2)
    assert float(ess.min()) > 20_000
    _assert_within_mc("MALA variance", x2.mean(), 1.0, 2.0, ess)
    assert 0.5 < res.acceptance_rate < 1.0
    ula = 1 / (1 - eta / 2)
    assert abs(float(x2.mean()) - ula) > 10 * math.sqrt(2 * ula**2 / float(ess))


# ================================================================ one step, checked exactly
def _aniso_log_prob(x):
    """An anisotropic Gaussian with a non-zero mean, (C, 2) -> (C,)."""
    return -0.5 * (((x - torch.tensor([0.5, -1.0], dtype=x.dtype)) / torch.tensor([1.0, 0.3], dtype=x.dtype)) ** 2).sum(
        1
    )


def _one_step(kernel, C, gen):
    x0 = 1.5 * torch.randn(C, 2, dtype=F64, generator=gen)
    state = kernel.init(x0)
    new, info = kernel.step(state)
    assert info.accepted.shape == (C,) and info.accepted.dtype == torch.bool
    assert info.log_alpha.shape == (C,) and bool((info.log_alpha <= 0).all())
    moved = (new.x != x0).any(1)
    assert torch.equal(moved, info.accepted)
    assert torch.equal(new.x[~moved], x0[~moved]) and torch.equal(new.log_p[~moved], state.log_p[~moved])
    assert torch.allclose(new.log_p, _aniso_log_prob(new.x), atol=1e-12)  # the cached log p is current
    # the accept/reject draw: P(accept) = alpha, so the acceptance frequency matches mean(alpha)
    rate, alpha = info.accepted.double().mean(), info.log_alpha.exp().mean()
    assert abs(float(rate - alpha)) < Z * math.sqrt(float(alpha * (1 - alpha)) / C)
    return x0, state, new, info, moved


def test_rwm_log_alpha_is_log_target_ratio(gen):
    x0, _, new, info, moved = _one_step(
        RandomWalkMetropolis(_aniso_log_prob, step_size=0.7, generator=gen), 20_000, gen
    )
    expected = (_aniso_log_prob(new.x) - _aniso_log_prob(x0)).clamp(max=0)
    assert torch.allclose(info.log_alpha[moved], expected[moved], atol=1e-10)
    assert 0.1 < float(moved.double().mean()) < 0.9, float(moved.double().mean())


def test_mala_log_alpha_has_the_hastings_correction(gen):
    eta = 0.2
    x0, state, new, info, moved = _one_step(MALA(_aniso_log_prob, step_size=eta, generator=gen), 20_000, gen)

    def grad(x):
        x = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_aniso_log_prob(x).sum(), x)
        return g

    def log_q(to, frm):  # N(to; frm + eta grad log p(frm), 2 eta I), up to a constant that cancels
        return -((to - frm - eta * grad(frm)) ** 2).sum(1) / (4 * eta)

    assert torch.allclose(state.grad, grad(x0), atol=1e-12)
    assert torch.allclose(new.grad, grad(new.x), atol=1e-12)
    a = new.x
    expected = (_aniso_log_prob(a) - _aniso_log_prob(x0) + log_q(x0, a) - log_q(a, x0)).clamp(max=0)
    assert torch.allclose(info.log_alpha[moved], expected[moved], atol=1e-10)
    assert 0.1 < float(moved.double().mean()) < 0.9, float(moved.double().mean())


def test_imh_log_alpha_has_the_proposal_ratio(gen):
    q = MultivariateNormal(
        torch.tensor([0.3, -0.5], dtype=F64), covariance_matrix=torch.diag(torch.tensor([4.0, 0.5], dtype=F64))
    )
    x0, _, new, info, moved = _one_step(IndependentMetropolisHastings(_aniso_log_prob, q), 20_000, gen)
    a = new.x
    expected = (_aniso_log_prob(a) - _aniso_log_prob(x0) + q.log_prob(x0) - q.log_prob(a)).clamp(max=0)
    assert torch.allclose(info.log_alpha[moved], expected[moved], atol=1e-10)
    assert 0.1 < float(moved.double().mean()) < 0.97, float(moved.double().mean())


def test_ula_step_is_the_langevin_update(gen):
    eta = 0.1
    x0 = torch.randn(500, 2, dtype=F64, generator=gen)
    kernel = Langevin(_aniso_log_prob, step_size=eta, generator=torch.Generator().manual_seed(77))
    new, info = kernel.step(kernel.init(x0))
    eps = torch.randn(x0.shape, dtype=F64, generator=torch.Generator().manual_seed(77))  # the same noise
    grad = -(x0 - torch.tensor([0.5, -1.0], dtype=F64)) / torch.tensor([1.0, 0.3], dtype=F64) ** 2
    assert torch.allclose(new.x, x0 + eta * grad + math.sqrt(2 * eta) * eps, atol=1e-12)
    assert torch.allclose(new.log_p, _aniso_log_prob(new.x), atol=1e-12)
    assert bool(info.accepted.all())


def test_gaussian_gibbs_sweep_draws_each_conditional(gen):
    # Two coordinates, one sweep from a fixed x: x1 | x2 then x2 | new x1, exact conditionals.
    mean, cov = MEAN_2D, COV_2D
    C = 100_000
    x0 = torch.tensor([[3.0, 1.0]], dtype=F64).expand(C, 2).contiguous()
    new, info = GaussianGibbs(mean, cov, generator=gen).step(State(x0, torch.zeros(C, dtype=F64)))
    assert bool(info.accepted.all())
    s11, s12, s22 = cov[0, 0], cov[0, 1], cov[1, 1]
    m1 = mean[0] + s12 / s22 * (x0[0, 1] - mean[1])
    v1 = s11 - s12**2 / s22
    _assert_within_mc("x1 | x2 mean", new.x[:, 0].mean(), m1, v1, C)
    _assert_within_mc("x1 | x2 variance", ((new.x[:, 0] - m1) ** 2).mean(), v1, 2 * v1**2, C)
    # x2 is then drawn given the new x1: residual mean and variance of the regression on x1
    m2 = mean[1] + s12 / s11 * (new.x[:, 0] - mean[0])
    v2 = s22 - s12**2 / s11
    r = new.x[:, 1] - m2
    _assert_within_mc("x2 | x1 mean", r.mean(), 0.0, v2, C)
    _assert_within_mc("x2 | x1 variance", (r**2).mean(), v2, 2 * v2**2, C)
    assert torch.allclose(new.log_p, sampling.gaussian_target(mean, cov)(new.x), atol=1e-12)


# ================================================================ run()
class _Counter:
    """A deterministic kernel: every chain's x goes up by 1 per step; the step is 'accepted' when x
    is a multiple of 3."""

    def init(self, x0):
        return State(x0.clone(), torch.zeros(x0.shape[0], dtype=x0.dtype))

    def step(self, state):
        x = state.x + 1
        accepted = x[:, 0] % 3 == 0
        return State(x, state.log_p), Info(accepted=accepted, log_alpha=torch.zeros_like(state.log_p))


@pytest.mark.parametrize("n_steps, burn_in, thin", [(12, 5, 3), (12, 0, 1), (20, 7, 4), (6, 0, 6)])
def test_run_keeps_every_thin_th_state_after_burn_in(n_steps, burn_in, thin):
    C, D = 3, 2
    res = run(_Counter(), torch.zeros(C, D, dtype=F64), n_steps, burn_in=burn_in, thin=thin)
    assert res.samples.shape == (n_steps // thin, C, D)
    counts = res.samples[:, 0, 0]  # the number of steps taken when each sample was kept
    assert torch.equal(res.samples, counts[:, None, None].expand(-1, C, D))
    assert float(counts[0]) > burn_in  # nothing from the burn-in
    assert float(counts[-1]) <= burn_in + n_steps
    assert bool((counts.diff() == thin).all())
    # the acceptance rate counts the post-burn-in steps only: values burn_in+1 .. burn_in+n_steps
    values = range(burn_in + 1, burn_in + n_steps + 1)
    assert res.acceptance_rate == pytest.approx(sum(v % 3 == 0 for v in values) / n_steps, abs=1e-12)


def test_run_burn_in_and_thin_subsample_the_same_chain(gen):
    x0 = torch.randn(50, 2, dtype=F64, generator=gen)
    log_prob = sampling.gaussian_target(MEAN_2D, COV_2D)
    full = run(RandomWalkMetropolis(log_prob, step_size=0.5, generator=torch.Generator().manual_seed(5)), x0, 30)
    part = run(
        RandomWalkMetropolis(log_prob, step_size=0.5, generator=torch.Generator().manual_seed(5)),
        x0,
        24,
        burn_in=6,
        thin=4,
    )
    assert part.samples.shape == (6, 50, 2)
    # locate every kept sample in the full run: the same states, thin steps apart, after the burn-in
    where = [next(t for t in range(30) if torch.equal(full.samples[t], s)) for s in part.samples]
    assert where[0] >= 6 and all(b - a == 4 for a, b in zip(where, where[1:]))


def test_run_diagnostics_are_those_of_its_samples(gen):
    log_prob = sampling.gaussian_target(MEAN_2D, COV_2D)
    res = run(
        RandomWalkMetropolis(log_prob, step_size=0.8, generator=gen), torch.randn(20, 2, dtype=F64, generator=gen), 200
    )
    assert res.ess.shape == (2,) and res.rhat.shape == (2,)
    assert torch.equal(res.ess, effective_sample_size(res.samples))
    assert torch.equal(res.rhat, split_rhat(res.samples))
    assert res.seconds > 0 and torch.allclose(res.ess_per_second, res.ess / res.seconds)
    off = run(
        RandomWalkMetropolis(log_prob, step_size=0.8, generator=gen),
        torch.zeros(20, 2, dtype=F64),
        50,
        diagnostics=False,
    )
    assert bool(off.ess.isnan().all()) and bool(off.rhat.isnan().all())
    with pytest.raises(ValueError, match="diagnostics=False"):
        off.ess_per_second


def _kernel_for_determinism(name, gen):
    log_prob = sampling.gaussian_target(MEAN_2D, COV_2D)
    return {
        "rwm": lambda: RandomWalkMetropolis(log_prob, step_size=0.8, generator=gen),
        "mala": lambda: MALA(log_prob, step_size=0.1, generator=gen),
        "ula": lambda: Langevin(log_prob, step_size=0.1, generator=gen),
        "gibbs": lambda: GaussianGibbs(MEAN_2D, COV_2D, generator=gen),
    }[name]()


@pytest.mark.parametrize("name", ["rwm", "mala", "ula", "gibbs"])
def test_run_is_deterministic_given_a_seeded_generator(name):
    x0 = torch.zeros(30, 2, dtype=F64)

    def once(seed):
        return run(_kernel_for_determinism(name, torch.Generator().manual_seed(seed)), x0, 40).samples

    torch.manual_seed(0)
    a = once(1)
    torch.manual_seed(99)  # the global generator must not matter
    before = torch.random.get_rng_state()
    b = once(1)
    assert torch.equal(torch.random.get_rng_state(), before)  # ... nor be consumed
    assert torch.equal(a, b)
    assert not torch.equal(a, once(2))


def test_imh_is_deterministic_given_the_global_seed():
    log_prob = sampling.gaussian_target(MEAN_2D, COV_2D)
    q = MultivariateNormal(torch.zeros(2, dtype=F64), covariance_matrix=9 * torch.eye(2, dtype=F64))

    def once(seed):
        torch.manual_seed(seed)
        return run(IndependentMetropolisHastings(log_prob, q), torch.zeros(30, 2, dtype=F64), 40).samples

    assert torch.equal(once(1), once(1))
    assert not torch.equal(once(1), once(2))


def test_imh_is_deterministic_given_a_seeded_generator():
    log_prob = sampling.gaussian_target(MEAN_2D, COV_2D)
    q = MultivariateNormal(torch.zeros(2, dtype=F64), covariance_matrix=9 * torch.eye(2, dtype=F64))

    def once(seed):
        kernel = IndependentMetropolisHastings(log_prob, q, generator=torch.Generator().manual_seed(seed))
        return run(kernel, torch.zeros(30, 2, dtype=F64), 40).samples

    before = torch.random.get_rng_state()
    a = once(1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a, once(1)) and not torch.equal(a, once(2))
    assert float((a[-1] != 0).any(1).double().mean()) > 0.5  # the chains moved


@pytest.mark.parametrize("name", ["rwm", "mala", "ula", "gibbs"])
def test_run_leaves_x0_alone_and_keeps_dtype(name, gen):
    x0 = torch.randn(10, 2, generator=gen)  # float32
    copy = x0.clone()
    res = run(_kernel_for_determinism(name, gen), x0, 5)
    assert torch.equal(x0, copy)
    assert res.samples.dtype == torch.float32 and res.samples.shape == (5, 10, 2)
    assert bool(torch.isfinite(res.samples).all())


# ================================================================ diagnostics
def _ar1(phi, S, C, D, gen):
    """Stationary AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) eps: (S, C, D), autocorrelation phi^k."""
    eps = torch.randn(S, C, D, dtype=F64, generator=gen)
    x = torch.empty_like(eps)
    x[0] = eps[0]
    s = math.sqrt(1 - phi**2)
    for t in range(1, S):
        x[t] = phi * x[t - 1] + s * eps[t]
    return x


def test_autocorrelation_matches_brute_force(gen):
    x = torch.randn(37, 3, 2, dtype=F64, generator=gen).cumsum(0)  # strongly autocorrelated
    rho = autocorrelation(x)
    assert rho.shape == x.shape
    S = x.shape[0]
    y = x - x.mean(0)
    for c in range(3):
        for d in range(2):
            v = y[:, c, d].tolist()
            acov = [sum(v[t] * v[t + k] for t in range(S - k)) / S for k in range(S)]
            expected = torch.tensor([a / acov[0] for a in acov], dtype=F64)
            assert torch.allclose(rho[:, c, d], expected, atol=1e-10)


@pytest.mark.parametrize("phi", [0.9, 0.5, -0.5])
def test_autocorrelation_of_ar1_is_phi_to_the_k(phi, gen):
    S, C = 1000, 200
    rho = autocorrelation(_ar1(phi, S, C, 1, gen)).mean(1)[:, 0]  # averaged over chains
    assert float(rho[0]) == pytest.approx(1.0, abs=1e-12)
    k = torch.arange(11, dtype=F64)
    # the estimator is biased by O(k / S) and O(tau / S): 0.02 covers it and the noise
    assert torch.allclose(rho[:11], phi**k, atol=0.02), (rho[:11], phi**k)


@pytest.mark.parametrize(
    "phi, S, C, D",
    [
        (0.9, 2000, 100, 2),
        (0.5, 2000, 100, 2),
        (0.0, 2000, 100, 2),
        (-0.3, 2000, 100, 2),  # antithetic: ESS > C S
        # a thousand chains, as on a GPU, each only ~20 autocorrelation times long
        (0.95, 800, 1000, 6),
    ],
)
def test_ess_of_ar1_chains_is_cs_times_one_minus_phi_over_one_plus_phi(phi, S, C, D, gen):
    ess = effective_sample_size(_ar1(phi, S, C, D, gen))
    assert ess.shape == (D,)
    expected = C * S * (1 - phi) / (1 + phi)
    assert torch.allclose(ess.double(), torch.full((D,), expected, dtype=F64), rtol=0.1), ess / expected


def test_ess_of_independent_draws_is_the_number_of_draws(gen):
    ess = effective_sample_size(torch.randn(1000, 50, 3, dtype=F64, generator=gen))
    assert torch.allclose(ess.double(), torch.full((3,), 50_000.0, dtype=F64), rtol=0.1)


def test_ess_counts_chains_stuck_apart_as_correlated(gen):
    # Each chain is iid, but half of them sit one standard deviation away: the draws do not
    # represent one distribution, and the ESS must say so rather than report C S.
    x = torch.randn(500, 8, 2, dtype=F64, generator=gen)
    x[:, 4:] += 1.0
    assert bool((effective_sample_size(x) < 0.05 * 500 * 8).all())


def test_split_rhat_matches_the_formula(gen):
    x = torch.randn(11, 3, 2, dtype=F64, generator=gen) + torch.tensor([0.0, 0.5, 1.0], dtype=F64)[:, None]
    got = split_rhat(x)
    # split each chain in half (the odd last draw is dropped), then Gelman-Rubin on 2C chains of n
    halves = torch.cat([x[:5], x[5:10]], 1)
    n = 5
    W = halves.var(0).mean(0)
    B = n * halves.mean(0).var(0)
    expected = torch.sqrt(((n - 1) / n * W + B / n) / W)
    assert torch.allclose(got.double(), expected, rtol=1e-6)


def test_split_rhat_near_one_for_chains_from_the_same_distribution(gen):
    rhat = split_rhat(_ar1(0.5, 1000, 8, 3, gen))
    assert bool(((rhat - 1).abs() < 0.01).all()), rhat


def test_split_rhat_flags_chains_stuck_at_different_means(gen):
    x = torch.randn(500, 8, 2, dtype=F64, generator=gen)
    x[:, 4:] += 1.0  # half the chains sit one standard deviation away
    assert bool((split_rhat(x) > 1.1).all())
    # chains that agree with each other but drift within themselves: only the split sees it
    drift = torch.randn(500, 8, 2, dtype=F64, generator=gen) + torch.linspace(0, 2, 500, dtype=F64)[:, None, None]
    assert bool((split_rhat(drift) > 1.1).all())


# ================================================================ the exact MH transition matrix
def _finite_problem():
    p_tilde = torch.tensor([1.0, 3.0, 0.5, 2.0, 6.0], dtype=F64)  # unnormalised, non-uniform
    q = torch.tensor(
        [  # rows q(b -> .): asymmetric, and q(3 -> 0) = 0 while q(0 -> 3) > 0
            [0.10, 0.50, 0.10, 0.20, 0.10],
            [0.30, 0.05, 0.25, 0.30, 0.10],
            [0.05, 0.05, 0.10, 0.40, 0.40],
            [0.00, 0.60, 0.10, 0.10, 0.20],
            [0.25, 0.25, 0.25, 0.15, 0.10],
        ],
        dtype=F64,
    )
    return p_tilde, q


def test_mh_matrix_matches_the_definition_entry_by_entry():
    p, q = _finite_problem()
    P = mh_transition_matrix(p, q)
    K = len(p)
    for b in range(K):
        for a in range(K):
            if a != b:
                ratio = (p[a] * q[a, b]) / (p[b] * q[b, a]) if q[b, a] > 0 else 0.0
                assert float(P[b, a]) == pytest.approx(float(q[b, a] * min(1.0, float(ratio))), abs=1e-15)
        assert float(P[b].sum()) == pytest.approx(1.0, abs=1e-14)
    assert float(P[3, 0]) == 0.0 and float(P[0, 3]) == 0.0  # one-way proposals are always rejected
    assert bool((P >= 0).all())


def test_mh_matrix_satisfies_detailed_balance_and_stationarity():
    p, q = _finite_problem()
    assert not torch.allclose(q, q.T)
    P = mh_transition_matrix(p, q)
    pi = p / p.sum()
    flow = pi[:, None] * P  # flow[b, a] = pi(b) p(b -> a)
    assert float((flow - flow.T).abs().max()) < 1e-12
    assert float((pi @ P - pi).abs().max()) < 1e-12
    assert torch.allclose(P.sum(1), torch.ones(5, dtype=F64), atol=1e-14)


def test_mh_without_hastings_correction_is_not_stationary():
    # Treating the asymmetric proposal as symmetric: accept min(1, p(a) / p(b)).
    p, q = _finite_problem()
    wrong = q * torch.clamp(p[None, :] / p[:, None], max=1.0)
    wrong.fill_diagonal_(0.0)
    wrong += torch.diag(1.0 - wrong.sum(1))
    pi = p / p.sum()
    assert float((pi @ wrong - pi).abs().max()) > 1e-2
    # ... while for a symmetric proposal MH is Metropolis: the same matrix
    sym = torch.full((5, 5), 0.2, dtype=F64)
    metropolis = sym * torch.clamp(p[None, :] / p[:, None], max=1.0)
    metropolis.fill_diagonal_(0.0)
    metropolis += torch.diag(1.0 - metropolis.sum(1))
    assert torch.allclose(mh_transition_matrix(p, sym), metropolis, atol=1e-14)


@pytest.mark.parametrize("start", [0, 2, 4])
def test_iterating_the_mh_matrix_converges_to_the_target(start):
    p, q = _finite_problem()
    P = mh_transition_matrix(p, q)
    pi = p / p.sum()
    dist = torch.zeros(5, dtype=F64)
    dist[start] = 1.0
    tv = []
    for _ in range(200):
        dist = dist @ P
        tv.append(0.5 * float((dist - pi).abs().sum()))
    assert tv[-1] < 1e-10
    assert tv[0] > 0.1
    assert all(b <= a + 1e-15 for a, b in zip(tv, tv[1:]))  # TV distance to a stationary law never grows


# ================================================================ targets with known moments
def test_ill_conditioned_cov_has_the_requested_condition_number():
    cov = sampling.ill_conditioned_cov(100, 100.0)
    assert cov.shape == (100, 100) and cov.dtype == F64
    eig = torch.linalg.eigvalsh(cov)
    assert float(eig.min()) == pytest.approx(1.0) and float(eig.max() / eig.min()) == pytest.approx(100.0)
    assert torch.equal(cov, torch.diag(torch.diagonal(cov)))


def test_gaussian_target_is_the_normal_log_density(gen):
    x = torch.randn(7, 2, dtype=F64, generator=gen)
    d = x - MEAN_2D
    expected = -0.5 * (d @ torch.linalg.inv(COV_2D) * d).sum(1) - 0.5 * torch.logdet(2 * math.pi * COV_2D)
    assert torch.allclose(sampling.gaussian_target(MEAN_2D, COV_2D)(x), expected, atol=1e-12)


def test_banana_is_normalised_with_the_stated_moments(grid_integral):
    b, scale = 0.1, 3.0

    def lp(x):
        return sampling.banana_log_prob(x, b=b, scale=scale)

    box, h = (-25.0, 25.0, -40.0, 10.0), 0.05  # x2 = y2 - b (x1^2 - scale^2) bends downwards
    assert grid_integral(lp, box, h) == pytest.approx(1.0, abs=1e-6)
    var_x2 = grid_integral(lambda x: lp(x) + torch.log(x[:, 1] ** 2 + 1e-300), box, h)
    assert var_x2 == pytest.approx(1 + 2 * b**2 * scale**4, rel=1e-4)


# ================================================================ bad input
def _std_normal(x):
    return -0.5 * (x**2).sum(1)


@pytest.mark.parametrize("cls", [RandomWalkMetropolis, MALA, Langevin])
@pytest.mark.parametrize("step", [0.0, -0.1, math.nan, math.inf, "0.1", None])
def test_bad_step_size_raises(cls, step):
    with pytest.raises(ValueError, match="step_size"):
        cls(_std_normal, step_size=step)


def _all_kernels(log_prob=_std_normal):
    q = MultivariateNormal(torch.zeros(2), torch.eye(2))
    return [
        RandomWalkMetropolis(log_prob, step_size=0.5),
        MALA(log_prob, step_size=0.5),
        Langevin(log_prob, step_size=0.5),
        IndependentMetropolisHastings(log_prob, q),
    ]


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize(
    "x0",
    [
        torch.zeros(4),
        torch.zeros(4, 2, dtype=torch.long),
        torch.zeros(2, 4, 2),
        torch.tensor([[0.0, 0.0], [math.nan, 1.0]]),
    ],
    ids=["1-D", "integer", "3-D", "NaN"],
)
def test_bad_x0_raises(k, x0):
    with pytest.raises(ValueError, match="x0"):
        _all_kernels()[k].init(x0)


def test_gibbs_bad_x0_raises():
    kernel = GaussianGibbs(MEAN_2D, COV_2D)
    for x0 in (torch.zeros(4, dtype=F64), torch.zeros(4, 2, dtype=torch.long), torch.full((3, 2), math.nan, dtype=F64)):
        with pytest.raises(ValueError, match="x0"):
            kernel.init(x0)
    with pytest.raises(ValueError, match="cov"):
        GaussianGibbs(MEAN_2D, torch.eye(3, dtype=F64))


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize(
    "log_prob, got",
    [
        (lambda x: -0.5 * (x**2), r"\(4, 2\)"),  # forgot to sum over dims
        (lambda x: -0.5 * (x**2).sum(), r"\(\)"),  # summed over chains too
        (lambda x: -0.5 * (x**2).sum(1, keepdim=True), r"\(4, 1\)"),
    ],
)
def test_log_prob_of_wrong_shape_raises(k, log_prob, got):
    with pytest.raises(ValueError, match=r"log_prob must map .*\(4,\).*" + got):
        _all_kernels(log_prob)[k].init(torch.zeros(4, 2))


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("bad", [-math.inf, math.nan])
def test_log_prob_not_finite_at_start_names_the_chain(k, bad):
    def log_prob(x):
        return torch.where(torch.arange(x.shape[0]) == 3, torch.tensor(bad), _std_normal(x))

    with pytest.raises(ValueError, match=r"log_prob is (-inf|nan) at the start of chain 3"):
        _all_kernels(log_prob)[k].init(torch.zeros(5, 2))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(n_steps=0), "n_steps"),
        (dict(n_steps=2.5), "n_steps"),
        (dict(burn_in=-1), "burn_in"),
        (dict(thin=0), "thin"),
        (dict(workers=0), "workers"),
        (dict(workers=2.0), "workers"),
        (dict(workers=4), "at most the number of chains"),
    ],
)
def test_run_bad_counts_raise(kwargs, word):
    args = dict(n_steps=10) | kwargs
    with pytest.raises(ValueError, match=word):
        run(RandomWalkMetropolis(_std_normal, step_size=0.5), torch.zeros(3, 2), args.pop("n_steps"), **args)


def test_run_workers_needs_a_kernel_with_a_generator():
    class NoGenerator:
        def init(self, x0):
            return State(x0, x0.sum(1))

        def step(self, state):
            return state, Info(torch.ones(state.x.shape[0], dtype=torch.bool), torch.zeros(state.x.shape[0]))

    with pytest.raises(ValueError, match="generator"):
        run(NoGenerator(), torch.zeros(4, 2), 3, workers=2)


@pytest.mark.parametrize("name", ["rwm", "mala", "gibbs"])
def test_run_with_workers_is_each_group_run_on_its_own(name):
    """workers=2 splits the chains into two groups, each a separate run with its own seeded generator."""
    x0 = torch.randn(31, 2, dtype=F64, generator=torch.Generator().manual_seed(0))  # an odd number of chains
    threads = torch.get_num_threads()
    res = run(_kernel_for_determinism(name, torch.Generator().manual_seed(7)), x0, 40, workers=2)
    assert torch.get_num_threads() == threads  # restored
    seeds = torch.randint(0, 2**62, (2,), generator=torch.Generator().manual_seed(7)).tolist()
    parts = [
        run(_kernel_for_determinism(name, torch.Generator().manual_seed(sd)), part, 40)
        for sd, part in zip(seeds, x0.chunk(2))
    ]
    assert torch.equal(res.samples, torch.cat([p.samples for p in parts], dim=1))
    rates = torch.tensor([p.acceptance_rate for p in parts], dtype=F64)
    sizes = torch.tensor([16.0, 15.0], dtype=F64)
    assert res.acceptance_rate == pytest.approx(float((rates * sizes).sum() / 31), abs=1e-12)
    again = run(_kernel_for_determinism(name, torch.Generator().manual_seed(7)), x0, 40, workers=2)
    assert torch.equal(res.samples, again.samples)
    if name != "gibbs":  # Gibbs accepts everything
        assert 0 < res.acceptance_rate < 1


def test_mh_matrix_bad_input_raises():
    p, q = _finite_problem()
    bad_row = q.clone()
    bad_row[1, 1] += 0.1  # row sums to 1.1
    negative = q.clone()
    negative[0, 0], negative[0, 1] = -0.1, 0.7
    for proposal in (bad_row, negative, q * 0.9):
        with pytest.raises(ValueError, match="proposal"):
            mh_transition_matrix(p, proposal)
    with pytest.raises(ValueError, match="proposal"):
        mh_transition_matrix(p, q[:4, :4])
    for target in (
        torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0], dtype=F64),
        torch.tensor([1.0, 2.0, -1.0, 1.0, 1.0], dtype=F64),
    ):
        with pytest.raises(ValueError, match="p_tilde"):
            mh_transition_matrix(target, q)


@pytest.mark.parametrize("dim, condition", [(0, 10.0), (3, 0.5), (2.5, 10.0)])
def test_ill_conditioned_cov_bad_args_raise(dim, condition):
    with pytest.raises(ValueError, match="dim|condition"):
        sampling.ill_conditioned_cov(dim, condition)


def test_langevin_divergence_names_the_step_size():
    kernel = Langevin(lambda x: -50.0 * (x**2).sum(1), step_size=1.0)  # eta * curvature = 100: unstable
    with pytest.raises(FloatingPointError, match="step_size"):
        run(kernel, torch.ones(4, 2, dtype=F64), 400)


def test_boolean_step_size_is_refused():
    with pytest.raises(ValueError, match="step_size"):
        sampling.RandomWalkMetropolis(lambda x: -(x**2).sum(1), step_size=True)


def test_nan_target_in_transition_matrix_is_refused():
    q = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="p_tilde"):
        sampling.mh_transition_matrix(torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64), q)


@pytest.mark.parametrize("diagonal", [True, False])
def test_gaussian_target_matches_torch_multivariate_normal(diagonal):
    g = torch.Generator().manual_seed(3)
    D = 5
    if diagonal:
        cov = sampling.ill_conditioned_cov(D, 50.0)
    else:
        A = torch.randn(D, D, generator=g, dtype=torch.float64)
        cov = A @ A.T + D * torch.eye(D, dtype=torch.float64)
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    x = torch.randn(7, D, generator=g, dtype=torch.float64) * 3
    expected = MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
    assert torch.allclose(sampling.gaussian_target(mean, cov)(x), expected, atol=1e-10)


def test_imh_without_hastings_term_samples_p_times_q():
    # hastings=False drops q(a)/q(a*): the chain samples p~ q, here N(0, 1) N(1, 4) ~ N(1/5, 4/5), not N(0, 1).
    gen = torch.Generator().manual_seed(5)
    q = torch.distributions.Independent(
        torch.distributions.Normal(torch.ones(1, dtype=F64), 2 * torch.ones(1, dtype=F64)), 1
    )
    log_prob = lambda x: -0.5 * (x**2).sum(1)  # noqa: E731
    x0 = torch.zeros(4000, 1, dtype=F64)
    wrong = run(IndependentMetropolisHastings(log_prob, q, generator=gen, hastings=False), x0, 300, burn_in=100)
    right = run(IndependentMetropolisHastings(log_prob, q, generator=gen), x0, 300, burn_in=100)
    n_eff = float(wrong.ess[0])
    _assert_within_mc("mean without Hastings", wrong.samples.mean(), 0.2, 0.8, n_eff)
    _assert_within_mc("variance without Hastings", wrong.samples.var(), 0.8, 2 * 0.8**2, n_eff)
    _assert_within_mc("mean with Hastings", right.samples.mean(), 0.0, 1.0, float(right.ess[0]))
    with pytest.raises(ValueError, match="hastings"):
        IndependentMetropolisHastings(log_prob, q, hastings="no")


def test_imh_without_hastings_log_alpha_is_the_target_ratio(gen):
    q = MultivariateNormal(
        torch.tensor([0.3, -0.5], dtype=F64), covariance_matrix=torch.diag(torch.tensor([4.0, 0.5], dtype=F64))
    )
    kernel = IndependentMetropolisHastings(_aniso_log_prob, q, hastings=False)
    x0, _, new, info, moved = _one_step(kernel, 20_000, gen)
    expected = (_aniso_log_prob(new.x) - _aniso_log_prob(x0)).clamp(max=0)
    assert torch.allclose(info.log_alpha[moved], expected[moved], atol=1e-10)
