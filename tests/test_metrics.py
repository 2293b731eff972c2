import math

import numpy as np
import pytest
import torch
from scipy import linalg

from genbook import data, metrics


class StandardNormal:
    """log N(x; 0, I) summed over the last dimension: a model whose NLL is known in closed form."""

    def log_prob(self, x):
        return -0.5 * (x.pow(2).sum(-1) + x.shape[-1] * math.log(2 * math.pi))


class Constant:
    def __init__(self, value):
        self.value = value

    def log_prob(self, x):
        return torch.full((x.shape[0],), self.value)


def test_nll_of_standard_normal_matches_closed_form():
    x = torch.randn(100, 3, dtype=torch.float64)
    expected = 1.5 * math.log(2 * math.pi) + 0.5 * float(x.pow(2).sum(1).mean())
    assert metrics.nll(StandardNormal(), x) == pytest.approx(expected, abs=1e-12)


def test_nll_does_not_depend_on_batch_size():
    x = torch.randn(103, 2, dtype=torch.float64)
    whole = metrics.nll(StandardNormal(), x, batch_size=1024)
    assert metrics.nll(StandardNormal(), x, batch_size=10) == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nll_refuses_nan_or_positive_inf(bad):
    with pytest.raises(FloatingPointError, match="NaN or \\+inf"):
        metrics.nll(Constant(bad), torch.zeros(4, 2))


def test_nll_of_impossible_data_is_infinite():
    assert metrics.nll(Constant(-math.inf), torch.zeros(4, 2)) == math.inf


@pytest.mark.parametrize("bad", [torch.zeros(0, 2), [[0.0, 1.0]], torch.tensor(1.0)])
def test_nll_bad_data_raises(bad):
    with pytest.raises(ValueError, match="non-empty tensor"):
        metrics.nll(StandardNormal(), bad)


def test_bits_per_dim_conversion():
    assert metrics.bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert metrics.bits_per_dim(100.0, 10) == pytest.approx(100 / (10 * math.log(2)))


def test_uniform_nll_of_digits():
    assert metrics.uniform_nll(17, 64) == pytest.approx(64 * math.log(17), abs=1e-12)
    assert metrics.uniform_nll(17, 64) == pytest.approx(181.3, abs=0.05)
    assert metrics.bits_per_dim(metrics.uniform_nll(17, 64), 64) == pytest.approx(math.log2(17))


def test_uniform_nll_of_binary_is_one_bit_per_dim():
    assert metrics.bits_per_dim(metrics.uniform_nll(2, 784), 784) == pytest.approx(1.0)


@pytest.mark.parametrize("dims", [0, -3, 2.5])
def test_bits_per_dim_bad_dims_raise(dims):
    with pytest.raises(ValueError, match="dims"):
        metrics.bits_per_dim(1.0, dims)


@pytest.mark.parametrize(
    "levels, dims, word", [(1, 64, "levels"), (2.5, 64, "levels"), (17, 0, "dims"), (17, 1.0, "dims")]
)
def test_uniform_nll_bad_args_raise(levels, dims, word):
    with pytest.raises(ValueError, match=word):
        metrics.uniform_nll(levels, dims)


# ---------------------------------------------------------------- sample quality: Frechet distance
def _gaussian_set(gen, n, mean, scale):
    """``n`` draws of ``mean + scale @ eps`` with ``eps ~ N(0, I)``, float64."""
    d = len(mean)
    return torch.tensor(mean, dtype=torch.float64) + torch.randn(n, d, generator=gen, dtype=torch.float64) @ scale.T


def test_frechet_distance_of_a_set_with_itself_is_zero(gen):
    a = torch.randn(200, 6, generator=gen)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_of_a_set_with_itself_is_zero_when_the_covariance_is_singular(gen):
    a = torch.randn(10, 20, generator=gen, dtype=torch.float64)  # N < F: rank 9 covariance
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_on_the_sample_moments(gen):
    a = _gaussian_set(gen, 300, [0.0, 1.0, -1.0, 0.5, 2.0], torch.randn(5, 5, generator=gen, dtype=torch.float64))
    b = _gaussian_set(gen, 250, [0.5, 0.0, -1.0, 1.5, 2.0], torch.randn(5, 5, generator=gen, dtype=torch.float64))
    A, B = a.numpy(), b.numpy()
    ca, cb = np.cov(A, rowvar=False), np.cov(B, rowvar=False)  # unbiased, like ours
    cross = linalg.sqrtm(ca @ cb)  # the textbook form, with a non-symmetric product
    expected = np.sum((A.mean(0) - B.mean(0)) ** 2) + np.trace(ca + cb - 2 * cross.real)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)  # symmetric


