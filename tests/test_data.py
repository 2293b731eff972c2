import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from genbook import data

SIZES = {"train": 1000, "val": 350, "test": 447}
TOY_NAMES = ["moons", "8gaussians", "checkerboard"]
# Boxes that hold all but a negligible part of each toy's mass, and a midpoint-rule cell
# side: at most half the noise scale for the smooth toys, a divisor of the unit squares
# (so every cell lies inside or outside a square) for the checkerboard.
BOXES = {
    "moons": ((-2.5, 2.5, -2.0, 2.0), 0.04),
    "8gaussians": ((-3.5, 3.5, -3.5, 3.5), 0.04),
    "checkerboard": ((-2.5, 2.5, -2.5, 2.5), 0.05),
}


# ---------------------------------------------------------------- digits
@pytest.mark.parametrize("split", list(SIZES))
def test_digits_shape_dtype_and_levels(split):
    x = data.digits(split)
    assert x.shape == (SIZES[split], 64)
    assert x.dtype == torch.int64
    assert int(x.min()) >= 0 and int(x.max()) <= 16


def test_digits_use_all_17_levels():
    assert int(data.digits("train").min()) == 0
    assert int(data.digits("train").max()) == 16
    assert data.DIGITS_LEVELS == 17


def test_digits_split_follows_dataset_order():
    bunch = load_digits()
    full = torch.from_numpy(bunch.data.astype(np.int64))
    assert torch.equal(data.digits("train"), full[:1000])
    assert torch.equal(data.digits("val"), full[1000:1350])
    assert torch.equal(data.digits("test"), full[1350:])


def test_digits_labels():
    bunch = load_digits()
    x, y = data.digits("val", labels=True)
    assert y.shape == (350,) and y.dtype == torch.int64
    assert torch.equal(y, torch.from_numpy(bunch.target[1000:1350].astype(np.int64)))
    assert torch.equal(x, data.digits("val"))
    assert set(y.tolist()) == set(range(10))


def test_digits_returns_a_copy():
    x = data.digits("test")
    x[:] = -1
    assert int(data.digits("test").min()) == 0


@pytest.mark.parametrize("bad", ["training", "valid", "", "TEST"])
def test_digits_bad_split_raises(bad):
    with pytest.raises(ValueError, match="split") as err:
        data.digits(bad)
    assert repr(bad) in str(err.value)


# ---------------------------------------------------------------- toys: sampling
@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_sample_shape_and_dtype(name):
    x = data.toy(name).sample(123)
    assert x.shape == (123, 2)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_sample_is_deterministic_given_generator(name):
    toy = data.toy(name)
    a = toy.sample(50, generator=torch.Generator().manual_seed(3))
    b = toy.sample(50, generator=torch.Generator().manual_seed(3))
    c = toy.sample(50, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_toy_kwargs_reach_constructor():
    assert data.toy("moons", noise=0.05).noise == 0.05
    assert data.toy("8gaussians", radius=3.0, std=0.1).radius == 3.0


def test_moons_sample_moments(gen):
    # E over t ~ U[0, pi] and the two moons of the centred curve, plus the noise.
    noise, n = 0.1, 200_000
    x = data.toy("moons", noise=noise).sample(n, generator=gen).double()
    expected_mean = torch.zeros(2, dtype=torch.float64)
    expected_second = torch.tensor(
        [[0.75 + noise**2, 0.125 - 1 / math.pi], [0.125 - 1 / math.pi, 0.5625 - 1 / math.pi + noise**2]],
        dtype=torch.float64,
    )
    se_mean = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - expected_mean).abs() < 5 * se_mean).all()
    prods = x[:, :, None] * x[:, None, :]  # (n, 2, 2)
    se_second = prods.std(0) / math.sqrt(n)
    assert ((prods.mean(0) - expected_second).abs() < 5 * se_second).all()


def test_8gaussians_sample_moments(gen):
    toy, n = data.toy("8gaussians"), 100_000
    x = toy.sample(n, generator=gen).double()
    second = x.T @ x / n
    expected = (toy.radius**2 / 2 + toy.std**2) * torch.eye(2, dtype=torch.float64)
    assert (x.mean(0).abs() < 5 * x.std(0) / math.sqrt(n)).all()
    assert torch.allclose(second, expected, atol=0.05)
    # every point sits near one of the eight centres
    nearest = torch.cdist(x, toy.centres()).min(1).values
    assert float(nearest.max()) < 6 * toy.std


