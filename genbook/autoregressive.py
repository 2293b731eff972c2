"""Autoregressive models of discrete sequences: Markov chains, window MLPs, causal convolutions.

Every model here factorises ``q(x) = prod_d q(x_d | x_<d)`` over a sequence of ``length``
positions, each taking one of ``levels`` values (eq. ``eq-ar-factorisation``), and offers
``log_prob(x) -> (B,)`` in nats, ``loss(x)`` (mean NLL), ``conditionals(x) -> (B, D, K)``
log-probabilities and ``sample(n)``. Sequences are ``LongTensor (B, D)`` with values in
``0 .. levels - 1``; the digits are their 8 x 8 images in raster order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from ._checks import check_choice, check_float, check_int, check_sequences
from ._device import eval_mode, model_device
from .io import Configurable

__all__ = ["check_sequences", "MarkovChain", "WindowMLP", "CausalConv1d", "ConvARM"]


class _Autoregressive(Configurable, nn.Module):
    """What every model shares: the likelihood from the conditionals, and sampling one position at a time."""

    levels: int
    length: int | None

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, D, K) log q(. | x_<d)
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log q(x) = sum_d sum_l [x_d = l] log theta_{d,l}`` in nats, ``(B, D) -> (B,)``
        (eq. ``eq-ar-likelihood``)."""
        x = check_sequences(x, self.levels, self.length).to(self._device())
        logp = self.conditionals(x)  # (B, D, K)
        return logp.gather(2, x[:, :, None]).squeeze(2).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, *, length: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` sequences ``(n, D)``, drawn position by position from ``q(x_d | x_<d)``.

        ``length`` is needed only by models that take sequences of any length (``length=None``).
        """
        check_int("n", n)
        check_int("length", length, optional=True)
        if length is None and self.length is None:
            raise ValueError("length must be given: this model takes sequences of any length")
        if length is not None and self.length is not None and length != self.length:
            raise ValueError(f"length must be {self.length} (the model's), got {length}")
        D = self.length if length is None else length
        dev = self._device()
        x = torch.zeros(n, D, dtype=torch.long, device=dev)
        with eval_mode(self):
            for d in range(D):
                probs = self.conditionals(x)[:, d].exp()  # (n, K); positions >= d do not matter
                x[:, d] = _random.multinomial(probs, 1, generator).squeeze(1)
        return x

    def _device(self) -> torch.device:
        return model_device(self)


# ------------------------------------------------------------------ Markov chains by counting
class MarkovChain(_Autoregressive):
    """An order-``order`` Markov chain, ``q(x_d | x_{d-1}, ..., x_{d-order})`` (eq. ``eq-markov``), fit by counting.

    With an int ``length`` the conditional tables depend on the position ``d`` (an
    inhomogeneous chain: pixel 0 and pixel 27 of a digit behave differently); with
    ``length=None`` one table serves every position and sequences may have any length
    (a homogeneous chain, for text). Before the start of the sequence the context holds an
    extra symbol, ``levels``, so the first ``order`` positions are modelled too.

    ``fit`` estimates each row of the table as the posterior mean under a Dirichlet prior
    (eq. ``eq-markov-mle``). ``prior="uniform"`` adds ``alpha`` pseudo-counts to every
    level: ``(n_cl + alpha) / (n_c + K alpha)``. ``prior="backoff"`` centres the prior on
    the prediction of the next shorter context, with ``alpha`` pseudo-counts in all:
    ``(n_cl + alpha q'_l) / (n_c + alpha)``, where ``q'`` is the same estimate one order
    lower (recursively, down to uniform at order -1). A context never seen in training
    gets the prior's mean: uniform, or the longest shorter context that was seen.
    """

    def __init__(
        self, *, levels: int, length: int | None = None, order: int = 1, alpha: float = 1.0, prior: str = "uniform"
    ):
        super().__init__()
        check_int("levels", levels, min=2)  # one level leaves nothing to model
        check_int("length", length, optional=True)
        check_int("order", order, min=0)
        check_float("alpha", alpha, gt=0)  # pseudo-counts of the prior
        check_choice("prior", prior, ("uniform", "backoff"))
        if (1 if length is None else length) * (levels + 1) ** order * (order + 1) >= 2**62:
            raise ValueError(f"order {order} with {levels} levels has too many contexts to index; use a lower order")
        self.levels, self.length, self.order, self.alpha, self.prior = levels, length, order, float(alpha), prior
        # Only contexts seen in training get a row (a dense table would have (K+1)^order of
        # them); a context without a row falls back on its prior mean (see _rows).
        self.register_buffer("keys", torch.zeros(0, dtype=torch.long))  # (S,) sorted context keys
        self.register_buffer("log_table", torch.zeros(0, levels))  # (S, K) log q(. | context)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("keys", "log_table"):  # the number of seen contexts is known only from the data
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _keys(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """For each stored order ``k``, one integer per position naming its table, ``k`` and its context.

        The context ``(x_{d-1}, ..., x_{d-k})`` is written in base ``levels + 1``, most recent
        symbol first, with ``levels`` for 'before the start'; the table is the position ``d``
        (0 for a homogeneous chain). ``(B, D) -> {k: (B, D)}``.
        """
        B, D = x.shape
        padded = torch.cat([torch.full((B, self.order), self.levels, device=x.device, dtype=torch.long), x], 1)
        key = torch.zeros_like(x) if self.length is None else torch.arange(D, device=x.device).expand_as(x).clone()
        out = {}
        for k in range(self.order + 1):
            if k > 0:  # x_{d-k} sits at padded[:, order + d - k]
                key = key * (self.levels + 1) + padded[:, self.order - k : self.order - k + D]
            if k in self._orders():
                out[k] = key * (self.order + 1) + k
        return out

    def _orders(self) -> range:
        """The orders that have rows: all of 0..order with backoff, only ``order`` otherwise."""
        return range(self.order + 1) if self.prior == "backoff" else range(self.order, self.order + 1)

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        """Row of ``log_table`` serving each position, ``(B, D)``; -1 where no context was seen."""
        return self._lookup(self._keys(x))

    def _lookup(self, keys: dict[int, torch.Tensor]) -> torch.Tensor:
        """The stored row of the longest context that has one, -1 if none: keys ``(...)`` -> rows ``(...)``."""
        rows = None
        for k in sorted(keys):  # increasing order: longer contexts overwrite shorter ones
            r = torch.searchsorted(self.keys, keys[k]).clamp(max=max(len(self.keys) - 1, 0))
            hit = self.keys[r] == keys[k] if len(self.keys) else torch.zeros_like(r, dtype=torch.bool)
            rows = torch.where(hit, r, -1 if rows is None else rows)
        return rows

    def _log_probs(self, rows: torch.Tensor) -> torch.Tensor:
        """``log q(. | context)`` for rows from :meth:`_lookup`, ``(...) -> (..., K)``; uniform for -1."""
        uniform = torch.full((self.levels,), -math.log(self.levels), device=rows.device)
        if len(self.keys) == 0:
            return uniform.expand(*rows.shape, -1)
        return torch.where((rows >= 0)[..., None], self.log_table[rows.clamp(min=0)], uniform)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> MarkovChain:
        x = check_sequences(x, self.levels, self.length).to(self.log_table.device)
        self.keys, self.log_table = self.keys[:0], self.log_table[:0]
        K, symbols = self.levels, x.reshape(-1)
        keys_of = {k: key.reshape(-1) for k, key in self._keys(x).items()}  # (B*D,) per order
        for k in self._orders():
            keys, which = torch.unique(keys_of[k], return_inverse=True)  # sorted
            counts = torch.zeros(len(keys), K, device=x.device)  # (S, K)
            counts.index_put_((which, symbols), torch.ones(x.numel(), device=x.device), accumulate=True)
            if self.prior == "uniform":
                table = (counts + self.alpha).log() - (counts.sum(1, keepdim=True) + K * self.alpha).log()
            else:  # prior mean: the stored shorter contexts' rows, read at one occurrence of each context
                first = torch.zeros(len(keys), dtype=torch.long, device=x.device)
                first.scatter_(0, which, torch.arange(x.numel(), device=x.device))
                if k == 0:
                    base = torch.full((len(keys), K), 1.0 / K, device=x.device)
                else:
                    base = self._log_probs(self._lookup({j: keys_of[j][first] for j in range(k)})).exp()
                table = (counts + self.alpha * base).log() - (counts.sum(1, keepdim=True) + self.alpha).log()
            merged, order = torch.sort(torch.cat([self.keys, keys]))
            self.keys, self.log_table = merged, torch.cat([self.log_table, table])[order]
        return self

    @torch.no_grad()
    def dense_table(self) -> torch.Tensor:
        """Every conditional as one tensor ``(tables, (K+1)^order, K)`` of log-probabilities.

        Entry ``[d, c, l]`` is ``log q(x_d = l | context c)``, where context ``c`` writes
        ``(x_{d-1}, ..., x_{d-order})`` in base ``K + 1`` (most recent symbol most significant,
        ``K`` for 'before the start'); one table for a homogeneous chain. For small models only.
        """
        tables, contexts, K = (1 if self.length is None else self.length), (self.levels + 1) ** self.order, self.levels
        if tables * contexts * K > 2**26:
            raise ValueError(f"a dense table of {tables} x {contexts} x {K} is too big; use conditionals()")
        d = torch.arange(tables, device=self.log_table.device)[:, None]  # (tables, 1)
        c = torch.arange(contexts, device=self.log_table.device)[None, :]  # (1, contexts)
        keys = {  # the same keys as _keys: table, then the k most recent symbols of c, then k
            k: (d * (K + 1) ** k + c // (K + 1) ** (self.order - k)) * (self.order + 1) + k for k in self._orders()
        }
        return self._log_probs(self._lookup(keys))

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        return self._log_probs(self._rows(x))  # (B, D, K)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`_Autoregressive.log_prob`, reading one table entry per position instead of a row."""
        x = check_sequences(x, self.levels, self.length).to(self._device())
        rows = self._rows(x)  # (B, D)
        picked = self.log_table[rows.clamp(min=0), x] if len(self.keys) else torch.zeros(x.shape, device=x.device)
        return torch.where(rows >= 0, picked, -math.log(self.levels)).sum(1)


# ------------------------------------------------------------------ neural conditionals
def _inputs(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Levels scaled to [-1, 1] as one input channel, ``(B, D) -> (B, 1, D)``."""
    return (2.0 * x.float() / (levels - 1) - 1.0)[:, None, :]


class WindowMLP(_Autoregressive):
    """``[x_{d-1}, ..., x_{d-L}] -> Linear(L, M) -> ReLU -> Linear(M, K) -> softmax`` at every position
    (eq. ``eq-window-mlp``).

    Positions before the start read as a padding value (-1 after scaling, with an extra input
    flag per window slot saying "no pixel here"), so the first ``L`` positions get
    conditionals from the same network; a learned per-position bias on the logits lets it
    know where in the image it is.
    """

    def __init__(self, *, levels: int, length: int, window: int = 8, hidden: int = 64):
        super().__init__()
        check_int("levels", levels, min=2)
        check_int("length", length)
        check_int("window", window)
        check_int("hidden", hidden)
        self.levels, self.length, self.window, self.hidden = levels, length, window, hidden
        self.net = nn.Sequential(nn.Linear(2 * window, hidden), nn.ReLU(), nn.Linear(hidden, levels))
        self.position_bias = nn.Parameter(torch.zeros(length, levels))

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input at every position, ``(B, D) -> (B, D, 2L)``: values then 'missing' flags
        of ``x_{d-1}..x_{d-L}``."""
        B, D = x.shape
        L = self.window
        v = F.pad(_inputs(x, self.levels)[:, 0], (L, 0), value=-1.0)  # (B, L + D)
        m = F.pad(torch.zeros(B, D, device=x.device), (L, 0), value=1.0)
        idx = torch.arange(D, device=x.device)[:, None] + L - 1 - torch.arange(L, device=x.device)  # (D, L): d-1 .. d-L
        return torch.cat([v[:, idx], m[:, idx]], 2)

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.net(self.windows(x)) + self.position_bias, -1)


class CausalConv1d(nn.Module):
    """``y_e = sum_j w_j x_{e-j}``: a 1-D convolution that sees only the past (eq. ``eq-causal-conv``).

    With ``include_current=False`` (the first layer) the output at ``e`` uses ``x_{e-1} .. x_{e-k}``;
    with ``include_current=True`` (later layers, whose inputs at ``e`` already depend only on
    the past) it uses ``x_e .. x_{e-k+1}``. Implemented by left padding, and for the first layer
    a shift by one. ``(B, C_in, D) -> (B, C_out, D)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, include_current: bool, dilation: int = 1
    ):
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        check_int("kernel_size", kernel_size)
        check_int("dilation", dilation)
        self.include_current, self.dilation, self.kernel_size = include_current, dilation, kernel_size
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        D = x.shape[2]
        pad = (self.kernel_size - 1) * self.dilation + (0 if self.include_current else 1)
        y = self.conv(F.pad(x, (pad, 0)))
        return y[:, :, :D]  # without the current position: the last input sample is never used

    @property
    def receptive_field(self) -> int:
        return (self.kernel_size - 1) * self.dilation + 1


class ConvARM(_Autoregressive):
    """An autoregressive model of stacked causal convolutions (eqs. ``eq-causal-conv`` and ``eq-ar-likelihood``).

    Each level is embedded as a ``channels``-vector; the first causal layer excludes the
    current position, so after it position ``d`` depends on ``x_<d`` only, and a learned
    position embedding is added there (where the pixel is matters as much as its past).
    Later layers include the current position and are residual: ``h <- h + dropout(relu(conv(h)))``.
    A 1x1 convolution gives ``levels`` logits per position, plus a learned per-position bias.
    ``dilations`` spread the later kernels to reach rows above in the raster scan.
    """

    def __init__(
        self,
        *,
        levels: int,
        length: int,
        channels: int = 64,
        kernel_size: int = 7,
        layers: int = 4,
        dilations: list[int] | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_int("levels", levels, min=2)
        check_int("length", length)
        check_int("channels", channels)
        check_int("kernel_size", kernel_size)
        check_int("layers", layers)
        dilations = [1] * layers if dilations is None else list(dilations)
        if len(dilations) != layers:
            raise ValueError(f"dilations needs one entry per layer ({layers}), got {dilations}")
        check_float("dropout", dropout, ge=0, lt=1)
        self.levels, self.length, self.channels, self.kernel_size = levels, length, channels, kernel_size
        self.layers, self.dilations, self.dropout = layers, dilations, float(dropout)
        self.embed = nn.Embedding(levels, channels)
        self.first = CausalConv1d(channels, channels, kernel_size, include_current=False, dilation=dilations[0])
        self.rest = nn.ModuleList(
            CausalConv1d(channels, channels, kernel_size, include_current=True, dilation=d) for d in dilations[1:]
        )
        self.position = nn.Parameter(torch.zeros(channels, length))
        self.out = nn.Conv1d(channels, levels, 1)
        self.position_bias = nn.Parameter(torch.zeros(levels, length))
        self.drop = nn.Dropout(dropout)

    @property
    def receptive_field(self) -> int:
        """How many past positions the conditional at ``d`` can see."""
        return sum(layer.receptive_field - 1 for layer in [self.first, *self.rest]) + 1

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).transpose(1, 2)  # (B, C, D)
        h = self.drop(F.relu(self.first(h) + self.position))  # position d now sees x_<d only
        for layer in self.rest:
            h = h + self.drop(F.relu(layer(h)))
        logits = self.out(h) + self.position_bias  # (B, K, D)
        return F.log_softmax(logits.transpose(1, 2), -1)  # (B, D, K)
