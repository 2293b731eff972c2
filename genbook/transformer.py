"""Transformers: causal self-attention, the pre-layer-norm block, and a language model over finite strings.

A language model over an alphabet of ``vocab`` symbols gives every string ``y = y_1 .. y_T`` the
probability ``p(y) = p(EOS | y) prod_t p(y_t | y_<t)`` (chapter 9, ``eq-lm-factorisation``). Each
conditional is a softmax of inner products between the symbols' embeddings ``e(y)`` and an
encoding of the past, ``enc(y_<t)``, scaled by an inverse temperature ``beta``
(chapter 9, ``eq-lm-softmax``). The encoding is a stack of transformer blocks over the embedded past,
each mixing positions by causal self-attention.

Sequences are ``LongTensor (B, T)`` of symbols ``0 .. vocab - 1``. One more symbol, ``vocab``,
is the *boundary*: it is the input before the first symbol, and with ``end=True`` it is also
the end-of-string symbol, which a sequence uses as padding after its end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from ._checks import check_bool, check_float, check_int, check_tensor, describe
from ._device import eval_mode, model_device
from .io import Configurable

__all__ = ["attention", "attention_weights", "CausalSelfAttention", "Block", "TransformerLM"]


def attention_weights(q: torch.Tensor, k: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))``, the weights with which each query reads the values (chapter 9,
    ``eq-attention``): ``(..., T, d), (..., S, d) -> (..., T, S)``, each row summing to 1.

    With ``causal``, query ``t`` sees only keys ``s <= t + S - T``: the ``T`` queries are the last
    ``T`` of the ``S`` positions (as when earlier keys come from a cache); the other weights are 0.
    """
    T, S = q.shape[-2], k.shape[-2]
    scores = torch.einsum("...td,...sd->...ts", q, k) / math.sqrt(q.shape[-1])  # (..., T, S)
    if causal:
        seen = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        scores = scores.masked_fill(~seen, -math.inf)
    return scores.softmax(-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v``, written out (chapter 9, ``eq-attention``): ``(..., T, d),
    (..., S, d), (..., S, d_v) -> (..., T, d_v)``, with the mask of :func:`attention_weights`.

    This is what ``torch.nn.functional.scaled_dot_product_attention`` computes in one fused kernel;
    the model uses that, and this explicit form is here to read and to check it against.
    """
    return torch.einsum("...ts,...sd->...td", attention_weights(q, k, causal=causal), v)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``(B, T, D) -> (B, T, D)``.

    ``Q``, ``K`` and ``V`` are one linear map ``D -> 3D`` split into ``heads`` heads of ``D / heads``
    dimensions; each head attends over the positions up to its own, and a linear map ``D -> D``
    mixes the heads' outputs. ``fused`` (an attribute, default True) picks torch's fused kernel;
    False computes :func:`attention` explicitly (the same numbers, more slowly).

    With a ``cache`` (a pair of tensors ``(B, H, context, D / H)`` for keys and values), the keys
    and values of the ``T`` new positions are written at ``start .. start + T - 1`` and the
    queries attend over every cached position up to theirs: a sampling step costs ``O(start)``
    instead of recomputing all earlier positions.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        check_int("dim", dim)
        check_int("heads", heads)
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads ({heads}), got {dim}")
        self.heads, self.fused = heads, True
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0
    ) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self._split(x)  # 3 x (B, H, T, d)
        if cache is not None:
            cache[0][:, :, start : start + T], cache[1][:, :, start : start + T] = k, v
            k, v = cache[0][:, :, : start + T], cache[1][:, :, : start + T]  # (B, H, S, d)
        y = self._attend(q, k, v)  # (B, H, T, d)
        return self.drop(self.out(y.transpose(1, 2).reshape(B, T, D)))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The causal attention weights of every head, ``(B, T, D) -> (B, H, T, T)``: row ``t`` of head
        ``h`` is the distribution over positions ``0 .. t`` that position ``t`` reads from."""
        q, k, _ = self._split(x)
        return attention_weights(q, k, causal=True)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of every head: ``(B, T, D) -> 3 x (B, H, T, D / H)``."""
        B, T, D = x.shape
        return self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4).unbind(0)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return attention(q, k, v, causal=True)
        T, S = q.shape[-2], k.shape[-2]
        if T == S:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if T == 1:  # one new query sees every cached key
            return F.scaled_dot_product_attention(q, k, v)
        # torch's is_causal aligns the mask top-left; queries after a cache need it bottom-right
        seen = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=seen)


class Block(nn.Module):
    """A pre-layer-norm transformer block: ``(B, T, D) -> (B, T, D)``.

    ``a = x + Att(LN(x))`` and ``z = a + O(LN(a))``, where ``O`` is an MLP
    ``D -> 4D -> GELU -> D`` (chapter 9, ``eq-transformer-layer``). The slides' layer is the same
    without the two layer norms, which keep the inputs of each branch at a fixed scale however deep the stack.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0
    ) -> torch.Tensor:
        a = x + self.attn(self.norm1(x), cache, start)
        return a + self.mlp(self.norm2(a))


