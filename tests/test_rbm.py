"""RBMs on +-1 spins (chapter 3): exact quantities against brute-force enumeration, Gibbs chains, CD, PCD, AIS.

The reference for everything exact is a python enumeration of every ``(S, sigma)`` pair of
a tiny model with the slides' sign, ``q(S, sigma) ~ exp(-beta (S^T W sigma + a^T S + b^T sigma))``,
computed here without the package's own energy, free energy or ``all_spins``. Sampling
tests compare empirical frequencies of independent chains with the exact probabilities,
within ``Z`` binomial standard errors.
"""

import itertools
import math

import pytest
import torch

import genbook
from genbook import fit
from genbook.data import bars_and_stripes
from genbook.rbm import (
    MAX_ENUMERATION,
    RBM,
    BlockGibbs,
    ContrastiveDivergence,
    ais_log_partition,
    all_spins,
    base_fields_from_data,
    data_correlations,
    exact_kl,
    from_spins,
    model_correlations,
    to_spins,
)

F64 = torch.float64
Z = 5.0  # tolerance, in Monte Carlo standard errors


# ================================================================ helpers
def _spins(n):
    """Every configuration of ``n`` +-1 spins, ``(2^n, n)`` float64, by itertools (independent of all_spins)."""
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), dtype=F64)


