"""Sampling by transforming variables: each sampler against its analytic law with a KS test, and a
wrong one rejected by the same test."""

import math

import pytest
import torch
from scipy import stats

from genbook import transforms

N = 20_000
P_OK = 1e-3  # a correct sampler passes the KS test at this level (fixed seed: deterministic)
P_WRONG = 1e-6  # a wrong one must fail it by a wide margin
Z = 5.0


def _ks(x, dist):
    return stats.kstest(x.numpy(), dist.cdf).pvalue


def _uniform(n, gen):
    return torch.rand(n, generator=gen, dtype=torch.float64)


# ================================================================ exponential
@pytest.mark.parametrize("rate", [1.0, 2.5, 0.2])
def test_exponential_matches_the_exponential_law(rate, gen):
    x = transforms.exponential(N, rate=rate, generator=gen)
    assert x.shape == (N,) and x.dtype == torch.float64
    assert bool((x >= 0).all() & torch.isfinite(x).all())
    assert _ks(x, stats.expon(scale=1 / rate)) > P_OK
    assert float(x.mean()) == pytest.approx(1 / rate, abs=Z / rate / math.sqrt(N))


@pytest.mark.parametrize(
    "wrong",
    [
        lambda u, rate: -torch.log(u) / rate**2,  # rate squared
        lambda u, rate: -torch.log(u) * rate,  # multiplied instead of divided
        lambda u, rate: -torch.log(1 - u**2) / rate,  # the wrong inverse
    ],
)
def test_wrong_exponential_transform_is_rejected(wrong, gen):
    rate = 2.5
    assert _ks(wrong(_uniform(N, gen), rate), stats.expon(scale=1 / rate)) < P_WRONG
    # the same test on genbook's draws, but against a 10% wrong rate, is rejected too: the test has power
    assert _ks(transforms.exponential(N, rate=rate, generator=gen), stats.expon(scale=1 / (1.1 * rate))) < P_WRONG


# ================================================================ Cauchy
@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (1.0, 2.0), (-3.0, 0.1)])
def test_cauchy_matches_the_cauchy_law(loc, scale, gen):
    x = transforms.cauchy(N, loc=loc, scale=scale, generator=gen)
    assert x.shape == (N,) and x.dtype == torch.float64 and bool(torch.isfinite(x).all())
    assert _ks(x, stats.cauchy(loc=loc, scale=scale)) > P_OK
    # the median is loc and the quartiles are loc -+ scale (the mean does not exist); a sample
    # quartile has standard error sqrt(p (1 - p) / N) / pdf(quartile) = 0.019 scale here
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    assert torch.allclose(q, torch.tensor([loc - scale, loc, loc + scale], dtype=torch.float64), atol=Z * 0.02 * scale)


def test_cauchy_with_wrong_scale_is_rejected(gen):
    loc, scale = 1.0, 2.0
    x = transforms.cauchy(N, loc=loc, scale=scale, generator=gen)
    assert _ks(x, stats.cauchy(loc=loc, scale=1.2 * scale)) < P_WRONG
    u = _uniform(N, gen)
    wrong = loc + scale * torch.tan(math.pi * u / 2)  # forgot to centre u: a half-Cauchy
    assert _ks(wrong, stats.cauchy(loc=loc, scale=scale)) < P_WRONG


# ================================================================ Box-Muller
def test_box_muller_gives_two_independent_standard_normals(gen):
    z = transforms.box_muller(N, generator=gen)
    assert z.shape == (N, 2) and z.dtype == torch.float64
    for k in range(2):
        assert _ks(z[:, k], stats.norm()) > P_OK
    # independence: uncorrelated, and so are their squares (a shared radius would correlate those)
    for a, b in ((z[:, 0], z[:, 1]), (z[:, 0] ** 2, z[:, 1] ** 2)):
        r = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        assert abs(r) < Z / math.sqrt(N)
    # the joint law: r^2 = z1^2 + z2^2 ~ Exp(mean 2), the angle uniform on (-pi, pi]
    assert _ks((z**2).sum(1), stats.expon(scale=2.0)) > P_OK
    assert _ks(torch.atan2(z[:, 1], z[:, 0]), stats.uniform(loc=-math.pi, scale=2 * math.pi)) > P_OK


@pytest.mark.parametrize(
    "wrong",
    [
        lambda u1, u2: torch.sqrt(-torch.log(u1)) * torch.cos(2 * math.pi * u2),  # forgot the 2 in -2 log u
        lambda u1, u2: torch.sqrt(-2 * torch.log(u1)) * torch.sin(math.pi * u2),  # half the circle: z2 >= 0
        lambda u1, u2: torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u1),  # one uniform for both
    ],
)
def test_wrong_box_muller_is_rejected(wrong, gen):
    u1, u2 = _uniform(N, gen), _uniform(N, gen)
    assert _ks(wrong(u1, u2), stats.norm()) < P_WRONG


def test_dependent_pair_is_caught_by_the_independence_checks(gen):
    # Normal marginals but dependent: z2 = z1 * sign(u - 1/2) passes each KS test, yet the squares coincide.
    z1 = transforms.box_muller(N, generator=gen)[:, 0]
    z2 = z1 * torch.where(_uniform(N, gen) < 0.5, -1.0, 1.0).double()
    assert _ks(z2, stats.norm()) > P_OK
    assert abs(float(torch.corrcoef(torch.stack([z1, z2]))[0, 1])) < Z * math.sqrt(3 / N)  # sd of z1^2 sign is sqrt(3)
    assert float(torch.corrcoef(torch.stack([z1**2, z2**2]))[0, 1]) > 0.99


