"""Autoregressive models of discrete sequences: causality, exact likelihoods, counting, sampling, errors.

The references are independent of the package: Markov-chain tables are counted here with
python loops over a tiny data set, causality is checked both by perturbing the future and by
exact zeros in the gradients, and samplers are compared with the exact probability of every
one of the ``3^3 = 27`` sequences of a tiny model, within ``Z`` binomial standard errors.
"""

import itertools
import math

import pytest
import torch

import genbook
import genbook.autoregressive as ar
from genbook.autoregressive import CausalConv1d, ConvARM, MarkovChain, WindowMLP, check_sequences

Z = 5.0  # tolerance, in Monte Carlo standard errors

# A tiny data set: levels 3, length 4, counted by hand (python loops) in the Markov-chain tests.
K, D = 3, 4
DATA = [
    [0, 1, 2, 0],
    [0, 1, 1, 0],
    [1, 1, 2, 2],
    [2, 0, 1, 0],
    [0, 1, 2, 1],
    [1, 2, 2, 0],
    [0, 0, 1, 0],
]

# ConvARM configurations: kernel sizes, depths, dilations (the first layer dilated too).
CONV_CONFIGS = [
    dict(kernel_size=1, layers=2),
    dict(kernel_size=2, layers=1),
    dict(kernel_size=3, layers=3),
    dict(kernel_size=3, layers=3, dilations=[1, 2, 4]),
    dict(kernel_size=2, layers=3, dilations=[2, 1, 3]),
    dict(kernel_size=4, layers=2, dilations=[3, 2]),
]


# ================================================================ helpers
def _all_sequences(levels, length):
    """Every sequence, ``(levels^length, length)``, in itertools order (first position most significant)."""
    return torch.tensor(list(itertools.product(range(levels), repeat=length)), dtype=torch.long)


def _seq_index(x, levels):
    """Index of each row of ``x`` in the order of :func:`_all_sequences`."""
    length = x.shape[1]
    return (x * levels ** torch.arange(length - 1, -1, -1)).sum(1)


def _randomise(model, scale, seed):
    """Overwrite every parameter with N(0, scale^2) draws, so that the conditionals are far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _window_mlp(levels=3, length=12, window=3, hidden=16, scale=1.0, seed=0):
    return _randomise(WindowMLP(levels=levels, length=length, window=window, hidden=hidden), scale, seed).eval()


def _conv_arm(levels=3, length=20, channels=8, scale=0.5, seed=0, **kw):
    return _randomise(ConvARM(levels=levels, length=length, channels=channels, **kw), scale, seed).eval()


def _markov(order, alpha=1.0, data=DATA):
    return MarkovChain(levels=K, length=D, order=order, alpha=alpha).fit(torch.tensor(data))


def _models():
    """One of each model on levels K, length D, with non-trivial conditionals."""
    return {
        "markov": _markov(2, alpha=0.5),
        "window": _window_mlp(levels=K, length=D, window=2, hidden=8, scale=1.0),
        "conv": _conv_arm(levels=K, length=D, kernel_size=2, layers=2, dilations=[1, 2], scale=0.8),
    }


def _context(seq, d, order):
    """``(x_{d-1}, ..., x_{d-order})`` with ``None`` for 'before the start'."""
    return tuple(seq[d - j] if d - j >= 0 else None for j in range(1, order + 1))


def _hand_conditional(data, seq, d, order, levels, alpha):
    """Add-alpha smoothed ``q(x_d = . | context of seq at d)`` counted with python loops over ``data``."""
    ctx = _context(seq, d, order)
    counts = [0] * levels
    for s in data:
        if _context(s, d, order) == ctx:
            counts[s[d]] += 1
    total = sum(counts)
    return [(c + alpha) / (total + levels * alpha) for c in counts]


def _dependence(model, x, make_leaf):
    """``dep[t, s]``: max over the batch of |d (w . conditionals_t) / d input_s|, exact zeros where there is no path.

    ``make_leaf(model, x) -> (leaf, undo)`` makes the per-position input a leaf tensor ``(B, D, ...)``
    that requires grad and that ``model.conditionals`` uses; ``undo()`` restores the model.
    """
    leaf, undo = make_leaf(model, x)
    try:
        out = model.conditionals(x)  # (B, D, K)
    finally:
        undo()
    B, L, levels = out.shape
    w = torch.randn(levels, generator=torch.Generator().manual_seed(1))
    dep = torch.zeros(L, L)
    for t in range(L):
        (g,) = torch.autograd.grad((out[:, t] * w).sum(), leaf, retain_graph=True)
        dep[t] = g.abs().reshape(B, L, -1).amax(dim=(0, 2))
    return dep


def _embedding_leaf(model, x):
    """ConvARM: the output of ``model.embed`` as a leaf, ``(B, D, C)``."""
    leaf = model.embed(x).detach().requires_grad_(True)
    handle = model.embed.register_forward_hook(lambda m, i, o: leaf)
    return leaf, handle.remove


def _conv_reach(kernel_size, dilations):
    """Offsets ``t - s`` at which ConvARM's conditional at ``t`` can depend on ``x_s``: the sumset of the taps."""
    reach = {1 + j * dilations[0] for j in range(kernel_size)}  # first layer: x_{t-1} .. x_{t-1-(k-1)d}
    for d in dilations[1:]:  # later layers include the current position; residual adds offset 0
        reach = {r + j * d for r in reach for j in range(kernel_size)}
    return reach


