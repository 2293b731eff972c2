"""Restricted Boltzmann machines on +-1 spins: free energy, exact likelihood, Gibbs chains, CD, PCD, AIS.

The model of chapter 3, with the sign of the slides' exponent (eq. ``eq-rbm-joint``):

    q(S, sigma) = exp(-beta E(S, sigma)) / Z,   E(S, sigma) = S^T W sigma + a^T S + b^T sigma,

visible spins ``S (B, V)`` and hidden spins ``sigma (B, H)``, all +-1. The fields ``a`` and
``b`` are an extension (the slides have none; ``fields=False`` removes them). With this sign
a positive ``W_ki`` favours ``S_k sigma_i = -1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_float, check_int, check_spins, check_tensor
from ._random import bernoulli_spins, check_generator
from .io import Configurable
from .ising import all_spins
from .sampling import Info, State

__all__ = [
    "MAX_ENUMERATION",
    "to_spins",
    "from_spins",
    "RBM",
    "exact_kl",
    "data_correlations",
    "model_correlations",
    "BlockGibbs",
    "ContrastiveDivergence",
    "AISResult",
    "ais_log_partition",
    "base_fields_from_data",
]

MAX_ENUMERATION = 24  # 2^24 states of the smaller layer: a few seconds, in chunks


# ------------------------------------------------------------------ spins and 0/1 data
def to_spins(x: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """0/1 data to +-1 spins, ``S = 2x - 1``; anything other than 0 or 1 is an error."""
    if not isinstance(x, torch.Tensor) or not ((x == 0) | (x == 1)).all():
        bad = x[(x != 0) & (x != 1)][0].item() if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must contain only 0 and 1, found {bad}")
    return (2 * x - 1).to(dtype or torch.get_default_dtype())


def from_spins(s: torch.Tensor) -> torch.Tensor:
    """+-1 spins to 0/1 integers, ``x = (S + 1) / 2``."""
    check_spins("s", s, ("B", "units"))
    return ((s + 1) / 2).long()


def _log_2cosh(x: torch.Tensor) -> torch.Tensor:
    """``log(2 cosh x)`` without overflow: ``|x| + log(1 + exp(-2|x|))``."""
    ax = x.abs()
    return ax + torch.log1p(torch.exp(-2 * ax))


def _random_spins(n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``(n, V)`` uniformly random +-1 spins with ``like``'s dtype and device (``like`` is ``W (V, H)``)."""
    half = torch.full((n, like.shape[0]), 0.5, dtype=like.dtype, device=like.device)
    return bernoulli_spins(half, generator)


