import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from torch.distributions import MultivariateNormal, Normal

from genbook import data, evaluate, fit
from genbook.mixture import GaussianMixture, GridLatentModel, gaussian_log_density


def _blobs(gen, n=300):
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=torch.float64)
    return centres[torch.arange(n) % 3] + 0.6 * torch.randn(n, 2, generator=gen, dtype=torch.float64)


def _random_spd(c, d, gen):
    A = torch.randn(c, d, d, generator=gen, dtype=torch.float64)
    return A @ A.transpose(1, 2) + 0.5 * torch.eye(d, dtype=torch.float64)


@pytest.fixture
def fitted(gen):
    x = _blobs(gen)
    return GaussianMixture(n_components=3, tol=1e-8, max_iter=500).fit(x, generator=gen), x


# ---------------------------------------------------------------- against scikit-learn
def test_em_matches_sklearn_from_same_start(gen):
    x = _blobs(gen)
    means = x[torch.randperm(x.shape[0], generator=gen)[:3]]
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    covs = torch.cov(x.T).repeat(3, 1, 1)
    ours = GaussianMixture(n_components=3, tol=1e-8, max_iter=500).fit(
        x, means_init=means, weights_init=weights, covariances_init=covs
    )
    sk = SkGaussianMixture(
        n_components=3,
        covariance_type="full",
        tol=1e-8,
        max_iter=500,
        reg_covar=1e-6,
        means_init=means.numpy(),
        weights_init=weights.numpy(),
        precisions_init=np.linalg.inv(covs.numpy()),
    ).fit(x.numpy())
    assert ours.converged_ and sk.converged_
    assert ours.n_iter_ == sk.n_iter_
    assert ours.score(x) == pytest.approx(sk.score(x.numpy()), abs=1e-6)
    np.testing.assert_allclose(ours.means_.numpy(), sk.means_, atol=1e-5)
    np.testing.assert_allclose(ours.weights_.numpy(), sk.weights_, atol=1e-5)
    np.testing.assert_allclose(ours.covariances_.numpy(), sk.covariances_, atol=1e-5)
    np.testing.assert_allclose(ours.log_prob(x).numpy(), sk.score_samples(x.numpy()), atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(x).numpy(), sk.predict_proba(x.numpy()), atol=1e-6)


def test_em_lower_bound_never_decreases(gen):
    # Overlapping data and too many components: many EM iterations. Without reg_covar
    # (which would change the M step) EM cannot lower the likelihood.
    x = data.toy("moons").sample(400, generator=gen).double()
    model = GaussianMixture(n_components=6, reg_covar=0.0, tol=0.0, max_iter=60).fit(x, generator=gen)
    bounds = torch.tensor(model.lower_bounds_, dtype=torch.float64)
    assert len(bounds) == 60 and model.n_iter_ == 60 and not model.converged_
    assert bool((bounds.diff() >= -1e-9).all())
    assert float(bounds[-1] - bounds[0]) > 0.1
    # the recorded bound is the log-likelihood at the parameters before each M step,
    # so the final fit is at least as good as the last entry
    assert model.score(x) >= float(bounds[-1]) - 1e-9


def test_em_stops_when_change_below_tol(gen):
    x = _blobs(gen)
    model = GaussianMixture(n_components=3, tol=1e-3).fit(x, generator=gen)
    lb = model.lower_bounds_
    assert model.converged_ and model.n_iter_ == len(lb)
    assert abs(lb[-1] - lb[-2]) < 1e-3
    assert all(abs(b - a) >= 1e-3 for a, b in zip(lb[:-2], lb[1:-1]))


# ---------------------------------------------------------------- the density
def test_log_prob_integrates_to_one(fitted, grid_integral):
    model, _ = fitted
    assert grid_integral(model.log_prob, (-6.0, 6.0, -5.0, 7.0), 0.05) == pytest.approx(1.0, abs=1e-4)


def test_gaussian_log_density_matches_torch(gen):
    means = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    covs = _random_spd(3, 4, gen)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    got = gaussian_log_density(x, means, covs)
    assert got.shape == (5, 3)
    expected = torch.stack([MultivariateNormal(means[c], covs[c]).log_prob(x) for c in range(3)], 1)
    assert torch.allclose(got, expected, atol=1e-10, rtol=0)


def test_log_prob_is_log_of_weighted_component_densities(fitted):
    model, x = fitted
    comps = torch.stack([MultivariateNormal(model.means_[c], model.covariances_[c]).log_prob(x) for c in range(3)], 1)
    expected = torch.logsumexp(comps + model.weights_.log(), 1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-10)
    assert model.score(x) == pytest.approx(float(expected.mean()), abs=1e-10)


