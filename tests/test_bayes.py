import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.linear_model import Lasso

from genbook import bayes, data

# (k, n, a, b): heads, tosses and the Beta prior
CASES = [(7, 10, 1.0, 1.0), (3, 20, 2.0, 5.0), (0, 5, 1.0, 1.0), (10, 10, 3.0, 1.5)]


def _theta_grid(m=20_000):
    """Midpoints of m cells on [0, 1], float64, and the cell width."""
    h = 1.0 / m
    return (torch.arange(m, dtype=torch.float64) + 0.5) * h, h


def _prior_pdf(theta, a, b):
    return (
        torch.distributions.Beta(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
        .log_prob(theta)
        .exp()
    )


# ---------------------------------------------------------------- the coin
@pytest.mark.parametrize("k, n, a, b", CASES)
def test_coin_posterior_is_beta_a_plus_k_b_plus_n_minus_k(k, n, a, b):
    post = bayes.coin_posterior(k, n, a=a, b=b)
    assert float(post.concentration1) == a + k
    assert float(post.concentration0) == b + n - k
    theta = torch.tensor([0.05, 0.3, 0.5, 0.77, 0.95], dtype=torch.float64)
    expected = stats.beta.logpdf(theta.numpy(), a + k, b + n - k)
    np.testing.assert_allclose(post.log_prob(theta).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("k, n, a, b", CASES)
def test_coin_posterior_is_normalised_likelihood_times_prior(k, n, a, b):
    # Bayes' theorem by brute force: p(theta | k) = p(k | theta) p(theta) / int p(k | t) p(t) dt.
    theta, h = _theta_grid()
    unnormalised = bayes.binomial_log_likelihood(theta, k, n).exp() * _prior_pdf(theta, a, b)
    brute = unnormalised / (unnormalised.sum() * h)
    closed = bayes.coin_posterior(k, n, a=a, b=b).log_prob(theta).exp()
    assert float((brute - closed).abs().max()) < 1e-5 * float(closed.max())


def test_coin_map_flat_prior_is_frequency():
    assert bayes.coin_map(7, 10) == pytest.approx(0.7, abs=1e-15)


@pytest.mark.parametrize("k, n, a, b", [(7, 10, 1.0, 1.0), (3, 20, 2.0, 5.0), (9, 10, 4.0, 4.0)])
def test_coin_map_is_argmax_of_posterior(k, n, a, b):
    theta, h = _theta_grid(100_000)
    post = bayes.coin_posterior(k, n, a=a, b=b)
    grid_mode = float(theta[post.log_prob(theta).argmax()])
    assert bayes.coin_map(k, n, a=a, b=b) == pytest.approx(grid_mode, abs=h)
    assert bayes.coin_map(k, n, a=a, b=b) == pytest.approx((k + a - 1) / (n + a + b - 2), abs=1e-15)


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10)])
def test_coin_map_on_the_boundary_raises(k, n):
    with pytest.raises(ValueError, match="boundary"):
        bayes.coin_map(k, n)


@pytest.mark.parametrize("k, n, a, b", CASES + [(4, 9, 0.5, 0.5)])
def test_coin_log_evidence_is_log_integral_of_likelihood_times_prior(k, n, a, b):
    def integrand(t):
        return math.exp(
            float(bayes.binomial_log_likelihood(torch.tensor(t, dtype=torch.float64), k, n))
        ) * stats.beta.pdf(t, a, b)

    value, err = integrate.quad(integrand, 0, 1, epsabs=0.0, epsrel=1e-10, limit=200)
    assert bayes.coin_log_evidence(k, n, a=a, b=b) == pytest.approx(math.log(value), abs=1e-9)


@pytest.mark.parametrize("n", [0, 1, 10, 50])
def test_coin_log_evidence_flat_prior_is_uniform_over_k(n):
    # With a flat prior every k in 0..n is equally likely: p(k) = 1 / (n + 1).
    for k in range(n + 1):
        assert bayes.coin_log_evidence(k, n) == pytest.approx(-math.log(n + 1), abs=1e-12)


def test_posterior_std_shrinks_like_one_over_sqrt_n():
    ns = [10, 100, 1000, 10_000, 100_000]
    stds = [float(bayes.coin_posterior(3 * n // 10, n).stddev) for n in ns]
    assert all(s1 > s2 for s1, s2 in zip(stds, stds[1:]))
    for n, s in zip(ns[1:], stds[1:]):
        assert s * math.sqrt(n) == pytest.approx(math.sqrt(0.3 * 0.7), rel=0.05)
    assert stds[1] / stds[3] == pytest.approx(10.0, rel=0.02)


@pytest.mark.parametrize("n", [0, 1, 7, 30])
@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0])
def test_binomial_likelihood_sums_to_one_over_k(n, theta):
    log_p = torch.stack([bayes.binomial_log_likelihood(torch.tensor(theta), k, n) for k in range(n + 1)])
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-12)


