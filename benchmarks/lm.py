"""Chapter 9: transformer language models against the best Markov chain, on a source of known entropy,
on English prose and on the digits.

All numbers are ours, from one run of this suite on one machine, seed 0.

- ``lm/copy/excess_pct``: the copy task (``data.CopyTask``, ``COPY["task"]``: a random string of
  ``length`` symbols out of ``symbols``, a separator, the string again), whose entropy is exactly
  ``length ln(symbols)`` nats per sequence. The transformer (``COPY``) is trained on
  ``COPY["n_train"]`` sequences; its test cross-entropy (nats per sequence, on fresh sequences)
  exceeds the entropy by its KL divergence from the source: reported as a percentage of the
  entropy. Goal: at most 2.
- ``lm/copy/markov_excess_pct``: the same for the best inhomogeneous Markov chain
  (``MarkovChain(prior="backoff")``, order 0 .. ``length + 1`` and ``alpha`` chosen on validation
  sequences). A copied symbol sits ``length + 1`` positions after its original, beyond any
  context the chain has seen enough of, so it pays for the copy again: about 100. Goal: at least 20.
- ``lm/text/markov_test_bpc``: bits per character on the test split of ``data.text`` of the best
  homogeneous Markov chain with backoff (orders 0 .. 8 and ``alpha`` in 3, 10, 30, 100 chosen on
  validation, the grid of chapter 4), scoring the test text as one stream.
- ``lm/text/transformer_test_bpc``: the same for the transformer (``TEXT``), trained on windows of
  ``context`` characters of the training text (starting every ``context // 2``), the best
  evaluation on validation windows kept; the test text is scored as a stream with
  ``stream_log_prob`` (windows every ``context // 2`` characters, so each character has at least
  ``context // 2`` characters of past). Goal: at least 15 % below the Markov chain.
- ``lm/text/train_tokens_per_s``: training throughput of the text model on this run's device,
  characters per second as ``genbook.fit`` measures it (validation included).
- ``ar/digits/transformer/test_nll_nats``: test NLL (nats per image) of a transformer over the
  64 pixels of a digit in raster order (``DIGITS``, levels 0 .. 16, best epoch on validation).
  In training only, a random fraction ``DIGITS["shifted"]`` of each batch of images is moved by
  up to one pixel along each axis (``genbook.metrics``' shifts); validation and test images are
  scored as they are. Goal: at most 80 (the convolutional ARM of ``benchmarks/ar.py`` is the
  comparison). Recipes were chosen on validation; on a 2-core CPU, seed 0, validation / test NLL
  (nats) and seconds of training, from dim 96, 3 layers, dropout 0.1, weight decay 0.1, 50
  epochs of 32 at lr 3e-3, tied output, no shifts (88.1 / 85.3, 130 s): dropout 0 (90.4 /
  87.7); dropout 0.2 (89.8 / 86.5); dim 128, 2 layers, dropout 0.25, 60 epochs (90.4 / 86.6);
  dim 64, dropout 0.3 (93.1 / 89.7). With shifts: half of each batch (87.3 / 84.1, 86 s); all
  of it, 80 epochs (87.0 / 84.3, 131 s), and weight decay 0.3 (86.9 / 84.4, 117 s); from there
  dim 128, 60 epochs (89.3 / 86.5, 141 s); row plus column position embeddings instead of one
  per pixel (87.7 / 85.5, 116 s); lr 6e-3 (91.5 / 88.1, 115 s); lr 1.5e-3 (87.7 / 84.6, 120 s);
  untied output (86.3 / 83.9, 121 s), with gradient clipping at 1 (86.4 / 83.9, 124 s), with
  clipping, dim 64 and 4 layers (88.1 / 85.5, 95 s), with dropout 0.2 and 100 epochs (86.8 /
  84.6, 161 s), with a quarter of each batch shifted (84.5 / 81.6, 118 s), with half of it
  (83.5 / 81.0, 120 s). From there (2026-12-07, quiet, 2 threads): three quarters of each batch
  shifted (85.5 / 82.6, 119 s); dim 128 and dropout 0.15 (84.1 / 81.5, 174 s); 120 epochs
  (82.9 / 80.4, 171 s); 160 epochs (82.7 / 80.6, 230 s); 200 epochs (82.5 / 80.5, 296 s);
  160 epochs with dropout 0.15 (82.3 / 80.1, 254 s); 160 epochs with dropout 0.2 (82.0 / 80.1,
  248 s: ``DIGITS``, the lowest validation NLL); 200 epochs with dropout 0.2 (82.2 / 79.7,
  312 s) or 0.25 (82.4 / 80.4, 310 s); 240 epochs with dropout 0.2 (82.5 / 80.4, 350 s). The
  recipe is chosen on validation, so the test NLL it reports stays just above the goal of 80;
  the test numbers of these recipes differ by less than their own 95 % interval (about 1 nat).
  An average of the weights (best epoch on validation) did
  not help: EMA 0.999 93.4 / 90.7 against the weights' 87.3 / 84.1, EMA 0.995 87.1 / 84.4
  against 87.0 / 84.3. The model is saved as ``_build/bench/models/lm.DIGITS.pt`` for the leaderboard
  (``benchmarks/leaderboard.py``), as a plain ``TransformerLM`` with the same weights.
- ``lm/{copy,text,digits}/seconds``: wall-clock time of each part (training and scoring).
"""

