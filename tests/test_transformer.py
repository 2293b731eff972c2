"""The transformer language model: attention against explicit forms, causality, exact likelihoods,
normalisation over finite strings, cached sampling, temperature, errors.

The references are independent of the fused kernels: attention is checked against a python loop
over query positions, the likelihood against conditionals computed one prefix at a time, and the
end-symbol model against the exact probability of every string of a tiny alphabet.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import genbook
from genbook import data
from genbook.transformer import Block, CausalSelfAttention, TransformerLM, attention, attention_weights

Z = 5.0  # tolerance, in Monte Carlo standard errors


def _model(*, vocab=3, context=6, dim=16, heads=2, layers=2, end=False, tie=True, scale=0.5, seed=0, dropout=0.0):
    """A small model with parameters moved well away from their initial values (far-from-uniform conditionals)."""
    m = TransformerLM(
        vocab=vocab, context=context, dim=dim, heads=heads, layers=layers, end=end, tie=tie, dropout=dropout
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return m.eval()


def _strings(vocab, length):
    """Every string of ``length`` symbols, ``(vocab^length, length)``."""
    return torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long).reshape(-1, length)


def _loop_attention(q, k, v, causal):
    """Attention one query at a time, ``(B, H, T, d)`` each (T == S); the reference for the einsum and fused forms."""
    T, d = q.shape[-2], q.shape[-1]
    out = torch.zeros_like(q)
    for t in range(T):
        keys = slice(0, t + 1) if causal else slice(0, T)
        w = torch.softmax((k[..., keys, :] @ q[..., t, :, None]).squeeze(-1) / math.sqrt(d), -1)  # (B, H, S)
        out[..., t, :] = (w[..., None] * v[..., keys, :]).sum(-2)
    return out


def _set_fused(model, fused):
    for m in model.modules():
        if isinstance(m, CausalSelfAttention):
            m.fused = fused


# ================================================================ attention
@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [True, False])
def test_explicit_and_fused_attention_equal_a_loop(heads, causal, gen):
    q, k, v = (torch.randn(3, heads, 7, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    ref = _loop_attention(q, k, v, causal)
    torch.testing.assert_close(attention(q, k, v, causal=causal), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, is_causal=causal), ref, rtol=1e-12, atol=1e-12)


def test_causal_attention_after_a_cache_aligns_the_queries_with_the_last_keys(gen):
    q = torch.randn(2, 2, 3, 4, generator=gen, dtype=torch.float64)
    k, v = (torch.randn(2, 2, 8, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    full_q = torch.cat([torch.randn(2, 2, 5, 4, generator=gen, dtype=torch.float64), q], 2)  # 5 earlier queries
    torch.testing.assert_close(attention(q, k, v), _loop_attention(full_q, k, v, True)[:, :, 5:])


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_model_with_fused_attention_equals_the_explicit_one(heads):
    m = _model(vocab=4, context=9, dim=16, heads=heads, scale=0.3)
    x = torch.randint(0, 4, (5, 9))
    fused = m.conditionals(x)
    _set_fused(m, False)
    torch.testing.assert_close(m.conditionals(x), fused, rtol=1e-5, atol=1e-5)


def test_attention_heads_are_independent(gen):
    """Head h's output depends only on head h's queries, keys and values: the split is a real split."""
    layer = CausalSelfAttention(8, 2)
    x = torch.randn(1, 4, 8, generator=gen)
    B, T, D = x.shape
    q, k, v = layer.qkv(x).view(B, T, 3, 2, 4).permute(2, 0, 3, 1, 4)
    by_head = torch.cat([attention(q[:, h : h + 1], k[:, h : h + 1], v[:, h : h + 1]) for h in range(2)], 1)
    expected = layer.out(by_head.transpose(1, 2).reshape(B, T, D))
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_attention_weights_are_causal_distributions_and_give_the_attention(gen):
    q, k, v = (torch.randn(2, 3, 6, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    w = attention_weights(q, k)  # (2, 3, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 6, dtype=torch.float64))
    lower = torch.ones(6, 6, dtype=torch.bool).tril()
    assert (w[..., ~lower] == 0).all() and (w[..., lower] > 0).all()
    torch.testing.assert_close(w @ v, _loop_attention(q, k, v, True), rtol=1e-12, atol=1e-12)


def test_a_layers_weights_rebuild_its_output(gen):
    layer = CausalSelfAttention(8, 2).eval()
    x = torch.randn(3, 5, 8, generator=gen)
    w = layer.weights(x)  # (3, 2, 5, 5)
    v = layer.qkv(x)[..., 16:].view(3, 5, 2, 4).transpose(1, 2)  # (3, 2, 5, 4)
    expected = layer.out((w @ v).transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_attention_maps_are_what_each_block_reads_and_ignore_the_future():
    m = _model(vocab=4, context=7, layers=3)
    x = torch.randint(0, 4, (2, 7))
    maps = m.attention_maps(x)
    assert len(maps) == 3 and all(a.shape == (2, 2, 7, 7) for a in maps)
    h = m.embed(m._inputs(x)) + m.position
    for block, a in zip(m.blocks, maps):  # each map is the one the block's attention uses
        torch.testing.assert_close(a, block.attn.weights(block.norm1(h)))
        h = block(h)
    y = x.clone()
    y[:, 4:] = (y[:, 4:] + 1) % 4  # symbols 4.. are read only by positions 5..
    for a, b in zip(maps, m.attention_maps(y)):
        torch.testing.assert_close(a[:, :, :5, :5], b[:, :, :5, :5])
        assert (a[:, :, 5:] - b[:, :, 5:]).abs().max() > 1e-4


def test_block_is_the_pre_norm_residual_layer(gen):
    block = Block(8, 2).eval()
    x = torch.randn(2, 5, 8, generator=gen)
    a = x + block.attn(block.norm1(x))
    z = a + block.mlp(block.norm2(a))
    torch.testing.assert_close(block(x), z)


# ================================================================ causality and the likelihood
@pytest.mark.parametrize("end", [False, True])
@pytest.mark.parametrize("t", [0, 2, 5])
def test_changing_the_future_leaves_earlier_conditionals_unchanged(end, t, gen):
    m = _model(vocab=4, context=7, end=end)
    x = torch.randint(0, 4, (6, 7), generator=gen)
    y = x.clone()
    y[:, t:] = (y[:, t:] + 1 + torch.randint(0, 3, y[:, t:].shape, generator=gen)) % 4  # every future symbol changes
    cx, cy = m.conditionals(x), m.conditionals(y)
    torch.testing.assert_close(cx[:, : t + 1], cy[:, : t + 1], rtol=0, atol=1e-6)  # position t predicts x_t from x_<t
    if t + 1 < 7:
        assert (cx[:, t + 1 :] - cy[:, t + 1 :]).abs().max() > 1e-3  # the later ones do see the change


def test_gradients_of_a_conditional_vanish_on_the_present_and_future(gen):
    m = _model(vocab=4, context=6)
    x = torch.randint(0, 4, (3, 6), generator=gen)
    inputs = m._inputs(x)
    emb = m.embed(inputs).detach().requires_grad_(True)  # (B, T, D): input t carries x_{t-1}
    h = emb + m.position
    for block in m.blocks:
        h = block(h)
    logits = m.log_beta.exp() * (m.norm(h) @ m.embed.weight[: m.outcomes].T)
    for t in range(6):
        (g,) = torch.autograd.grad(logits[:, t].sum(), emb, retain_graph=True)
        moved = g.abs().sum((0, 2)) > 0
        assert moved[: t + 1].all() and not moved[t + 1 :].any()


@pytest.mark.parametrize("end", [False, True])
def test_log_prob_is_the_sum_of_conditionals_computed_one_prefix_at_a_time(end, gen):
    m = _model(vocab=3, context=5, end=end)
    x = torch.randint(0, 3, (4, 4), generator=gen)
    if end:
        x[0, 2:] = 3  # a string of length 2, padded
        x[1, 0:] = 3  # the empty string
    expected = torch.zeros(4)
    for b in range(4):
        for t in range(4):
            lp = m.conditionals(x[b : b + 1, : t + 1])[0, t]  # log p(. | x_<t), computed from the prefix alone
            expected[b] += lp[x[b, t]]
            if end and x[b, t] == 3:
                break
        else:
            if end:  # the string fills x: ending after it has its own probability (context 5 > 4)
                expected[b] += m.conditionals(torch.cat([x[b : b + 1], torch.tensor([[3]])], 1))[0, 4, 3]
    torch.testing.assert_close(m.log_prob(x), expected, rtol=1e-5, atol=1e-5)


def test_loss_is_the_mean_negative_log_prob(gen):
    m = _model()
    x = torch.randint(0, 3, (5, 6), generator=gen)
    torch.testing.assert_close(m.loss(x), -m.log_prob(x).mean())


@pytest.mark.parametrize("tie", [True, False])
def test_conditionals_are_normalised_and_tied_logits_are_beta_times_inner_products(tie, gen):
    m = _model(vocab=4, context=5, end=True, tie=tie)
    x = torch.randint(0, 4, (3, 5), generator=gen)
    c = m.conditionals(x)
    assert c.shape == (3, 5, 5)
    torch.testing.assert_close(c.exp().sum(-1), torch.ones(3, 5))
    assert (m.head is None) == tie
    if tie:
        h = m.embed(m._inputs(x)) + m.position
        for block in m.blocks:
            h = block(h)
        logits = m.log_beta.exp() * torch.einsum("btd,yd->bty", m.norm(h), m.embed.weight)  # all 5 rows: 4 + end
        torch.testing.assert_close(c, logits.log_softmax(-1), rtol=1e-5, atol=1e-5)


# ================================================================ a distribution over finite strings
@pytest.mark.parametrize("N", [0, 1, 2, 3])
def test_strings_up_to_length_n_and_the_mass_beyond_sum_to_one(N):
    vocab, context = 2, 4
    m = _model(vocab=vocab, context=context, end=True, scale=0.8)
    total = math.exp(m.log_prob(torch.full((1, 1), vocab)).item())  # the empty string
    for n in range(1, N + 1):
        total += m.log_prob(_strings(vocab, n)).exp().sum().item()
    # the mass beyond N: every prefix of length N + 1 goes on, with the probability of its symbols
    longer = _strings(vocab, N + 1)
    cond = m.conditionals(longer).gather(2, longer[:, :, None]).squeeze(2)
    total += cond.sum(1).exp().sum().item()
    assert abs(total - 1) < 1e-5


def test_strings_up_to_the_context_sum_to_one_exactly():
    """After ``context`` symbols the string must end: all the mass is on strings of length 0..context."""
    vocab, context = 2, 4
    m = _model(vocab=vocab, context=context, end=True, scale=0.8)
    total = math.exp(m.log_prob(torch.full((1, 1), vocab)).item())
    for n in range(1, context + 1):
        total += m.log_prob(_strings(vocab, n)).exp().sum().item()
    assert abs(total - 1) < 1e-5


def test_padding_with_more_end_symbols_changes_nothing():
    m = _model(vocab=3, context=6, end=True)
    short = torch.tensor([[0, 2, 3]])
    long = torch.tensor([[0, 2, 3, 3, 3, 3]])
    torch.testing.assert_close(m.log_prob(short), m.log_prob(long))


# ================================================================ sampling
@pytest.mark.parametrize("end", [False, True])
def test_cached_sampling_draws_the_same_symbols_as_uncached(end):
    m = _model(vocab=5, context=10, end=end, scale=0.2)
    a = m.sample(40, generator=torch.Generator().manual_seed(3))
    b = m.sample(40, generator=torch.Generator().manual_seed(3), cache=False)
    assert a.shape == (40, 10)
    assert torch.equal(a, b)
    assert len(torch.unique(a, dim=0)) > 10  # and they are not all the same


def test_cached_sampling_with_a_prompt_keeps_it_and_equals_uncached():
    m = _model(vocab=5, context=10, scale=0.4)
    prompt = torch.tensor([1, 4, 0])
    a = m.sample(8, prompt=prompt, generator=torch.Generator().manual_seed(1))
    b = m.sample(8, prompt=prompt, generator=torch.Generator().manual_seed(1), cache=False)
    assert torch.equal(a, b) and (a[:, :3] == prompt).all()


def test_sampling_past_the_context_reads_a_window_of_the_last_context_minus_one_symbols():
    m = _model(vocab=5, context=6, scale=0.4)
    x = m.sample(4, length=20, temperature=0, prompt=torch.tensor([2, 0]))
    assert x.shape == (4, 20) and (x[:, :2] == torch.tensor([2, 0])).all()
    torch.testing.assert_close(x[:, :6], m.sample(4, temperature=0, prompt=torch.tensor([2, 0])))
    for t in range(6, 20):  # greedy: each symbol is the argmax given its window
        window = x[:, t - 5 : t + 1]  # the last 5 symbols, then the one drawn
        assert torch.equal(x[:, t], m.conditionals(window)[:, -1].argmax(-1))
    a = m.sample(30, length=15, generator=torch.Generator().manual_seed(2))
    b = m.sample(30, length=15, generator=torch.Generator().manual_seed(2), cache=False)
    assert torch.equal(a, b) and len(torch.unique(a, dim=0)) > 20


def test_sample_reproduces_the_exact_probability_of_every_string():
    vocab, context, n = 2, 3, 20_000
    m = _model(vocab=vocab, context=context, end=True, scale=0.8)
    strings = [torch.full((1, context), vocab)]  # the empty string, then strings of 1..context symbols, padded
    for k in range(1, context + 1):
        s = _strings(vocab, k)
        strings.append(torch.cat([s, torch.full((len(s), context - k), vocab)], 1))
    strings = torch.cat(strings)
    p = m.log_prob(strings).exp().double()
    assert abs(p.sum().item() - 1) < 1e-5
    x = m.sample(n, generator=torch.Generator().manual_seed(0))
    counts = torch.stack([(x == s).all(1).sum() for s in strings]).double()
    se = (p * (1 - p) / n).sqrt()
    assert ((counts / n - p).abs() <= Z * se + 1e-4).all()


def test_temperature_zero_takes_the_most_probable_symbol_and_a_small_one_agrees():
    m = _model(vocab=4, context=6, scale=0.8)
    greedy = m.sample(3, temperature=0)
    assert (greedy == greedy[0]).all()  # no randomness left
    x = greedy[:1]
    for t in range(6):  # each symbol is the argmax of its conditional given the ones before
        assert x[0, t] == m.conditionals(x)[0, t].argmax()
    cold = m.sample(50, temperature=1e-3, generator=torch.Generator().manual_seed(0))
    assert (cold == greedy[0]).all()


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_reshapes_the_first_conditional(temperature):
    n = 20_000
    m = _model(vocab=4, context=3, scale=0.8)
    logits = m(torch.full((1, 1), 4))[0, 0]
    p = torch.softmax(logits / temperature, -1).double()
    x = m.sample(n, length=1, temperature=temperature, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(x[:, 0], minlength=4).double() / n
    assert ((freq - p).abs() <= Z * (p * (1 - p) / n).sqrt() + 1e-4).all()


def test_sample_is_reproducible_and_uses_the_models_device():
    m = _model()
    a = m.sample(5, generator=torch.Generator().manual_seed(7))
    b = m.sample(5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.device == m.position.device and a.dtype == torch.long


# ================================================================ long streams
def test_stream_log_prob_with_stride_one_gives_every_symbol_its_full_window(gen):
    C = 5
    m = _model(vocab=3, context=C)
    x = torch.randint(0, 3, (12,), generator=gen)
    expected = m.log_prob(x[None, :C]).item()
    for i in range(C, 12):  # symbol i predicted from the C - 1 symbols before it
        w = x[None, i - C + 1 : i + 1]
        expected += m.conditionals(w)[0, -1, x[i]].item()
    assert abs(m.stream_log_prob(x, stride=1) - expected) < 1e-4


def test_stream_log_prob_of_a_short_stream_is_its_log_prob(gen):
    m = _model(vocab=3, context=8)
    x = torch.randint(0, 3, (6,), generator=gen)
    assert abs(m.stream_log_prob(x) - m.log_prob(x[None]).item()) < 1e-5
    y = torch.randint(0, 3, (16,), generator=gen)  # two windows that do not overlap
    assert abs(m.stream_log_prob(y, stride=8) - m.log_prob(y.reshape(2, 8)).sum().item()) < 1e-4


# ================================================================ training
def test_fit_learns_the_copy_task_beyond_a_markov_chain():
    task = data.CopyTask(length=2, symbols=3)
    x = task.sample(256, generator=torch.Generator().manual_seed(0))
    m = TransformerLM(vocab=task.vocab, context=5, dim=16, heads=2, layers=1)
    before = m.loss(x).item()
    genbook.fit(m, x, steps=120, batch_size=64, lr=1e-2, progress=False)
    after = m.loss(x).item()
    # the copy costs nothing once learned: a Markov chain would pay 2 ln 3 = 2.2 nats more than the entropy
    assert before > 5 and after < task.entropy() + 0.5


# ================================================================ errors
BAD_TOKENS = [
    ("outside the alphabet", lambda: torch.tensor([[0, 3, 1]]), r"x must hold symbols 0\.\.2, found 3"),
    ("negative", lambda: torch.tensor([[0, -1, 1]]), r"x must hold symbols 0\.\.2, found -1"),
    ("longer than the context", lambda: torch.zeros(2, 7, dtype=torch.long), r"x must have 1\.\.6 symbols .*got 7"),
    ("empty", lambda: torch.zeros(2, 0, dtype=torch.long), r"x must have 1\.\.6 symbols .*got 0"),
    ("float", lambda: torch.zeros(2, 3), r"x must be an integer tensor of shape \(B, T\), got .*float32"),
    ("one-dimensional", lambda: torch.zeros(3, dtype=torch.long), r"x must be an integer tensor of shape \(B, T\)"),
    ("a list", lambda: [[0, 1]], r"x must be an integer tensor .*got \[\[0, 1\]\] \(list\)"),
]


@pytest.mark.parametrize("what, make, message", BAD_TOKENS, ids=[b[0] for b in BAD_TOKENS])
@pytest.mark.parametrize("method", ["log_prob", "loss", "conditionals"])
def test_bad_tokens_raise_value_error_naming_x(what, make, message, method):
    m = _model(vocab=3, context=6)
    with pytest.raises(ValueError, match=message):
        getattr(m, method)(make())


def test_end_symbol_is_refused_without_end_and_allowed_with_it():
    with pytest.raises(ValueError, match=r"found 3"):
        _model(vocab=3, end=False).log_prob(torch.tensor([[0, 3]]))
    _model(vocab=3, end=True).log_prob(torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match=r"x must hold symbols 0\.\.2 and the end symbol 3, found 4"):
        _model(vocab=3, end=True).log_prob(torch.tensor([[0, 4]]))


def test_symbols_after_the_end_are_refused():
    with pytest.raises(ValueError, match=r"only end symbols \(3\) after an end; row 1 goes on"):
        _model(vocab=3, end=True).log_prob(torch.tensor([[0, 1, 3], [0, 3, 1]]))


BAD_ARGUMENTS = [
    (lambda: TransformerLM(vocab=1, context=4), r"vocab must be an int >= 2"),
    (lambda: TransformerLM(vocab=3, context=0), r"context must be an int >= 1, got 0"),
    (lambda: TransformerLM(vocab=3, context=4, dim=10, heads=4), r"dim must be a multiple of heads \(4\), got 10"),
    (lambda: TransformerLM(vocab=3, context=4, dropout=1.0), r"dropout must be a finite number in \[0, 1\)"),
    (lambda: TransformerLM(vocab=3, context=4, end=1), r"end must be True or False, got 1 \(int\)"),
    (lambda: _model().sample(0), r"n must be an int >= 1, got 0"),
    (lambda: _model().sample(2, length=0), r"length must be an int >= 1, got 0"),
    (lambda: _model().sample(2, temperature=-1.0), r"temperature must be a finite number >= 0, got -1\.0"),
    (lambda: _model(end=True).sample(2, length=3), r"length must be None for a model with end=True"),
    (lambda: _model().sample(2, prompt=torch.tensor([[0, 1]] * 3)), r"prompt must have 2 rows"),
    (lambda: _model().sample(2, prompt=torch.tensor([0, 5])), r"prompt must hold symbols 0\.\.2, found 5"),
    (lambda: _model().stream_log_prob(torch.zeros(2, 3, dtype=torch.long)), r"x must be an integer tensor of shape"),
    (lambda: _model(end=True).stream_log_prob(torch.zeros(9, dtype=torch.long)), r"this model has end=True"),
    (lambda: _model().stream_log_prob(torch.zeros(0, dtype=torch.long)), r"x must hold at least one symbol"),
    (lambda: _model().stream_log_prob(torch.zeros(9, dtype=torch.long), stride=7), r"stride must be an int in 1\.\.6"),
]


@pytest.mark.parametrize("make, message", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_single_symbol_alphabet_is_a_distribution_over_lengths():
    m = _model(vocab=1, context=4, end=True, scale=0.8)
    lengths = [torch.tensor([[0] * k + [1] * (4 - k)]) for k in range(5)]
    assert abs(sum(m.log_prob(s).exp().item() for s in lengths) - 1) < 1e-5
