import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import FastICA
from torch.distributions import MultivariateNormal

from genbook import data, fit
from genbook.linear import (
    ICA,
    PCA,
    LinearAutoencoder,
    ProbabilisticPCA,
    amari_index,
    ica_gradient,
    ica_log_likelihood,
    ica_log_prior,
    principal_angles,
)


def _digits():
    return data.digits("train").double()


def _correlated(gen, n=400, d=6, scales=(3.0, 2.0, 1.0, 0.5, 0.3, 0.1)):
    """Gaussian data with a distinct spectrum, rotated and shifted."""
    q = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0]
    z = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.tensor(scales, dtype=torch.float64)
    return z @ q.T + torch.arange(d, dtype=torch.float64)


def _laplace(gen, n, k):
    u = torch.rand(n, k, generator=gen, dtype=torch.float64) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2)


# ---------------------------------------------------------------- PCA
@pytest.mark.parametrize("which", ["digits", "random"])
def test_pca_matches_sklearn(which, gen):
    x = _digits() if which == "digits" else _correlated(gen)
    m = 10 if which == "digits" else 3
    ours = PCA(n_components=m).fit(x)
    sk = SkPCA(n_components=m, svd_solver="full").fit(x.numpy())
    n = x.shape[0]
    # ours are maximum-likelihood variances (divided by N), scikit-learn's are unbiased (N - 1)
    np.testing.assert_allclose(
        ours.explained_variance_.numpy() * n / (n - 1), sk.explained_variance_, rtol=1e-12
    )  # seen 3e-15
    dots = (ours.components_ * torch.from_numpy(sk.components_)).sum(1).abs()  # 1 up to sign
    np.testing.assert_allclose(dots.numpy(), 1.0, atol=1e-12)  # seen 2e-15
    np.testing.assert_allclose(ours.mean_.numpy(), sk.mean_, atol=1e-12)
    gram = ours.components_ @ ours.components_.T
    assert torch.allclose(gram, torch.eye(m, dtype=torch.float64), atol=1e-12)
    # the same coordinates up to the sign of each axis
    z = ours.transform(x).numpy()
    zs = sk.transform(x.numpy())
    np.testing.assert_allclose(np.abs(z), np.abs(zs), atol=1e-8)


@pytest.mark.parametrize("m", [1, 5, 20])
def test_pca_reconstruction_error_is_the_discarded_variance(m):
    x = _digits()
    pca = PCA(n_components=m).fit(x)
    eig = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)  # (1/N) covariance, descending
    assert torch.allclose(pca.eigenvalues_, eig.clamp_min(0), atol=1e-9)
    err = float(pca.reconstruction_error(x))
    assert err == pytest.approx(float(pca.discarded_variance_), rel=1e-13)  # seen 3e-16
    assert err == pytest.approx(float(eig[m:].sum()), rel=1e-9)
    # any other m-dimensional subspace does worse
    q = torch.linalg.qr(torch.randn(64, m, dtype=torch.float64))[0]
    xc = x - x.mean(0)
    assert float((xc - xc @ q @ q.T).pow(2).sum(1).mean()) > err


def test_pca_inverse_transform_of_all_components_is_exact(gen):
    x = _correlated(gen)
    pca = PCA(n_components=6).fit(x)
    assert torch.allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-10)
    assert float(pca.discarded_variance_) == 0.0


# ---------------------------------------------------------------- probabilistic PCA
@pytest.fixture
def ppca(gen):
    x = _correlated(gen)
    return ProbabilisticPCA(n_components=2).fit(x), x


def _mvn(model):
    W, s2 = model.W_, model.sigma2_
    return MultivariateNormal(model.mean_, W @ W.T + s2 * torch.eye(W.shape[0], dtype=W.dtype))


def test_ppca_log_prob_matches_multivariate_normal(ppca):
    model, x = ppca
    expected = _mvn(model).log_prob(x)
    assert torch.allclose(model.log_prob(x), expected, rtol=0, atol=1e-12)  # seen 6e-14
    far = 30 * torch.randn(5, 6, dtype=torch.float64)  # far from the data too
    assert torch.allclose(model.log_prob(far), _mvn(model).log_prob(far), rtol=1e-12, atol=1e-9)