def test_sample_moments_match_mixture(gen):
    # Strongly correlated, unequal components: a transposed Cholesky factor would show.
    model = GaussianMixture(n_components=2, n_features=2)
    model.load_state_dict(
        {
            "weights_": torch.tensor([0.3, 0.7], dtype=torch.float64),
            "means_": torch.tensor([[-1.0, 2.0], [1.5, 0.0]], dtype=torch.float64),
            "covariances_": torch.tensor([[[1.0, 0.9], [0.9, 1.0]], [[0.5, -0.6], [-0.6, 2.0]]], dtype=torch.float64),
        }
    )
    n = 200_000
    s = model.sample(n, generator=gen)
    assert s.shape == (n, 2) and s.dtype == torch.float64
    w, mu, cov = model.weights_, model.means_, model.covariances_
    mean = w @ mu
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    assert bool(((s.mean(0) - mean).abs() < 5 * s.std(0) / math.sqrt(n)).all())
    prods = s[:, :, None] * s[:, None, :]
    assert bool(((prods.mean(0) - second).abs() < 5 * prods.std(0) / math.sqrt(n)).all())
    # E_x[q(c | x)] = alpha_c: the responsibilities average to the weights
    r = model.predict_proba(s)
    assert bool(((r.mean(0) - w).abs() < 5 * r.std(0) / math.sqrt(n)).all())


def test_predict_proba_rows_sum_to_one(fitted):
    model, x = fitted
    p = model.predict_proba(x)
    assert p.shape == (300, 3)
    assert bool((p >= 0).all())
    assert torch.allclose(p.sum(1), torch.ones(300, dtype=torch.float64), atol=1e-12)


def test_predict_assigns_points_to_nearest_centre(fitted):
    model, _ = fitted
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=torch.float64)
    labels = model.predict(centres)
    assert sorted(labels.tolist()) == [0, 1, 2]
    assert torch.allclose(model.means_[labels], centres, atol=0.2)


def test_float32_input_is_accepted(fitted):
    model, x = fitted
    assert torch.allclose(model.log_prob(x.float()), model.log_prob(x.float().double()))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, word",
    [
        (lambda x: x[:, :1], r"shape \(B, 2\)"),
        (lambda x: torch.cat([x, x[:, :1]], 1), r"shape \(B, 2\)"),
        (lambda x: x[:0], r"shape \(B, 2\)"),
        (lambda x: x.flatten(), r"shape \(B, 2\)"),
        (lambda x: torch.where(torch.arange(len(x))[:, None] == 4, math.nan, x), "NaN"),
        (lambda x: x[:2], "at least n_components=3 rows"),
    ],
)
def test_fit_bad_data_raises(make, word, gen):
    x = _blobs(gen, n=30)
    with pytest.raises(ValueError, match=word):
        GaussianMixture(n_components=3).fit(make(x))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(weights_init=torch.tensor([0.5, 0.6, 0.1])), "sum to 1"),
        (dict(weights_init=torch.tensor([1.2, -0.1, -0.1])), "positive"),
        # the shape checks are genbook._checks.check_tensor's: "... must be a tensor of shape ..."
        (dict(weights_init=torch.tensor([0.5, 0.5])), r"weights_init must be a tensor of shape \(3,\)"),
        (dict(means_init=torch.zeros(3, 3)), r"means_init must be a tensor of shape \(3, 2\)"),
        (dict(covariances_init=torch.eye(2)), r"covariances_init must be a tensor of shape \(3, 2, 2\)"),
    ],
)
def test_fit_bad_init_raises(kwargs, word, gen):
    with pytest.raises(ValueError, match=word):
        GaussianMixture(n_components=3).fit(_blobs(gen, n=30), **kwargs)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(n_components=0), "n_components"),
        (dict(n_components=1.5), "n_components"),
        (dict(n_features=0), "n_features"),
        (dict(reg_covar=-1.0), "reg_covar"),
    ],
)
def test_bad_constructor_args_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        GaussianMixture(**kwargs)


def test_log_prob_and_sample_bad_input_raise(fitted):
    model, _ = fitted
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        model.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)


# ---------------------------------------------------------------- grid latent model
@pytest.fixture
def small_grid_model():
    model = GridLatentModel(n_features=3, n_latent=5, hidden=8)
    with torch.no_grad():
        model.log_sigma.copy_(torch.tensor([-0.5, 0.0, 0.3]))
    return model


