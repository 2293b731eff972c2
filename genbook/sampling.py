"""Chapter 2: sampling. Markov chain Monte Carlo kernels in torch, in the style of blackjax.

A kernel has ``init(x0) -> state`` and ``step(state) -> (state, info)``. Chains are
batched on dim 0: ``x0`` of shape ``(C, D)`` runs ``C`` independent chains at once, on
whatever device ``x0`` lives on. ``run`` drives a kernel and returns the samples with
their diagnostics (acceptance rate, effective sample size, R-hat).

Targets are given as ``log_prob(x) -> (C,)``, the log of an *unnormalised* density
``p~ = e^{-E}`` (eq. ``eq-mcmc-target``): no kernel here needs the normaliser Z.
"""

from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import torch

from . import _random
from ._checks import check_bool, check_finite, check_float, check_int, check_tensor

__all__ = [
    "State",
    "Info",
    "RandomWalkMetropolis",
    "IndependentMetropolisHastings",
    "MALA",
    "Langevin",
    "GaussianGibbs",
    "RunResult",
    "run",
    "autocovariance",
    "autocorrelation",
    "effective_sample_size",
    "split_rhat",
    "mh_transition_matrix",
    "gaussian_target",
    "ill_conditioned_cov",
    "banana_log_prob",
]