def test_ppca_fit_is_a_stationary_point_of_the_likelihood(ppca):
    model, x = ppca
    eig = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)
    assert float(model.sigma2_) == pytest.approx(float(eig[2:].mean()), rel=1e-10)
    W = model.W_.clone().requires_grad_()
    mu = model.mean_.clone().requires_grad_()
    log_s2 = torch.log(model.sigma2_).clone().requires_grad_()
    cov = W @ W.T + log_s2.exp() * torch.eye(6, dtype=torch.float64)
    ll = MultivariateNormal(mu, cov).log_prob(x).mean()
    ll.backward()
    ll = float(ll.detach())
    for g in (W.grad, mu.grad, log_s2.grad):
        assert float(g.abs().max()) < 1e-13  # seen 1e-15
    # and a maximum: a nudge of W lowers the likelihood
    with torch.no_grad():
        model.W_.add_(0.05 * torch.randn(6, 2, dtype=torch.float64))
    assert float(model.log_prob(x).mean()) < ll - 1e-5


def test_ppca_columns_follow_the_leading_eigenvalues(ppca):
    model, x = ppca
    pca = PCA(n_components=2).fit(x)
    # W^T W = Lambda_m - sigma^2 I, and W spans the principal subspace
    expected = torch.diag(pca.explained_variance_ - model.sigma2_)
    assert torch.allclose(model.W_.T @ model.W_, expected, atol=1e-10)
    assert float(principal_angles(model.W_, pca.components_.T).max()) < 1e-10


def test_ppca_posterior_is_bayes_rule_on_the_joint_gaussian(ppca):
    model, x = ppca
    W, s2, mu = model.W_, model.sigma2_, model.mean_
    C = W @ W.T + s2 * torch.eye(6, dtype=torch.float64)
    # (z, x) is jointly Gaussian with cov(z, x) = W^T: condition on x
    gain = torch.linalg.solve(C, W).T  # W^T C^{-1}, (2, 6)
    mean_expected = (x - mu) @ gain.T
    cov_expected = torch.eye(2, dtype=torch.float64) - gain @ W
    mean, cov = model.posterior(x)
    assert mean.shape == (x.shape[0], 2) and cov.shape == (2, 2)
    assert torch.allclose(mean, mean_expected, atol=1e-13)  # seen 3e-15
    assert torch.allclose(cov, cov_expected, atol=1e-14)  # seen 8e-17


def test_ppca_sample_has_the_model_covariance(ppca):
    model, _ = ppca
    gen = torch.Generator().manual_seed(1)
    s = model.sample(40_000, generator=gen)
    cov = _mvn(model).covariance_matrix
    # entrywise standard error of a sample covariance <= sqrt(2 / n) * max variance
    assert float((torch.cov(s.T) - cov).abs().max()) < 5 * math.sqrt(2 / 40_000) * float(cov.diagonal().max())
    assert torch.equal(s, model.sample(40_000, generator=torch.Generator().manual_seed(1)))


# ---------------------------------------------------------------- linear autoencoder
def test_linear_autoencoder_trained_by_fit_finds_the_pca_subspace(gen):
    x = _correlated(gen, n=256).float()
    pca = PCA(n_components=2).fit(x)
    model = LinearAutoencoder(dim=6, n_components=2)
    fit(model, x, steps=1500, batch_size=256, lr=0.1, generator=gen)
    angles = principal_angles(model.decoder.weight.detach().double(), pca.components_.T)
    assert float(angles.max()) < 0.01  # seen 4e-4 rad
    with torch.no_grad():
        err = float(model.loss(x))
    assert err == pytest.approx(float(pca.discarded_variance_), rel=1e-3)  # seen 3e-5
    assert err >= float(pca.discarded_variance_) * (1 - 1e-5)  # PCA's error is the least


def test_principal_angles_known_values():
    t = 0.3
    U = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    V = torch.tensor([[2.0, 0.0], [0.0, math.cos(t)], [0.0, math.sin(t)]], dtype=torch.float64)  # not orthonormal
    assert torch.allclose(principal_angles(U, V), torch.tensor([0.0, t], dtype=torch.float64), atol=1e-14)
    tiny = 1e-9  # where arccos of the cosine alone would give 0 or 1.5e-8
    V[1, 1], V[2, 1] = math.cos(tiny), math.sin(tiny)
    assert float(principal_angles(U, V)[1]) == pytest.approx(tiny, rel=1e-6)
    assert torch.allclose(principal_angles(U, V[:, 1:]), torch.tensor([tiny], dtype=torch.float64), rtol=1e-6)