# ================================================================ correlated Gaussian
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
COV = torch.tensor([[2.0, 1.2, -0.5], [1.2, 1.0, -0.3], [-0.5, -0.3, 0.5]], dtype=torch.float64)


def _moment_z(x, mean, cov):
    """The largest |error| / standard error over the mean and every covariance entry (Gaussian moments)."""
    n = x.shape[0]
    d = x - mean
    z_mean = (d.mean(0) / torch.sqrt(torch.diagonal(cov) / n)).abs().max()
    v = torch.diagonal(cov)
    se_cov = torch.sqrt((v[:, None] * v[None, :] + cov**2) / n)  # Var(d_i d_j) = s_ii s_jj + s_ij^2
    z_cov = (((d.T @ d) / n - cov) / se_cov).abs().max()
    return float(torch.maximum(z_mean, z_cov))


def test_correlated_gaussian_matches_mean_and_covariance(gen):
    n = 50_000
    x = transforms.correlated_gaussian(n, MEAN, COV, generator=gen)
    assert x.shape == (n, 3) and x.dtype == torch.float64
    assert _moment_z(x, MEAN, COV) < Z
    # every projection a^T x is N(a^T mean, a^T cov a)
    for a in (torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.3, -1.0, 2.0])):
        a = a.double()
        sd = math.sqrt(float(a @ COV @ a))
        assert _ks(x @ a, stats.norm(loc=float(a @ MEAN), scale=sd)) > P_OK


def test_transposed_cholesky_factor_is_caught(gen):
    # x = mean + L^T z has covariance L^T L != cov: the same moment check must reject it.
    n = 50_000
    L = torch.linalg.cholesky(COV)
    wrong = MEAN + torch.randn(n, 3, dtype=torch.float64, generator=gen) @ L
    assert _moment_z(wrong, MEAN, COV) > 10 * Z


def test_correlated_gaussian_accepts_float32_and_leaves_inputs_alone(gen):
    mean, cov = MEAN.float(), COV.float()
    copy = cov.clone()
    x = transforms.correlated_gaussian(10, mean, cov, generator=gen)
    assert x.shape == (10, 3) and bool(torch.isfinite(x).all())
    assert torch.equal(cov, copy)


# ================================================================ determinism
@pytest.mark.parametrize(
    "draw",
    [
        lambda g: transforms.exponential(100, rate=2.0, generator=g),
        lambda g: transforms.cauchy(100, loc=1.0, scale=0.5, generator=g),
        lambda g: transforms.box_muller(100, generator=g),
        lambda g: transforms.correlated_gaussian(100, MEAN, COV, generator=g),
    ],
    ids=["exponential", "cauchy", "box_muller", "correlated_gaussian"],
)
def test_draws_are_deterministic_given_a_generator(draw):
    before = torch.random.get_rng_state()
    a = draw(torch.Generator().manual_seed(1))
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is left alone
    assert torch.equal(a, draw(torch.Generator().manual_seed(1)))
    assert not torch.equal(a, draw(torch.Generator().manual_seed(2)))


# ================================================================ bad input
ALL = {
    "exponential": lambda n: transforms.exponential(n),
    "cauchy": lambda n: transforms.cauchy(n),
    "box_muller": lambda n: transforms.box_muller(n),
    "correlated_gaussian": lambda n: transforms.correlated_gaussian(n, MEAN, COV),
}


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
def test_bad_n_raises(name, n):
    # genbook._checks.check_int's message names the minimum and what came
    with pytest.raises(ValueError, match=r"^n must be an int >= 1, got .* \((int|float|bool|str)\)"):
        ALL[name](n)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_bad_rate_raises(rate):
    with pytest.raises(ValueError, match="rate must be a finite number > 0"):
        transforms.exponential(10, rate=rate)


@pytest.mark.parametrize("scale", [0.0, -2.0, math.nan])
def test_bad_scale_raises(scale):
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        transforms.cauchy(10, scale=scale)


@pytest.mark.parametrize(
    "cov",
    [
        torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64),  # indefinite
        torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64),  # singular
        -torch.eye(2, dtype=torch.float64),
    ],
)
def test_non_positive_definite_cov_raises(cov):
    with pytest.raises(ValueError, match="cov must be symmetric positive definite"):
        transforms.correlated_gaussian(10, torch.zeros(2, dtype=torch.float64), cov)


def test_cov_of_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"cov must be a tensor of shape \(2, 2\)"):
        transforms.correlated_gaussian(10, torch.zeros(2, dtype=torch.float64), torch.eye(3, dtype=torch.float64))


def test_asymmetric_cov_raises():
    cov = torch.tensor([[1.0, 0.9], [0.0, 1.0]], dtype=torch.float64)  # positive diagonal, not symmetric
    with pytest.raises(ValueError, match="cov must be symmetric"):
        transforms.correlated_gaussian(10, torch.zeros(2, dtype=torch.float64), cov)