LogProb = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------ random numbers
# Draws follow genbook._random's policy: on the chains' device, with a generator on that device.
def _log_uniform(n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    u = _random.rand(n, generator, device=like.device, dtype=like.dtype)
    return torch.log(u.clamp_min(torch.finfo(like.dtype).tiny))


# ------------------------------------------------------------------ states and checks
@dataclass
class State:
    """Where the chains are: ``x (C, D)``, ``log_p (C,)`` and, for gradient kernels, ``grad (C, D)``."""

    x: torch.Tensor
    log_p: torch.Tensor
    grad: torch.Tensor | None = None


@dataclass
class Info:
    """What one step did, per chain: ``accepted (C,)`` and the log acceptance probability ``log_alpha (C,)``."""

    accepted: torch.Tensor
    log_alpha: torch.Tensor

    @classmethod
    def all_accepted(cls, log_p: torch.Tensor) -> Info:
        """The ``Info`` of a kernel whose every move is taken (Gibbs, unadjusted Langevin)."""
        return cls(accepted=torch.ones_like(log_p, dtype=torch.bool), log_alpha=torch.zeros_like(log_p))


def _evaluate(log_prob: LogProb, x: torch.Tensor) -> torch.Tensor:
    log_p = log_prob(x)
    if not isinstance(log_p, torch.Tensor) or log_p.shape != (x.shape[0],):
        got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
        raise ValueError(f"log_prob must map (C, D) -> (C,) = ({x.shape[0]},), got {got}")
    return log_p


def _check_start(log_prob: LogProb, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_finite("x0", check_tensor("x0", x0, shape=("chains", "dims"), dtype="float"))
    log_p = _evaluate(log_prob, x0)
    bad = ~torch.isfinite(log_p)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"log_prob is {float(log_p[first])} at the start of chain {first} (x0[{first}]); "
            "start every chain where the target density is positive"
        )
    return x0, log_p


def _init_state(log_prob: LogProb, generator: torch.Generator | None, x0: torch.Tensor) -> State:
    """The chains' starting state after checking ``x0``, the generator's device and ``log_prob`` there."""
    _random.check_generator(generator, x0.device)
    x0, log_p = _check_start(log_prob, x0)
    return State(x0, log_p)


def _value_and_grad(log_prob: LogProb, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        log_p = _evaluate(log_prob, xg)
        (grad,) = torch.autograd.grad(log_p.sum(), xg)
    return log_p.detach(), grad


def _accept(state: State, proposal: State, log_alpha: torch.Tensor, generator) -> tuple[State, Info]:
    """Metropolis-Hastings accept/reject, chain by chain (eq. ``eq-mh-acceptance``)."""
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf).clamp(max=0.0)
    accepted = _log_uniform(log_alpha.shape[0], state.x, generator) < log_alpha
    keep = accepted[:, None]
    new = State(
        x=torch.where(keep, proposal.x, state.x),
        log_p=torch.where(accepted, proposal.log_p, state.log_p),
        grad=None if state.grad is None else torch.where(keep, proposal.grad, state.grad),
    )
    return new, Info(accepted=accepted, log_alpha=log_alpha)


# ------------------------------------------------------------------ kernels
class RandomWalkMetropolis:
    """Metropolis with a symmetric Gaussian proposal ``a* = a + step_size * eps`` (eq. ``eq-rwm``).

    The proposal is symmetric, so the Hastings ratio of proposal densities cancels and
    ``A = min(1, p~(a*) / p~(a))``.
    """

    def __init__(self, log_prob: LogProb, *, step_size: float, generator: torch.Generator | None = None):
        self.log_prob, self.step_size, self.generator = log_prob, check_float("step_size", step_size, gt=0), generator

    def init(self, x0: torch.Tensor) -> State:
        return _init_state(self.log_prob, self.generator, x0)

    def step(self, state: State) -> tuple[State, Info]:
        x_new = state.x + self.step_size * _random.randn_like(state.x, self.generator)
        proposal = State(x_new, _evaluate(self.log_prob, x_new))
        return _accept(state, proposal, proposal.log_p - state.log_p, self.generator)


class IndependentMetropolisHastings:
    """Metropolis-Hastings with a proposal that ignores the current point: ``a* ~ q`` (eq. ``eq-mh-acceptance``).

    ``q`` is a ``torch.distributions`` object with ``event_shape (D,)``. The proposal is
    not symmetric, so the acceptance keeps the ratio ``q(a) / q(a*)``.

    ``hastings=False`` builds the wrong chain on purpose, for teaching: it leaves the
    ratio of proposal densities out, as if the proposal were symmetric, and so samples the
    density proportional to ``p~ * q`` instead of ``p`` (detailed balance with
    ``min(1, f(a*)/f(a))`` and an independent proposal holds for ``pi ~ f q``).
    """

    def __init__(
        self, log_prob: LogProb, proposal: torch.distributions.Distribution, *, generator=None, hastings: bool = True
    ):
        check_bool("hastings", hastings)
        self.log_prob, self.proposal, self.generator, self.hastings = log_prob, proposal, generator, hastings

    def init(self, x0: torch.Tensor) -> State:
        return _init_state(self.log_prob, self.generator, x0)

    def step(self, state: State) -> tuple[State, Info]:
        x_new = self._draw(state.x.shape[0], state.x)
        proposal = State(x_new, _evaluate(self.log_prob, x_new))
        # an independent proposal has q(a -> a*) = q(a*) and q(a* -> a) = q(a)
        log_q_forward = self.proposal.log_prob(x_new)
        log_q_backward = self.proposal.log_prob(state.x)
        log_alpha = proposal.log_p - state.log_p
        if self.hastings:
            log_alpha = log_alpha + log_q_backward - log_q_forward
        return _accept(state, proposal, log_alpha, self.generator)

    def _draw(self, n: int, like: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            return self.proposal.sample((n,)).to(like)
        # torch.distributions cannot take a generator: a Gaussian is drawn as loc + L eps, anything
        # else by inverse transform when it offers icdf; otherwise refuse rather than ignore the generator.
        q = self.proposal
        if isinstance(q, torch.distributions.MultivariateNormal):
            eps = _random.randn((n, *q.event_shape), self.generator, device=like.device, dtype=like.dtype)
            return q.loc.to(like) + eps @ q.scale_tril.to(like).mT
        base = q.base_dist if isinstance(q, torch.distributions.Independent) else q
        try:
            u = _random.rand((n, *q.event_shape), self.generator, device=like.device, dtype=like.dtype)
            return base.icdf(u)
        except NotImplementedError as err:
            raise ValueError("this proposal has no icdf; pass generator=None to use torch's global generator") from err


class _LangevinKernel:
    """What the two Langevin kernels share: the gradient at the start and the Langevin move."""

    def __init__(self, log_prob: LogProb, *, step_size: float, generator: torch.Generator | None = None):
        self.log_prob, self.step_size, self.generator = log_prob, check_float("step_size", step_size, gt=0), generator

    def init(self, x0: torch.Tensor) -> State:
        x0 = _init_state(self.log_prob, self.generator, x0).x
        log_p, grad = _value_and_grad(self.log_prob, x0)
        return State(x0, log_p, grad)

    def _move(self, state: State) -> torch.Tensor:
        """``x + eta grad log p(x) + sqrt(2 eta) eps`` (eq. ``eq-langevin``)."""
        eta = self.step_size
        return state.x + eta * state.grad + math.sqrt(2 * eta) * _random.randn_like(state.x, self.generator)


class MALA(_LangevinKernel):
    """Metropolis-adjusted Langevin: a Langevin step as proposal, then accept/reject (eq. ``eq-mala``).

    Proposal ``a* = a + eta grad log p(a) + sqrt(2 eta) eps``, an asymmetric Gaussian
    ``q(a -> a*) = N(a*; a + eta grad log p(a), 2 eta I)``, so the Hastings ratio stays in.
    """

    def _log_q(self, to: torch.Tensor, frm: torch.Tensor, grad_frm: torch.Tensor) -> torch.Tensor:
        mean = frm + self.step_size * grad_frm
        return -((to - mean) ** 2).sum(1) / (4 * self.step_size)

    def step(self, state: State) -> tuple[State, Info]:
        x_new = self._move(state)
        log_p_new, grad_new = _value_and_grad(self.log_prob, x_new)
        proposal = State(x_new, log_p_new, grad_new)
        log_alpha = (
            log_p_new - state.log_p + self._log_q(state.x, x_new, grad_new) - self._log_q(x_new, state.x, state.grad)
        )
        return _accept(state, proposal, log_alpha, self.generator)


class Langevin(_LangevinKernel):
    """Unadjusted Langevin algorithm: ``x <- x + eta grad log p(x) + sqrt(2 eta) eps`` (eq. ``eq-langevin``).

    Every step is taken (no accept/reject), so the chain samples a distribution that
    differs from ``p`` by O(eta); :class:`MALA` removes that bias. The chain is not built
    on detailed balance: it discretises a diffusion whose stationary density is ``p``.
    Its ``Info`` marks every move accepted, so ``run`` reports an acceptance rate of 1:
    that says there is no accept step, it is not a measured rate.
    """

    def step(self, state: State) -> tuple[State, Info]:
        x_new = self._move(state)
        if not torch.isfinite(x_new).all():
            raise FloatingPointError(
                f"Langevin chains diverged (non-finite x) with step_size={self.step_size}; lower it"
            )
        log_p, grad = _value_and_grad(self.log_prob, x_new)
        return State(x_new, log_p, grad), Info.all_accepted(log_p)


class GaussianGibbs:
    """Systematic-scan Gibbs sampling of ``N(mean, cov)``: each coordinate from its exact conditional
    (eq. ``eq-gibbs``).

    ``x_i | x_-i ~ N(mu_i - (1/Lambda_ii) sum_{j != i} Lambda_ij (x_j - mu_j), 1/Lambda_ii)``
    with ``Lambda = cov^{-1}``. Every move is accepted: Gibbs is Metropolis-Hastings whose
    proposal is the conditional itself, for which the acceptance is exactly 1.
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, *, generator: torch.Generator | None = None):
        D = check_tensor("mean", mean, shape=("D",)).shape[0]
        check_tensor("cov", cov, shape=(D, D))
        self.mean, self.precision, self.generator = mean, torch.linalg.inv(cov), generator
        self._log_prob = gaussian_target(mean, cov)

    def init(self, x0: torch.Tensor) -> State:
        return _init_state(self._log_prob, self.generator, x0)

    def step(self, state: State) -> tuple[State, Info]:
        x = state.x.clone()
        P, mu = self.precision.to(x), self.mean.to(x)
        for i in range(x.shape[1]):
            others = (x - mu) @ P[i] - (x[:, i] - mu[i]) * P[i, i]  # sum over j != i
            cond_mean = mu[i] - others / P[i, i]
            x[:, i] = cond_mean + _random.randn_like(x[:, i], self.generator) / torch.sqrt(P[i, i])
        log_p = self._log_prob(x)
        return State(x, log_p), Info.all_accepted(log_p)


# ------------------------------------------------------------------ driver
@dataclass
class RunResult:
    """Samples ``(steps, C, D)`` after burn-in and thinning, with diagnostics per coordinate.

    Without diagnostics (``run(..., diagnostics=False)``, or fewer than 4 kept steps) ``ess``
    and ``rhat`` are NaN, and :attr:`ess_per_second` raises instead of passing the NaN on."""

    samples: torch.Tensor
    acceptance_rate: float
    ess: torch.Tensor  # (D,) effective sample size over all chains
    rhat: torch.Tensor  # (D,) split R-hat
    seconds: float

    @property
    def ess_per_second(self) -> torch.Tensor:
        """``ess / seconds`` per coordinate, ``(D,)``."""
        if bool(self.ess.isnan().any()):
            raise ValueError(
                "ess_per_second needs the run's ESS, but this run has none (run(..., diagnostics=False), or fewer "
                "than 4 kept steps); use effective_sample_size(result.samples) / result.seconds"
            )
        return self.ess / self.seconds


def run(
    kernel,
    x0: torch.Tensor,
    n_steps: int,
    *,
    burn_in: int = 0,
    thin: int = 1,
    diagnostics: bool = True,
    workers: int = 1,
) -> RunResult:
    """Run ``kernel`` from ``x0 (C, D)`` for ``burn_in + n_steps`` steps; keep every ``thin``-th after burn-in.

    ``workers > 1`` (CPU only) splits the ``C`` chains into that many groups and steps
    each group in its own thread, with torch's intra-op threads set to 1 meanwhile (and
    restored after), so a multi-core CPU runs the groups side by side instead of sharing
    its cores inside every small operation. The chains are independent, so the result is
    the same Markov chain; each group gets a copy of ``kernel`` (``copy.copy``, so the
    copies share its target and parameters) with its own ``torch.Generator``, seeded from
    ``kernel.generator`` (or from torch's global generator when that is ``None``): seeded
    runs stay reproducible for a given ``workers``, but differ from ``workers=1``.
    ``log_prob`` must be safe to call from several threads (plain torch functions are).
    """
    check_int("n_steps", n_steps)
    check_int("burn_in", burn_in, min=0)
    check_int("thin", thin)
    check_int("workers", workers)
    if workers > 1:
        if x0.device.type != "cpu":
            raise ValueError(f"workers={workers} splits chains over CPU threads; x0 is on {x0.device}, use workers=1")
        if x0.shape[0] < workers:
            raise ValueError(
                f"workers must be at most the number of chains, got workers={workers} for {x0.shape[0]} chains"
            )
        if not hasattr(kernel, "generator"):
            raise ValueError(f"workers > 1 needs a kernel with a `generator` attribute, got {type(kernel).__name__}")
    t0 = time.perf_counter()
    if workers == 1:
        kept, accepted = _run_chains(kernel, x0, n_steps, burn_in, thin)
    else:
        seeds = _random.randint(0, 2**62, (workers,), kernel.generator).tolist()
        groups = []
        for seed, part in zip(seeds, x0.chunk(workers)):
            k = copy.copy(kernel)
            k.generator = torch.Generator().manual_seed(seed)
            groups.append((k, part))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda g: _run_chains(*g, n_steps, burn_in, thin), groups))
        finally:
            torch.set_num_threads(threads)
        kept = [torch.cat(xs) for xs in zip(*(r[0] for r in results))]  # each (C, D)
        # the mean over all chains: each group's rate weighted by its number of chains
        accepted = sum(rate * len(part) for (_, rate), (_, part) in zip(results, groups)) / len(x0)
    if x0.is_cuda:
        torch.cuda.synchronize(x0.device)
    seconds = time.perf_counter() - t0
    samples = torch.stack(kept)  # (S, C, D)
    flat = samples.flatten(2)  # (S, C, D): lattice states (C, L, L) become D = L * L coordinates
    if diagnostics and samples.shape[0] >= 4:
        ess, rhat = effective_sample_size(flat), split_rhat(flat)
    else:
        D = flat.shape[2]
        ess, rhat = torch.full((D,), math.nan), torch.full((D,), math.nan)
    return RunResult(samples, float(accepted), ess, rhat, seconds)


def _run_chains(kernel, x0: torch.Tensor, n_steps: int, burn_in: int, thin: int) -> tuple[list, torch.Tensor]:
    """The kept states (each ``(C, D)``) and the mean acceptance rate after burn-in (a 0-d tensor)."""
    state = kernel.init(x0)
    kept, accepted = [], torch.zeros((), dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        for t in range(burn_in + n_steps):
            state, info = kernel.step(state)
            if t >= burn_in:
                accepted += info.accepted.double().mean()  # stays on the device: no sync per step
                if (t - burn_in) % thin == 0:
                    kept.append(state.x)
    return kept, accepted / n_steps


# ------------------------------------------------------------------ diagnostics
def autocovariance(samples: torch.Tensor, *, center: bool = True) -> torch.Tensor:
    """Autocovariance of each chain and coordinate by FFT, ``(S, C, D) -> (S, C, D)`` (divided by S).

    ``center=False`` takes ``samples`` as already centred (e.g. about the mean of all chains).
    """
    check_tensor("samples", samples, shape=("steps", "chains", "dims"))
    x = samples.double() - samples.double().mean(0, keepdim=True) if center else samples.double()
    n = x.shape[0]
    f = torch.fft.rfft(x, n=2 * n, dim=0)  # zero-padded: no wrap-around
    return torch.fft.irfft(f * f.conj(), n=2 * n, dim=0)[:n] / n


def autocorrelation(samples: torch.Tensor) -> torch.Tensor:
    """Autocorrelation of each chain and coordinate: ``(S, C, D) -> (S, C, D)``, lag 0 = 1 (eq. ``eq-acf``)."""
    acov = autocovariance(samples)
    return acov / acov[:1].clamp_min(torch.finfo(acov.dtype).tiny)


def effective_sample_size(samples: torch.Tensor) -> torch.Tensor:
    """ESS per coordinate over all chains, ``(S, C, D) -> (D,)`` (eq. ``eq-ess``).

    ``ESS = C S / (1 + 2 sum_t rho_t)``. The autocovariance is measured about the mean of
    all chains together, so chains stuck in different places count as highly correlated
    rather than as independent draws; the sum runs over Geyer's initial monotone sequence
    (pairs ``rho_{2k} + rho_{2k+1}``, made non-increasing, while positive).
    """
    S, C, _ = samples.shape
    if S < 4:
        raise ValueError(f"samples need at least 4 steps for an ESS, got {S}")
    x = samples.double()
    acov = autocovariance(x - x.mean((0, 1)), center=False).mean(1)  # (S, D), about the pooled mean
    rho = acov / acov[:1].clamp_min(torch.finfo(acov.dtype).tiny)
    m = (S - 1) // 2
    pairs = rho[: 2 * m : 2] + rho[1 : 2 * m : 2]  # (m, D)
    positive = torch.cumprod((pairs > 0).double(), dim=0)  # stop at the first non-positive pair
    pairs = torch.cummin(pairs, dim=0).values  # initial monotone sequence: noise cannot add a tail
    tau = -1 + 2 * (pairs * positive).sum(0)
    tau = tau.clamp_min(1.0 / math.log10(max(S, 10)))  # antithetic chains cannot beat the cap
    return (C * S / tau).float()


def split_rhat(samples: torch.Tensor) -> torch.Tensor:
    """Split R-hat per coordinate, ``(S, C, D) -> (D,)``: near 1 when the chains agree (eq. ``eq-rhat``)."""
    S = samples.shape[0] - samples.shape[0] % 2
    halves = torch.cat([samples[: S // 2], samples[S // 2 : S]], dim=1).double()  # (S/2, 2C, D)
    n = halves.shape[0]
    chain_means = halves.mean(0)  # (2C, D)
    within = halves.var(0, correction=1).mean(0)  # W
    between = n * chain_means.var(0, correction=1)  # B
    var_plus = (n - 1) / n * within + between / n
    return torch.sqrt(var_plus / within.clamp_min(torch.finfo(within.dtype).tiny)).float()


# ------------------------------------------------------------------ exact tools for small state spaces
def mh_transition_matrix(p_tilde: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
    """The Metropolis-Hastings transition matrix ``P[b, a] = p(b -> a)`` on a finite space (eq. ``eq-mh-db``).

    ``p_tilde (K,)`` is the unnormalised target, ``proposal (K, K)`` has rows ``q(b -> .)``
    that sum to 1. Off the diagonal ``P[b, a] = q(b -> a) min(1, p~(a) q(a -> b) / (p~(b) q(b -> a)))``;
    the rejected mass stays on the diagonal.
    """
    K = check_tensor("p_tilde", p_tilde, shape=("K",)).shape[0]
    check_tensor("proposal", proposal, shape=(K, K))
    if not bool((p_tilde > 0).all() and torch.isfinite(p_tilde).all()):
        raise ValueError("p_tilde must be finite and positive on every state")
    if (proposal < 0).any() or not torch.allclose(proposal.sum(1), torch.ones(K, dtype=proposal.dtype)):
        raise ValueError("proposal rows must be probability vectors (non-negative, summing to 1)")
    p, q = p_tilde.double(), proposal.double()
    ratio = (p[None, :] * q.T) / (p[:, None] * q)  # [b, a] = p(a) q(a->b) / (p(b) q(b->a))
    accept = torch.where(q > 0, torch.clamp(ratio, max=1.0), torch.zeros_like(q))
    P = q * accept
    P.fill_diagonal_(0.0)
    P += torch.diag(1.0 - P.sum(1))
    return P


# ------------------------------------------------------------------ targets with known moments
def gaussian_target(mean: torch.Tensor, cov: torch.Tensor) -> LogProb:
    """``log N(x; mean, cov)`` as a batched log-density ``(C, D) -> (C,)``.

    The Cholesky factor and the log-determinant are computed once, here; a call costs one
    triangular solve, or O(C D) when ``cov`` is diagonal (as from :func:`ill_conditioned_cov`).
    """
    D = check_tensor("mean", mean, shape=("D",)).shape[0]
    check_tensor("cov", cov, shape=(D, D))
    chol = torch.linalg.cholesky(cov)  # raises unless cov is symmetric positive definite
    const = -0.5 * D * math.log(2 * math.pi) - torch.log(torch.diagonal(chol)).sum()
    if torch.equal(cov, torch.diag(torch.diagonal(cov))):
        inv_sd = 1.0 / torch.diagonal(chol)

        def log_prob(x: torch.Tensor) -> torch.Tensor:
            z = (x - mean) * inv_sd
            return -0.5 * (z * z).sum(-1) + const

    else:

        def log_prob(x: torch.Tensor) -> torch.Tensor:
            z = torch.linalg.solve_triangular(chol, (x - mean).T, upper=False)  # (D, C)
            return -0.5 * (z * z).sum(0) + const

    return log_prob


def ill_conditioned_cov(dim: int, condition: float, *, dtype=torch.float64) -> torch.Tensor:
    """A diagonal covariance whose variances are log-spaced from 1 to ``condition`` (its condition number)."""
    check_int("dim", dim)
    check_float("condition", condition, ge=1)
    return torch.diag(torch.logspace(0, math.log10(condition), dim, dtype=dtype))


def banana_log_prob(x: torch.Tensor, *, b: float = 0.1, scale: float = 10.0) -> torch.Tensor:
    """The banana of Haario et al.: ``x1 ~ N(0, scale^2)``, ``x2 + b x1^2 - b scale^2 ~ N(0, 1)``.

    A Gaussian bent by ``x2 -> x2 + b (x1^2 - scale^2)``, a map with Jacobian 1, so the
    density is normalised and its moments are known: ``E[x] = 0``, ``Var x1 = scale^2``,
    ``Var x2 = 1 + 2 b^2 scale^4``. ``(C, 2) -> (C,)``.
    """
    x1, x2 = x[:, 0], x[:, 1]
    y2 = x2 + b * (x1**2 - scale**2)
    return -0.5 * (x1 / scale) ** 2 - 0.5 * y2**2 - math.log(2 * math.pi * scale)