def _rbm(V, H, *, beta=1.0, fields=True, scale=0.5, seed=0):
    """A float64 RBM with random weights (and fields) of the given scale."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible=V, n_hidden=H, beta=beta, fields=fields).double()
    with torch.no_grad():
        rbm.W.copy_(scale * torch.randn(V, H, generator=g, dtype=F64))
        if fields:
            rbm.a.copy_(scale * torch.randn(V, generator=g, dtype=F64))
            rbm.b.copy_(scale * torch.randn(H, generator=g, dtype=F64))
    return rbm


def _params(rbm):
    return rbm.W.detach().double(), rbm.a.detach().double(), rbm.b.detach().double()


def _joint(rbm):
    """``(S (2^V, V), sigma (2^H, H), log of the unnormalised joint (2^V, 2^H))``: ``-beta E`` for every pair."""
    W, a, b = _params(rbm)
    S, sig = _spins(rbm.n_visible), _spins(rbm.n_hidden)
    E = S @ W @ sig.T + (S @ a)[:, None] + (sig @ b)[None, :]
    return S, sig, -rbm.beta * E


def _brute_log_z(rbm):
    return float(torch.logsumexp(_joint(rbm)[2].reshape(-1), 0))


def _brute_log_q_visible(rbm):
    """``(S, log q(S))`` over every visible state, from the joint table."""
    S, _, lj = _joint(rbm)
    return S, torch.logsumexp(lj, 1) - torch.logsumexp(lj.reshape(-1), 0)


def _row_index(x):
    """Index of each +-1 row in the itertools order of _spins: the bits read with the first column most significant."""
    n = x.shape[1]
    bits = ((x + 1) / 2).round().long()
    return (bits * (2 ** torch.arange(n - 1, -1, -1))).sum(1)


def _assert_frequencies(what, idx, probs, n):
    """Counts of ``idx`` among ``n`` independent draws match ``probs`` within Z binomial standard errors.

    Plus two counts of slack, for states so rare that one visit is many standard errors.
    """
    freq = torch.bincount(idx, minlength=len(probs)).double() / n
    tol = Z * torch.sqrt(probs * (1 - probs) / n) + 2 / n
    err = (freq - probs).abs()
    worst = int(torch.argmax(err / tol))
    assert bool((err <= tol).all()), (
        f"{what}: state {worst} has frequency {float(freq[worst]):.5f}, exact {float(probs[worst]):.5f}, "
        f"error {float(err[worst]):.4g} > tolerance {float(tol[worst]):.4g}"
    )


# ================================================================ spins
def test_all_spins_enumerates_every_configuration_once():
    for n in (1, 3, 5):
        s = all_spins(n)
        assert s.shape == (2**n, n) and s.dtype == F64
        assert bool(((s == 1) | (s == -1)).all())
        assert torch.unique(s, dim=0).shape[0] == 2**n
    # chunks by start / stop concatenate to the whole enumeration
    full = all_spins(6)
    assert torch.equal(torch.cat([all_spins(6, start=i, stop=min(i + 10, 64)) for i in range(0, 64, 10)]), full)
    assert all_spins(3, dtype=torch.float32).dtype == torch.float32


def test_to_spins_and_from_spins_round_trip():
    x = torch.tensor([[0, 1, 1], [1, 0, 0]])
    s = to_spins(x)
    assert torch.equal(s, torch.tensor([[-1.0, 1.0, 1.0], [1.0, -1.0, -1.0]]))
    assert s.dtype == torch.get_default_dtype()
    assert to_spins(x, dtype=F64).dtype == F64
    back = from_spins(s)
    assert back.dtype == torch.int64 and torch.equal(back, x)


# ================================================================ energy, free energy, partition function
def test_energy_matches_definition():
    rbm = _rbm(4, 3, beta=1.7)
    S, sig, lj = _joint(rbm)
    SS = S.repeat_interleave(sig.shape[0], 0)
    ss = sig.repeat(S.shape[0], 1)
    assert torch.allclose(rbm.energy(SS, ss), -lj.reshape(-1) / rbm.beta, atol=1e-12)


@pytest.mark.parametrize("fields", [True, False])
@pytest.mark.parametrize("beta", [1.0, 0.6, 2.3])
def test_free_energy_is_minus_log_sum_over_hidden_states(fields, beta):
    rbm = _rbm(5, 4, beta=beta, fields=fields, scale=0.8)
    S, _, lj = _joint(rbm)
    expected = -torch.logsumexp(lj, 1)  # F(S) = -log sum_sigma exp(-beta E(S, sigma))
    got = rbm.free_energy(S)
    assert got.shape == (32,) and got.dtype == F64
    assert torch.allclose(got, expected, atol=1e-10)


def test_free_energy_is_stable_for_large_fields():
    rbm = _rbm(3, 2, beta=1.0, scale=400.0)  # log 2 cosh of fields ~ 1000: cosh overflows in float64
    S, _, lj = _joint(rbm)
    got = rbm.free_energy(S)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, -torch.logsumexp(lj, 1), rtol=1e-12, atol=1e-8)


@pytest.mark.parametrize("V, H", [(4, 3), (3, 4), (4, 4), (6, 2), (2, 6)])
@pytest.mark.parametrize("beta, fields", [(1.0, True), (0.7, True), (1.9, False)])
def test_log_partition_matches_brute_force(V, H, beta, fields):
    rbm = _rbm(V, H, beta=beta, fields=fields, scale=0.9, seed=V * 10 + H)
    got = rbm.log_partition()
    assert got.ndim == 0
    assert got.item() == pytest.approx(_brute_log_z(rbm), abs=1e-10)


def test_log_partition_both_enumeration_branches_agree():
    # (5, 3) enumerates the hidden layer; its transpose (3, 5), with a and b swapped, is the
    # same distribution with the layers exchanged and enumerates the visible layer.
    rbm = _rbm(5, 3, beta=1.3, scale=0.9)
    W, a, b = _params(rbm)
    t = RBM(n_visible=3, n_hidden=5, beta=1.3).double()
    with torch.no_grad():
        t.W.copy_(W.T)
        t.a.copy_(b)
        t.b.copy_(a)
    exact = _brute_log_z(rbm)
    assert rbm.log_partition().item() == pytest.approx(exact, abs=1e-10)
    assert t.log_partition().item() == pytest.approx(exact, abs=1e-10)
    # and, on one model, the two enumerations themselves
    by_visible = torch.logsumexp(-rbm.free_energy(_spins(5)), 0)
    by_hidden = torch.logsumexp(-rbm._hidden_free_energy(_spins(3)), 0)
    assert by_visible.item() == pytest.approx(exact, abs=1e-10)
    assert by_hidden.item() == pytest.approx(exact, abs=1e-10)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_log_partition_chunks_do_not_change_the_answer(chunk):
    for V, H in [(6, 4), (4, 6)]:
        rbm = _rbm(V, H, beta=0.8, scale=0.9)
        assert rbm.log_partition(chunk=chunk).item() == pytest.approx(_brute_log_z(rbm), abs=1e-10)


@pytest.mark.parametrize("V, H", [(4, 3), (3, 5)])
def test_visible_probabilities_sum_to_one_and_match_brute_force(V, H):
    rbm = _rbm(V, H, beta=1.4, scale=0.8)
    S, expected = _brute_log_q_visible(rbm)
    got = rbm.log_prob(S)
    assert got.shape == (2**V,)
    assert torch.logsumexp(got, 0).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(got, expected, atol=1e-10)
    assert rbm.loss(S[:5]).item() == pytest.approx(-float(expected[:5].mean()), abs=1e-10)


def test_log_prob_of_zero_model_is_uniform():
    rbm = RBM(n_visible=5, n_hidden=3, init_std=0.0).double()
    assert torch.allclose(rbm.log_prob(_spins(5)), torch.full((32,), -5 * math.log(2), dtype=F64), atol=1e-12)


# ================================================================ gradients
def _data(V, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n, V), generator=g).double() * 2 - 1


def test_correlations_match_brute_force():
    rbm = _rbm(4, 3, beta=1.3, scale=0.7)
    S, sig, lj = _joint(rbm)
    # model: E[S_k sigma_i] under the normalised joint table
    q = torch.softmax(lj.reshape(-1), 0).reshape(lj.shape)
    expected_model = torch.einsum("vh,vk,hi->ki", q, S, sig)
    assert torch.allclose(model_correlations(rbm), expected_model, atol=1e-12)
    # data: average over rows of S_k E[sigma_i | S], the conditional from the joint table
    data = _data(4, 9, seed=2)
    rows = _row_index(data)
    cond = torch.softmax(lj, 1)[rows]  # q(sigma | S) for each data row
    expected_data = torch.einsum("nh,nk,hi->ki", cond, data, sig) / data.shape[0]
    assert torch.allclose(data_correlations(rbm, data), expected_data, atol=1e-12)


@pytest.mark.parametrize("beta", [1.0, 1.6])
def test_slides_gradient_equals_autograd_of_exact_log_likelihood(beta):
    rbm = _rbm(4, 3, beta=beta, scale=0.7)
    data = _data(4, 12, seed=1)  # repeated rows included
    ll = rbm.log_prob(data).mean()
    gW, ga, gb = torch.autograd.grad(ll, [rbm.W, rbm.a, rbm.b])
    # with q ~ exp(-beta E) the ascent direction is -beta (<S sigma>_data - <S sigma>_model)
    with torch.no_grad():
        expected_W = -beta * (data_correlations(rbm, data) - model_correlations(rbm))
    assert torch.allclose(gW, expected_W, atol=1e-12)
    assert gW.abs().max() > 0.05  # not trivially zero: a sign error could not pass

    # fields, by brute force: d/da = -beta (<S>_data - <S>_model), d/db = -beta (<sigma>_data - <sigma>_model)
    S, sig, lj = _joint(rbm)
    q = torch.softmax(lj.reshape(-1), 0).reshape(lj.shape)
    model_S, model_sigma = q.sum(1) @ S, q.sum(0) @ sig
    cond = torch.softmax(lj, 1)[_row_index(data)]
    data_S, data_sigma = data.mean(0), (cond @ sig).mean(0)
    assert torch.allclose(ga, -beta * (data_S - model_S), atol=1e-12)
    assert torch.allclose(gb, -beta * (data_sigma - model_sigma), atol=1e-12)


def test_gradient_without_fields_only_trains_weights():
    rbm = _rbm(4, 3, beta=1.2, fields=False)
    names = {n for n, p in rbm.named_parameters()}
    assert names == {"W"}
    data = _data(4, 10, seed=3)
    (gW,) = torch.autograd.grad(rbm.log_prob(data).mean(), [rbm.W])
    with torch.no_grad():
        assert torch.allclose(gW, -1.2 * (data_correlations(rbm, data) - model_correlations(rbm)), atol=1e-12)


# ================================================================ conditionals
def test_conditionals_are_ratios_of_joint_probabilities():
    rbm = _rbm(4, 3, beta=1.3, scale=0.8)
    S, sig, lj = _joint(rbm)
    with torch.no_grad():
        ph, pv = rbm.p_hidden(S), rbm.p_visible(sig)
    assert ph.shape == (16, 3) and pv.shape == (8, 4)
    cond_h = torch.softmax(lj, 1)  # q(sigma | S), (2^V, 2^H)
    cond_v = torch.softmax(lj, 0)  # q(S | sigma)
    for i in range(3):
        assert torch.allclose(ph[:, i], cond_h[:, sig[:, i] == 1].sum(1), atol=1e-12)
    for k in range(4):
        assert torch.allclose(pv[:, k], cond_v[S[:, k] == 1, :].sum(0), atol=1e-12)
    # and the layers factorise: q(sigma | S) = prod_i q(sigma_i | S)
    prod_h = torch.where(sig[None] == 1, ph[:, None], 1 - ph[:, None]).prod(2)
    assert torch.allclose(prod_h, cond_h, atol=1e-12)
    prod_v = torch.where(S[:, None] == 1, pv[None], 1 - pv[None]).prod(2)
    assert torch.allclose(prod_v, cond_v, atol=1e-12)


# ================================================================ 0/1 RBMs
@pytest.mark.parametrize("V, H", [(4, 3), (3, 5)])
def test_from_binary_matches_enumeration_of_the_01_model(V, H):
    g = torch.Generator().manual_seed(V + H)
    W01 = torch.randn(V, H, generator=g, dtype=F64)
    c = torch.randn(V, generator=g, dtype=F64)
    d = torch.randn(H, generator=g, dtype=F64)
    v = ((_spins(V) + 1) / 2).to(F64)
    h = ((_spins(H) + 1) / 2).to(F64)
    log_joint = v @ W01 @ h.T + (v @ c)[:, None] + (h @ d)[None, :]  # (2^V, 2^H)
    expected = torch.logsumexp(log_joint, 1) - torch.logsumexp(log_joint.reshape(-1), 0)

    rbm = RBM.from_binary(W01, c, d)
    assert (rbm.n_visible, rbm.n_hidden, rbm.beta) == (V, H, 1.0)
    got = rbm.log_prob(to_spins(v.long())).double()
    tol = 1e-5 if rbm.W.dtype == torch.float32 else 1e-10
    assert torch.allclose(got, expected, atol=tol)


def test_from_binary_bad_shapes_raise():
    # each argument's shape is checked and named on its own
    with pytest.raises(ValueError, match=r"^hidden_bias must be a tensor of shape \(3,\)"):
        RBM.from_binary(torch.zeros(4, 3), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"^visible_bias must be a tensor of shape \(4,\)"):
        RBM.from_binary(torch.zeros(4, 3), torch.zeros(3), torch.zeros(3))


# ================================================================ exact KL
def test_exact_kl_matches_direct_formula_and_is_nonnegative():
    rbm = _rbm(4, 3, beta=1.1, scale=0.8)
    data = torch.cat([_data(4, 7, seed=5), _data(4, 3, seed=5)[:2]])  # some rows repeated
    S, log_q = _brute_log_q_visible(rbm)
    p = torch.bincount(_row_index(data), minlength=16).double() / data.shape[0]
    on = p > 0
    expected = float((p[on] * (p[on].log() - log_q[on])).sum())
    got = exact_kl(rbm, data)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, abs=1e-10)
    assert got > 0


def test_exact_kl_of_one_pattern_is_minus_log_q():
    rbm = _rbm(4, 3, beta=0.9, scale=0.8)
    x = torch.tensor([[1.0, -1.0, -1.0, 1.0]], dtype=F64)
    expected = -rbm.log_prob(x).item()
    assert exact_kl(rbm, x) == pytest.approx(expected, abs=1e-10)
    assert exact_kl(rbm, x.repeat(5, 1)) == pytest.approx(expected, abs=1e-10)  # multiplicity does not matter


def test_exact_kl_is_zero_when_data_are_the_model():
    # all fields and weights zero: q is uniform, as is the data set of every visible state
    rbm = RBM(n_visible=4, n_hidden=3, init_std=0.0).double()
    assert exact_kl(rbm, _spins(4)) == pytest.approx(0.0, abs=1e-12)
    # half the states: KL = log 2
    assert exact_kl(rbm, _spins(4)[:8]) == pytest.approx(math.log(2), abs=1e-12)


# ================================================================ block Gibbs
def test_block_gibbs_reproduces_exact_distribution(gen):
    rbm = _rbm(4, 3, beta=1.0, scale=0.7)
    S, sig, lj = _joint(rbm)
    kernel = BlockGibbs(rbm, generator=gen)
    C = 20_000
    state = kernel.init(torch.ones(C, 4, dtype=F64))  # every chain starts at the same state
    for _ in range(30):
        state, info = kernel.step(state)
    assert state.x.shape == (C, 4) and state.x.dtype == F64
    assert bool(info.accepted.all())
    assert torch.allclose(state.log_p, -rbm.free_energy(state.x), atol=1e-12)
    # visible marginal
    q_visible = torch.softmax(torch.logsumexp(lj, 1), 0)
    _assert_frequencies("q(S)", _row_index(state.x), q_visible, C)
    # (last hidden draw, visible state) is a draw from the joint
    q_joint = torch.softmax(lj.reshape(-1), 0)
    joint_idx = _row_index(state.x) * 8 + _row_index(kernel.last_hidden)
    _assert_frequencies("q(S, sigma)", joint_idx, q_joint, C)


def test_rbm_sample_matches_exact_distribution(gen):
    rbm = _rbm(4, 3, beta=1.5, scale=0.5, seed=4)
    _, log_q = _brute_log_q_visible(rbm)
    C = 20_000
    x = rbm.sample(C, steps=30, generator=gen)
    assert x.shape == (C, 4)
    _assert_frequencies("rbm.sample", _row_index(x), log_q.exp(), C)


def test_block_gibbs_is_deterministic_given_generator():
    rbm = _rbm(5, 3)
    runs = []
    for _ in range(2):
        kernel = BlockGibbs(rbm, generator=torch.Generator().manual_seed(7))
        state = kernel.init(-torch.ones(10, 5, dtype=F64))
        for _ in range(5):
            state, _ = kernel.step(state)
        runs.append(state.x)
    assert torch.equal(runs[0], runs[1])


# ================================================================ contrastive divergence
def test_cd_gradient_with_many_steps_approaches_exact_gradient():
    rbm = _rbm(4, 3, beta=1.0, scale=0.7)
    base = torch.tensor([[1.0, 1.0, -1.0, -1.0], [-1.0, 1.0, 1.0, -1.0], [1.0, -1.0, 1.0, 1.0]], dtype=F64)
    data = base.repeat(2000, 1)  # many chains, each started at a data row
    cd = ContrastiveDivergence(rbm, k=40, persistent=False, generator=torch.Generator().manual_seed(0))
    got = torch.autograd.grad(cd.loss(data), [rbm.W, rbm.a, rbm.b])
    exact = torch.autograd.grad(rbm.loss(base), [rbm.W, rbm.a, rbm.b])  # minus the log-likelihood gradient
    for name, g_cd, g_exact in zip("Wab", got, exact):
        err = float((g_cd - g_exact).norm())
        size = float(g_exact.norm())
        assert size > 0.1, name
        assert err < 0.15 * size, f"{name}: |CD - exact| = {err:.4g}, |exact| = {size:.4g}"


def test_cd_starts_chains_at_the_batch():
    rbm = _rbm(5, 3)
    data = _data(5, 6, seed=1)
    g = torch.Generator().manual_seed(3)
    cd = ContrastiveDivergence(rbm, k=2, generator=g)
    replay = torch.Generator().manual_seed(3)
    neg = cd.negative_samples(data)
    kernel = BlockGibbs(rbm, generator=replay)
    state = kernel.init(data)
    for _ in range(2):
        state, _ = kernel.step(state)
    assert torch.equal(neg, state.x)
    assert cd.negatives is None  # nothing persists without persistent=True
    # the loss is mean F(data) - mean F(negatives)
    g.manual_seed(3)
    expected = rbm.free_energy(data).mean() - rbm.free_energy(neg).mean()
    assert cd.loss(data).item() == pytest.approx(expected.item(), abs=1e-12)


def test_pcd_keeps_its_chains_between_calls():
    rbm = _rbm(5, 3)
    g = torch.Generator().manual_seed(0)
    cd = ContrastiveDivergence(rbm, k=1, persistent=True, chains=7, generator=g)
    assert cd.negatives is None
    cd.loss(_data(5, 4, seed=1))
    first = cd.negatives.clone()
    assert first.shape == (7, 5) and first.dtype == F64
    assert bool(((first == 1) | (first == -1)).all())
    # the next call continues these chains: replay one Gibbs step from them with the same random numbers
    replay = torch.Generator()
    replay.set_state(g.get_state())
    kernel = BlockGibbs(rbm, generator=replay)
    expected, _ = kernel.step(kernel.init(first))
    cd.loss(_data(5, 11, seed=2))  # a batch of another size: the chains keep their number
    assert cd.negatives.shape == (7, 5)
    assert torch.equal(cd.negatives, expected.x)
    assert not torch.equal(cd.negatives, first)


def test_cd10_training_on_bars_and_stripes_lowers_exact_kl():
    genbook.seed(0)
    S = to_spins(bars_and_stripes(3), dtype=F64).repeat(4, 1)  # 14 patterns, 4 copies: 56 chains per step
    rbm = RBM(n_visible=9, n_hidden=16, init_std=0.1).double()
    g = torch.Generator().manual_seed(0)
    cd = ContrastiveDivergence(rbm, k=10, generator=g)
    before = exact_kl(rbm, S)
    fit(
        cd,
        S,
        steps=400,
        batch_size=S.shape[0],
        lr=0.2,
        momentum=0.5,
        optimizer="sgd",
        schedule="linear",
        generator=g,
        progress=False,
    )
    after = exact_kl(rbm, S)
    assert before > 1.0
    assert after < 0.3, f"exact KL {before:.3f} -> {after:.3f}"


# ================================================================ AIS
@pytest.mark.parametrize("beta, base", [(1.0, False), (0.8, True)])
def test_ais_log_partition_close_to_exact_at_16_hidden(beta, base):
    g = torch.Generator().manual_seed(1)
    rbm = _rbm(30, 16, beta=beta, scale=0.3, seed=1)
    with torch.no_grad():
        exact = rbm.log_partition().item()
        base_fields = (
            base_fields_from_data(rbm.sample(500, steps=50, generator=g), beta=beta).double() if base else None
        )
    res = ais_log_partition(rbm, n_temps=1000, chains=100, base_fields=base_fields, generator=g)
    assert isinstance(res.log_Z, float)
    assert res.log_weights.shape == (100,)
    assert abs(res.log_Z - exact) < 0.1, f"AIS {res.log_Z:.4f} vs exact {exact:.4f} (se {res.std_err:.3g})"
    assert 0 < res.std_err < 0.1


def test_ais_is_exact_when_the_base_is_the_model():
    # W = 0 and base fields a: every intermediate distribution has the same visible marginal and
    # a hidden layer independent of it, so all weights are equal and log Z_hat is exact.
    rbm = _rbm(6, 4, beta=1.7, scale=0.8)
    with torch.no_grad():
        rbm.W.zero_()
    res = ais_log_partition(
        rbm, n_temps=10, chains=5, base_fields=rbm.a.detach().clone(), generator=torch.Generator().manual_seed(0)
    )
    assert res.log_Z == pytest.approx(_brute_log_z(rbm), abs=1e-10)
    assert res.std_err == pytest.approx(0.0, abs=1e-10)


def test_base_fields_from_data_match_the_means():
    S = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [1.0, 1.0, -1.0], [1.0, 1.0, -1.0]])
    beta = 2.0
    a0 = base_fields_from_data(S, beta=beta).double()
    assert a0.shape == (3,)
    # independent spins with fields a0 have mean -tanh(beta a0); clipped at +-(1 - 2 eps)
    assert torch.allclose(-torch.tanh(beta * a0), torch.tensor([1 - 2e-3, 0.5, -1 + 2e-3], dtype=F64), atol=1e-5)


# ================================================================ bad input
@pytest.mark.parametrize("bad", [0.0, 2.0])
def test_non_spin_values_raise(bad):
    rbm = _rbm(4, 3)
    S = torch.ones(3, 4, dtype=F64)
    S[1, 2] = bad
    for call in (rbm.free_energy, rbm.log_prob, lambda x: exact_kl(rbm, x), lambda x: data_correlations(rbm, x)):
        with pytest.raises(ValueError, match=r"\+1 and -1") as err:
            call(S)
        msg = str(err.value)
        assert msg.startswith("S ") or msg.startswith("data "), msg
        assert ("to_spins" in msg) == (bad == 0.0), msg  # the 0/1 hint, only for zeros
    with pytest.raises(ValueError, match=r"S0 must contain only \+1 and -1"):
        BlockGibbs(rbm).init(S)
    with pytest.raises(ValueError, match=r"^s must contain only \+1 and -1"):
        from_spins(S)


def test_to_spins_rejects_non_binary():
    with pytest.raises(ValueError, match="only 0 and 1, found 2"):
        to_spins(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        to_spins(torch.tensor([[-1, 1]]))


@pytest.mark.parametrize("shape", [(3, 5), (3, 3), (4,)])
def test_wrong_shape_raises(shape):
    rbm = _rbm(4, 3)
    S = torch.ones(shape, dtype=F64)
    with pytest.raises(ValueError, match=r"S must be a tensor of shape \(B, 4\)"):
        rbm.free_energy(S)
    with pytest.raises(ValueError, match="shape"):
        ContrastiveDivergence(rbm).loss(S)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(n_visible=0, n_hidden=3), "n_visible"),
        (dict(n_visible=4, n_hidden=-1), "n_hidden"),
        (dict(n_visible=2.0, n_hidden=3), "n_visible"),
        (dict(n_visible=True, n_hidden=3), "n_visible"),
        (dict(n_visible=4, n_hidden=3, beta=0.0), "beta"),
        (dict(n_visible=4, n_hidden=3, beta=-1.0), "beta"),
        (dict(n_visible=4, n_hidden=3, beta=float("nan")), "beta"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        RBM(**kwargs)


@pytest.mark.parametrize(
    "kwargs, word", [(dict(k=0), "k"), (dict(k=1.5), "k"), (dict(k=True), "k"), (dict(chains=0), "chains")]
)
def test_bad_cd_arguments_raise(kwargs, word):
    # genbook._checks.check_int's message names the minimum: "k must be an int >= 1, got 0 (int)"
    with pytest.raises(ValueError, match=f"^{word} must be an int >= 1, got"):
        ContrastiveDivergence(_rbm(4, 3), **kwargs)


def test_enumeration_beyond_the_limit_raises():
    big = RBM(n_visible=MAX_ENUMERATION + 6, n_hidden=MAX_ENUMERATION + 6)
    with pytest.raises(ValueError, match="ais_log_partition"):
        big.log_partition()
    with pytest.raises(ValueError, match="ais_log_partition"):
        big.log_prob(torch.ones(1, MAX_ENUMERATION + 6))
    with pytest.raises(ValueError, match="n_visible must be <="):
        model_correlations(RBM(n_visible=MAX_ENUMERATION + 1, n_hidden=1))


def test_ais_bad_arguments_raise():
    rbm = _rbm(4, 3)
    with pytest.raises(ValueError, match=r"base_fields must be a tensor of shape \(4,\)"):
        ais_log_partition(rbm, base_fields=torch.zeros(3))
    with pytest.raises(ValueError, match="chains"):
        ais_log_partition(rbm, chains=1)
    with pytest.raises(ValueError, match="n_temps"):
        ais_log_partition(rbm, n_temps=0)


def test_sample_bad_arguments_raise():
    rbm = _rbm(4, 3)
    # one check per argument, each naming its own (it was one message for both)
    with pytest.raises(ValueError, match=r"^n must be an int >= 1, got 0"):
        rbm.sample(0)
    with pytest.raises(ValueError, match=r"^steps must be an int >= 1, got 0"):
        rbm.sample(5, steps=0)


# ================================================================ save / load
@pytest.mark.parametrize("fields", [True, False])
def test_save_load_round_trip(tmp_path, fields):
    rbm = RBM(n_visible=5, n_hidden=3, beta=1.7, fields=fields, init_std=0.5)
    if fields:
        with torch.no_grad():
            rbm.a.normal_()
            rbm.b.normal_()
    path = tmp_path / "rbm.pt"
    genbook.save(rbm, path)
    back = genbook.load(path)
    assert type(back) is RBM
    assert (back.n_visible, back.n_hidden, back.beta, back.fields) == (5, 3, 1.7, fields)
    S = all_spins(5, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(back.log_prob(S), rbm.log_prob(S))
    for name, t in rbm.state_dict().items():
        assert torch.equal(back.state_dict()[name], t), name