# ---------------------------------------------------------------- ICA
@pytest.mark.parametrize("prior", ["tanh", "cubic", "gaussian", ["cubic", "tanh", "gaussian"]])
def test_ica_gradient_matches_autograd(prior, gen):
    X = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    W = (torch.eye(3) + 0.3 * torch.randn(3, 3, generator=gen)).double().requires_grad_()
    ica_log_likelihood(W, X, prior=prior).mean().backward()
    assert torch.allclose(ica_gradient(W.detach(), X, prior=prior), W.grad, rtol=0, atol=1e-13)  # seen 2e-15


@pytest.mark.parametrize("prior", ["tanh", "cubic", "gaussian"])
def test_ica_priors_are_normalised(prior):
    a = torch.linspace(-40, 40, 400_001, dtype=torch.float64)
    total = float(torch.trapezoid(ica_log_prior(a, prior).exp(), a))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_ica_separates_the_cocktail_like_fastica(gen):
    S, A, X = data.cocktail(2000, generator=gen)
    model = ICA(prior="extended", lr=0.2, max_iter=300).fit(X, generator=gen)
    assert model.converged_
    assert sorted(model.priors_) == ["cubic", "cubic", "tanh"]
    ours = amari_index(model.components_, A)
    sk = FastICA(3, whiten="unit-variance", random_state=0, max_iter=1000).fit(X.numpy())
    theirs = amari_index(torch.from_numpy(sk.components_), A)
    assert ours < 0.02 and theirs < 0.02  # seen 0.0031 and 0.0050
    # the recovered sources match the true ones up to order and scale
    corr = torch.corrcoef(torch.cat([model.transform(X), S], 1).T)[:3, 3:].abs()
    assert float(corr.max(1).values.min()) > 0.99
    # mixing_ and transform undo each other; log_likelihood_ ends at the fitted model's value
    assert torch.allclose(model.inverse_transform(model.transform(X)), X, atol=1e-10)
    assert float(model.log_likelihood(X).mean()) == pytest.approx(model.log_likelihood_[-1], abs=1e-12)


def test_a_single_heavy_tailed_prior_cannot_separate_light_tailed_sources(gen):
    _, A, X = data.cocktail(2000, generator=gen)
    model = ICA(prior="tanh", lr=0.2, max_iter=300).fit(X, generator=gen)
    assert amari_index(model.components_, A) > 0.1  # seen 0.38


def _ill_conditioned_laplace(gen):
    S = _laplace(gen, 1000, 3)
    A = torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.4], [0.2, 0.3, 1.0]], dtype=torch.float64)
    A = A * torch.tensor([3.0, 1.0, 0.3], dtype=torch.float64)[:, None]  # condition number ~15
    return A, S @ A.T


def test_natural_gradient_climbs_faster_than_plain(gen):
    A, X = _ill_conditioned_laplace(gen)
    eye = torch.eye(3, dtype=torch.float64)
    runs = {
        method: ICA(prior="tanh", method=method, lr=0.1, max_iter=100, tol=0, whiten=False).fit(X, w_init=eye)
        for method in ("natural", "plain")
    }
    nat, plain = (runs[k].log_likelihood_ for k in ("natural", "plain"))
    assert len(nat) == len(plain) == 101 and nat[0] == plain[0]
    assert nat[-1] > plain[-1] + 0.05  # seen 0.17 nats (Amari index 0.04 against 0.12)
    assert amari_index(runs["natural"].components_, A) < amari_index(runs["plain"].components_, A)


def test_natural_gradient_is_covariant(gen):
    # fitting M x from W0 M^{-1} retraces W_t M^{-1}: the path does not depend on the coordinates
    A, X = _ill_conditioned_laplace(gen)
    M = torch.tensor([[2.0, 0.3, 0.0], [0.0, 0.5, 0.1], [0.4, 0.0, 1.0]], dtype=torch.float64)
    kw = dict(prior="tanh", lr=0.1, max_iter=30, tol=0, whiten=False)
    a = ICA(**kw).fit(X, w_init=torch.eye(3, dtype=torch.float64))
    b = ICA(**kw).fit(X @ M.T, w_init=torch.linalg.inv(M))
    assert torch.allclose(b.unmixing_ @ M, a.unmixing_, atol=1e-10)
    shift = -torch.linalg.slogdet(M).logabsdet
    assert np.allclose(np.array(b.log_likelihood_) - np.array(a.log_likelihood_), float(shift), atol=1e-10)