from __future__ import annotations

import inspect
import math
import time

import torch

import genbook
from genbook import data
from genbook.autoregressive import MarkovChain
from genbook.metrics import _shift
from genbook.transformer import TransformerLM

from ._models import BenchModel

COPY = dict(
    task=dict(length=10, symbols=8),
    n_train=20_000,
    model=dict(dim=64, heads=4, layers=2, dropout=0.0),
    fit=dict(steps=1500, batch_size=64, lr=3e-3),
)
TEXT = dict(
    model=dict(context=64, dim=96, heads=4, layers=3, dropout=0.0),
    fit=dict(steps=2400, batch_size=32, lr=2e-3),
)
DIGITS = dict(
    model=dict(dim=96, heads=4, layers=3, dropout=0.2, tie=False),
    fit=dict(epochs=160, batch_size=32, lr=3e-3, weight_decay=0.3),
    shifted=0.5,  # the fraction of each training batch moved by up to one pixel per axis
)
MARKOV_ALPHAS = (3.0, 10.0, 30.0, 100.0)


def _best_markov(train, val, orders, **kw) -> MarkovChain:
    """The backoff chain of the order and ``alpha`` with the lowest validation NLL."""
    best, best_nll = None, math.inf
    for order in orders:
        for alpha in MARKOV_ALPHAS:
            chain = MarkovChain(order=order, alpha=alpha, prior="backoff", **kw).fit(train)
            nll = -chain.log_prob(val).mean().item()
            if nll < best_nll:
                best, best_nll = chain, nll
    return best


def copy_task(dev: torch.device) -> dict[str, float]:
    task = data.CopyTask(**COPY["task"])
    g = torch.Generator().manual_seed(0)
    train, val, test = (task.sample(n, generator=g) for n in (COPY["n_train"], 2000, 5000))
    D, H = train.shape[1], task.entropy()
    genbook.seed(0)
    model = TransformerLM(vocab=task.vocab, context=D, **COPY["model"]).to(dev)
    genbook.fit(model, train, val=val, eval_every=250, schedule="linear", progress=False, **COPY["fit"])
    with torch.no_grad():
        nll = -model.log_prob(test.to(dev)).mean().item()
    chain = _best_markov(train, val, range(task.length + 2), levels=task.vocab, length=D)
    markov = -chain.log_prob(test).mean().item()
    return {"lm/copy/excess_pct": 100 * (nll - H) / H, "lm/copy/markov_excess_pct": 100 * (markov - H) / H}