def test_frechet_distance_in_one_dimension(gen):
    a = 1.0 + 2.0 * torch.randn(100, 1, generator=gen, dtype=torch.float64)
    b = -0.5 + 0.7 * torch.randn(80, 1, generator=gen, dtype=torch.float64)
    m1, m2, s1, s2 = a.mean(), b.mean(), a.std(), b.std()  # std with N - 1, as the covariance
    assert metrics.frechet_distance(a, b) == pytest.approx(float((m1 - m2) ** 2 + (s1 - s2) ** 2), rel=1e-10)


def test_frechet_distance_of_known_gaussians_converges_to_the_closed_form(gen):
    # N(0, I) against N(m, 4 I) in d dimensions: |m|^2 + d (1 + 4 - 2 * 2) = |m|^2 + d
    d, m = 3, torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    a = torch.randn(20000, d, generator=gen, dtype=torch.float64)
    b = m + 2 * torch.randn(20000, d, generator=gen, dtype=torch.float64)
    assert metrics.frechet_distance(a, b) == pytest.approx(5.0 + d, abs=0.4)  # 8.08 seen; sampling sd about 0.08


# ---------------------------------------------------------------- kernel distance
def _mmd2_by_loops(x, y):
    def k(u, v):
        return (float(u @ v) / x.shape[1] + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kernel_distance_is_the_unbiased_mmd_with_the_cubic_kernel(gen):
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    y = 0.5 + torch.randn(5, 3, generator=gen, dtype=torch.float64)
    assert metrics.kernel_distance(x, y) == pytest.approx(_mmd2_by_loops(x, y), rel=1e-12)
    value, se = metrics.kernel_distance(x, y, return_std=True)
    assert value == metrics.kernel_distance(x, y)
    # the jackknife by brute force: leave each row of either set out in turn
    loo_x = torch.tensor([_mmd2_by_loops(torch.cat([x[:i], x[i + 1 :]]), y) for i in range(7)], dtype=torch.float64)
    loo_y = torch.tensor([_mmd2_by_loops(x, torch.cat([y[:j], y[j + 1 :]])) for j in range(5)], dtype=torch.float64)
    var = 6 / 7 * (loo_x - loo_x.mean()).pow(2).sum() + 4 / 5 * (loo_y - loo_y.mean()).pow(2).sum()
    assert se == pytest.approx(var.sqrt().item(), rel=1e-9) and se > 0


def test_kernel_distance_standard_error_matches_the_spread_over_draws(gen):
    # 200 pairs of independent sets: the jackknife s.e. of one estimate against the std of the estimates
    pairs = [(torch.randn(60, 4, generator=gen), 0.3 + torch.randn(50, 4, generator=gen)) for _ in range(200)]
    values, ses = zip(*(metrics.kernel_distance(a, b, return_std=True) for a, b in pairs), strict=True)
    spread, typical_se = torch.tensor(values).std().item(), torch.tensor(ses).median().item()
    assert 0.7 < typical_se / spread < 1.5, (typical_se, spread)


def test_kernel_distance_is_near_zero_for_one_distribution_and_positive_for_a_shift(gen):
    same = [
        metrics.kernel_distance(torch.randn(400, 8, generator=gen), torch.randn(300, 8, generator=gen))
        for _ in range(5)
    ]
    shifted = metrics.kernel_distance(torch.randn(400, 8, generator=gen), 0.5 + torch.randn(300, 8, generator=gen))
    assert max(abs(v) for v in same) < 0.02
    assert min(same) < 0  # unbiased: it scatters around 0 rather than staying above it
    assert shifted > 0.5  # 1.18 seen; the draws of one distribution within 0.009 of 0


def test_kernel_distance_averages_over_subsets_when_a_set_is_larger(gen):
    x = torch.randn(60, 4, generator=gen, dtype=torch.float64)
    y = 1.0 + torch.randn(40, 4, generator=gen, dtype=torch.float64)
    mean, std = metrics.kernel_distance(
        x, y, subsets=20, subset_size=30, return_std=True, generator=torch.Generator().manual_seed(1)
    )
    again = metrics.kernel_distance(x, y, subsets=20, subset_size=30, generator=torch.Generator().manual_seed(1))
    assert again == mean and std > 0
    # by hand: the same draws of rows, then the unbiased estimate of each pair of subsets
    g = torch.Generator().manual_seed(1)
    values = [_mmd2_by_loops(x[torch.randperm(60, generator=g)[:30]], y[torch.randperm(40, generator=g)[:30]])]
    values += [
        _mmd2_by_loops(x[torch.randperm(60, generator=g)[:30]], y[torch.randperm(40, generator=g)[:30]])
        for _ in range(19)
    ]
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values, ddof=1), rel=1e-8)