def test_gaussian_sources_leave_every_rotation_equally_likely(gen):
    x = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    pca = PCA(n_components=3).fit(x)
    y = pca.transform(x) / pca.explained_variance_.sqrt()  # exactly white: mean 0, covariance I
    W = torch.eye(3, dtype=torch.float64)
    base = float(ica_log_likelihood(W, y, prior="gaussian").mean())
    for _ in range(3):
        R = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
        rotated = float(ica_log_likelihood(R @ W, y, prior="gaussian").mean())
        assert rotated == pytest.approx(base, abs=1e-12)
        # and every rotation is a stationary point: W^{-T} - E[a y^T] vanishes when W is orthogonal
        assert float(ica_gradient(R, y, prior="gaussian").abs().max()) < 1e-12


def test_amari_index_zero_exactly_for_scaled_permutations(gen):
    A = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    P = torch.eye(4, dtype=torch.float64)[[2, 0, 3, 1]] * torch.tensor([2.0, -0.5, 3.0, 1.0], dtype=torch.float64)
    W = P @ torch.linalg.inv(A)
    assert amari_index(W, A) == pytest.approx(0.0, abs=1e-12)
    assert 0.05 < amari_index(W + 0.3 * torch.randn(4, 4, generator=gen, dtype=torch.float64), A) <= 1
    assert amari_index(torch.ones(3, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)) == 1.0


def test_cocktail_is_deterministic_and_mixed(gen):
    S, A, X = data.cocktail(5000, generator=torch.Generator().manual_seed(3))
    S2, A2, X2 = data.cocktail(5000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(S, S2) and torch.equal(A, A2) and torch.equal(X, X2)
    assert S.shape == X.shape == (5000, 3) and A.shape == (3, 3) and X.dtype == torch.float64
    assert torch.allclose(X, S @ A.T)
    assert torch.allclose(S.var(0), torch.ones(3, dtype=torch.float64), atol=0.1)
    kurtosis = (S - S.mean(0)).pow(4).mean(0) / S.var(0).pow(2) - 3
    assert kurtosis[0] < -1 and kurtosis[1] < -1 and kurtosis[2] > 1  # sine, sawtooth, Laplace


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, word",
    [
        (lambda: PCA(n_components=0), "n_components"),
        (lambda: PCA(n_components=5, n_features=4), "n_components"),
        (lambda: ProbabilisticPCA(n_components=4, n_features=4), "n_components"),
        (lambda: LinearAutoencoder(dim=3, n_components=4), "n_components"),
        (lambda: ICA(prior="laplace"), "prior"),
        (lambda: ICA(method="newton"), "method"),
        (lambda: ICA(lr=0), "lr"),
        (lambda: ICA(n_components=2, n_features=3, whiten=False), "n_components"),
    ],
)
def test_bad_constructor_arguments_raise(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_bad_data_raise(gen):
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"X must be a tensor of shape \(B, D\)"):
        PCA().fit(x[0])
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN"):
        ProbabilisticPCA().fit(bad)
    with pytest.raises(ValueError, match="n_components"):
        PCA(n_components=5).fit(x)
    with pytest.raises(ValueError, match="n_components"):
        ProbabilisticPCA(n_components=4).fit(x)
    pca = PCA(n_components=2).fit(x)
    with pytest.raises(ValueError, match=r"X must be a tensor of shape \(B, 4\)"):
        pca.transform(x[:, :3])
    with pytest.raises(RuntimeError, match="not fitted"):
        ICA().transform(x)
    with pytest.raises(ValueError, match="n_components must equal"):
        ICA(n_components=2, whiten=False).fit(x)
    with pytest.raises(ValueError, match="prior must be"):
        ica_log_prior(x, ["tanh", "cubic"])
    with pytest.raises(ValueError, match="A must be"):
        amari_index(torch.eye(3), torch.eye(4))
    with pytest.raises(FloatingPointError, match="at step"):
        ICA(prior="cubic", lr=50.0, whiten=False).fit(10 * x)