def test_binomial_likelihood_matches_scipy():
    theta = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    got = bayes.binomial_log_likelihood(theta, 4, 12)
    np.testing.assert_allclose(got.numpy(), stats.binom.logpmf(4, 12, theta.numpy()), rtol=1e-12)


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: bayes.coin_posterior(11, 10), "k must"),
        (lambda: bayes.coin_posterior(-1, 10), "k must"),
        (lambda: bayes.coin_posterior(1.5, 10), "k must"),
        (lambda: bayes.coin_posterior(0, -1), "n must"),
        # each Beta prior parameter is checked and named on its own (genbook._checks.check_float)
        (lambda: bayes.coin_posterior(3, 10, a=0.0), "^a must be a finite number > 0"),
        (lambda: bayes.coin_posterior(3, 10, b=-1.0), "^b must be a finite number > 0"),
        (lambda: bayes.coin_posterior(3, 10, a=math.inf), "^a must be a finite number > 0"),
        (lambda: bayes.coin_map(11, 10), "k must"),
        (lambda: bayes.coin_log_evidence(3, 10, a=0.0), "^a must be a finite number > 0"),
        (lambda: bayes.coin_log_evidence(3, 2), "k must"),
        (lambda: bayes.binomial_log_likelihood(torch.tensor(1.5), 3, 10), "theta"),
        (lambda: bayes.binomial_log_likelihood(torch.tensor([0.5, -0.1]), 3, 10), "theta"),
        (lambda: bayes.binomial_log_likelihood(torch.tensor(math.nan), 3, 10), "theta"),
        (lambda: bayes.binomial_log_likelihood(torch.tensor(0.5), 12, 10), "k must"),
    ],
)
def test_coin_bad_input_raises(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# ---------------------------------------------------------------- the lasso as MAP
@pytest.fixture
def regression(gen):
    return data.sparse_regression(100, 10, n_informative=3, noise=1.0, generator=gen)


@pytest.mark.parametrize("lam, sigma", [(10.0, 1.0), (3.0, 2.0), (60.0, 0.7)])
def test_lasso_matches_sklearn(regression, lam, sigma):
    X, z, _ = regression
    model = bayes.LassoMAP(lam=lam, sigma=sigma).fit(X, z)
    sk = Lasso(alpha=model.sklearn_alpha(X.shape[0]), tol=1e-12, max_iter=100_000).fit(X.numpy(), z.numpy())
    np.testing.assert_allclose(model.coef_.numpy(), sk.coef_, rtol=0, atol=1e-6)
    assert model.intercept_ == pytest.approx(sk.intercept_, abs=1e-6)
    assert model.converged_


@pytest.mark.parametrize("lam, sigma", [(10.0, 1.0), (3.0, 2.0)])
def test_lasso_satisfies_kkt_conditions(regression, lam, sigma):
    X, z, _ = regression
    model = bayes.LassoMAP(lam=lam, sigma=sigma).fit(X, z)
    W = model.coef_.clone().requires_grad_(True)
    b = torch.tensor(model.intercept_, dtype=torch.float64, requires_grad=True)
    smooth = bayes.lasso_energy(W, b, X, z, lam=0.0, sigma=sigma)  # the squared-error part only
    grad_W, grad_b = torch.autograd.grad(smooth, (W, b))
    active = model.coef_ != 0
    assert active.any() and (~active).any()  # both conditions get tested
    assert torch.allclose(grad_W[active], -lam * torch.sign(model.coef_[active]), atol=1e-6)
    assert bool((grad_W[~active].abs() <= lam + 1e-9).all())
    assert abs(float(grad_b)) < 1e-8  # the intercept has a flat prior


def test_lasso_without_penalty_is_least_squares(regression):
    X, z, _ = regression
    model = bayes.LassoMAP(lam=0.0).fit(X, z)
    A = torch.cat([X, torch.ones(X.shape[0], 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(A, z[:, None]).solution[:, 0]
    assert torch.allclose(model.coef_, solution[:-1], atol=1e-6)
    assert model.intercept_ == pytest.approx(float(solution[-1]), abs=1e-6)


def test_lasso_fit_minimises_energy(regression, gen):
    X, z, _ = regression
    model = bayes.LassoMAP(lam=10.0).fit(X, z)
    best = model.energy(X, z)
    assert best == pytest.approx(float(bayes.lasso_energy(model.coef_, model.intercept_, X, z, lam=10.0)), abs=1e-12)
    for scale in (1e-4, 1e-2, 1.0):
        for _ in range(20):
            dW = scale * torch.randn(X.shape[1], generator=gen, dtype=torch.float64)
            db = scale * float(torch.randn((), generator=gen, dtype=torch.float64))
            other = float(bayes.lasso_energy(model.coef_ + dW, model.intercept_ + db, X, z, lam=10.0))
            assert other >= best - 1e-9


def test_lasso_larger_penalty_gives_sparser_weights(regression):
    X, z, w_true = regression
    nonzero = [int((bayes.LassoMAP(lam=lam).fit(X, z).coef_ != 0).sum()) for lam in (0.0, 10.0, 60.0, 1e4)]
    assert nonzero[0] == 10 and nonzero[-1] == 0
    assert nonzero == sorted(nonzero, reverse=True)
    support = bayes.LassoMAP(lam=60.0).fit(X, z).coef_ != 0
    assert torch.equal(support, w_true != 0)


def test_lasso_predict(regression):
    X, z, _ = regression
    model = bayes.LassoMAP(lam=10.0).fit(X, z)
    assert torch.allclose(model.predict(X), X @ model.coef_ + model.intercept_, atol=1e-12)
    assert model.sklearn_alpha(100) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(lam=-1.0), "lam"),
        (dict(lam=math.nan), "lam"),
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-2.0), "sigma"),
        (dict(tol=0.0), "tol"),
        (dict(max_iter=0), "max_iter"),
    ],
)
def test_lasso_bad_hyperparameters_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        bayes.LassoMAP(**kwargs)


def test_lasso_bad_data_raise(regression):
    X, z, _ = regression
    Xnan = X.clone()
    Xnan[5, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        bayes.LassoMAP().fit(Xnan, z)
    # the shape checks are genbook._checks.check_tensor's: "... must be a tensor of shape ..."
    with pytest.raises(ValueError, match=r"z must be a tensor of shape \(100,\)"):
        bayes.LassoMAP().fit(X, z[:-1])
    with pytest.raises(ValueError, match=r"X must be a tensor of shape \(n, d\)"):
        bayes.LassoMAP().fit(X[:, 0], z)