# ---------------------------------------------------------------- precision and recall
def test_precision_recall_by_hand():
    # k = 1 radii of the real points 0, 1, 3, 6: 1, 1, 2, 3; of the fakes -1.5, 2, 10: 3.5, 3.5, 8
    real = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    fake = torch.tensor([[-1.5], [2.0], [10.0]])
    precision, recall = metrics.precision_recall(real, fake, k=1)
    assert precision == pytest.approx(1 / 3)  # only 2 lies in a real ball (that of 1, on its edge)
    assert recall == 1.0  # 0, 1 and 3 lie in the balls of -1.5 and 2; 6 in that of 10


def _clusters(gen, centres, n_each):
    centres = torch.tensor(centres, dtype=torch.float64)
    return torch.cat([c + torch.randn(n_each, centres.shape[1], generator=gen, dtype=torch.float64) for c in centres])


CORNERS = [[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]]


def test_precision_recall_of_identical_sets_is_one(gen):
    real = _clusters(gen, CORNERS, 50)
    assert metrics.precision_recall(real, real.clone()) == (1.0, 1.0)


def test_precision_recall_of_samples_that_cover_half_of_the_modes(gen):
    real = _clusters(gen, CORNERS, 200)
    fake = _clusters(gen, CORNERS[:2], 400)  # the same clusters, two of the four
    precision, recall = metrics.precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert 0.42 < recall <= 0.5


def test_precision_of_samples_far_from_the_data_is_zero(gen):
    real = _clusters(gen, CORNERS, 50)
    far = _clusters(gen, [[100.0, 100.0]], 50)
    assert metrics.precision_recall(real, far) == (0.0, 0.0)


# ---------------------------------------------------------------- the classifier and sample_quality
def test_digits_classifier_shapes_and_input_kinds():
    clf = metrics.DigitsClassifier(channels=4, feature_dim=6).eval()
    x = data.digits("val")[:5]
    assert clf.features(x).shape == (5, 6) and clf(x).shape == (5, 10)
    assert torch.equal(clf.features(x), clf.features(x.float()))  # levels or floats on their scale
    assert (clf.features(x) >= 0).all()  # after a ReLU


def test_shift_moves_each_image_by_at_most_one_pixel():
    x = torch.rand(200, 64)
    out = metrics._shift(x, 1).view(200, 8, 8)
    padded = torch.nn.functional.pad(x.view(200, 8, 8), (1, 1, 1, 1))
    crops = [padded[:, r : r + 8, c : c + 8] for r in range(3) for c in range(3)]
    match = torch.stack([(out == crop).flatten(1).all(1) for crop in crops], 1)  # (200, 9)
    assert (match.sum(1) == 1).all()  # each image is exactly one of the nine shifted copies
    assert (match.sum(0) > 5).all()  # and every shift happens


