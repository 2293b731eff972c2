"""Chapter 10's likelihood table, made from the bench's longer recipes: every row of
``genbook.zoo.SCORES`` scored on the 447 test digits, with each model's sample quality.

All numbers are ours, from one run of this suite on one machine, seed 0 for every model.

For each key of ``zoo.SCORES`` (``independent``, ``mixture``, ``markov``, ``arm``, ``transformer``,
``realnvp_uniform``, ``realnvp_iw``, ``vae_elbo``, ``vae_iwae``, ``vae_local_elbo``,
``vae_local_iwae``, ``diffusion``):

- ``leaderboard/<key>/test_nats``: the mean over the test digits of
  ``metrics.nll_values(model, test, bound=score.bound, n_samples=score.n_samples)``, nats per image:
  the exact negative log-likelihood for the rows with ``exact`` 1, an upper bound on it (estimated
  with the bound's own draws, generator seed ``SCORE_SEED`` on the model's device) for the others. A
  bound is compared as a bound: a bound above an exact NLL does not show that the model is worse.
- ``leaderboard/<key>/ci95_nats``: half the width of the 95 % percentile-bootstrap interval of that
  mean (``metrics.bootstrap_ci``, 10 000 resamples of the test digits, seed ``BOOT_SEED``): how much
  the number would move on another test set of 447 digits; it leaves out the Monte Carlo noise of a
  stochastic bound.
- ``leaderboard/<key>/exact``: 1 when the row is the exact NLL, 0 when it is a bound.
- ``leaderboard/<key>/fd``: the Frechet distance between 447 samples of the row's model
  (``model.sample(447)``, generator seed ``SAMPLE_SEED``; rows of one model share one sample set) and
  the 447 test digits, in the features of ``metrics.digits_classifier(0)`` (the protocol of
  ``benchmarks/gan.py``).
- ``leaderboard/<key>/train_seconds``: the model's training time (on this run's device, possibly in an
  earlier suite of the same ``make bench``), for every row but the counted baselines.

Where each row's model comes from (the bench's longer recipe where the bench has one):

=================================  ==========================================================================
rows                               model
=================================  ==========================================================================
``independent``, ``mixture``,      ``zoo.fit_baselines``: counted on the training digits, settings chosen on
``markov``                         validation (exact)
``arm``                            ``ar.LONG``: ``ConvARM``, 128 channels, kernel 5, six layers, dropout 0.5,
                                   100 epochs (exact)
``transformer``                    ``lm.DIGITS``: dim 96, three layers, dropout 0.2, 160 epochs, half of each
                                   training batch shifted by up to a pixel (exact)
``realnvp_uniform``, ``_iw``       ``flows.DIGITS_FIT``: ``DigitsFlow()``, up to 300 epochs, patience 20;
                                   uniform dequantisation bound (10 draws) and importance-weighted (S = 100)
``vae_elbo``, ``vae_iwae``         the chapter's recipe (``zoo.vae``; the bench trains no longer factorised
                                   VAE): -ELBO (10 draws) and IWAE (K = 1000)
``vae_local_elbo``, ``_iwae``      ``ae.LOCAL``: the local decoder with a prior of 50 Gaussians (the
                                   chapter's ``vae_local`` has a standard normal prior), up to 600 epochs,
                                   patience 40; -ELBO (10 draws) and IWAE (K = 1000)
``diffusion``                      ``diffusion.DIGITS_BENCH``: hidden 1024, 4000 steps, moving average of the
                                   weights; the variational bound with all 1000 steps
=================================  ==========================================================================

Also ``leaderboard/gan/fd`` and ``leaderboard/gan/train_seconds``: the chapter's GAN (``zoo.gan``,
no likelihood), and ``leaderboard/floor/fd``: 447 training digits (drawn without replacement, seed 0)
against the test digits, the distance real images reach.

A model is loaded from ``_build/bench/models/<recipe>.pt`` when an earlier suite of the run saved it
there with the same settings (``benchmarks/_models.py``), and trained here otherwise (and saved), so
``python -m benchmarks leaderboard`` also works on its own.

Seen in one run of this suite alone (one CPU thread of a busy 2-core machine: 13 minutes with every
model trained here, 2 minutes with all of them loaded), with the transformer of ``lm.DIGITS`` as it was
then (dropout 0.1, 80 epochs), test nats +- ci95 (FD): independent 106.3 +-
0.8 (118), mixture 100.2 +- 1.0 (44), markov 100.3 +- 0.8 (125), arm 79.1 +- 0.9 (17.0), transformer
80.9 +- 1.0 (16.8), realnvp 95.6 +- 1.0 uniform and 91.2 +- 0.9 importance-weighted (25.4), vae 94.9 +-
1.1 -ELBO and 91.8 +- 1.0 IWAE (38.9), vae_local 88.7 +- 1.1 and 85.8 +- 1.1 (20.6), diffusion 93.0 +-
1.1 (19.8); gan FD 9.1, floor 7.1. The diffusion row repeats ``diffusion/digits/test_nll_bound_nats``
(same model, same draws).
"""