def test_grid_latent_log_prob_matches_brute_force_loop(small_grid_model):
    model = small_grid_model
    x = torch.randn(4, 3)
    with torch.no_grad():
        centres = model.decode().double()  # (J, D)
        sigma = model.log_sigma.exp().double()
    expected = []
    for xi in x.double():
        terms = [Normal(centres[j], sigma).log_prob(xi).sum() - math.log(model.n_latent) for j in range(model.n_latent)]
        expected.append(torch.logsumexp(torch.stack(terms), 0))
    got = model.log_prob(x).detach().double()
    assert got.shape == (4,)
    assert torch.allclose(got, torch.stack(expected), rtol=1e-5, atol=1e-5)
    assert torch.allclose(model.loss(x).detach().double(), -torch.stack(expected).mean(), atol=1e-5)


def test_grid_latent_sample_shape(small_grid_model, gen):
    s = small_grid_model.sample(17, generator=gen)
    assert s.shape == (17, 3) and s.dtype == torch.float32
    assert torch.equal(s, small_grid_model.sample(17, generator=torch.Generator().manual_seed(0)))


def test_grid_latent_sample_is_near_decoded_grid(gen):
    model = GridLatentModel(n_features=2, n_latent=8, hidden=8)
    with torch.no_grad():
        model.log_sigma.fill_(-6.0)
        centres = model.decode()
    s = model.sample(500, generator=gen)
    assert float(torch.cdist(s, centres).min(1).values.max()) < 6 * math.exp(-6.0)


def test_grid_latent_encode_in_unit_interval(small_grid_model, gen):
    x = 10 * torch.randn(200, 3, generator=gen)
    code = small_grid_model.encode(x)
    assert code.shape == (200,)
    assert bool(((code >= -1) & (code <= 1)).all())


def test_grid_latent_encode_recovers_latent_of_decoded_point():
    model = GridLatentModel(n_features=2, n_latent=5, hidden=8)
    with torch.no_grad():
        model.log_sigma.fill_(-8.0)  # posterior collapses on the nearest decoded point
        centres = model.decode()
    assert torch.allclose(model.encode(centres), model.z[:, 0], atol=1e-4)


def test_grid_latent_training_decreases_loss(gen):
    x = data.toy("moons").sample(512, generator=gen)
    model = GridLatentModel(n_features=2, n_latent=32, hidden=32)
    before = evaluate(model, x)
    hist = fit(model, x, steps=300, batch_size=128, lr=1e-2, progress=False, generator=gen)
    after = evaluate(model, x)
    assert after < before - 0.5
    assert math.isfinite(after) and hist.steps == 300
    assert sum(hist.train_loss[-20:]) / 20 < sum(hist.train_loss[:20]) / 20


@pytest.mark.parametrize("kwargs", [dict(n_features=0), dict(n_latent=0), dict(hidden=2.5), dict(hidden=True)])
def test_grid_latent_bad_args_raise(kwargs):
    # genbook._checks.check_int's message: "hidden must be an int >= 1, got 2.5 (float)"
    with pytest.raises(ValueError, match=f"^{next(iter(kwargs))} must be an int >= 1, got"):
        GridLatentModel(**kwargs)


def test_grid_latent_bad_points_raise(small_grid_model):
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        small_grid_model.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        small_grid_model.log_prob(torch.full((2, 3), math.nan))


# ---------------------------------------------------------------- k-means++ seeding (default init)
def test_kmeans_plusplus_picks_distinct_rows_one_per_cluster(gen):
    from genbook.mixture import kmeans_plusplus

    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=torch.float64)
    x = centres[torch.arange(90) % 3] + 0.1 * torch.randn(90, 2, generator=gen, dtype=torch.float64)
    seeds = kmeans_plusplus(x, 3, generator=gen)  # a second seed in a used cluster has odds < 1e-3
    assert seeds.shape == (3, 2)
    assert all(bool((x == s).all(1).any()) for s in seeds)  # every seed is a data row
    assert sorted(torch.cdist(seeds, centres).argmin(1).tolist()) == [0, 1, 2]
    again = kmeans_plusplus(x, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(kmeans_plusplus(x, 3, generator=torch.Generator().manual_seed(0)), again)


@pytest.mark.parametrize("k", [0, 91, 2.0])
def test_kmeans_plusplus_bad_k_raises(k, gen):
    from genbook.mixture import kmeans_plusplus

    with pytest.raises(ValueError, match="k must"):
        kmeans_plusplus(_blobs(gen, n=90), k)