def test_digits_classifier_is_deterministic_and_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    a = metrics.digits_classifier(0, epochs=10, channels=8, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = metrics.digits_classifier(0, epochs=10, channels=8, progress=False)
    for (k, u), v in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(u, v), k
    assert not a.training
    x, y = data.digits("val", labels=True)
    assert a.accuracy(x, y) > 0.8  # 0.87 after 10 epochs (the full recipe: about 0.99)


def test_to_levels_rounds_and_clips():
    x = torch.tensor([[-3.0, 0.2, 0.7, 7.6, 15.5, 16.4, 30.0]])
    assert torch.equal(metrics.to_levels(x), torch.tensor([[0, 0, 1, 8, 16, 16, 16]]))
    assert metrics.to_levels(x).dtype == torch.long


def test_sample_quality_is_the_metrics_of_the_classifiers_features():
    clf = metrics.DigitsClassifier(channels=4, feature_dim=6).eval()
    ref, samples = data.digits("val")[:100], data.digits("test")[:80]
    q = metrics.sample_quality(samples, ref, clf)
    fs, fr = clf.features(samples), clf.features(ref)
    assert q["fd"] == pytest.approx(metrics.frechet_distance(fs, fr), rel=1e-9)
    assert q["kid"] == pytest.approx(metrics.kernel_distance(fs, fr), rel=1e-9)
    assert (q["precision"], q["recall"]) == metrics.precision_recall(fr, fs)
    same = metrics.sample_quality(ref, ref, clf)
    assert same["fd"] == pytest.approx(0.0, abs=1e-9) and same["precision"] == same["recall"] == 1.0
    assert q["kid_se"] == pytest.approx(metrics.kernel_distance(fs, fr, return_std=True)[1], rel=1e-9)


def test_class_histogram_counts_the_classifiers_decisions():
    clf = metrics.DigitsClassifier(channels=4, feature_dim=6).eval()
    x = data.digits("val")[:50]
    hist = metrics.class_histogram(x, clf)
    want = torch.bincount(clf(x).argmax(1), minlength=10).double() / 50
    assert hist.shape == (10,) and torch.equal(hist, want) and hist.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="classifier must be a metrics.DigitsClassifier"):
        metrics.class_histogram(x, None)
    with pytest.raises(ValueError, match="samples must be a LongTensor"):
        metrics.class_histogram(x.float(), clf)


# ---------------------------------------------------------------- bad input
FEATS = torch.randn(10, 3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.frechet_distance(FEATS[:1], FEATS), "feats_a must have at least 2 rows"),
        (lambda: metrics.frechet_distance(FEATS, FEATS[:, :2]), r"feats_b must have the feature dimension .* \(3\)"),
        (lambda: metrics.frechet_distance(FEATS[0], FEATS), r"feats_a must be a tensor of shape \(N, F\)"),
        (lambda: metrics.frechet_distance(FEATS, FEATS.numpy()), "feats_b must be a tensor"),
        (lambda: metrics.frechet_distance(FEATS, torch.full((4, 3), math.nan)), "feats_b contains NaN"),
        (lambda: metrics.frechet_distance(FEATS, FEATS > 0), "feats_b must be a real-valued tensor"),
        (lambda: metrics.kernel_distance(FEATS, FEATS[:, :1]), "feats_b must have the feature dimension"),
        (lambda: metrics.kernel_distance(FEATS, FEATS, subsets=0), "subsets must be an int >= 1"),
        (lambda: metrics.kernel_distance(FEATS, FEATS, subset_size=1), "subset_size must be an int >= 2"),
        (lambda: metrics.kernel_distance(FEATS, torch.full((4, 3), math.inf)), "feats_b contains NaN or infinite"),
        (lambda: metrics.precision_recall(FEATS, FEATS, k=0), "k must be an int >= 1"),
        (lambda: metrics.precision_recall(FEATS[:3], FEATS, k=3), "real_feats must have at least 4 rows"),
        (lambda: metrics.precision_recall(FEATS, FEATS[:3], k=3), "fake_feats must have at least 4 rows"),
        (lambda: metrics.precision_recall(FEATS, FEATS[:, :2]), "fake_feats must have the feature dimension"),
        (lambda: metrics.to_levels(torch.zeros(2, 3, dtype=torch.long)), "x must be a floating-point tensor"),
        (lambda: metrics.to_levels(torch.full((2, 3), math.nan)), "x contains NaN"),
        (lambda: metrics.DigitsClassifier(feature_dim=0), "feature_dim must be an int >= 1"),
        (lambda: metrics.DigitsClassifier(max_shift=8), r"max_shift must be an int in 0\.\.7"),
        (lambda: metrics.DigitsClassifier().features(torch.full((2, 64), 16.5)), r"x must hold values in \[0, 16\]"),
        (lambda: metrics.DigitsClassifier().features(torch.zeros(2, 63)), r"x must be a tensor of shape \(B, 64\)"),
        (lambda: metrics.DigitsClassifier().loss(torch.zeros(2, 64), torch.tensor([0, 10])), "y must hold digit"),
        (lambda: metrics.digits_classifier(epochs=0), "epochs must be an int >= 1"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


DIGITS = torch.randint(0, 17, (8, 64))


@pytest.mark.parametrize(
    "samples, reference, classifier, match",
    [
        (DIGITS.float(), DIGITS, None, "samples must be a LongTensor .* got dtype torch.float32: .*to_levels"),
        (DIGITS, DIGITS.double(), None, "reference must be a LongTensor"),
        (DIGITS + 1, DIGITS, None, "samples must hold levels 0..16, found 17"),
        (DIGITS, DIGITS[:, :63], None, r"reference must be an integer tensor of shape \(B, 64\)"),
        (DIGITS, DIGITS, torch.nn.Linear(64, 10), "classifier must be a metrics.DigitsClassifier"),
        (DIGITS[:3], DIGITS, None, "fake_feats must have at least 4 rows"),
    ],
)
def test_sample_quality_bad_input_raises(samples, reference, classifier, match):
    classifier = metrics.DigitsClassifier(channels=2, feature_dim=3) if classifier is None else classifier
    with pytest.raises(ValueError, match=match):
        metrics.sample_quality(samples, reference, classifier)


# ---------------------------------------------------------------- intervals over test examples
def test_bootstrap_ci_covers_the_true_mean_at_its_level():
    gen = torch.Generator().manual_seed(0)
    covered = 0
    for _ in range(300):
        x = torch.randn(60, generator=gen, dtype=torch.float64) * 3 + 5
        _, lo, hi = metrics.bootstrap_ci(x, n_boot=1000, generator=gen)
        covered += lo <= 5 <= hi
    # the percentile bootstrap under-covers a little at n = 60 (about 0.93-0.94); 300 draws give a
    # standard error of about 0.014 around that
    assert 0.88 < covered / 300 < 0.985


def test_bootstrap_ci_agrees_with_scipy_and_the_normal_interval():
    from scipy import stats

    x = torch.distributions.Gamma(2.0, 0.5).sample((447,)).double()
    mean, lo, hi = metrics.bootstrap_ci(x, generator=torch.Generator().manual_seed(1))
    assert mean == pytest.approx(float(x.mean()), abs=1e-12) and lo < mean < hi
    sp = stats.bootstrap((x.numpy(),), np.mean, method="percentile", n_resamples=10_000, random_state=0)
    assert lo == pytest.approx(sp.confidence_interval.low, abs=0.05 * (hi - lo))
    assert hi == pytest.approx(sp.confidence_interval.high, abs=0.05 * (hi - lo))
    half = 1.96 * float(x.std()) / math.sqrt(447)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.08)