def _random_batch(levels, length, n, seed):
    return torch.randint(levels, (n, length), generator=torch.Generator().manual_seed(seed))


# ================================================================ check_sequences
def test_check_sequences_returns_long_and_accepts_other_integer_dtypes():
    x = torch.tensor([[0, 1, 2], [2, 2, 0]], dtype=torch.int32)
    out = check_sequences(x, 3, 3)
    assert out.dtype == torch.long and torch.equal(out, x.long())
    assert torch.equal(check_sequences(x.to(torch.uint8), 3), x.long())
    assert check_sequences(torch.zeros(0, 3, dtype=torch.long), 3, 3).shape == (0, 3)


BAD_INPUTS = [
    ("float", lambda: torch.zeros(2, D), r"\bx\b.*integer levels 0\.\.2.*float"),
    ("bool", lambda: torch.zeros(2, D, dtype=torch.bool), r"\bx\b.*integer levels 0\.\.2.*bool"),
    ("negative", lambda: torch.tensor([[0, 1, -1, 2]]), r"\bx\b.*levels 0\.\.2.*-1"),
    ("equal to K", lambda: torch.tensor([[0, 3, 1, 2]]), r"\bx\b.*levels 0\.\.2.*\b3\b"),
    ("too short", lambda: torch.zeros(2, D - 1, dtype=torch.long), rf"\bx\b.*length {D}\b.*\b{D - 1}\b"),
    ("too long", lambda: torch.zeros(2, D + 1, dtype=torch.long), rf"\bx\b.*length {D}\b.*\b{D + 1}\b"),
    ("1-D", lambda: torch.zeros(D, dtype=torch.long), r"\bx\b.*\(batch, length\)"),
    ("3-D", lambda: torch.zeros(2, D, 1, dtype=torch.long), r"\bx\b.*\(batch, length\)"),
    ("list", lambda: [[0, 1, 2, 0]], r"\bx\b.*\(batch, length\)"),
]