class TransformerLM(Configurable, nn.Module):
    """A transformer language model: ``p(y_t | y_<t) = softmax_beta(<e(y), enc(y_<t)>)``.

    The input at position ``t`` is ``y_{t-1}`` (the boundary symbol at ``t = 0``), embedded and
    added to a learned position embedding; ``layers`` :class:`Block` s follow, then a layer norm
    (the slides' ``F``), giving ``enc(y_<t)``. The logits are ``beta <e(y), enc(y_<t)>`` with the
    input embedding ``e`` itself (``tie=True``) or a separate linear map (``tie=False``), and a
    learned ``beta``. ``context`` is the longest sequence the model takes.

    With ``end=False`` the model gives ``p(y_1 .. y_T)`` for sequences of a fixed length (the
    digits, the copy task, windows of text). With ``end=True`` it is a distribution over the
    finite strings of length ``0 .. context``: after each prefix it may choose the end symbol
    ``vocab``, and after ``context`` symbols it must (the string cannot go on). Strings of
    different lengths share a batch by padding with ``vocab`` after their end.
    """

    def __init__(
        self,
        *,
        vocab: int,
        context: int,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
        end: bool = False,
        tie: bool = True,
    ):
        super().__init__()
        check_int("vocab", vocab, min=1 if end else 2)  # without an end symbol one symbol leaves nothing to model
        check_int("context", context)
        check_int("dim", dim)
        check_int("heads", heads)
        check_int("layers", layers)
        check_float("dropout", dropout, ge=0, lt=1)
        check_bool("end", end)
        check_bool("tie", tie)
        self.vocab, self.context, self.dim, self.heads, self.layers = vocab, context, dim, heads, layers
        self.dropout, self.end, self.tie = float(dropout), end, tie
        self.embed = nn.Embedding(vocab + 1, dim)  # the alphabet, then the boundary symbol
        self.position = nn.Parameter(torch.zeros(context, dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = None if tie else nn.Linear(dim, self.outcomes, bias=False)
        self.log_beta = nn.Parameter(torch.zeros(()))
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases, and the maps that write into the
        residual stream scaled by ``1 / sqrt(2 layers)`` so the stream's variance does not grow with depth."""
        for name, p in self.named_parameters():
            if name.endswith("bias") or "norm" in name or name == "log_beta":
                continue
            std = 0.02 / math.sqrt(2 * self.layers) if name.endswith(("attn.out.weight", "mlp.2.weight")) else 0.02
            nn.init.normal_(p, std=std)

    @property
    def outcomes(self) -> int:
        """How many values a conditional ranges over: the alphabet, plus the end symbol with ``end=True``."""
        return self.vocab + int(self.end)

    # ------------------------------------------------------------------ the conditionals
    def forward(
        self, inputs: torch.Tensor, caches: list | None = None, start: int = 0
    ) -> torch.Tensor:  # (B, T) -> (B, T, outcomes)
        """Logits of the next symbol after each input position ``start .. start + T - 1``, ``(B, T) ->
        (B, T, outcomes)``; ``inputs`` begins with the boundary symbol when ``start = 0``."""
        T = inputs.shape[1]
        h = self.drop(self.embed(inputs) + self.position[start : start + T])  # (B, T, D)
        for block, cache in zip(self.blocks, caches or [None] * self.layers):
            h = block(h, cache, start)
        h = self.norm(h)  # enc(y_<t)
        scores = h @ self.embed.weight[: self.outcomes].T if self.tie else self.head(h)
        return self.log_beta.exp() * scores

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(. | x_<t)`` for every position, ``(B, T) -> (B, T, outcomes)``: entry ``[b, t]`` is
        the distribution of ``x[b, t]`` given ``x[b, :t]``."""
        x = self.check_tokens(x)
        return F.log_softmax(self(self._inputs(x)), -1)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The attention weights of every block while the model reads ``x (B, T)``: a list of
        ``layers`` tensors ``(B, H, T, T)``. Row ``t`` is the distribution over the inputs
        ``0 .. t`` that the position predicting ``x[:, t]`` reads from; input ``s`` is ``x[:, s - 1]``
        (input 0 is the boundary symbol). Computed in evaluation mode (no dropout)."""
        x = self.check_tokens(x)
        T = x.shape[1]
        maps = []
        with eval_mode(self):
            h = self.embed(self._inputs(x)) + self.position[:T]  # (B, T, D)
            for block in self.blocks:
                maps.append(block.attn.weights(block.norm1(h)))
                h = block(h)
        return maps

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The boundary symbol, then ``x`` without its last symbol: ``(B, T) -> (B, T)``."""
        return torch.cat([torch.full_like(x[:, :1], self.vocab), x[:, :-1]], 1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` in nats, ``(B, T) -> (B,)``.

        With ``end=True``, the string ends at its first end symbol (or after ``context`` symbols),
        and the probability of ending there is included; with ``end=False``, the probability of
        the ``T`` symbols (of any string that begins with them).
        """
        x = self.check_tokens(x)
        if self.end and x.shape[1] < self.context:  # room for the end symbol of a string that fills x
            x = torch.cat([x, torch.full_like(x[:, :1], self.vocab)], 1)
        logp = F.log_softmax(self(self._inputs(x)), -1).gather(2, x[:, :, None]).squeeze(2)  # (B, T)
        if not self.end:
            return logp.sum(1)
        ended = (x == self.vocab).long()
        counts = (ended.cumsum(1) - ended) == 0  # up to and including the first end symbol
        return torch.where(counts, logp, 0.0).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """``-log p(x)`` averaged over the batch, in nats per sequence."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def stream_log_prob(self, x: torch.Tensor, *, stride: int | None = None, batch_size: int = 256) -> float:
        """``log p`` in nats of a long stream ``x (N,)`` read in windows of ``context`` symbols.

        Windows start every ``stride`` symbols (default ``context // 2``); each symbol is scored once,
        in the first window where it has at least ``context - stride`` symbols of past (or all of
        its past, near the start). For ``end=False`` models, e.g. of text.
        """
        if self.end:
            raise ValueError("stream_log_prob scores a stream without ends; this model has end=True")
        check_tensor("x", x, shape=("N",), dtype="int")
        if len(x) == 0:
            raise ValueError("x must hold at least one symbol, got an empty stream")
        stride = check_int("stride", max(1, self.context // 2) if stride is None else stride, max=self.context)
        N, C = len(x), min(self.context, len(x))
        starts = list(range(0, N - C + 1, stride))
        if starts[-1] != N - C:
            starts.append(N - C)
        first = [0] + [prev + C - s for prev, s in zip(starts[:-1], starts[1:])]  # first new offset in each window
        windows = x.to(self._device()).unfold(0, C, 1)[starts]  # (W, C)
        first = torch.tensor(first, device=windows.device)[:, None]  # (W, 1)
        offsets = torch.arange(C, device=windows.device)
        total = 0.0
        with eval_mode(self):
            for i in range(0, len(starts), batch_size):
                w = windows[i : i + batch_size]
                logp = self.conditionals(w).gather(2, w[:, :, None]).squeeze(2)  # (b, C)
                total += logp[offsets >= first[i : i + batch_size]].double().sum().item()
        return total

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        length: int | None = None,
        temperature: float = 1.0,
        prompt: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        cache: bool = True,
    ) -> torch.Tensor:
        """``n`` sequences ``(n, length)`` drawn one symbol at a time from ``p(y_t | y_<t)^(1/temperature)``,
        renormalised (``temperature=0`` takes the most probable symbol).

        ``length`` defaults to ``context``; with ``end=True`` the output is always ``(n, context)``,
        each string padded with the end symbol after its end. A model without an end (of a stream,
        such as text read in windows) may draw ``length > context``: from position ``context`` on,
        each symbol is drawn given the ``context - 1`` symbols before it, read as a fresh window
        after the boundary symbol, as :meth:`stream_log_prob` reads a stream. ``prompt`` ``(n, P)``
        or ``(P,)`` fixes the first ``P`` symbols (at most ``context``). With ``cache`` (the default)
        each step within the context reuses the keys and values of the earlier positions (``O(t)``
        work at step ``t``); ``cache=False`` recomputes the whole prefix each step (``O(t^2)``),
        drawing the same symbols from the same ``generator``.
        """
        check_int("n", n)
        if self.end and length is not None:
            raise ValueError(f"length must be None for a model with end=True (strings end by themselves), got {length}")
        length = check_int("length", self.context if length is None else length, max=self.context if self.end else None)
        check_float("temperature", temperature, ge=0)
        dev = self._device()
        _random.check_generator(generator, dev)
        x = torch.full((n, length), self.vocab, dtype=torch.long, device=dev)
        P = 0
        if prompt is not None:
            if isinstance(prompt, torch.Tensor) and prompt.ndim == 1:
                prompt = prompt.expand(n, -1)
            prompt = self.check_tokens(prompt, name="prompt")
            if prompt.shape[0] != n or prompt.shape[1] > min(length, self.context):
                most = min(length, self.context)
                raise ValueError(f"prompt must have {n} rows and at most {most} symbols, got {describe(prompt)}")
            P = prompt.shape[1]
            x[:, :P] = prompt.to(dev)
        C = self.context
        caches = self._empty_caches(n, min(length, C)) if cache else None
        done = (x[:, :P] == self.vocab).any(1) if self.end else None
        with eval_mode(self):
            for t in range(length):
                if t >= C:  # past the context: a window of the last C - 1 symbols
                    logits = self(self._inputs(x[:, t - C + 1 : t + 1]))[:, -1]
                elif cache:
                    previous = x[:, t - 1 : t] if t else torch.full((n, 1), self.vocab, device=dev)
                    logits = self(previous, caches, t)[:, 0]  # (n, outcomes)
                else:
                    logits = self(self._inputs(x[:, : t + 1]))[:, -1]
                if t < P:
                    continue  # the keys and values of the prompt are cached all the same
                y = self._draw(logits, temperature, generator)
                if self.end:
                    y = torch.where(done, self.vocab, y)
                    done = done | (y == self.vocab)
                x[:, t] = y
        return x

    def _empty_caches(self, n: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Room for the keys and values of ``length`` positions in every block: ``(n, H, length, D / H)`` each."""
        shape = (n, self.heads, length, self.dim // self.heads)
        return [
            (torch.zeros(shape, device=self._device()), torch.zeros(shape, device=self._device())) for _ in self.blocks
        ]

    @staticmethod
    def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
        """One symbol per row of ``logits (n, K)``: the argmax at ``temperature = 0``."""
        if temperature == 0:
            return logits.argmax(-1)
        probs = F.softmax(logits.float() / temperature, -1)
        return _random.multinomial(probs, 1, generator).squeeze(1)

    # ------------------------------------------------------------------ checks
    def check_tokens(self, x, name: str = "x") -> torch.Tensor:
        """``x`` as a ``LongTensor (B, T)`` on the model's device, with ``1 <= T <= context`` symbols
        ``0 .. vocab - 1`` (and, with ``end=True``, the end symbol ``vocab`` followed only by more of
        it), or a ``ValueError``."""
        check_tensor(name, x, shape=("B", "T"), dtype="int")
        if not 1 <= x.shape[1] <= self.context:
            raise ValueError(f"{name} must have 1..{self.context} symbols (the model's context), got {x.shape[1]}")
        top = self.vocab + int(self.end)
        if x.numel() and (x.min() < 0 or x.max() >= top):
            bad = x[(x < 0) | (x >= top)][0].item()
            also = f" and the end symbol {self.vocab}" if self.end else ""
            raise ValueError(f"{name} must hold symbols 0..{self.vocab - 1}{also}, found {bad}")
        if self.end:
            ended = (x == self.vocab).long().cummax(1).values.bool()
            if (ended & (x != self.vocab)).any():
                row = int((ended & (x != self.vocab)).any(1).nonzero()[0])
                raise ValueError(f"{name} must hold only end symbols ({self.vocab}) after an end; row {row} goes on")
        return x.long().to(self._device())

    def _device(self) -> torch.device:
        return model_device(self)