def _windows(x: torch.Tensor, context: int) -> torch.Tensor:
    """Windows of ``context`` symbols starting every ``context // 2``: ``(N,) -> (W, context)``."""
    return x.unfold(0, context, context // 2)


def text(dev: torch.device) -> dict[str, float]:
    train, val, test = (data.text(s) for s in ("train", "val", "test"))
    C = TEXT["model"]["context"]
    genbook.seed(0)
    model = TransformerLM(vocab=len(data.TEXT_ALPHABET), **TEXT["model"]).to(dev)
    val_windows = val.unfold(0, C, C)
    hist = genbook.fit(
        model, _windows(train, C), val=val_windows, eval_every=250, schedule="linear", progress=False, **TEXT["fit"]
    )
    bpc = -model.stream_log_prob(test.to(dev)) / len(test) / math.log(2)
    chain = _best_markov(train[None], val[None], range(9), levels=len(data.TEXT_ALPHABET))
    markov = -chain.log_prob(test[None]).item() / len(test) / math.log(2)
    return {
        "lm/text/transformer_test_bpc": bpc,
        "lm/text/markov_test_bpc": markov,
        "lm/text/train_tokens_per_s": hist.examples_per_second * C,
    }


class _ShiftedLM(TransformerLM):
    """A :class:`TransformerLM` whose training loss is on its batch with a random ``shifted``
    fraction of the images moved by up to one pixel along each axis of the 8x8 image (the shifts of
    ``genbook.metrics``' classifier); in evaluation mode, hence for validation and test, the loss and
    ``log_prob`` see the images as they are."""

    def __init__(self, *, shifted: float = 0.0, **kw):
        super().__init__(**kw)
        self.shifted = shifted

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.shifted:
            shifted = _shift(x, 1)
            moved = torch.rand(x.shape[0], device=x.device) < self.shifted  # (B,)
            x = torch.where(moved[:, None], shifted, x)
        return super().loss(x)


def plain_lm(model: _ShiftedLM) -> TransformerLM:
    """A :class:`TransformerLM` with ``model``'s configuration and weights (the shifts act in training
    only), in eval mode on ``model``'s device: a genbook class, so :func:`genbook.save` takes it."""
    config = {k: getattr(model, k) for k in inspect.signature(TransformerLM).parameters}
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten: leave the random state as it was
        plain = TransformerLM(**config)
    plain.load_state_dict(model.state_dict())
    return plain.to(model.position.device).eval()


def train_digits(dev: torch.device) -> tuple[TransformerLM, float]:
    """``DIGITS``, seed 0: the trained model (best epoch on validation) as a plain ``TransformerLM``
    in eval mode, and its training seconds."""
    train, val = data.digits("train"), data.digits("val")
    genbook.seed(0)
    model = _ShiftedLM(vocab=data.DIGITS_LEVELS, context=64, shifted=DIGITS["shifted"], **DIGITS["model"]).to(dev)
    hist = genbook.fit(model, train, val=val, schedule="linear", progress=False, **DIGITS["fit"])
    return plain_lm(model), hist.seconds


DIGITS_MODEL = BenchModel("lm.DIGITS", DIGITS, train_digits)


def digits(dev: torch.device) -> dict[str, float]:
    model, seconds = DIGITS_MODEL.train(dev)
    DIGITS_MODEL.save(model, seconds)
    with torch.no_grad():
        nll = -model.log_prob(data.digits("test").to(dev)).mean().item()
    return {"ar/digits/transformer/test_nll_nats": nll}


def run() -> dict[str, float]:
    dev = genbook.device()
    out = {}
    for name, part in (("copy", copy_task), ("text", text), ("digits", digits)):
        t0 = time.perf_counter()
        out.update(part(dev))
        out[f"lm/{name}/seconds"] = time.perf_counter() - t0
    return out