@pytest.mark.parametrize("what, make, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_bad_sequences_raise_value_error_naming_x(model_name, what, make, message):
    model = _models()[model_name]
    with pytest.raises(ValueError, match=message):
        model.log_prob(make())
    with pytest.raises(ValueError, match=message):
        model.loss(make())
    if model_name == "markov":
        with pytest.raises(ValueError, match=message):
            model.fit(make())


def test_check_sequences_uses_the_given_name():
    with pytest.raises(ValueError, match=r"^data must"):
        check_sequences(torch.zeros(2, 3), 3, name="data")


BAD_CONSTRUCTORS = [
    ("markov levels 0", lambda: MarkovChain(levels=0, length=4), "levels"),
    ("markov length 0", lambda: MarkovChain(levels=3, length=0), "length"),
    ("markov order -1", lambda: MarkovChain(levels=3, length=4, order=-1), "order"),
    ("markov order 1.5", lambda: MarkovChain(levels=3, length=4, order=1.5), "order"),
    ("markov alpha 0", lambda: MarkovChain(levels=3, length=4, alpha=0), "alpha"),
    ("markov alpha -1", lambda: MarkovChain(levels=3, length=4, alpha=-1.0), "alpha"),
    ("window levels 0", lambda: WindowMLP(levels=0, length=4), "levels"),
    ("window levels True", lambda: WindowMLP(levels=True, length=4), "levels"),
    ("window window 0", lambda: WindowMLP(levels=3, length=4, window=0), "window"),
    ("window hidden 0", lambda: WindowMLP(levels=3, length=4, hidden=0), "hidden"),
    ("window length 2.0", lambda: WindowMLP(levels=3, length=2.0), "length"),
    ("conv levels 0", lambda: ConvARM(levels=0, length=4), "levels"),
    ("conv dropout 1", lambda: ConvARM(levels=3, length=4, dropout=1.0), "dropout"),
    ("conv dropout -0.1", lambda: ConvARM(levels=3, length=4, dropout=-0.1), "dropout"),
    ("conv dilations short", lambda: ConvARM(levels=3, length=4, layers=3, dilations=[1, 2]), "dilations"),
    ("conv dilations long", lambda: ConvARM(levels=3, length=4, layers=1, dilations=[1, 2]), "dilations"),
    ("conv dilation 0", lambda: ConvARM(levels=3, length=4, layers=2, dilations=[1, 0]), "dilation"),
    ("conv kernel 0", lambda: ConvARM(levels=3, length=4, kernel_size=0), "kernel_size"),
    ("conv layers 0", lambda: ConvARM(levels=3, length=4, layers=0), "layers"),
    ("conv channels 0", lambda: ConvARM(levels=3, length=4, channels=0), "channels"),
    ("causal conv kernel 0", lambda: CausalConv1d(2, 2, 0, include_current=True), "kernel_size"),
]


@pytest.mark.parametrize("what, make, name", BAD_CONSTRUCTORS, ids=[b[0] for b in BAD_CONSTRUCTORS])
def test_bad_constructor_arguments_raise(what, make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_sample_rejects_non_positive_n():
    for model in _models().values():
        with pytest.raises(ValueError, match=r"\bn\b"):
            model.sample(0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MarkovChain(levels=1, length=3, order=1),
        lambda: WindowMLP(levels=1, length=3, window=2, hidden=4),
        lambda: ConvARM(levels=1, length=3, channels=4, kernel_size=2, layers=2),
    ],
    ids=["markov", "window", "conv"],
)
def test_one_level_is_rejected_or_certain(make):
    """With a single level every sequence has probability 1: either refuse levels=1, or give log q = 0."""
    try:
        model = make()
    except ValueError:
        return
    x = torch.zeros(2, 3, dtype=torch.long)
    assert torch.equal(model.log_prob(x), torch.zeros(2)), f"log_prob with levels=1 is {model.log_prob(x)}"


# ================================================================ CausalConv1d
@pytest.mark.parametrize("include_current", [False, True])
@pytest.mark.parametrize("kernel_size, dilation", [(1, 1), (2, 1), (3, 1), (3, 2), (2, 3), (4, 2)])
def test_causal_conv_depends_exactly_on_its_taps(include_current, kernel_size, dilation):
    L = 12
    conv = CausalConv1d(2, 3, kernel_size, include_current=include_current, dilation=dilation)
    x = torch.randn(1, 2, L)
    assert conv(x).shape == (1, 3, L)
    J = torch.autograd.functional.jacobian(conv, x)  # (1, 3, L, 1, 2, L)
    dep = J[0, :, :, 0].abs().amax(dim=(0, 2))  # (e, s)
    shift = 0 if include_current else 1
    taps = {shift + j * dilation for j in range(kernel_size)}  # offsets e - s
    for e in range(L):
        for s in range(L):
            if e - s in taps:
                assert dep[e, s] > 0, f"output {e} should depend on input {s}"
            else:
                assert dep[e, s] == 0, f"output {e} depends on input {s} (offset {e - s}, taps {sorted(taps)})"
    # the current input: never with include_current=False, always with include_current=True
    diag = torch.diagonal(dep)
    assert bool((diag > 0).all()) if include_current else bool((diag == 0).all())
    assert conv.receptive_field == (kernel_size - 1) * dilation + 1


def test_causal_conv_is_a_shifted_convolution():
    """y_e = b + sum_j w_j x_{e - shift - j d}, with zeros before the start: checked by an explicit loop."""
    torch.manual_seed(3)
    k, d, L = 3, 2, 9
    for include_current in (False, True):
        conv = CausalConv1d(2, 1, k, include_current=include_current, dilation=d)
        x = torch.randn(1, 2, L)
        w, b = conv.conv.weight[0], conv.conv.bias[0]  # w[c, tap] multiplies x_{e - shift - (k-1-tap) d}
        shift = 0 if include_current else 1
        expected = torch.zeros(L)
        for e in range(L):
            total = b.clone()
            for tap in range(k):
                s = e - shift - (k - 1 - tap) * d
                if s >= 0:
                    total = total + (w[:, tap] * x[0, :, s]).sum()
            expected[e] = total
        torch.testing.assert_close(conv(x)[0, 0], expected, rtol=1e-5, atol=1e-6)


# ================================================================ causality of the neural models
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=lambda c: str(c))
def test_conv_arm_ignores_the_future_when_perturbed(config):
    model = _conv_arm(**config)
    x = _random_batch(3, model.length, 6, seed=1)
    base = model.conditionals(x)
    g = torch.Generator().manual_seed(2)
    changed_at_t = 0
    for t in range(model.length):
        y = x.clone()
        y[:, t:] = torch.randint(3, (6, model.length - t), generator=g)
        out = model.conditionals(y)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
        # and the past does matter: change x_{t-1} and the conditional at t moves
        if t >= 1:
            z = x.clone()
            z[:, t - 1] = (z[:, t - 1] + 1) % 3
            changed_at_t += int((model.conditionals(z)[:, t] - base[:, t]).abs().max() > 1e-4)
    assert changed_at_t == model.length - 1


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=lambda c: str(c))
def test_conv_arm_gradients_reach_exactly_its_receptive_field(config):
    model = _conv_arm(**config)
    x = _random_batch(3, model.length, 8, seed=4)
    dep = _dependence(model, x, _embedding_leaf)
    dilations = config.get("dilations", [1] * config["layers"])
    reach = _conv_reach(config["kernel_size"], dilations)
    R = model.receptive_field
    assert R == max(reach), f"receptive_field {R}, furthest reachable offset {max(reach)}"
    assert model.length > R + 1  # so that 'nothing beyond R' is tested
    for t in range(model.length):
        for s in range(model.length):
            if s >= t:
                assert dep[t, s] == 0, f"conditional {t} depends on the embedding at {s} >= {t}"
            elif t - s in reach:
                assert dep[t, s] > 0, f"conditional {t} should depend on x_{s} (offset {t - s} of R={R})"
            else:
                assert dep[t, s] == 0, f"conditional {t} depends on x_{s}, offset {t - s}, beyond reach {sorted(reach)}"
    # the two ends: x_{t-1} and x_{t-R} matter, x_{t-R-1} does not
    t = model.length - 1
    assert dep[t, t - 1] > 0 and dep[t, t - R] > 0 and dep[t, t - R - 1] == 0