def test_bootstrap_ci_level_and_generator():
    x = torch.randn(200, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = metrics.bootstrap_ci(x, generator=torch.Generator().manual_seed(3))
    assert a == metrics.bootstrap_ci(x, generator=torch.Generator().manual_seed(3))
    narrow = metrics.bootstrap_ci(x, level=0.5, generator=torch.Generator().manual_seed(3))
    assert a[1] < narrow[1] < narrow[2] < a[2]
    assert metrics.bootstrap_ci(x.float(), generator=torch.Generator().manual_seed(3))[0] == pytest.approx(a[0])


def test_paired_ci_is_narrow_where_separate_intervals_overlap():
    gen = torch.Generator().manual_seed(4)
    hardness = torch.randn(447, generator=gen, dtype=torch.float64) * 10 + 90  # shared by both models
    a = hardness + torch.randn(447, generator=gen, dtype=torch.float64)
    b = hardness + 0.5 + torch.randn(447, generator=gen, dtype=torch.float64)
    _, a_lo, a_hi = metrics.bootstrap_ci(a, generator=gen)
    _, b_lo, b_hi = metrics.bootstrap_ci(b, generator=gen)
    assert a_lo < b_hi and b_lo < a_hi  # apart, the two intervals overlap
    diff, lo, hi = metrics.paired_ci(a, b, generator=torch.Generator().manual_seed(5))
    assert diff == pytest.approx(float((a - b).mean()), abs=1e-12)
    assert hi < 0 and hi - lo < (a_hi - a_lo) / 5  # paired, b is worse, and the interval is far narrower
    assert (diff, lo, hi) == metrics.bootstrap_ci(a - b, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(
    "values, kwargs, word",
    [
        (torch.ones(3, 2), {}, r"values must be a floating-point tensor of shape \(N,\)"),
        (torch.arange(5), {}, r"values must be a floating-point tensor of shape \(N,\)"),
        ([1.0, 2.0], {}, r"values must be a floating-point tensor of shape \(N,\), got \[1\.0"),
        (torch.ones(1), {}, "values must hold at least 2 values"),
        (torch.tensor([1.0, math.nan, 2.0]), {}, "values must be finite, found 1 NaN or infinite"),
        (torch.tensor([1.0, math.inf]), {}, "values must be finite"),
        (torch.ones(5), {"level": 1.0}, r"level must be a finite number in \(0, 1\), got 1\.0"),
        (torch.ones(5), {"n_boot": 10}, "n_boot must be an int >= 100, got 10"),
    ],
)
def test_bootstrap_ci_bad_input_raises(values, kwargs, word):
    with pytest.raises(ValueError, match=word):
        metrics.bootstrap_ci(values, **kwargs)


def test_paired_ci_bad_input_raises():
    with pytest.raises(ValueError, match=r"a and b must hold one value per example .* got \(4,\) and \(5,\)"):
        metrics.paired_ci(torch.ones(4), torch.ones(5))
    with pytest.raises(ValueError, match="b must be finite"):
        metrics.paired_ci(torch.ones(2), torch.tensor([0.0, math.nan]))


# ---------------------------------------------------------------- per-example NLL and bounds
def _small_vae():
    from genbook.vae import VAE

    torch.manual_seed(0)
    return VAE(dim=6, latent=2, hidden=8, levels=5, dropout=0.5)


def test_nll_values_exact_is_minus_log_prob_in_any_batch_size(gen):
    from genbook.autoregressive import MarkovChain

    x = torch.randint(0, 4, (50, 6), generator=gen)
    chain = MarkovChain(levels=4, length=6, order=1).fit(x)
    v = metrics.nll_values(chain, x[:13])
    assert v.shape == (13,) and v.dtype == torch.float64 and v.device.type == "cpu"
    assert torch.allclose(v, -chain.log_prob(x[:13]).double())
    assert torch.equal(metrics.nll_values(chain, x[:13], batch_size=4), v)
    assert float(v.mean()) == pytest.approx(metrics.nll(chain, x[:13]), abs=1e-9)


def test_nll_values_bounds_call_the_models_own_bounds_in_eval_mode(gen):
    vae = _small_vae().train()
    x = torch.randint(0, 5, (7, 6), generator=gen)
    plain = metrics.nll_values(vae, x, bound="plain", n_samples=10, generator=torch.Generator().manual_seed(1))
    assert vae.training  # restored
    vae.eval()
    assert torch.allclose(plain, vae.nll_bound(x, n_samples=10, generator=torch.Generator().manual_seed(1)).double())
    iw = metrics.nll_values(vae, x, bound="importance", n_samples=50, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(iw, -vae.iwae_bound(x, 50, generator=torch.Generator().manual_seed(2)).double())
    # the same draws: the importance-weighted bound is never above the plain one averaged over them
    assert float(iw.mean()) < float(plain.mean())


def test_nll_values_takes_the_total_of_a_diffusion_bound(gen):
    from genbook.diffusion import Diffusion

    torch.manual_seed(0)
    model = Diffusion(kind="levels", dim=4, levels=5, T=6, hidden=7, head="levels", variance="levels")
    x = torch.randint(0, 5, (5, 4), generator=gen)
    v = metrics.nll_values(model, x, bound="plain", generator=torch.Generator().manual_seed(3))
    expected = model.nll_bound(x, generator=torch.Generator().manual_seed(3))["total"].double()
    assert torch.allclose(v, expected)
    with pytest.raises(ValueError, match="Diffusion.nll_bound draws once per example: n_samples must be 1, got 4"):
        metrics.nll_values(model, x, bound="plain", n_samples=4)


def test_nll_values_bad_input_raises(gen):
    from genbook.autoregressive import MarkovChain

    x = torch.randint(0, 4, (10, 6), generator=gen)
    chain = MarkovChain(levels=4, length=6, order=1).fit(x)
    with pytest.raises(
        ValueError, match="bound='importance' needs model.iw_nll_bound, which MarkovChain does not have"
    ):
        metrics.nll_values(chain, x, bound="importance")
    with pytest.raises(ValueError, match="^bound must be"):
        metrics.nll_values(chain, x, bound="elbo")
    with pytest.raises(ValueError, match="x must be a non-empty tensor"):
        metrics.nll_values(chain, x[:0])

    class Broken(torch.nn.Module):
        def log_prob(self, x):
            return torch.full((x.shape[0],), math.nan)

    with pytest.raises(FloatingPointError, match="Broken.log_prob returned NaN"):
        metrics.nll_values(Broken(), x)