def test_8gaussians_mode_shares(gen):
    toy = data.toy("8gaussians")
    near, share = toy.mode_shares(toy.sample(80_000, generator=gen))
    assert abs(near - (1 - math.exp(-4.5))) < 0.003  # P(|N(0, s^2 I_2)| < 3s) = 1 - e^{-9/2}
    assert share.shape == (8,) and abs(share.sum().item() - near) < 1e-12
    assert ((share - near / 8).abs() < 0.006).all()
    # all points on one centre, one far away: one mode covered, a fraction 2/3 near
    c = toy.centres()
    pts = torch.stack([c[2], c[2] + 0.5 * toy.std, torch.tensor([0.0, 0.0], dtype=torch.float64)])
    near, share = toy.mode_shares(pts, within=1.0)
    assert near == pytest.approx(2 / 3) and share[2].item() == pytest.approx(2 / 3) and share.sum() == share[2]
    with pytest.raises(ValueError, match="points"):
        toy.mode_shares(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="within"):
        toy.mode_shares(pts, within=0.0)


def test_checkerboard_visits_every_dark_square_equally(gen):
    n = 80_000
    x = data.toy("checkerboard").sample(n, generator=gen).double()
    cells = torch.floor(x + 2).long()  # (n, 2) in 0..3
    assert int(cells.min()) >= 0 and int(cells.max()) <= 3
    assert bool(((cells.sum(1) % 2) == 0).all())
    counts = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16).double()
    dark = torch.tensor([(i + j) % 2 == 0 for i in range(4) for j in range(4)])
    assert int((counts[~dark]).sum()) == 0
    sd = math.sqrt(n * (1 / 8) * (7 / 8))
    assert ((counts[dark] - n / 8).abs() < 5 * sd).all()


# ---------------------------------------------------------------- toys: densities
@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_log_prob_integrates_to_one(name, grid_integral):
    toy = data.toy(name)
    box, h = BOXES[name]
    assert grid_integral(toy.log_prob, box, h) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_sampler_agrees_with_density(name, gen, grid_integral):
    # E_{x ~ p}[p(x)] = int p(x)^2 dx: the Monte Carlo side uses sample(), the grid side log_prob().
    toy = data.toy(name)
    box, h = BOXES[name]
    exact = grid_integral(lambda x: 2 * toy.log_prob(x), box, h)
    n = 20_000
    p = toy.log_prob(toy.sample(n, generator=gen).double()).exp()
    se = float(p.std()) / math.sqrt(n)
    assert abs(float(p.mean()) - exact) < 5 * se + 1e-9


def test_toy_log_prob_shape_and_dtype():
    toy = data.toy("moons")
    assert toy.log_prob(torch.zeros(7, 2)).shape == (7,)
    assert toy.log_prob(torch.zeros(7, 2)).dtype == torch.float32
    assert toy.log_prob(torch.zeros(7, 2, dtype=torch.float64)).dtype == torch.float64


def test_8gaussians_entropy_matches_separated_components(gen):
    # Components 7.7 std apart barely overlap: H = ln 8 + ln(2 pi e std^2) minus an
    # overlap term of 4e-4 nats (measured by quadrature on a fine grid).
    toy = data.toy("8gaussians")
    estimate, se = toy.entropy(2_000_000, generator=gen)
    exact = math.log(8) + math.log(2 * math.pi * math.e * toy.std**2)
    assert 0 < se < 1e-3
    assert abs(estimate - exact) < 5 * se + 5e-4


def test_8gaussians_log_prob_at_centre():
    toy = data.toy("8gaussians")
    lp = toy.log_prob(toy.centres()[:1])
    assert float(lp) == pytest.approx(-math.log(8) - math.log(2 * math.pi * toy.std**2), abs=1e-6)


def test_checkerboard_samples_have_log_prob_minus_ln8(gen):
    toy = data.toy("checkerboard")
    lp = toy.log_prob(toy.sample(10_000, generator=gen).double())
    assert torch.allclose(lp, torch.full_like(lp, -math.log(8)), rtol=0, atol=1e-12)
    assert toy.entropy() == (math.log(8), 0.0)