def test_conv_arm_receptive_field_formula():
    assert ConvARM(levels=2, length=5, channels=2, kernel_size=7, layers=4).receptive_field == 25
    assert ConvARM(levels=2, length=5, channels=2, kernel_size=3, layers=3, dilations=[1, 2, 4]).receptive_field == 15
    assert ConvARM(levels=2, length=5, channels=2, kernel_size=1, layers=5).receptive_field == 1


def test_conv_arm_with_dropout_is_causal_in_training_mode_too():
    model = _conv_arm(kernel_size=3, layers=3, dilations=[1, 2, 1], dropout=0.3).train()
    x = _random_batch(3, model.length, 4, seed=5)
    dep = _dependence(model, x, _embedding_leaf)
    assert bool((torch.triu(dep) == 0).all())


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_window_mlp_ignores_the_future_when_perturbed(window):
    model = _window_mlp(length=10, window=window)
    x = _random_batch(3, model.length, 6, seed=1)
    base = model.conditionals(x)
    g = torch.Generator().manual_seed(2)
    for t in range(model.length):
        y = x.clone()
        y[:, t:] = torch.randint(3, (6, model.length - t), generator=g)
        torch.testing.assert_close(model.conditionals(y)[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
    # positions inside the window matter, those beyond it do not
    t = model.length - 1
    for s in range(t):
        z = x.clone()
        z[:, s] = (z[:, s] + 1) % 3
        moved = (model.conditionals(z)[:, t] - base[:, t]).abs().max()
        if t - s <= window:
            assert moved > 1e-4, f"conditional {t} ignores x_{s} inside the window {window}"
        else:
            assert moved == 0, f"conditional {t} depends on x_{s} outside the window {window}"


@pytest.mark.parametrize("window", [1, 3, 5])
def test_window_mlp_gradients_vanish_on_the_future(window, monkeypatch):
    model = _window_mlp(length=10, window=window)
    x = _random_batch(3, model.length, 8, seed=4)

    def make_leaf(model_, x_):
        leaf = ar._inputs(x_, model_.levels).detach().requires_grad_(True)  # (B, 1, D)
        monkeypatch.setattr(ar, "_inputs", lambda *a: leaf)
        return leaf, monkeypatch.undo

    leaf, undo = make_leaf(model, x)
    try:
        out = model.conditionals(x)
    finally:
        undo()
    w = torch.randn(3, generator=torch.Generator().manual_seed(1))
    for t in range(model.length):
        (g,) = torch.autograd.grad((out[:, t] * w).sum(), leaf, retain_graph=True)
        g = g[:, 0].abs().amax(0)  # (D,)
        for s in range(model.length):
            if s >= t or t - s > window:
                assert g[s] == 0, f"conditional {t} has a gradient on input {s} (window {window})"
            else:
                assert g[s] > 0, f"conditional {t} has no gradient on input {s} inside the window {window}"


def test_window_mlp_windows_hold_the_scaled_past_and_missing_flags():
    """``windows(x)[b, d]`` = [scaled x_{d-1} .. x_{d-L}, then flags 1 where that position is before the start]."""
    model = WindowMLP(levels=3, length=4, window=3, hidden=4)
    x = torch.tensor([[0, 1, 2, 1]])
    got = model.windows(x)
    assert got.shape == (1, 4, 6)
    scaled = {0: -1.0, 1: 0.0, 2: 1.0}
    for d in range(4):
        for j in range(3):
            s = d - 1 - j
            assert got[0, d, 3 + j] == float(s < 0), f"missing flag at d={d}, slot x_{s}"
            if s >= 0:
                assert got[0, d, j] == scaled[int(x[0, s])], f"window value at d={d}, slot x_{s}"


def test_window_mlp_pads_before_the_start_with_the_documented_value():
    """The WindowMLP docstring: positions before the start read as -1 after scaling."""
    model = WindowMLP(levels=3, length=4, window=3, hidden=4)
    got = model.windows(torch.tensor([[2, 2, 2, 2]]))
    pad = torch.stack([got[0, d, j] for d in range(4) for j in range(3) if d - 1 - j < 0])
    assert bool((pad == -1.0).all()), f"padding values {pad.tolist()}, the docstring says -1"


# ================================================================ likelihood from the conditionals
@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_conditionals_are_normalised(model_name):
    model = _models()[model_name]
    x = _all_sequences(K, D)
    logp = model.conditionals(x)
    assert logp.shape == (K**D, D, K)
    torch.testing.assert_close(torch.logsumexp(logp, -1), torch.zeros(K**D, D), rtol=0, atol=1e-6)
    assert bool((logp <= 0).all())


@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_log_prob_is_the_sum_of_conditionals_one_position_at_a_time(model_name):
    model = _models()[model_name]
    x = _random_batch(K, D, 16, seed=7)
    g = torch.Generator().manual_seed(8)
    total = torch.zeros(16)
    for d in range(D):
        prefix = x.clone()
        prefix[:, d:] = torch.randint(K, (16, D - d), generator=g)  # arbitrary x_d and future
        cond = model.conditionals(prefix)[:, d]  # (B, K)
        total += cond.gather(1, x[:, d : d + 1]).squeeze(1)
    got = model.log_prob(x)
    assert got.shape == (16,)
    torch.testing.assert_close(got, total, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_probabilities_of_every_sequence_sum_to_one(model_name):
    model = _models()[model_name]
    lp = model.log_prob(_all_sequences(K, D)).double()
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_loss_is_mean_negative_log_prob(model_name):
    model = _models()[model_name]
    x = _random_batch(K, D, 10, seed=9)
    assert model.loss(x).ndim == 0
    assert model.loss(x).item() == pytest.approx(-model.log_prob(x).mean().item(), abs=1e-6)
    # int32 input is accepted and gives the same answer
    torch.testing.assert_close(model.log_prob(x.int()), model.log_prob(x))


# ================================================================ Markov chains against hand counts
def test_markov_order_zero_is_smoothed_per_position_frequencies():
    alpha = 0.5
    model = _markov(0, alpha=alpha)
    assert model.dense_table().shape == (D, 1, K)
    n = len(DATA)
    for d in range(D):
        freq = [sum(1 for s in DATA if s[d] == level) for level in range(K)]
        expected = torch.tensor([(c + alpha) / (n + K * alpha) for c in freq])
        torch.testing.assert_close(model.dense_table()[d, 0].exp(), expected)
    # e.g. position 0: levels (0, 1, 2) seen (4, 2, 1) times out of 7
    torch.testing.assert_close(model.dense_table()[0, 0].exp(), torch.tensor([4.5, 2.5, 1.5]) / 8.5)
    # and conditionals do not depend on the sequence
    c = model.conditionals(_all_sequences(K, D))
    assert torch.equal(c, c[:1].expand_as(c))


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_markov_conditionals_equal_hand_counts(order, alpha):
    model = _markov(order, alpha=alpha)
    assert model.dense_table().shape == (D, (K + 1) ** order, K)
    seqs = _all_sequences(K, D)
    got = model.conditionals(seqs).exp()
    expected = torch.tensor([[_hand_conditional(DATA, s, d, order, K, alpha) for d in range(D)] for s in seqs.tolist()])
    torch.testing.assert_close(got, expected)


def test_markov_order_one_table_by_hand():
    model = _markov(1, alpha=1.0)
    # position 1 after x_0 = 0: x_1 seen as (1, 3, 0) -> ((1+1), (3+1), (0+1)) / (4 + 3)
    torch.testing.assert_close(model.dense_table()[1, 0].exp(), torch.tensor([2.0, 4.0, 1.0]) / 7)
    # position 3 after x_2 = 2: x_3 seen as (2, 1, 1) -> (3, 2, 2) / 7
    torch.testing.assert_close(model.dense_table()[3, 2].exp(), torch.tensor([3.0, 2.0, 2.0]) / 7)
    # position 2 after x_1 = 0: x_2 = 1 twice -> (1, 3, 1) / 5
    torch.testing.assert_close(model.dense_table()[2, 0].exp(), torch.tensor([1.0, 3.0, 1.0]) / 5)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_first_positions_use_the_before_start_context(order):
    model = _markov(order, alpha=1.0)
    uniform = torch.full((K,), 1.0 / K)
    # position 0: a single context ever occurs (all 'before the start'); it holds the marginal of x_0
    rows = model.dense_table()[0].exp()
    seen = [c for c in range(rows.shape[0]) if not torch.allclose(rows[c], uniform)]
    assert len(seen) == 1
    torch.testing.assert_close(rows[seen[0]], torch.tensor([5.0, 3.0, 2.0]) / 10)  # (4, 2, 1) + 1 over 7 + 3
    if order == 1:
        assert seen[0] == K  # the symbol `levels` marks 'before the start'
    # position 1: only contexts (x_0, start, ...): as many as distinct x_0 values, each the table of x_1 | x_0
    rows = model.dense_table()[1].exp()
    seen = [c for c in range(rows.shape[0]) if not torch.allclose(rows[c], uniform)]
    assert len(seen) == len({s[0] for s in DATA})
    for first in range(K):
        x = torch.tensor([[first, 0, 0, 0]])
        expected = torch.tensor(_hand_conditional(DATA, [first, 0, 0, 0], 1, 1, K, 1.0))
        torch.testing.assert_close(model.conditionals(x)[0, 1].exp(), expected)
    # the conditional at 0 is the same whatever the sequence
    c = model.conditionals(_all_sequences(K, D))[:, 0]
    assert torch.equal(c, c[:1].expand_as(c))


@pytest.mark.parametrize("order", [0, 1, 2])
def test_markov_log_prob_is_brute_force_sum_of_log_table_entries(order):
    alpha = 0.7
    model = _markov(order, alpha=alpha)
    seqs = _all_sequences(K, D)
    got = model.log_prob(seqs)
    expected = torch.tensor(
        [sum(math.log(_hand_conditional(DATA, s, d, order, K, alpha)[s[d]]) for d in range(D)) for s in seqs.tolist()]
    )
    torch.testing.assert_close(got, expected.float(), rtol=0, atol=1e-5)
    if order == 1:  # the same by indexing the table with context x_{d-1}, or `levels` before the start
        by_table = [
            sum(float(model.dense_table()[d, s[d - 1] if d else K, s[d]]) for d in range(D)) for s in seqs.tolist()
        ]
        torch.testing.assert_close(got, torch.tensor(by_table), rtol=0, atol=1e-5)


def test_markov_unfitted_is_uniform_and_fit_returns_self():
    model = MarkovChain(levels=K, length=D, order=2)
    torch.testing.assert_close(model.log_prob(_all_sequences(K, D)), torch.full((K**D,), -D * math.log(K)))
    assert model.fit(torch.tensor(DATA)) is model


def test_markov_refit_replaces_the_counts():
    model = _markov(1)
    other = [[2, 2, 2, 2]] * 3
    model.fit(torch.tensor(other))
    fresh = MarkovChain(levels=K, length=D, order=1).fit(torch.tensor(other))
    assert torch.equal(model.dense_table(), fresh.dense_table())


# ================================================================ sampling against exact probabilities
def _assert_frequencies(what, idx, probs, n):
    """Counts of ``idx`` among ``n`` independent draws match ``probs`` within Z binomial standard errors."""
    freq = torch.bincount(idx, minlength=len(probs)).double() / n
    tol = Z * torch.sqrt(probs * (1 - probs) / n) + 2 / n
    err = (freq - probs).abs()
    worst = int(torch.argmax(err / tol))
    assert bool((err <= tol).all()), (
        f"{what}: sequence {worst} has frequency {float(freq[worst]):.5f}, exact {float(probs[worst]):.5f}, "
        f"error {float(err[worst]):.4g} > tolerance {float(tol[worst]):.4g}"
    )


def _tiny_models():
    """levels 3, length 3, with skewed conditionals."""
    data = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 2], [2, 2, 2], [0, 0, 0], [1, 2, 2], [0, 0, 1]])
    return {
        "markov": MarkovChain(levels=3, length=3, order=1, alpha=0.5).fit(data),
        "window": _window_mlp(levels=3, length=3, window=2, hidden=8, scale=1.2, seed=11),
        "conv": _conv_arm(levels=3, length=3, channels=6, kernel_size=2, layers=2, scale=1.0, seed=12),
    }


