"""Chapter 8: denoising diffusion models, their bound against the 2-D toys' entropy and on the
digits' discrete likelihood, and the digits samples' quality.

All numbers are ours, from one run of this suite on one machine, seed 0.

The 2-D toys (``diffusion/<toy>/*`` for moons, 8gaussians and checkerboard): see
``benchmarks/diffusion_toys.py``, which documents those keys, the protocol and what was measured.
Goal: ``diffusion/<toy>/gap_nats`` at most 0.2 nats for every toy.

The digits:

- ``diffusion/digits/test_nll_bound_nats``, ``diffusion/digits/test_nll_bound_se``: the
  variational upper bound on ``-ln P(levels)`` (nats per image) of ``DIGITS_BENCH``'s model on the
  447 test digits, ``Diffusion.nll_bound`` with every step (one draw of ``z_t`` per step and image,
  generator seed 1), mean over the images and its standard error (std / sqrt(447)). Anchor: the
  RealNVP of chapter 5, 95.7 nats (``benchmarks/flows.py``); goal: at most 95. A bound, so it can
  only overstate the model's NLL.
- ``diffusion/digits/val_nll_bound_nats``: the same on the 350 validation digits (the split
  recipes were chosen on).
- ``diffusion/digits/test_{prior,diffusion,reconstruction}_nats``: the bound's three terms on
  test (their means add up to ``test_nll_bound_nats``): ``KL(q(z_T | x) || N(0, I))``, the sum of
  the KLs of steps ``2..T``, and ``-ln p(x | z_1)``.
- ``diffusion/digits/train_seconds``: wall time of ``genbook.fit`` for the recipe (the exponential
  moving average of the weights included).
- ``diffusion/digits/sample_seconds_per_1000``: wall time of ``model.sample(1000)`` (``T`` network
  passes of a batch of 1000), generator seed 3.
- ``samples/diffusion/{fd,kid,precision,recall}``: the first 447 of those 1000 samples against
  the 447 test digits, by ``metrics.sample_quality`` in the features of
  ``metrics.digits_classifier(0)``: the protocol of ``benchmarks/gan.py`` (whose
  ``samples/floor/*`` are real training digits on the same protocol).

``DIGITS_BOOK`` is the chapter's recipe (about a minute of training on one CPU thread);
``DIGITS_BENCH`` trains longer. Both use ``Diffusion(head="levels", variance="levels")``: the
network gives logits over each pixel's 17 levels, combined with the exact likelihood of ``z_t``
under each level, and the reverse step's variance is matched to that posterior over the levels
(see the class's docstring for what else was measured). ``ema``: the decay of an exponential
moving average of the weights (``torch.optim.swa_utils.AveragedModel``), updated after every
optimiser step; the average is what is evaluated. ``DIGITS_BENCH``'s model is saved as
``_build/bench/models/diffusion.DIGITS_BENCH.pt`` for the leaderboard (``benchmarks/leaderboard.py``).
"""

from __future__ import annotations

import math
import time

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import genbook
from genbook import data, metrics
from genbook.diffusion import Diffusion

from ._models import BenchModel
from .diffusion_toys import toys

_MODEL = dict(kind="levels", dim=64, levels=17, head="levels", variance="levels", T=1000, beta_1=1e-4, beta_T=0.02)
DIGITS_BOOK = dict(
    model=dict(**_MODEL, hidden=512, layers=3, dropout=0.2, loss="elbo"),
    fit=dict(steps=3000, batch_size=128, lr=1e-3),
    ema=0.999,
)
DIGITS_BENCH = dict(
    model=dict(**_MODEL, hidden=1024, layers=3, dropout=0.3, loss="elbo"),
    fit=dict(steps=4000, batch_size=128, lr=1e-3),
    ema=0.999,
)


def train_digits(recipe: dict, dev: torch.device) -> tuple[Diffusion, float]:
    """``recipe``'s model trained on the training digits (seed 0) and the training time in seconds.
    The returned model is the moving average of the weights (decay ``recipe["ema"]``), in eval mode."""
    genbook.seed(0)
    model = Diffusion(**recipe["model"]).to(dev)
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe["ema"]))
    start = time.perf_counter()
    genbook.fit(
        model,
        data.digits("train"),
        schedule="linear",
        progress=False,
        callback=lambda step: average.update_parameters(model),
        **recipe["fit"],
    )
    seconds = time.perf_counter() - start
    return average.module.eval(), seconds


BENCH_MODEL = BenchModel("diffusion.DIGITS_BENCH", DIGITS_BENCH, lambda dev: train_digits(DIGITS_BENCH, dev))


def bound(model: Diffusion, x: torch.Tensor) -> dict[str, float]:
    """Mean of each term of ``nll_bound`` with every step over the images ``x``, and ``"se"``, the
    standard error of the total."""
    terms = model.nll_bound(x, generator=torch.Generator(device=model.betas.device).manual_seed(1))
    out = {k: v.mean().item() for k, v in terms.items() if k != "per_step"}
    out["se"] = terms["total"].std().item() / math.sqrt(len(x))
    return out


def digits() -> dict[str, float]:
    dev = genbook.device()
    model, seconds = BENCH_MODEL.train(dev)
    BENCH_MODEL.save(model, seconds)
    key = "diffusion/digits"
    out = {f"{key}/train_seconds": seconds}
    test = data.digits("test")
    on_test = bound(model, test)
    out[f"{key}/test_nll_bound_nats"], out[f"{key}/test_nll_bound_se"] = on_test["total"], on_test["se"]
    out[f"{key}/val_nll_bound_nats"] = bound(model, data.digits("val"))["total"]
    for term in ("prior", "diffusion", "reconstruction"):
        out[f"{key}/test_{term}_nats"] = on_test[term]
    start = time.perf_counter()
    samples = model.sample(1000, generator=torch.Generator(device=dev).manual_seed(3)).cpu()
    out[f"{key}/sample_seconds_per_1000"] = time.perf_counter() - start
    clf = metrics.digits_classifier(0, progress=False)
    for name, value in metrics.sample_quality(samples[: len(test)], test, clf).items():
        out[f"samples/diffusion/{name}"] = value
    return out


def run() -> dict[str, float]:
    return {**toys(), **digits()}