from __future__ import annotations

import time

import torch
from torch import nn

import genbook
from genbook import data, metrics, zoo

from . import ae, ar, diffusion, flows, lm
from ._models import BenchModel, chapter_model

SCORE_SEED, SAMPLE_SEED, BOOT_SEED, FLOOR_SEED = 1, 3, 0, 0

# the model of each row of zoo.SCORES that is not a counted baseline
SOURCES: dict[str, BenchModel] = {
    "arm": ar.LONG_MODEL,
    "transformer": lm.DIGITS_MODEL,
    "realnvp": flows.DIGITS_MODEL,
    "vae": chapter_model("vae"),
    "vae_local": ae.LOCAL_MODEL,
    "diffusion": diffusion.BENCH_MODEL,
}
GAN = chapter_model("gan")


def _row_models(dev: torch.device) -> dict[str, tuple[nn.Module, float | None]]:
    """Every model ``zoo.SCORES`` scores, on ``dev``, with its training seconds (``None`` for the
    baselines)."""
    wanted = {score.model for score in zoo.SCORES.values()}
    baselines = zoo.fit_baselines(data.digits("train"), data.digits("val"))
    missing = wanted - set(baselines) - set(SOURCES)
    if missing:
        raise ValueError(f"zoo.SCORES scores {sorted(missing)}, which leaderboard.SOURCES lacks: add its bench recipe")
    out = {}
    for name in sorted(wanted):
        if name in baselines:
            out[name] = baselines[name].to(dev), None
        else:
            t0 = time.perf_counter()
            out[name] = SOURCES[name].load_or_train(dev)
            print(f"leaderboard: {name} ({SOURCES[name].recipe}) ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def _score(key: str, model: nn.Module, test: torch.Tensor, dev: torch.device) -> dict[str, float]:
    """``test_nats``, ``ci95_nats`` and ``exact`` of the row ``key`` of ``zoo.SCORES``."""
    score = zoo.SCORES[key]
    gen = torch.Generator(device=dev).manual_seed(SCORE_SEED)
    values = metrics.nll_values(model, test, bound=score.bound, n_samples=score.n_samples, generator=gen)
    if not torch.isfinite(values).all():
        raise ValueError(f"leaderboard row {key!r}: {int((~torch.isfinite(values)).sum())} test digits score inf nats")
    mean, low, high = metrics.bootstrap_ci(values, generator=torch.Generator().manual_seed(BOOT_SEED))
    return {"test_nats": mean, "ci95_nats": (high - low) / 2, "exact": float(score.exact)}


def _fd(model: nn.Module, test: torch.Tensor, classifier: metrics.DigitsClassifier, dev: torch.device) -> float:
    """Frechet distance of ``len(test)`` samples of ``model`` to ``test``."""
    samples = model.sample(len(test), generator=torch.Generator(device=dev).manual_seed(SAMPLE_SEED)).cpu()
    return metrics.sample_quality(samples, test, classifier)["fd"]


def run() -> dict[str, float]:
    dev = genbook.device()
    train, test = data.digits("train"), data.digits("test")
    classifier = metrics.digits_classifier(0, progress=False)
    models = _row_models(dev)
    fd = {name: _fd(model, test, classifier, dev) for name, (model, _) in models.items()}
    out = {}
    for key, score in zoo.SCORES.items():
        model, seconds = models[score.model]
        for name, value in {**_score(key, model, test, dev), "fd": fd[score.model]}.items():
            out[f"leaderboard/{key}/{name}"] = value
        if seconds is not None:
            out[f"leaderboard/{key}/train_seconds"] = seconds
        print(f"leaderboard: {key} {out[f'leaderboard/{key}/test_nats']:.2f} nats", flush=True)
    gan, out["leaderboard/gan/train_seconds"] = GAN.load_or_train(dev)
    out["leaderboard/gan/fd"] = _fd(gan, test, classifier, dev)
    floor = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SEED))[: len(test)]]
    out["leaderboard/floor/fd"] = metrics.sample_quality(floor, test, classifier)["fd"]
    return out