def test_checkerboard_light_squares_and_outside_have_zero_density():
    toy = data.toy("checkerboard")
    centres = torch.tensor([[i - 1.5, j - 1.5] for i in range(4) for j in range(4)], dtype=torch.float64)
    dark = torch.tensor([(i + j) % 2 == 0 for i in range(4) for j in range(4)])
    lp = toy.log_prob(centres)
    assert torch.all(lp[dark] == -math.log(8))
    assert torch.all(lp[~dark] == -math.inf)
    outside = torch.tensor([[2.5, 0.5], [-2.5, -1.5], [0.5, 3.0], [10.0, 10.0]], dtype=torch.float64)
    assert torch.all(toy.log_prob(outside) == -math.inf)


def test_moons_quadrature_matches_monte_carlo_over_t(gen):
    toy = data.TwoMoons(noise=0.1)
    points = torch.tensor([[-0.5, 0.75], [0.5, -0.75], [0.0, 0.0], [1.2, 0.4], [-1.0, -0.5]], dtype=torch.float64)
    t = torch.rand(200_000, generator=gen, dtype=torch.float64) * math.pi
    centres = toy._centres(t)  # (2, T, 2)
    var = toy.noise**2
    quad = toy.log_prob(points).exp()
    for x, p in zip(points, quad):
        dens = torch.exp(-((centres - x) ** 2).sum(-1) / (2 * var)) / (2 * math.pi * var)  # (2, T)
        per_t = dens.mean(0)  # the mixture over the two moons, one value per t
        mc, se = float(per_t.mean()), float(per_t.std()) / math.sqrt(per_t.numel())
        assert abs(float(p) - mc) < 5 * se + 1e-12, (x.tolist(), float(p), mc, se)


def test_moons_density_is_symmetric_under_point_reflection():
    # The lower moon is the upper one reflected through the origin (after centring).
    toy = data.TwoMoons(noise=0.1)
    x = torch.tensor([[-0.5, 0.75], [0.3, 0.1], [1.1, -0.2]], dtype=torch.float64)
    assert torch.allclose(toy.log_prob(x), toy.log_prob(-x), atol=1e-12)


# ---------------------------------------------------------------- toys: bad input
@pytest.mark.parametrize("name", TOY_NAMES)
@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_toy_bad_sample_count_raises(name, n):
    with pytest.raises(ValueError, match="n must be"):
        data.toy(name).sample(n)


@pytest.mark.parametrize("x", [torch.zeros(5), torch.zeros(5, 3), torch.zeros(2, 5, 2), [[0.0, 0.0]]])
def test_toy_log_prob_bad_shape_raises(x):
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        data.toy("8gaussians").log_prob(x)


@pytest.mark.parametrize("noise", [0, -0.1, float("nan")])
def test_moons_bad_noise_raises(noise):
    with pytest.raises(ValueError, match="noise"):
        data.toy("moons", noise=noise)


@pytest.mark.parametrize("kwargs", [dict(std=0.0), dict(radius=-1.0)])
def test_8gaussians_bad_args_raise(kwargs):
    # each argument is checked on its own (genbook._checks.check_float) and named alone
    with pytest.raises(ValueError, match=f"^{next(iter(kwargs))} must be a finite number > 0"):
        data.toy("8gaussians", **kwargs)


def test_unknown_toy_raises():
    with pytest.raises(ValueError, match="'spirals'"):
        data.toy("spirals")


# ---------------------------------------------------------------- sparse regression
def test_sparse_regression_shapes_and_weights(gen):
    X, z, w = data.sparse_regression(40, 12, n_informative=4, generator=gen)
    assert X.shape == (40, 12) and z.shape == (40,) and w.shape == (12,)
    assert X.dtype == z.dtype == w.dtype == torch.float64
    assert int((w != 0).sum()) == 4
    assert bool((w[:4] != 0).all()) and bool((w[4:] == 0).all())
    assert set(w[:4].abs().tolist()) <= {2.0, 3.0}


@pytest.mark.parametrize("k", [0, 1, 5])
def test_sparse_regression_counts_informative_weights(k, gen):
    _, _, w = data.sparse_regression(10, 5, n_informative=k, generator=gen)
    assert int((w != 0).sum()) == k