@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_sample_reproduces_exact_probabilities(model_name):
    model = _tiny_models()[model_name]
    model.train()  # sample must switch to eval and back
    seqs = _all_sequences(3, 3)
    q = model.log_prob(seqs).detach().double().exp()
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(q.max() / q.min()) > 5  # far from uniform, so the test can tell
    n = 50_000
    x = model.sample(n, generator=torch.Generator().manual_seed(0))
    assert model.training
    assert x.shape == (n, 3) and x.dtype == torch.long
    assert int(x.min()) >= 0 and int(x.max()) <= 2
    _assert_frequencies(model_name, _seq_index(x, 3), q / q.sum(), n)


def test_sample_is_reproducible_with_a_generator():
    model = _tiny_models()["window"]
    a = model.sample(100, generator=torch.Generator().manual_seed(5))
    b = model.sample(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


# ================================================================ training
def _sticky_chain(n, length, levels, stay, seed):
    """x_0 uniform; x_d = x_{d-1} with probability ``stay``, else uniform."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(levels, (n,), generator=g)
    for d in range(1, length):
        keep = torch.rand(n, generator=g) < stay
        x[:, d] = torch.where(keep, x[:, d - 1], torch.randint(levels, (n,), generator=g))
    return x


@pytest.mark.parametrize(
    "make",
    [
        lambda: WindowMLP(levels=3, length=8, window=2, hidden=16),
        lambda: ConvARM(levels=3, length=8, channels=8, kernel_size=2, layers=2, dropout=0.1),
    ],
    ids=["window", "conv"],
)
def test_fit_lowers_the_loss(make):
    x = _sticky_chain(256, 8, 3, stay=0.8, seed=0)
    model = make()
    before = genbook.evaluate(model, x)
    hist = genbook.fit(model, x, steps=80, batch_size=64, lr=1e-2, generator=torch.Generator().manual_seed(0))
    after = genbook.evaluate(model, x)
    assert hist.steps == 80
    assert after < 0.8 * before, f"loss {before:.3f} -> {after:.3f}"
    # the optimum, the true chain's entropy: log 3 + 7 H(stay + (1 - stay)/3, ...), about 5.7 nats
    p = [0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3]
    entropy = math.log(3) + 7 * -sum(pi * math.log(pi) for pi in p)
    assert after < entropy + 1.0


def test_markov_fit_beats_uniform_and_order_one_beats_order_zero_on_a_chain():
    x = _sticky_chain(2000, 6, 3, stay=0.8, seed=1)
    uniform = 6 * math.log(3)
    l0 = MarkovChain(levels=3, length=6, order=0).fit(x).loss(x).item()
    l1 = MarkovChain(levels=3, length=6, order=1).fit(x).loss(x).item()
    assert l0 == pytest.approx(uniform, abs=0.05)  # every position's marginal is uniform
    assert l1 < l0 - 2.0


# ================================================================ save / load
@pytest.mark.parametrize("model_name", ["markov", "window", "conv"])
def test_save_load_round_trip(model_name, tmp_path):
    model = _models()[model_name]
    if model_name == "conv":  # a config with every option set
        model = _conv_arm(levels=K, length=D, kernel_size=3, layers=3, dilations=[1, 2, 3], dropout=0.2, scale=0.8)
    path = tmp_path / f"{model_name}.pt"
    genbook.save(model, path)
    loaded = genbook.load(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    seqs = _all_sequences(K, D)
    assert torch.equal(loaded.log_prob(seqs), model.eval().log_prob(seqs))
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_evaluate_works_for_a_model_with_only_buffers():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (40, 4), generator=g)
    chain = ar.MarkovChain(levels=3, length=4, order=1).fit(x)
    assert not list(chain.parameters())
    assert genbook.evaluate(chain, x, batch_size=7) == pytest.approx(-chain.log_prob(x).mean().item(), rel=1e-6)


# ================================================================ homogeneous chains (any length, for text)
def test_homogeneous_chain_pools_counts_over_positions():
    # one shared table: order 1 counts of every transition along both sequences
    x = torch.tensor([[0, 1, 1, 2, 0, 1], [1, 1, 0, 1, 2, 2]])
    model = MarkovChain(levels=3, order=1, alpha=0.5).fit(x)
    table = model.dense_table()
    assert table.shape == (1, 4, 3)
    # after a 1: (1->1, 1->2, 1->1, 1->0, 1->2) = counts (1, 2, 2) + 0.5 over 5 + 1.5
    torch.testing.assert_close(table[0, 1].exp(), torch.tensor([1.5, 2.5, 2.5]) / 6.5)
    # before the start (context 3): first symbols 0 and 1
    torch.testing.assert_close(table[0, 3].exp(), torch.tensor([1.5, 1.5, 0.5]) / 3.5)


def test_homogeneous_chain_scores_any_length_and_matches_one_position_at_a_time():
    x = torch.tensor([[0, 1, 1, 2, 0, 1, 2, 2, 1, 0]])
    model = MarkovChain(levels=3, order=2, alpha=0.3).fit(x)
    seq = torch.tensor([[2, 1, 0, 0, 1, 2, 1]])  # a different length from the training sequence
    table = model.dense_table()[0]
    ctx = lambda d: sum((seq[0, d - j].item() if d - j >= 0 else 3) * 4 ** (2 - j) for j in (1, 2))  # noqa: E731
    expected = sum(float(table[ctx(d), seq[0, d]]) for d in range(seq.shape[1]))
    assert model.log_prob(seq).item() == pytest.approx(expected, abs=1e-5)


def test_unseen_contexts_are_uniform_and_only_seen_ones_are_stored():
    x = torch.tensor([[0, 0, 0, 0, 0, 1]])
    model = MarkovChain(levels=3, order=2, alpha=1.0).fit(x)
    assert len(model.keys) == 3  # contexts (start, start), (0, start) and (0, 0)
    table = model.dense_table()[0]
    uniform = torch.full((3,), 1 / 3)
    seen = [c for c in range(16) if not torch.allclose(table[c].exp(), uniform)]
    assert len(seen) == len(model.keys)
    # context (x_{d-1}, x_{d-2}) = (2, 2) never occurred
    torch.testing.assert_close(model.conditionals(torch.tensor([[2, 2, 0]]))[0, 2].exp(), uniform)


def test_homogeneous_chain_samples_need_a_length():
    model = MarkovChain(levels=3, order=1).fit(torch.tensor([[0, 1, 2, 0, 1, 2]]))
    with pytest.raises(ValueError, match="length must be given"):
        model.sample(2)
    s = model.sample(5, length=9, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 9)
    fixed = MarkovChain(levels=3, length=4, order=1)
    with pytest.raises(ValueError, match="length must be 4"):
        fixed.sample(2, length=5)
    assert fixed.sample(2, length=4).shape == (2, 4)


def test_deterministic_cycle_is_reproduced_by_a_sharp_chain():
    x = torch.tensor([[0, 1, 2] * 40])
    model = MarkovChain(levels=3, order=1, alpha=1e-6).fit(x)
    s = model.sample(3, length=12, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, torch.tensor([[0, 1, 2] * 4] * 3))


def test_markov_save_load_keeps_the_seen_contexts(tmp_path):
    x = torch.tensor([[0, 1, 1, 2, 0, 1, 2, 2, 1, 0]])
    model = MarkovChain(levels=3, order=3, alpha=0.2).fit(x)
    genbook.save(model, tmp_path / "m.pt")
    back = genbook.load(tmp_path / "m.pt")
    assert torch.equal(back.keys, model.keys)
    seq = torch.tensor([[1, 2, 0, 0, 2, 1, 1]])
    assert torch.equal(back.log_prob(seq), model.log_prob(seq))


def test_too_many_contexts_is_refused():
    with pytest.raises(ValueError, match="lower order"):
        MarkovChain(levels=29, order=40)


# ================================================================ backoff prior
def test_backoff_rows_by_hand():
    x = torch.tensor([[0, 1, 1, 2, 0, 1]])
    alpha = 2.0
    model = MarkovChain(levels=3, order=1, alpha=alpha, prior="backoff").fit(x)
    # order 0: counts (2, 3, 1) of 6, prior mean uniform -> (n_l + alpha/3) / (6 + alpha)
    q0 = (torch.tensor([2.0, 3.0, 1.0]) + alpha / 3) / (6 + alpha)
    # order 1 after a 1: next symbols 1, 2 -> counts (0, 1, 1), prior mean q0
    q1_after_1 = (torch.tensor([0.0, 1.0, 1.0]) + alpha * q0) / (2 + alpha)
    table = model.dense_table()[0].exp()
    torch.testing.assert_close(table[1], q1_after_1)
    # the start context saw one symbol, 0
    torch.testing.assert_close(table[3], (torch.tensor([1.0, 0.0, 0.0]) + alpha * q0) / (1 + alpha))
    # every row is normalised
    torch.testing.assert_close(table.sum(1), torch.ones(4))


def test_backoff_unseen_context_uses_the_longest_seen_shorter_one():
    x = torch.tensor([[0, 1, 2, 0, 1, 2, 0, 0]])
    model = MarkovChain(levels=3, order=2, alpha=0.5, prior="backoff").fit(x)
    order1 = MarkovChain(levels=3, order=1, alpha=0.5, prior="backoff").fit(x)
    # context (x_{d-1}, x_{d-2}) = (2, 2) never occurred but x_{d-1} = 2 did: use order 1's row
    seq = torch.tensor([[2, 2, 0]])
    torch.testing.assert_close(model.conditionals(seq)[0, 2], order1.conditionals(seq)[0, 2])
    # a seen order-2 context differs from its order-1 row
    seen = torch.tensor([[0, 1, 2]])
    assert not torch.allclose(model.conditionals(seen)[0, 2], order1.conditionals(seen)[0, 2])


@pytest.mark.parametrize("length", [None, 5])
def test_backoff_log_prob_normalises_over_all_sequences(length):
    data = torch.tensor([[0, 1, 1, 2, 0], [1, 1, 2, 2, 0], [0, 0, 1, 2, 1]])
    model = MarkovChain(levels=3, length=length, order=2, alpha=0.7, prior="backoff").fit(data)
    lp = model.log_prob(_all_sequences(3, 5))
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-5)


def test_backoff_beats_uniform_prior_on_held_out_text():
    from genbook import data as gdata

    tr, te = gdata.text("train")[None, :60_000], gdata.text("test")[None, :20_000]
    # each prior at a good alpha for it (the best of 0.01..100 for uniform is about 0.03)
    nll = {
        p: -MarkovChain(levels=29, order=5, alpha=a, prior=p).fit(tr).log_prob(te).item() / te.shape[1]
        for p, a in (("uniform", 0.03), ("backoff", 10.0))
    }
    assert nll["backoff"] < nll["uniform"] - 0.2, nll  # at least 0.2 nats per character better


def test_bad_prior_is_refused():
    with pytest.raises(ValueError, match="prior must be 'uniform' or 'backoff', got 'laplace'"):
        MarkovChain(levels=3, order=1, prior="laplace")


# ------------------------------------------------------------ the anchor's design (benchmarks/anchor_arm.py)
def test_anchor_arm_is_causal_normalised_and_sized_as_designed():
    from benchmarks.anchor_arm import AnchorARM

    torch.manual_seed(0)
    model = AnchorARM(levels=5, channels=8).eval()
    x = torch.randint(0, 5, (3, 64))
    logp = model.conditionals(x)  # (B, D, K)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 64), atol=1e-5)
    assert torch.allclose(model.log_prob(x), logp.gather(2, x[:, :, None]).squeeze(2).sum(1))
    for d in (0, 10, 40, 63):  # x_d moves no conditional at positions <= d, and the next one does
        y = x.clone()
        y[:, d] = (y[:, d] + 1) % 5
        other = model.conditionals(y)
        assert torch.equal(logp[:, : d + 1], other[:, : d + 1])
        if d < 63:
            assert not torch.allclose(logp[:, d + 1], other[:, d + 1])
    # four convolutions of kernel 7: 1 -> C -> C -> C -> K channels, with biases
    c, k = 256, 17
    full = AnchorARM()
    assert sum(p.numel() for p in full.parameters()) == 7 * (c + 2 * c * c + c * k) + 3 * c + k


def test_anchor_run_returns_finite_measurements():
    from benchmarks.anchor_arm import run_anchor

    got = run_anchor(seed=0, device=torch.device("cpu"), max_epochs=1)
    assert set(got) == {"test_nll_nats", "val_nll_nats", "epochs", "best_epoch", "train_images_per_s"}
    assert all(math.isfinite(v) for v in got.values())
    assert got["epochs"] == got["best_epoch"] == 1
    assert 0 < got["val_nll_nats"] < 64 * math.log(17) + 50 and got["train_images_per_s"] > 0
