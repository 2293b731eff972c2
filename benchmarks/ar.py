"""Chapter 4: convolutional autoregressive models of the digits, quality and training speed.

All numbers are ours, measured in one run of this suite on one machine.

- ``ar/digits/arm_book/test_nll_nats``: test NLL (nats per image) of the chapter's model
  and budget (``ConvARM``, 64 channels, kernel 7, dilations 1, 1, 2, 4, dropout 0.3, 60
  epochs of AdamW at batch 32 with weight decay 0.3, best epoch on validation); mean over
  ``SEEDS``, with the worst seed as ``.../test_nll_nats_max``. The chapter asserts its
  quality on validation only; this key reports test.
- ``ar/digits/arm/test_nll_nats``: a longer run of a larger model (``LONG``: 128 channels,
  six layers, dropout 0.5, weight decay 0.5, 100 epochs), on the GPU when there is one;
  goal at most 80. The model is saved as ``_build/bench/models/ar.LONG.pt`` for the
  leaderboard (``benchmarks/leaderboard.py``).
- ``ar/digits/arm/train_images_per_s``: training throughput of the chapter's model on
  the CPU, images per second as ``genbook.fit`` measures it (per-epoch validation included).
- ``ar/digits/anchor_arm/test_nll_nats``, ``.../val_nll_nats``, ``.../epochs`` and
  ``.../train_images_per_s``: our re-run of the anchor's ARM design (Tomczak, *Deep
  Generative Modeling*, code ``jmtomczak/intro_dgm``; see ``benchmarks/anchor_arm.py`` for
  the design and the recipe: four causal convolutions of kernel 7 and 256 channels, Adamax
  1e-3, batch 64, early stopping with patience 20), seed 0, on the same split in the same
  run. The anchor itself publishes a validation curve only (about 88.7 nats, read off its
  figure); these keys are our measurements of its design. Its throughput is measured on the
  CPU like the book model's, in the same process.
- ``ar/digits/arm_book_over_anchor/test_nll_ratio``: ``arm_book/test_nll_nats`` (mean over
  seeds) over ``anchor_arm/test_nll_nats``; below 1 means the chapter's model is better.
- ``ar/digits/arm_book_over_anchor/train_speed_ratio``: CPU images per second of the
  chapter's model (seed 0) over the anchor's; above 1 means the chapter's model trains faster
  per image. Both are measured the same way, but their epoch counts differ (60 against
  early stopping), so this compares speed per image, not total training time.
- ``ar/digits/independent/test_nll_nats``: the independent per-pixel categorical model
  (order-0 chain, add-one smoothing), the baseline every model must beat.
"""

from __future__ import annotations

import torch

import genbook
from genbook import data
from genbook.autoregressive import ConvARM, MarkovChain

from ._models import BenchModel
from .anchor_arm import run_anchor

SEEDS = (0, 1, 2)
ANCHOR_SPEED_EPOCHS = 10  # CPU epochs of the anchor timed when the full run was on a GPU
BOOK = dict(
    model=dict(channels=64, kernel_size=7, layers=4, dilations=[1, 1, 2, 4], dropout=0.3),
    fit=dict(epochs=60, batch_size=32, lr=3e-3, weight_decay=0.3),
)
LONG = dict(
    model=dict(channels=128, kernel_size=5, layers=6, dilations=[1, 1, 2, 4, 8, 1], dropout=0.5),
    fit=dict(epochs=100, batch_size=32, lr=2e-3, weight_decay=0.5),
)


def train_digits(recipe: dict, seed: int, dev: torch.device) -> tuple[ConvARM, genbook.History]:
    """``recipe``'s ``ConvARM`` trained on the training digits (best epoch on validation), in eval
    mode, and its training history."""
    train, val = data.digits("train"), data.digits("val")
    genbook.seed(seed)
    model = ConvARM(levels=data.DIGITS_LEVELS, length=64, **recipe["model"]).to(dev)
    hist = genbook.fit(model, train, val=val, schedule="linear", progress=False, **recipe["fit"])
    return model, hist


def _test_nll(model: ConvARM, dev: torch.device) -> float:
    """Test NLL, nats per image, of ``model`` on ``dev``."""
    with torch.no_grad():
        return -model.log_prob(data.digits("test").to(dev)).mean().item()


def _train(recipe: dict, seed: int, dev: torch.device) -> tuple[float, float]:
    """Test NLL (nats per image) and training images per second of one run."""
    model, hist = train_digits(recipe, seed, dev)
    return _test_nll(model, dev), hist.examples_per_second


def _train_long(dev: torch.device) -> tuple[ConvARM, float]:
    """``LONG``, seed 0: the model and its training seconds."""
    model, hist = train_digits(LONG, 0, dev)
    return model, hist.seconds


LONG_MODEL = BenchModel("ar.LONG", LONG, _train_long)


def run() -> dict[str, float]:
    dev = genbook.device()
    out = {}
    book = [_train(BOOK, seed, dev) for seed in SEEDS]
    out["ar/digits/arm_book/test_nll_nats"] = sum(n for n, _ in book) / len(book)
    out["ar/digits/arm_book/test_nll_nats_max"] = max(n for n, _ in book)
    cpu = torch.device("cpu")
    out["ar/digits/arm/train_images_per_s"] = book[0][1] if dev == cpu else _train(BOOK, 0, cpu)[1]
    anchor = run_anchor(seed=0, device=dev)
    for key in ("test_nll_nats", "val_nll_nats", "epochs", "best_epoch"):
        out[f"ar/digits/anchor_arm/{key}"] = anchor[key]
    # throughput on the CPU, like the book model's: a few epochs suffice for a rate
    anchor_cpu = anchor if dev == cpu else run_anchor(seed=0, device=cpu, max_epochs=ANCHOR_SPEED_EPOCHS)
    out["ar/digits/anchor_arm/train_images_per_s"] = anchor_cpu["train_images_per_s"]
    out["ar/digits/arm_book_over_anchor/test_nll_ratio"] = (
        out["ar/digits/arm_book/test_nll_nats"] / out["ar/digits/anchor_arm/test_nll_nats"]
    )
    out["ar/digits/arm_book_over_anchor/train_speed_ratio"] = (
        out["ar/digits/arm/train_images_per_s"] / out["ar/digits/anchor_arm/train_images_per_s"]
    )
    model, seconds = LONG_MODEL.train(dev)
    out["ar/digits/arm/test_nll_nats"] = _test_nll(model, dev)
    LONG_MODEL.save(model, seconds)
    chain = MarkovChain(levels=data.DIGITS_LEVELS, length=64, order=0, alpha=1.0).fit(data.digits("train"))
    out["ar/digits/independent/test_nll_nats"] = -chain.log_prob(data.digits("test")).mean().item()
    return out
