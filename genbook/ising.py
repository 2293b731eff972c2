"""The 2-D Ising model: energy, exact enumeration on small lattices, and checkerboard Gibbs sampling.

Used in chapter 2 (Gibbs sampling, the cost of the partition function) and by the
energy-based models of chapter 3.
"""

from __future__ import annotations

import torch

from ._checks import check_float, check_int, check_spins
from ._random import bernoulli_spins, check_generator
from .sampling import Info, State

__all__ = ["all_spins", "ising_energy", "ising_exact", "IsingGibbs"]


def all_spins(n: int, *, start: int = 0, stop: int | None = None, dtype=torch.float64, device=None) -> torch.Tensor:
    """Configurations ``start .. stop - 1`` of ``n`` spins in binary order: ``(stop - start, n)`` of +-1.

    Bit ``j`` of the configuration's index is spin ``j`` (0 -> -1, 1 -> +1); slices let a caller
    enumerate 2^n states in chunks.
    """
    stop = 2**n if stop is None else stop
    codes = torch.arange(start, stop, device=device)
    bits = (codes[:, None] >> torch.arange(n, device=device)) & 1
    return (2 * bits - 1).to(dtype)


def ising_energy(spins: torch.Tensor, *, J: float = 1.0, h: float = 0.0) -> torch.Tensor:
    """``E(s) = -J sum_<ij> s_i s_j - h sum_i s_i`` on an L x L periodic lattice: ``(B, L, L) -> (B,)``."""
    bonds = spins * torch.roll(spins, 1, dims=1) + spins * torch.roll(spins, 1, dims=2)
    return -J * bonds.sum((1, 2)) - h * spins.sum((1, 2))


def ising_exact(L: int, beta: float, *, J: float = 1.0, h: float = 0.0) -> dict[str, float]:
    """Exact ``log Z``, mean energy per site and mean |magnetisation| per site by enumerating all 2^(L^2) states.

    Feasible up to L = 4 (65,536 states); the count doubles with every added spin.
    """
    n = check_int("L", L) ** 2
    if n > 20:
        raise ValueError(f"enumeration needs 2**{n} states; use L <= 4")
    spins = all_spins(n).reshape(-1, L, L)  # (2^n, L, L), float64
    E = ising_energy(spins, J=J, h=h)
    log_w = -beta * E
    log_Z = torch.logsumexp(log_w, 0)
    w = torch.exp(log_w - log_Z)
    mag = spins.sum((1, 2)).abs() / n
    return {"log_Z": float(log_Z), "energy": float((w * E).sum() / n), "abs_magnetisation": float((w * mag).sum())}


class IsingGibbs:
    """Block Gibbs sampling of the 2-D Ising model with checkerboard updates (eq. ``eq-ising-gibbs``).

    The two colours of a checkerboard do not touch, so all spins of one colour are
    independent given the other and are drawn at once from
    ``p(s_i = +1 | neighbours) = sigmoid(2 beta (J sum_nb s_j + h))``.
    Chains are batched: states are ``(C, L, L)`` tensors of +-1.
    """

    def __init__(self, L: int, *, beta: float, J: float = 1.0, h: float = 0.0, generator=None):
        if not isinstance(L, int) or isinstance(L, bool) or L < 2 or L % 2:
            raise ValueError(f"L must be an even int >= 2 (checkerboard with periodic edges), got {L!r}")
        self.L, self.beta, self.J, self.h = L, check_float("beta", beta, ge=0), check_float("J", J), check_float("h", h)
        self.generator = generator
        ij = torch.arange(L)
        self.colour = ((ij[:, None] + ij[None, :]) % 2).bool()  # (L, L)

    def init(self, spins: torch.Tensor) -> State:
        check_spins("spins", spins, ("chains", self.L, self.L))
        check_generator(self.generator, spins.device)
        s = spins.float()
        return State(s, -self.beta * ising_energy(s, J=self.J, h=self.h))

    def step(self, state: State) -> tuple[State, Info]:
        s = state.x.clone()
        colour = self.colour.to(s.device)
        for c in (False, True):
            field = torch.roll(s, 1, 1) + torch.roll(s, -1, 1) + torch.roll(s, 1, 2) + torch.roll(s, -1, 2)
            p_up = torch.sigmoid(2 * self.beta * (self.J * field + self.h))
            s = torch.where(colour == c, bernoulli_spins(p_up, self.generator), s)
        log_p = -self.beta * ising_energy(s, J=self.J, h=self.h)
        return State(s, log_p), Info.all_accepted(log_p)
