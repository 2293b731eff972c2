"""Chapter 7: the GAN on the eight Gaussians and on the digits, and every digit model's samples
scored on one protocol (``genbook.metrics``).

All numbers are ours, from one run of this suite on one machine, seed 0 unless said.

- ``gan/8gaussians/modes_covered``, ``gan/8gaussians/high_quality_frac``: the chapter's 2-D GAN
  (``GAN(kind="points")`` with its defaults, 5000 steps of 256 of 10 000 points, lr 2e-3 decayed
  linearly); of 2000 samples, the share within 3 standard deviations of a mode's centre, and the
  number of modes holding at least 2 % of the samples that way. Goals: 8 and at least 0.9.
  ``..._min_over_seeds`` repeat both for seeds 0, 1, 2 and keep the worst.
- ``metrics/digits_classifier/test_accuracy``: ``metrics.digits_classifier(0)``, whose features
  every sample metric uses. Goal: at least 0.95.
- The protocol of the chapter: 447 images of each model are compared with the 447 test digits
  by ``metrics.sample_quality`` (Frechet distance ``fd``, kernel distance ``kid``, k-NN
  ``precision`` and ``recall``, k = 3). ``samples/floor/*`` scores 447 training digits drawn
  without replacement (seed 0): real images, the best any model can expect.
- ``gan/digits/{fd,kid,precision,recall}``: the chapter's digits GAN (``genbook.zoo``'s ``"gan"``:
  ``kind="levels"``, latent 32, two hidden layers of 256, R1 weight 1, 15 000 steps of 64, lr 1e-3
  decayed linearly), and ``gan/digits/min_class_frac``, the smallest share of a digit among its
  samples by the classifier.
- ``samples/{ar,realnvp,vae}/{fd,precision,recall}``: the chapter's ARM (``genbook.zoo``'s
  ``"arm"``, ``BOOK`` of ``benchmarks/ar.py``), the RealNVP of chapter 5 (``"realnvp"``:
  ``DigitsFlow()``, 100 epochs, lr 2e-3 decayed linearly, best validation bound kept) and the VAE
  of ``benchmarks/ae.py`` (``RECIPE``: the local decoder with a mixture prior);
  ``samples/vae_factorised/*`` the chapter's first VAE (``"vae"``).

The chapters' recipes are trained here by ``genbook.zoo.train`` (seed 0) and saved as
``_build/bench/models/zoo.<name>.pt`` for the leaderboard (``benchmarks/leaderboard.py``).

Target: the GAN's FD below the VAE's and RealNVP's in the same run, with the ARM's beside them.
"""

from __future__ import annotations

import torch

import genbook
from genbook import data, metrics
from genbook.gan import GAN

from . import ae
from ._models import chapter_model

EIGHT = dict(model=dict(kind="points", dim=2, latent=2, hidden=128, layers=3), steps=5000, batch_size=256, lr=2e-3)


def eight_gaussians(seed: int, dev: torch.device) -> tuple[int, float]:
    """Modes covered and the share of samples within 3 std of a mode, for one seed."""
    toy = data.toy("8gaussians")
    x = toy.sample(10_000, generator=torch.Generator().manual_seed(0)).float()
    genbook.seed(seed)
    gan = GAN(**EIGHT["model"]).to(dev)
    fit_kw = {k: EIGHT[k] for k in ("steps", "batch_size", "lr")}
    genbook.fit(gan, x, schedule="linear", progress=False, **fit_kw)
    points = gan.sample(2000, generator=torch.Generator(device=dev).manual_seed(1)).cpu()
    near, share = toy.mode_shares(points)
    return int((share >= 0.02).sum()), near


def _chapter(name: str, dev: torch.device) -> torch.nn.Module:
    """``genbook.zoo``'s recipe ``name`` trained here (seed 0), and saved for the leaderboard."""
    chapter = chapter_model(name)
    model, seconds = chapter.train(dev)
    chapter.save(model, seconds)
    return model


def digit_models(dev: torch.device) -> dict[str, torch.nn.Module]:
    """The digits GAN and the likelihood models of chapters 4-6: the chapters' recipes and the VAE of
    ``benchmarks/ae.py``."""
    models = {name: _chapter(recipe, dev) for name, recipe in (("gan", "gan"), ("ar", "arm"), ("realnvp", "realnvp"))}
    models["vae"] = ae.train_digits_vae(ae.RECIPE, dev)[0]
    models["vae_factorised"] = _chapter("vae", dev)
    return models


def run() -> dict[str, float]:
    dev = genbook.device()
    out = {}
    runs = [eight_gaussians(seed, dev) for seed in (0, 1, 2)]
    out["gan/8gaussians/modes_covered"], out["gan/8gaussians/high_quality_frac"] = runs[0]
    out["gan/8gaussians/modes_covered_min_over_seeds"] = min(m for m, _ in runs)
    out["gan/8gaussians/high_quality_frac_min_over_seeds"] = min(q for _, q in runs)

    clf = metrics.digits_classifier(0, progress=False)
    test, test_y = data.digits("test", labels=True)
    out["metrics/digits_classifier/test_accuracy"] = clf.accuracy(test, test_y)
    train = data.digits("train")
    n = len(test)
    sets = {"samples/floor": train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]]}
    gen = torch.Generator(device=dev)
    for name, model in digit_models(dev).items():
        model.eval()
        gen.manual_seed(3)
        sets["gan/digits" if name == "gan" else f"samples/{name}"] = model.sample(n, generator=gen).cpu()
    for prefix, images in sets.items():
        for key, value in metrics.sample_quality(images, test, clf).items():
            out[f"{prefix}/{key}"] = value
    out["gan/digits/min_class_frac"] = metrics.class_histogram(sets["gan/digits"], clf).min().item()
    return out