def test_sparse_regression_without_noise_is_exactly_linear(gen):
    X, z, w = data.sparse_regression(30, 6, noise=0.0, generator=gen)
    assert torch.allclose(z, X @ w + 1.0, atol=1e-12)


def test_sparse_regression_noise_level(gen):
    X, z, w = data.sparse_regression(20_000, 3, noise=0.5, generator=gen)
    resid = z - X @ w - 1.0
    assert float(resid.std()) == pytest.approx(0.5, rel=0.03)


def test_sparse_regression_is_deterministic_given_generator():
    a = data.sparse_regression(10, 4, generator=torch.Generator().manual_seed(5))
    b = data.sparse_regression(10, 4, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(n=0, d=3), "n must"),
        (dict(n=5, d=0), "d must"),
        (dict(n=5, d=3, n_informative=4), "n_informative"),
        (dict(n=5, d=3, n_informative=-1), "n_informative"),
        (dict(n=5, d=3, noise=-1.0), "noise"),
        (dict(n=5.0, d=3), "n must"),
    ],
)
def test_sparse_regression_bad_args_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        data.sparse_regression(**kwargs)


def test_checkerboard_edges_of_dark_squares_are_inside():
    board = data.Checkerboard()
    # corners and edges of dark cells (i + j even), including the board's outer edge
    on_edges = torch.tensor([[-2.0, -2.0], [-1.0, -1.0], [1.0, 0.0], [2.0, 2.0], [0.0, 1.5]])
    assert torch.all(board.log_prob(on_edges) == -math.log(8))
    # interiors of light cells and points off the board stay outside
    outside = torch.tensor([[-0.5, -1.5], [1.5, 0.5], [2.0001, 0.0], [0.0, -2.5]])
    assert torch.all(torch.isinf(board.log_prob(outside)))


# ---------------------------------------------------------------- binary digits
@pytest.mark.parametrize("split", list(SIZES))
def test_binary_digits_threshold_the_levels(split):
    x = data.binary_digits(split)
    assert x.shape == (SIZES[split], 64)
    assert x.dtype == torch.int64
    assert set(x.unique().tolist()) == {0, 1}
    assert torch.equal(x, (data.digits(split) >= 8).long())
    assert data.DIGITS_THRESHOLD == 8


def test_binary_digits_threshold_argument():
    levels = data.digits("test")
    for t in (1, 5, 16):
        assert torch.equal(data.binary_digits("test", threshold=t), (levels >= t).long())
    # a higher threshold switches fewer pixels on
    assert int(data.binary_digits("train", threshold=12).sum()) < int(data.binary_digits("train").sum())


def test_binary_digits_on_fraction():
    # the docstring's figure: about 32% of the training pixels are on at the default threshold
    assert float(data.binary_digits("train").double().mean()) == pytest.approx(0.32, abs=0.01)


@pytest.mark.parametrize("threshold", [0, 17, -1, 8.0, "8", None])
def test_binary_digits_bad_threshold_raises(threshold):
    with pytest.raises(ValueError, match="threshold"):
        data.binary_digits("train", threshold=threshold)


def test_binary_digits_bad_split_raises():
    with pytest.raises(ValueError, match="split"):
        data.binary_digits("training")


# ---------------------------------------------------------------- bars and stripes
def _is_bar_or_stripe(row, n):
    img = row.reshape(n, n)
    stripes = bool((img == img[:, :1]).all())  # every row constant: a set of horizontal stripes
    bars = bool((img == img[:1, :]).all())  # every column constant: a set of vertical bars
    return stripes or bars


def test_bars_and_stripes_3x3():
    x = data.bars_and_stripes(3)
    assert x.shape == (14, 9)
    assert x.dtype == torch.int64
    assert set(x.unique().tolist()) == {0, 1}
    assert torch.unique(x, dim=0).shape[0] == 14  # every row distinct
    assert all(_is_bar_or_stripe(row, 3) for row in x)
    # the 14 are all of them: every 3x3 0/1 image that is a bar-or-stripe pattern is listed
    codes = torch.arange(2**9)
    every = (codes[:, None] >> torch.arange(9)) & 1
    valid = {tuple(r.tolist()) for r in every if _is_bar_or_stripe(r, 3)}
    assert {tuple(r.tolist()) for r in x} == valid
    # the empty and full grids appear once each
    assert int((x.sum(1) == 0).sum()) == 1 and int((x.sum(1) == 9).sum()) == 1


