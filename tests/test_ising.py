"""The 2-D Ising model: energy and exact enumeration against brute force, checkerboard Gibbs against
the exact moments."""

import itertools
import math

import pytest
import torch

from genbook.ising import IsingGibbs, ising_energy, ising_exact
from genbook.sampling import effective_sample_size, run

Z = 5.0  # tolerance, in Monte Carlo standard errors


def _energy_loop(s, J, h):
    """E(s) = -J sum over each site's right and lower neighbour (periodic) s_i s_j - h sum_i s_i, by hand."""
    L = len(s)
    E = 0.0
    for i in range(L):
        for j in range(L):
            E -= J * s[i][j] * (s[i][(j + 1) % L] + s[(i + 1) % L][j])
            E -= h * s[i][j]
    return E


def _brute_force(L, beta, J, h):
    """log Z, mean energy per site, mean |magnetisation| per site: a python loop over all 2^(L^2) states."""
    n = L * L
    weights, energies, mags = [], [], []
    for config in itertools.product([-1, 1], repeat=n):
        s = [config[i * L : (i + 1) * L] for i in range(L)]
        E = _energy_loop(s, J, h)
        weights.append(math.exp(-beta * E))
        energies.append(E)
        mags.append(abs(sum(config)) / n)
    Zsum = sum(weights)
    return (
        math.log(Zsum),
        sum(w * E for w, E in zip(weights, energies)) / Zsum / n,
        sum(w * m for w, m in zip(weights, mags)) / Zsum,
    )


# ================================================================ energy and exact enumeration
@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("J, h", [(1.0, 0.0), (0.7, -0.3), (-1.0, 0.5)])
def test_ising_energy_matches_a_python_loop(L, J, h, gen):
    spins = torch.randint(0, 2, (6, L, L), generator=gen).double() * 2 - 1
    got = ising_energy(spins, J=J, h=h)
    assert got.shape == (6,)
    expected = torch.tensor([_energy_loop(s.tolist(), J, h) for s in spins], dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-12)


def test_ising_energy_of_ordered_states():
    up = torch.ones(1, 4, 4)
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2.0 - 1  # antiferromagnet
    # 2 bonds per site on the periodic lattice: all aligned gives -2 J n, the checkerboard +2 J n
    assert float(ising_energy(up)) == -32.0
    assert float(ising_energy(-up)) == -32.0
    assert float(ising_energy(checker[None])) == 32.0
    assert float(ising_energy(up, J=1.0, h=0.5)) == -32.0 - 8.0


@pytest.mark.parametrize("L", [2, 3])
@pytest.mark.parametrize(
    "beta, J, h", [(0.0, 1.0, 0.0), (0.3, 1.0, 0.0), (0.7, 1.0, 0.25), (0.5, -1.0, 0.1), (1.5, 0.5, -0.2)]
)
def test_ising_exact_matches_brute_force(L, beta, J, h):
    got = ising_exact(L, beta, J=J, h=h)
    log_Z, energy, mag = _brute_force(L, beta, J, h)
    assert got["log_Z"] == pytest.approx(log_Z, abs=1e-10)
    assert got["energy"] == pytest.approx(energy, abs=1e-10)
    assert got["abs_magnetisation"] == pytest.approx(mag, abs=1e-10)


@pytest.mark.parametrize("L", [2, 4])
def test_ising_exact_at_infinite_temperature(L):
    n = L * L
    got = ising_exact(L, 0.0, h=0.3)
    assert got["log_Z"] == pytest.approx(n * math.log(2), abs=1e-12)
    assert got["energy"] == pytest.approx(0.0, abs=1e-12)  # independent fair spins
    # |M| of n fair spins: k up spins out of n, binomial
    mag = sum(math.comb(n, k) * abs(2 * k - n) for k in range(n + 1)) / 2**n / n
    assert got["abs_magnetisation"] == pytest.approx(mag, abs=1e-12)


def test_ising_exact_4x4_thermodynamic_identities():
    beta, d = 0.4, 1e-5
    mid = ising_exact(4, beta)
    # d log Z / d beta = -<E>
    slope = (ising_exact(4, beta + d)["log_Z"] - ising_exact(4, beta - d)["log_Z"]) / (2 * d)
    assert slope == pytest.approx(-16 * mid["energy"], rel=1e-7)
    # low temperature: two ground states of energy -32, the cheapest excitation costs 8
    cold = ising_exact(4, 5.0)
    assert cold["log_Z"] == pytest.approx(5.0 * 32 + math.log(2), abs=1e-12)
    assert cold["energy"] == pytest.approx(-2.0, abs=1e-12) and cold["abs_magnetisation"] == pytest.approx(
        1.0, abs=1e-12
    )
    # flipping every spin maps h to -h
    assert ising_exact(4, 0.3, h=0.2)["log_Z"] == pytest.approx(ising_exact(4, 0.3, h=-0.2)["log_Z"], abs=1e-10)