# ------------------------------------------------------------------ the model
class RBM(Configurable, nn.Module):
    """An RBM with ``n_visible`` and ``n_hidden`` +-1 units (eq. ``eq-rbm-joint``).

    ``log_prob`` is exact: it enumerates the smaller layer to get ``log Z``, which is feasible
    while that layer has at most ``MAX_ENUMERATION`` units, and raises beyond. ``loss`` is the
    exact negative log-likelihood (training by exact gradients, for tiny models); larger models
    train with :class:`ContrastiveDivergence`.
    """

    def __init__(
        self, *, n_visible: int, n_hidden: int, beta: float = 1.0, fields: bool = True, init_std: float = 0.01
    ):
        super().__init__()
        check_int("n_visible", n_visible)
        check_int("n_hidden", n_hidden)
        check_float("beta", beta, gt=0)
        check_float("init_std", init_std, ge=0)
        self.n_visible, self.n_hidden, self.beta, self.fields = n_visible, n_hidden, float(beta), bool(fields)
        self.init_std = float(init_std)
        self.W = nn.Parameter(init_std * torch.randn(n_visible, n_hidden))
        if fields:
            self.a = nn.Parameter(torch.zeros(n_visible))
            self.b = nn.Parameter(torch.zeros(n_hidden))
        else:  # the slides' model: no fields, and none to learn
            self.register_buffer("a", torch.zeros(n_visible))
            self.register_buffer("b", torch.zeros(n_hidden))

    @classmethod
    def from_binary(cls, weights: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor) -> RBM:
        """The +-1 RBM (``beta = 1``) equal to a 0/1 RBM ``p(v, h) ~ exp(v^T W01 h + c^T v + d^T h)``.

        ``weights`` is ``(V, H)``. Substituting ``v = (S + 1)/2`` and ``h = (sigma + 1)/2``
        gives ``W = -W01/4``, ``a = -(W01 1 / 4 + c / 2)``, ``b = -(W01^T 1 / 4 + d / 2)``
        and a constant that cancels against ``Z`` (eq. ``eq-rbm-binary``).
        """
        w = torch.as_tensor(weights, dtype=torch.get_default_dtype())
        c = torch.as_tensor(visible_bias, dtype=w.dtype)
        d = torch.as_tensor(hidden_bias, dtype=w.dtype)
        V, H = check_tensor("weights", w, shape=("V", "H")).shape
        check_tensor("visible_bias", c, shape=(V,))
        check_tensor("hidden_bias", d, shape=(H,))
        rbm = cls(n_visible=V, n_hidden=H)
        with torch.no_grad():
            rbm.W.copy_(-w / 4)
            rbm.a.copy_(-(w.sum(1) / 4 + c / 2))
            rbm.b.copy_(-(w.sum(0) / 4 + d / 2))
        return rbm

    # -- energies and conditionals
    def energy(self, S: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``E(S, sigma) = S^T W sigma + a^T S + b^T sigma``, ``(B, V), (B, H) -> (B,)``; ``q ~ exp(-beta E)``."""
        return ((S @ self.W) * sigma).sum(1) + S @ self.a + sigma @ self.b

    def hidden_field(self, S: torch.Tensor) -> torch.Tensor:
        """``h = W^T S + b``, ``(B, V) -> (B, H)``: ``q(sigma | S) ~ exp(-beta h^T sigma)``."""
        return S @ self.W + self.b

    def visible_field(self, sigma: torch.Tensor) -> torch.Tensor:
        """``W sigma + a``, ``(B, H) -> (B, V)``."""
        return sigma @ self.W.T + self.a

    def p_hidden(self, S: torch.Tensor) -> torch.Tensor:
        """``q(sigma_i = +1 | S) = sigmoid(-2 beta h_i)``, ``(B, V) -> (B, H)`` (eq. ``eq-rbm-conditional``)."""
        return torch.sigmoid(-2 * self.beta * self.hidden_field(S))

    def p_visible(self, sigma: torch.Tensor) -> torch.Tensor:
        """``q(S_k = +1 | sigma) = sigmoid(-2 beta (W sigma + a)_k)``, ``(B, H) -> (B, V)``."""
        return torch.sigmoid(-2 * self.beta * self.visible_field(sigma))

    def sample_hidden(self, S: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli_spins(self.p_hidden(S), generator)

    def sample_visible(self, sigma: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli_spins(self.p_visible(sigma), generator)

    def free_energy(self, S: torch.Tensor) -> torch.Tensor:
        """``F(S) = beta a^T S - sum_i log 2 cosh(beta h_i)``, so that ``q(S) = exp(-F(S)) / Z``
        (eq. ``eq-rbm-free-energy``).

        ``(B, V) -> (B,)``; the sum over the 2^H hidden states in closed form.
        """
        check_spins("S", S, ("B", self.n_visible))
        return self._free_energy(S.to(self.W.dtype))

    def _free_energy(self, S: torch.Tensor) -> torch.Tensor:
        # free_energy without the input check, for spins the package made itself (chains, enumerations)
        return self.beta * (S @ self.a) - _log_2cosh(self.beta * self.hidden_field(S)).sum(1)

    def _hidden_free_energy(self, sigma: torch.Tensor) -> torch.Tensor:
        # the same with the roles swapped: q(sigma) = exp(-G(sigma)) / Z
        return self.beta * (sigma @ self.b) - _log_2cosh(self.beta * self.visible_field(sigma)).sum(1)

    # -- exact quantities by enumeration
    def log_partition(self, *, chunk: int = 2**16) -> torch.Tensor:
        """Exact ``log Z`` (0-dim tensor) by enumerating the smaller layer
        (eqs. ``eq-rbm-joint``, ``eq-rbm-free-energy``).

        Differentiable. Raises when the smaller layer has more than ``MAX_ENUMERATION`` units.
        """
        V, H = self.n_visible, self.n_hidden
        n = min(V, H)
        if n > MAX_ENUMERATION:
            raise ValueError(
                f"exact log Z enumerates 2^{n} states; use ais_log_partition for "
                f"min(n_visible, n_hidden) > {MAX_ENUMERATION}"
            )
        minus_f = (lambda s: -self._hidden_free_energy(s)) if H <= V else (lambda s: -self._free_energy(s))
        parts = [
            torch.logsumexp(
                minus_f(all_spins(n, start=i, stop=min(i + chunk, 2**n), dtype=self.W.dtype, device=self.W.device)), 0
            )
            for i in range(0, 2**n, chunk)
        ]
        return torch.logsumexp(torch.stack(parts), 0)

    def log_prob(self, S: torch.Tensor) -> torch.Tensor:
        """Exact ``log q(S)`` in nats, ``(B, V) -> (B,)``."""
        return -self.free_energy(S) - self.log_partition()

    def loss(self, S: torch.Tensor) -> torch.Tensor:
        """Exact negative log-likelihood per pattern (exact maximum likelihood; small models only)."""
        return -self.log_prob(S).mean()

    @torch.no_grad()
    def sample(self, n: int, *, steps: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` visible configurations ``(n, V)`` after ``steps`` block-Gibbs sweeps from uniform random spins."""
        check_int("n", n)
        check_int("steps", steps)
        S = _random_spins(n, self.W, generator)
        kernel = BlockGibbs(self, generator=generator)
        state = kernel.init(S)
        for _ in range(steps):
            state, _ = kernel.step(state)
        return state.x


# ------------------------------------------------------------------ exact statistics for small models
def exact_kl(rbm: RBM, data: torch.Tensor) -> float:
    """``KL(p_data || q)`` in nats, exactly: ``p_data`` is the empirical distribution of ``data (N, V)`` spins.

    Repeated rows count with their multiplicity. Needs an enumerable model (``log_partition``).
    """
    check_spins("data", data, ("B", rbm.n_visible))
    patterns, counts = torch.unique(data, dim=0, return_counts=True)
    p = counts.double() / counts.sum()
    with torch.no_grad():
        log_q = rbm.log_prob(patterns.to(rbm.W)).double()
    return float((p * (p.log() - log_q)).sum())


def data_correlations(rbm: RBM, S: torch.Tensor) -> torch.Tensor:
    """``E_data[S_k sigma_i]`` with ``sigma ~ q(sigma | S)``, averaged over the rows of ``S``: ``(V, H)``.

    The hidden spins are summed out exactly: ``E[sigma_i | S] = -tanh(beta h_i)``.
    """
    check_spins("S", S, ("B", rbm.n_visible))
    S = S.to(rbm.W.dtype)
    return S.T @ (-torch.tanh(rbm.beta * rbm.hidden_field(S))) / S.shape[0]


def model_correlations(rbm: RBM) -> torch.Tensor:
    """``E_model[S_k sigma_i]`` under ``q(S, sigma)``, exactly, by enumerating the visible layer: ``(V, H)``."""
    if rbm.n_visible > MAX_ENUMERATION:
        raise ValueError(f"enumerating 2^{rbm.n_visible} visible states; n_visible must be <= {MAX_ENUMERATION}")
    S = all_spins(rbm.n_visible, dtype=rbm.W.dtype, device=rbm.W.device)
    q = torch.softmax(-rbm._free_energy(S), 0)  # q(S) over every visible state
    return (S * q[:, None]).T @ (-torch.tanh(rbm.beta * rbm.hidden_field(S)))


# ------------------------------------------------------------------ Gibbs chains and training
class BlockGibbs:
    """Block Gibbs sampling of an RBM as a ``genbook.sampling`` kernel (eq. ``eq-rbm-gibbs``).

    One step draws every hidden spin given the visible ones, then every visible spin given
    the hidden ones; each layer is conditionally independent given the other. The state is
    the visible layer ``x = S (C, V)`` with ``log_p = -F(S)`` (unnormalised); the last hidden
    draw is kept as ``self.last_hidden``.
    """

    def __init__(self, rbm: RBM, *, generator: torch.Generator | None = None):
        self.rbm, self.generator, self.last_hidden = rbm, generator, None

    def init(self, S0: torch.Tensor) -> State:
        check_spins("S0", S0, ("B", self.rbm.n_visible))
        check_generator(self.generator, S0.device)
        with torch.no_grad():
            S = S0.to(self.rbm.W.dtype)
            return State(S, -self.rbm._free_energy(S))

    @torch.no_grad()
    def step(self, state: State):
        sigma = self.rbm.sample_hidden(state.x, generator=self.generator)
        S = self.rbm.sample_visible(sigma, generator=self.generator)
        self.last_hidden = sigma
        log_p = -self.rbm._free_energy(S)  # S is +-1 by construction: no check on every step
        return State(S, log_p), Info.all_accepted(log_p)


class ContrastiveDivergence(nn.Module):
    """CD-k and persistent CD for :func:`genbook.fit` (eqs. ``eq-cd``, ``eq-pcd``).

    ``loss(S)`` is the surrogate ``mean F(S_data) - mean F(S_neg)`` with the negatives held
    fixed: its gradient is minus the CD estimate of the log-likelihood gradient (the data
    term exact, the model term from the chains). It is not a likelihood, and its value says
    little; use :func:`exact_kl` or ``rbm.log_prob`` (small models) or AIS to judge a model.
    CD-k starts ``k`` Gibbs steps at the batch; PCD (``persistent=True``) continues ``chains``
    chains from where the previous step left them.
    """

    def __init__(
        self,
        rbm: RBM,
        *,
        k: int = 1,
        persistent: bool = False,
        chains: int = 100,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        check_int("k", k)
        check_int("chains", chains)
        self.rbm, self.k, self.persistent, self.chains, self.generator = rbm, k, persistent, chains, generator
        self.negatives: torch.Tensor | None = None

    def negative_samples(self, S: torch.Tensor) -> torch.Tensor:
        if self.persistent and self.negatives is None:
            self.negatives = _random_spins(self.chains, self.rbm.W, self.generator)
        kernel = BlockGibbs(self.rbm, generator=self.generator)
        state = kernel.init(self.negatives if self.persistent else S)
        for _ in range(self.k):
            state, _ = kernel.step(state)
        if self.persistent:
            self.negatives = state.x
        return state.x

    def loss(self, S: torch.Tensor) -> torch.Tensor:
        check_spins("S", S, ("B", self.rbm.n_visible))
        S = S.to(self.rbm.W.dtype)
        negatives = self.negative_samples(S)
        return self.rbm._free_energy(S).mean() - self.rbm._free_energy(negatives).mean()


# ------------------------------------------------------------------ annealed importance sampling
@dataclass
class AISResult:
    """``log_Z`` estimate, its standard error (delta method) and the ``log_weights (chains,)``."""

    log_Z: float
    std_err: float
    log_weights: torch.Tensor


@torch.no_grad()
def ais_log_partition(
    rbm: RBM,
    *,
    n_temps: int = 1000,
    chains: int = 100,
    base_fields: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Estimate ``log Z`` by annealed importance sampling (eq. ``eq-ais``).

    The path ``E_t = t E + (1 - t) a0^T S`` for ``t`` from 0 to 1 in ``n_temps`` equal steps
    starts at independent visible spins with fields ``a0`` (``base_fields``, default 0, i.e.
    uniform), whose ``log Z_0 = H log 2 + sum_k log 2 cosh(beta a0_k)`` is known. Each chain
    moves by one block-Gibbs step per temperature. ``E[Z_hat] = Z``, so ``log Z_hat`` is too
    low on average (Jensen); ``std_err`` reports its spread.
    """
    check_int("n_temps", n_temps)
    check_int("chains", chains, min=2)
    dev, dt, beta = rbm.W.device, rbm.W.dtype, rbm.beta
    a0 = (
        torch.zeros(rbm.n_visible, device=dev, dtype=dt)
        if base_fields is None
        else base_fields.to(device=dev, dtype=dt)
    )
    check_tensor("base_fields", a0, shape=(rbm.n_visible,))

    def minus_f(S: torch.Tensor, t: float) -> torch.Tensor:  # log of the unnormalised marginal at t
        a_t = t * rbm.a + (1 - t) * a0
        return -beta * (S @ a_t) + _log_2cosh(beta * t * rbm.hidden_field(S)).sum(1)

    log_Z0 = rbm.n_hidden * math.log(2) + _log_2cosh(beta * a0).sum()
    S = bernoulli_spins(torch.sigmoid(-2 * beta * a0).expand(chains, -1).contiguous(), generator)
    log_w = torch.zeros(chains, device=dev, dtype=torch.float64)
    ts = torch.linspace(0, 1, n_temps + 1).tolist()
    for t_prev, t in zip(ts[:-1], ts[1:]):
        log_w += (minus_f(S, t) - minus_f(S, t_prev)).double()
        # a block-Gibbs step that leaves the distribution at t invariant
        sigma = bernoulli_spins(torch.sigmoid(-2 * beta * t * rbm.hidden_field(S)), generator)
        S = bernoulli_spins(torch.sigmoid(-2 * beta * (t * (sigma @ rbm.W.T) + t * rbm.a + (1 - t) * a0)), generator)
    log_mean_w = torch.logsumexp(log_w, 0) - math.log(chains)
    w = torch.exp(log_w - log_w.max())
    rel_se = float(w.std() / w.mean()) / math.sqrt(chains)  # se of log(mean w) by the delta method
    return AISResult(float(log_Z0 + log_mean_w), rel_se, log_w)


def base_fields_from_data(S: torch.Tensor, *, beta: float = 1.0, eps: float = 1e-3) -> torch.Tensor:
    """Fields ``a0`` of independent spins that match the data's means: ``a0_k = -atanh(m_k) / beta``.

    A base distribution for :func:`ais_log_partition` closer to a trained model than the
    uniform one (means clipped to ``+-(1 - 2 eps)`` so ``atanh`` stays finite).
    """
    check_spins("S", S, ("B", "units"))
    m = S.double().mean(0).clamp(-1 + 2 * eps, 1 - 2 * eps)
    return (-torch.atanh(m) / beta).to(torch.get_default_dtype())