def test_bars_and_stripes_default_is_3():
    assert torch.equal(data.bars_and_stripes(), data.bars_and_stripes(3))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_bars_and_stripes_counts(n):
    x = data.bars_and_stripes(n)
    assert x.shape == (2 ** (n + 1) - 2, n * n)
    assert torch.unique(x, dim=0).shape[0] == x.shape[0]
    assert all(_is_bar_or_stripe(row, n) for row in x)


def test_bars_and_stripes_2x2():
    x = data.bars_and_stripes(2)
    assert x.shape == (6, 4)
    expected = {(0, 0, 0, 0), (1, 1, 1, 1), (1, 1, 0, 0), (0, 0, 1, 1), (1, 0, 1, 0), (0, 1, 0, 1)}
    assert {tuple(r.tolist()) for r in x} == expected


@pytest.mark.parametrize("n", [0, -2, 6, 2.0, True, "3"])
def test_bars_and_stripes_bad_n_raises(n):
    with pytest.raises(ValueError, match="n must"):
        data.bars_and_stripes(n)


# ---------------------------------------------------------------- text
def test_text_splits_are_contiguous_and_in_the_alphabet():
    parts = [data.text(s) for s in ("train", "val", "test")]
    total = sum(len(p) for p in parts)
    assert total > 300_000
    assert len(parts[0]) == pytest.approx(0.8 * total, abs=2)
    for p in parts:
        assert p.dtype == torch.long and p.ndim == 1
        assert int(p.min()) >= 0 and int(p.max()) < len(data.TEXT_ALPHABET)
    full = data._load_text()
    assert data.decode_text(torch.cat(parts)) == full


def test_text_is_prose():
    s = data.decode_text(data.text("train"))
    words = s.split()
    assert "  " not in s and " ." not in s
    assert words.count("the") > 0.03 * len(words)  # the commonest English word
    assert len(set(data.TEXT_ALPHABET) - set(s)) == 0  # every symbol occurs


def test_encode_decode_round_trip_and_errors():
    s = "a cat, a hat."
    assert data.decode_text(data.encode_text(s)) == s
    assert data.encode_text(" a")[1].item() == 1
    with pytest.raises(ValueError, match="only the characters.*'!'"):
        data.encode_text("hi!")
    with pytest.raises(ValueError, match="must be a str"):
        data.encode_text(3)
    with pytest.raises(ValueError, match="symbols 0..28"):
        data.decode_text(torch.tensor([0, 29]))
    with pytest.raises(ValueError, match=r"x must be an integer tensor of shape \(N,\)"):
        data.decode_text(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="split must be one of"):
        data.text("dev")


# ---------------------------------------------------------------- sequences of known entropy
def test_copy_task_sequences_repeat_their_first_half_after_the_separator(gen):
    task = data.CopyTask(length=5, symbols=3)
    x = task.sample(200, generator=gen)
    assert x.shape == (200, 11) and x.dtype == torch.long
    assert task.vocab == 4 and (x[:, 5] == task.separator).all() and task.separator == 3
    assert torch.equal(x[:, 6:], x[:, :5]) and int(x[:, :5].max()) == 2
    assert torch.equal(data.CopyTask(length=5, symbols=3).sample(200, generator=torch.Generator().manual_seed(0)), x)


def test_copy_task_entropy_is_the_entropy_of_the_enumerated_distribution():
    """Every sequence of a tiny task, with the source's probabilities: they sum to one and their entropy is L ln k."""
    import itertools

    task = data.CopyTask(length=2, symbols=3)
    every = torch.tensor(list(itertools.product(range(4), repeat=5)))  # all 4^5 strings over the vocabulary
    p = task.log_prob(every).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12) and int((p > 0).sum()) == 9
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    assert entropy == pytest.approx(task.entropy(), abs=1e-12) and task.entropy() == pytest.approx(2 * math.log(3))