# ================================================================ Gibbs sampling
@pytest.mark.parametrize("beta, h", [(0.3, 0.0), (0.5, 0.0), (0.4, 0.2)])
def test_gibbs_matches_exact_energy_and_magnetisation(beta, h, gen):
    L, C = 4, 1000
    n = L * L
    exact = ising_exact(L, beta, h=h)
    kernel = IsingGibbs(L, beta=beta, h=h, generator=gen)
    spins = torch.randint(0, 2, (C, L, L), generator=gen).float() * 2 - 1
    res = run(kernel, spins, 300, burn_in=100, diagnostics=False)
    s = res.samples  # (S, C, L, L)
    assert s.shape == (300, C, L, L)
    assert bool(((s == 1) | (s == -1)).all())
    energy = ising_energy(s.flatten(0, 1), h=h).reshape(300, C) / n
    mag = s.sum((2, 3)).abs() / n
    stats = torch.stack([energy, mag], 2).double()  # (S, C, 2)
    ess = effective_sample_size(stats)
    assert float(ess.min()) > 20_000, ess
    var_f = stats.flatten(0, 1).var(0)
    expected = torch.tensor([exact["energy"], exact["abs_magnetisation"]], dtype=torch.float64)
    err = (stats.mean((0, 1)) - expected).abs()
    tol = Z * torch.sqrt(var_f / ess.double())
    assert bool((err <= tol).all()), (err, tol)


def test_gibbs_state_log_p_is_minus_beta_energy(gen):
    kernel = IsingGibbs(4, beta=0.45, h=-0.1, generator=gen)
    state = kernel.init(torch.ones(7, 4, 4))
    for _ in range(3):
        state, info = kernel.step(state)
        assert torch.allclose(state.log_p, -0.45 * ising_energy(state.x, h=-0.1))
        assert bool(info.accepted.all())


def test_gibbs_half_sweeps_draw_the_exact_conditionals(gen):
    # From one fixed configuration, many chains: after a step, the first colour ((i + j) even)
    # is +1 with probability sigmoid(2 beta (J field + h)), its field from the untouched other colour;
    # the other colour then follows the same law given the first colour's new values.
    L, C, beta, J, h = 4, 40_000, 0.6, 0.8, 0.3
    start = torch.randint(0, 2, (L, L), generator=gen).float() * 2 - 1
    kernel = IsingGibbs(L, beta=beta, J=J, h=h, generator=gen)
    new = kernel.step(kernel.init(start.expand(C, L, L)))[0].x  # (C, L, L)

    def p_up(s):
        field = s.roll(1, -1) + s.roll(-1, -1) + s.roll(1, -2) + s.roll(-1, -2)
        return torch.sigmoid(2 * beta * (J * field + h))

    even = (torch.arange(L)[:, None] + torch.arange(L)[None, :]) % 2 == 0
    freq = (new == 1).double().mean(0)  # (L, L)
    p_first = p_up(start).double()
    se = torch.sqrt(p_first * (1 - p_first) / C)
    assert bool(((freq - p_first).abs() <= Z * se)[even].all())
    # second colour: its +1 indicator minus its conditional probability averages to zero
    resid = ((new == 1).double() - p_up(new).double()).mean(0)
    assert bool((resid.abs() <= Z * 0.5 / math.sqrt(C))[~even].all())
    # and a wrong temperature would be seen: sigmoid(beta ...) is far from the frequencies
    wrong = torch.sigmoid(
        beta * (J * (start.roll(1, -1) + start.roll(-1, -1) + start.roll(1, -2) + start.roll(-1, -2)) + h)
    ).double()
    assert float((freq - wrong).abs()[even].max()) > 10 * float(se.max())


def test_gibbs_is_deterministic_given_a_seeded_generator():
    spins = torch.ones(20, 4, 4)

    def once(seed):
        return run(
            IsingGibbs(4, beta=0.4, generator=torch.Generator().manual_seed(seed)), spins, 10, diagnostics=False
        ).samples

    before = torch.random.get_rng_state()
    a = once(3)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is left alone
    assert torch.equal(a, once(3))
    assert not torch.equal(a, once(4))


def test_run_diagnostics_work_for_lattice_states(gen):
    res = run(IsingGibbs(4, beta=0.3, generator=gen), torch.ones(50, 4, 4), 40)
    assert res.ess.shape == (16,) and bool((res.ess > 0).all())


# ================================================================ bad input
@pytest.mark.parametrize("L", [3, 5, 1, 0, 4.0, "4"])
def test_odd_or_bad_L_raises(L):
    with pytest.raises(ValueError, match="L must be an even int"):
        IsingGibbs(L, beta=0.3)


@pytest.mark.parametrize("beta", [-0.1, math.nan])
def test_bad_beta_raises(beta):
    with pytest.raises(ValueError, match="beta"):
        IsingGibbs(4, beta=beta)


@pytest.mark.parametrize(
    "spins, word",
    [
        # the spins check is genbook._checks.check_spins, shared with the RBM
        (torch.ones(4, 4), r"spins must be a tensor of shape \(chains, 4, 4\) of \+-1 spins"),
        (torch.ones(3, 4, 6), r"spins must be a tensor of shape \(chains, 4, 4\) of \+-1 spins"),
        (torch.ones(3, 2, 2), r"spins must be a tensor of shape \(chains, 4, 4\) of \+-1 spins"),
        (torch.zeros(3, 4, 4), r"spins must contain only \+1 and -1, found 0"),
        (
            torch.arange(48).reshape(3, 4, 4) % 2,
            r"spins must contain only \+1 and -1, found 0",
        ),  # 0/1 bits instead of -1/+1
        (torch.full((3, 4, 4), 2.0), r"spins must contain only \+1 and -1, found 2"),
    ],
)
def test_bad_spins_raise(spins, word):
    with pytest.raises(ValueError, match=word):
        IsingGibbs(4, beta=0.3).init(spins)


def test_ising_exact_refuses_large_lattices():
    with pytest.raises(ValueError, match="L <= 4"):
        ising_exact(5, 0.3)
