import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from torch.distributions import MultivariateNormal, Normal

import genbook
from genbook import data, evaluate, fit
from genbook.mixture import CategoricalMixture, GaussianMixture, GridLatentModel, gaussian_log_density


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


# ---------------------------------------------------------------- mixture of categoricals
def _categorical_model(weights, theta) -> CategoricalMixture:
    """A CategoricalMixture with the given ``weights (C,)`` and ``theta (C, D, L)`` (no fitting)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    C, D, L = theta.shape
    model = CategoricalMixture(components=C, dims=D, levels=L)
    model.load_state_dict({"weights_": torch.as_tensor(weights, dtype=torch.float64), "log_theta_": theta.log()})
    return model


def _random_categorical_model(gen, C=2, D=3, L=3) -> CategoricalMixture:
    weights = torch.rand(C, generator=gen, dtype=torch.float64) + 0.2
    theta = torch.rand(C, D, L, generator=gen, dtype=torch.float64) + 0.05
    return _categorical_model(weights / weights.sum(), theta / theta.sum(-1, keepdim=True))


def _all_strings(D: int, L: int) -> torch.Tensor:
    return torch.cartesian_prod(*[torch.arange(L)] * D).reshape(-1, D)  # (L^D, D)


def _separated_model() -> CategoricalMixture:
    # three components over 8 positions and 4 levels, each putting 0.7 on its own level per position
    # (component c prefers level (c + d) % 4 at position d), so a point's component is rarely in doubt
    C, D, L = 3, 8, 4
    theta = torch.full((C, D, L), 0.1, dtype=torch.float64)
    for c in range(C):
        for d in range(D):
            theta[c, d, (c + d) % L] = 0.7
    return _categorical_model(torch.tensor([0.2, 0.3, 0.5]), theta)


def _map_objective(model: CategoricalMixture, x: torch.Tensor) -> float:
    """(1/N) [sum_i log q(x_i) + alpha sum log theta], written independently of fit."""
    return float(model.log_prob(x).mean()) + model.alpha * float(model.log_theta_.sum()) / x.shape[0]


def test_categorical_log_prob_sums_to_one_over_all_strings(gen):
    x = torch.randint(0, 3, (40, 3), generator=gen)
    model = CategoricalMixture(components=2, dims=3, levels=3, alpha=0.5).fit(x, generator=gen)
    everything = _all_strings(3, 3)
    assert everything.shape == (27, 3)
    assert float(torch.logsumexp(model.log_prob(everything), 0)) == pytest.approx(0.0, abs=1e-12)
    assert float(model.weights_.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(model.log_theta_.exp().sum(-1), torch.ones(2, 3, dtype=torch.float64), atol=1e-12)


def test_categorical_log_prob_matches_brute_force_loop(gen):
    model = _random_categorical_model(gen, C=3, D=4, L=5)
    x = torch.randint(0, 5, (6, 4), generator=gen)
    pi, theta = model.weights_.tolist(), model.log_theta_.exp().tolist()
    expected = []
    for row in x.tolist():
        total = 0.0
        for c in range(3):
            term = pi[c]
            for d, level in enumerate(row):
                term *= theta[c][d][level]
            total += term
        expected.append(math.log(total))
    got = model.log_prob(x)
    assert got.shape == (6,) and got.dtype == torch.float64
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)
    assert float(model.loss(x)) == pytest.approx(-sum(expected) / 6, abs=1e-12)
    # responsibilities are Bayes' rule on the same terms
    r = model.responsibilities(x)
    joint = model.weights_.log() + torch.stack(
        [model.log_theta_[c, torch.arange(4), x].sum(1) for c in range(3)], 1
    )  # (6, 3)
    assert torch.allclose(r, torch.softmax(joint, 1), atol=1e-12)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_categorical_map_objective_never_decreases(init, gen):
    # overlapping data, too many components and no stopping: many EM iterations
    x = _separated_model().sample(300, generator=gen)
    model = CategoricalMixture(components=6, dims=8, levels=4, alpha=0.5, init=init, tol=0.0, max_iter=80)
    model.fit(x, generator=gen)
    h = torch.tensor(model.history_, dtype=torch.float64)
    assert len(h) == 80 and model.n_iter_ == 80 and not model.converged_
    assert bool((h.diff() >= -1e-10).all())
    assert float(h[-1] - h[0]) > 0.01
    # the recorded value is the objective before each M step: the final parameters do at least as well
    assert _map_objective(model, x) >= float(h[-1]) - 1e-10


def test_categorical_converged_fit_is_a_fixed_point_of_the_map_update(gen):
    x = _separated_model().sample(500, generator=gen)
    model = CategoricalMixture(components=3, dims=8, levels=4, alpha=2.0, tol=1e-12, max_iter=1000)
    model.fit(x, generator=gen)
    assert model.converged_
    r = model.responsibilities(x)  # (N, C)
    counts = torch.stack([r.T @ (x[:, d, None] == torch.arange(4)).double() for d in range(8)], 1)  # (C, D, L)
    theta = (counts + 2.0) / (r.sum(0)[:, None, None] + 4 * 2.0)
    assert torch.allclose(model.log_theta_.exp(), theta, atol=1e-6)
    assert torch.allclose(model.weights_, r.mean(0), atol=1e-6)


def test_categorical_em_recovers_a_separated_mixture(gen):
    truth = _separated_model()
    n = 6000
    x = truth.sample(n, generator=gen)
    model = CategoricalMixture(components=3, dims=8, levels=4, alpha=1.0, tol=1e-8).fit(x, generator=gen)
    assert model.converged_
    true_theta = truth.log_theta_.exp()
    # the permutation that matches components best
    best = min(
        itertools.permutations(range(3)),
        key=lambda p: float((model.log_theta_.exp()[list(p)] - true_theta).abs().sum()),
    )
    weights, theta = model.weights_[list(best)], model.log_theta_.exp()[list(best)]
    # standard errors: a weight sqrt(w (1 - w) / n) <= 0.0065; a theta entry sqrt(t (1 - t) / n_c) with
    # n_c >= 0.2 n = 1200 points, at most 0.5 / sqrt(1200) = 0.014. The pseudo-count bias is at most
    # alpha L / n_c = 0.003 and misassignments are rare (likelihood ratios of 7^8 against one level).
    # 5 standard errors per weight, 5 per theta entry (96 entries: a 4-sigma excursion is already rare).
    assert torch.allclose(weights, truth.weights_, atol=5 * 0.0065)
    assert torch.allclose(theta, true_theta, atol=5 * 0.014 + 0.003)
    assert float((theta - true_theta).abs().max()) > 0  # not the truth handed back


def test_categorical_sample_frequencies_match_probabilities(gen):
    model = _random_categorical_model(gen, C=2, D=2, L=3)
    n = 100_000
    s = model.sample(n, generator=gen)
    assert s.shape == (n, 2) and s.dtype == torch.long
    everything = _all_strings(2, 3)  # (9, 2)
    p = model.log_prob(everything).exp()
    freq = (s[:, None, :] == everything[None]).all(-1).double().mean(0)  # (9,)
    se = (p * (1 - p) / n).sqrt()
    assert bool(((freq - p).abs() < 5 * se).all())
    again = model.sample(n, generator=torch.Generator().manual_seed(0))
    assert torch.equal(
        _random_categorical_model(torch.Generator().manual_seed(0), C=2, D=2, L=3).sample(
            n, generator=torch.Generator().manual_seed(0)
        ),
        again,
    )


def test_categorical_unseen_level_gets_finite_log_prob(gen):
    x = torch.randint(0, 2, (50, 4), generator=gen)  # levels 0 and 1 only; level 2 never seen
    model = CategoricalMixture(components=2, dims=4, levels=3, alpha=0.1).fit(x, generator=gen)
    unseen = torch.tensor([[2, 2, 2, 2], [0, 2, 1, 0]])
    lp = model.log_prob(unseen)
    assert bool(torch.isfinite(lp).all())
    # every component gives level 2 the probability alpha / (N_c + 3 alpha) > 0, and nothing more
    n_c = model.weights_ * 50
    expected = 0.1 / (n_c + 0.3)
    assert torch.allclose(model.log_theta_[:, :, 2].exp(), expected[:, None].expand(2, 4), rtol=1e-6)
    assert bool((lp < model.log_prob(x[:2]).min()).all())


def test_categorical_one_component_is_independent_categoricals(gen):
    x = torch.randint(0, 4, (37, 5), generator=gen)
    x[:, 0] = torch.where(x[:, 0] == 3, 0, x[:, 0])  # a level with count 0
    alpha = 0.7
    model = CategoricalMixture(components=1, dims=5, levels=4, alpha=alpha).fit(x, generator=gen)
    counts = torch.stack([torch.bincount(x[:, d], minlength=4) for d in range(5)]).double()  # (D, L)
    expected = (counts + alpha) / (37 + 4 * alpha)
    assert torch.allclose(model.log_theta_[0].exp(), expected, atol=1e-12)
    assert float(model.weights_[0]) == pytest.approx(1.0, abs=1e-12)
    assert model.converged_ and model.n_iter_ == 2  # one M-step reaches the optimum
    assert torch.allclose(model.log_prob(x), expected.log()[torch.arange(5), x].sum(1), atol=1e-12)


def test_categorical_save_load_round_trip(tmp_path, gen):
    x = torch.randint(0, 3, (30, 4), generator=gen)
    model = CategoricalMixture(components=3, dims=4, levels=3, alpha=0.3, init="random").fit(x, generator=gen)
    genbook.save(model, tmp_path / "cm.pt")
    loaded = genbook.load(tmp_path / "cm.pt")
    assert type(loaded) is CategoricalMixture
    assert (
        loaded.config()
        == model.config()
        == dict(components=3, levels=3, dims=4, alpha=0.3, init="random", tol=1e-6, max_iter=200)
    )
    for name in ("weights_", "log_theta_"):
        assert torch.equal(getattr(loaded, name), getattr(model, name))
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    s = loaded.sample(20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s, model.sample(20, generator=torch.Generator().manual_seed(3)))


def test_categorical_fit_is_reproducible_with_a_generator(gen):
    x = _separated_model().sample(200, generator=gen)
    fits = [
        CategoricalMixture(components=4, dims=8, levels=4).fit(x, generator=torch.Generator().manual_seed(5))
        for _ in range(2)
    ]
    assert torch.equal(fits[0].log_theta_, fits[1].log_theta_) and fits[0].history_ == fits[1].history_


@pytest.mark.parametrize(
    "make, word",
    [
        (lambda x: x.double(), r"x must be an integer tensor of shape \(B, 4\), got a tensor of shape \(10, 4\)"),
        (lambda x: x.bool(), r"x must be an integer tensor of shape \(B, 4\)"),
        (lambda x: x[0], r"x must be an integer tensor of shape \(B, 4\), got a tensor of shape \(4,\)"),
        (lambda x: x[:, :3], r"x must be an integer tensor of shape \(B, 4\), got a tensor of shape \(10, 3\)"),
        (lambda x: torch.where(x == 1, 3, x), r"x must hold levels 0\.\.2, found 3"),
        (lambda x: torch.where(x == 1, -1, x), r"x must hold levels 0\.\.2, found -1"),
        (lambda x: x[:2], "x needs at least components=3 rows, got 2"),
        (lambda x: x.tolist(), r"x must be an integer tensor of shape \(B, 4\), got \[\["),
    ],
)
def test_categorical_fit_bad_data_raises(make, word, gen):
    x = torch.randint(0, 3, (10, 4), generator=gen)
    with pytest.raises(ValueError, match=word):
        CategoricalMixture(components=3, dims=4, levels=3).fit(make(x))


def test_categorical_log_prob_and_sample_bad_input_raise(gen):
    model = CategoricalMixture(components=2, dims=4, levels=3)
    x = torch.randint(0, 3, (10, 4), generator=gen)
    for call in (lambda: model.log_prob(x), lambda: model.responsibilities(x), lambda: model.sample(3)):
        with pytest.raises(RuntimeError, match="CategoricalMixture is not fitted yet: call fit"):
            call()
    model.fit(x, generator=gen)
    with pytest.raises(ValueError, match=r"x must be an integer tensor of shape \(B, 4\)"):
        model.log_prob(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must hold levels 0\.\.2, found 7"):
        model.log_prob(torch.full((2, 4), 7))
    with pytest.raises(ValueError, match="^n must be an int >= 1, got 0"):
        model.sample(0)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(components=0), "^components must be an int >= 1, got 0"),
        (dict(levels=1), "^levels must be an int >= 2, got 1"),
        (dict(dims=2.0), r"^dims must be an int >= 1, got 2\.0 \(float\)"),
        (dict(alpha=0.0), r"^alpha must be a finite number > 0, got 0\.0"),
        (dict(alpha=math.nan), "^alpha must be a finite number > 0, got nan"),
        (dict(init="kmeans"), "^init must be 'kmeans\\+\\+' or 'random', got 'kmeans'"),
        (dict(tol=-1e-3), "^tol must be a finite number >= 0"),
        (dict(max_iter=0), "^max_iter must be an int >= 1"),
    ],
)
def test_categorical_bad_constructor_args_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        CategoricalMixture(**kwargs)