def test_copy_task_log_prob_refuses_a_sequence_that_does_not_copy(gen):
    task = data.CopyTask(length=3, symbols=4)
    x = task.sample(4, generator=gen)
    x[1, 5] = (x[1, 5] + 1) % 4  # the copy differs
    x[2, 3] = 0  # no separator
    assert task.log_prob(x).tolist() == [-task.entropy(), -math.inf, -math.inf, -task.entropy()]


def test_a_markov_chain_of_order_up_to_length_pays_for_the_copy_again(gen):
    """The context of a copied symbol never reaches its original, so the chain's cross-entropy is twice the entropy."""
    from genbook.autoregressive import MarkovChain

    task = data.CopyTask(length=3, symbols=3)
    train, test = task.sample(20_000, generator=gen), task.sample(5_000, generator=gen)
    chain = MarkovChain(levels=task.vocab, length=7, order=3, alpha=1.0).fit(train)
    nll = -chain.log_prob(test).mean().item()
    assert nll == pytest.approx(2 * task.entropy(), rel=0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(length=0), "length must be an int >= 1"), (dict(symbols=1), "symbols must be an int >= 2")],
)
def test_copy_task_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.CopyTask(**kwargs)


def test_copy_task_log_prob_bad_shape_raises():
    with pytest.raises(ValueError, match=r"x must be an integer tensor of shape \(B, 7\)"):
        data.CopyTask(length=3).log_prob(torch.zeros(2, 6, dtype=torch.long))


def _brute_force_hmm_log_prob(hmm, x):
    """``log p(x)`` of one sequence by summing over every path of hidden states."""
    import itertools

    S, total = hmm.transition.shape[0], 0.0
    for path in itertools.product(range(S), repeat=len(x)):
        p = hmm.initial[path[0]] * hmm.emission[path[0], x[0]]
        for t in range(1, len(x)):
            p = p * hmm.transition[path[t - 1], path[t]] * hmm.emission[path[t], x[t]]
        total += float(p)
    return math.log(total)


def test_hidden_markov_forward_algorithm_equals_the_sum_over_hidden_paths():
    import itertools

    hmm = data.HiddenMarkov.sticky(states=3, symbols=2, stay=0.7, seed=1)
    every = torch.tensor(list(itertools.product(range(2), repeat=4)))
    lp = hmm.log_prob(every)
    assert lp.dtype == torch.float64 and lp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    for x in every[[0, 5, 11, 15]]:
        assert hmm.log_prob(x[None]).item() == pytest.approx(_brute_force_hmm_log_prob(hmm, x.tolist()), abs=1e-12)
    torch.testing.assert_close(hmm.initial @ hmm.transition, hmm.initial)  # stationary


def test_hidden_markov_samples_have_the_exact_probabilities(gen):
    import itertools

    hmm = data.HiddenMarkov.sticky(states=2, symbols=2, stay=0.8, seed=0)
    n, every = 20_000, torch.tensor(list(itertools.product(range(2), repeat=3)))
    x = hmm.sample(n, 3, generator=gen)
    p = hmm.log_prob(every).exp()
    freq = torch.stack([(x == s).all(1).double().mean() for s in every])
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all()


def test_hidden_markov_entropy_rate_of_a_visible_chain_is_the_markov_closed_form(gen):
    """With one symbol per state the source is a Markov chain: rate = sum_i pi_i H(transition row i)."""
    transition = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]], dtype=torch.float64)
    hmm = data.HiddenMarkov(transition, torch.eye(3, dtype=torch.float64))
    rows = -(transition * transition.clamp_min(1e-300).log()).sum(1)
    exact = (hmm.initial * rows).sum().item()
    est, se = hmm.entropy_rate(n=400, length=60, burn_in=5, generator=gen)
    assert abs(est - exact) < 5 * se and se < 0.01


def test_hidden_markov_bad_input_raises():
    with pytest.raises(ValueError, match="transition must have non-negative rows that sum to 1"):
        data.HiddenMarkov(torch.tensor([[0.5, 0.4], [0.5, 0.5]]), torch.eye(2))
    with pytest.raises(ValueError, match=r"emission must be a floating-point tensor of shape \(2, K\)"):
        data.HiddenMarkov(torch.eye(2), torch.eye(3))
    with pytest.raises(ValueError, match=r"x must hold symbols 0\.\.7, found 8"):
        data.HiddenMarkov.sticky().log_prob(torch.tensor([[0, 8]]))
