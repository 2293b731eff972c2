"""Sample quality (``genbook.metrics``): the digits classifier whose features the metrics use, the
floor of real held-out digits, and the scale of the numbers on images of known defects.

All numbers are ours, from one run of this suite on one machine.

- ``quality/classifier/seed<s>/{val,test}_accuracy``, ``.../train_seconds``: the classifier of
  ``metrics.digits_classifier(s)`` for seeds 0-2 (trained on the CPU; the seconds include early
  stopping on validation). Goal: test accuracy at least 0.95 (the recipe was chosen on
  validation cross-entropy).
- ``quality/<set>/{fd,kid,precision,recall}``: ``metrics.sample_quality(set, train, classifier)``
  with the seed-0 classifier, the 1000 training digits as the reference and k = 3:

  - ``val`` (350 images) and ``test`` (447): the floor, real digits the classifier and the
    reference never saw. The splits follow the data set's order, whose writers change along
    it, so the floor includes a change of writers;
  - ``test_noise<a>``: the test images with independent integer noise uniform on ``-a..a`` added
    to every pixel, clipped to 0..16 (a = 1, 2, 4);
  - ``test_digits0to4``: the test images of the digits 0-4 only (225 images), a model that
    dropped half the modes: recall should fall, precision not;
  - ``uniform``: 447 images of independent uniform levels 0..16.

Seen in one run (one thread, a busy 2-core CPU): test accuracy 0.987 / 0.978 / 0.978 (seeds
0-2), 4-7 s of training each; with the seed-0 classifier, FD / KID / precision / recall of
val 9.9 / 76 / 0.79 / 0.75, test 7.5 / 19 / 0.79 / 0.75, test_noise1 8.2 / 27 / 0.79 / 0.71,
test_noise2 10.5 / 41 / 0.75 / 0.74, test_noise4 19.5 / 93 / 0.56 / 0.71, test_digits0to4
75 / 340 / 0.80 / 0.43, uniform 162 / 549 / 0.18 / 0.10. KID comes out large because the
features are large (mean ``f . f' / F`` about 7, so the cubic kernel is about 500), not
because the sets are far apart.

About 30 s on a 2-core CPU.
"""

from __future__ import annotations

import time

import torch

from genbook import data, metrics

SEEDS = (0, 1, 2)
NOISE = (1, 2, 4)
NOISE_SEED = 0


def defective_sets(test: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The test images with integer noise, with half the digits, and uniform noise images."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    sets = {}
    for a in NOISE:
        noise = torch.randint(-a, a + 1, test.shape, generator=gen)
        sets[f"test_noise{a}"] = (test + noise).clamp(0, data.DIGITS_LEVELS - 1)
    sets["test_digits0to4"] = test[labels < 5]
    sets["uniform"] = torch.randint(0, data.DIGITS_LEVELS, test.shape, generator=gen)
    return sets


def run() -> dict[str, float]:
    out = {}
    val, val_y = data.digits("val", labels=True)
    test, test_y = data.digits("test", labels=True)
    classifiers = {}
    for s in SEEDS:
        t0 = time.perf_counter()
        clf = metrics.digits_classifier(s, progress=False)
        out[f"quality/classifier/seed{s}/train_seconds"] = time.perf_counter() - t0
        out[f"quality/classifier/seed{s}/val_accuracy"] = clf.accuracy(val, val_y)
        out[f"quality/classifier/seed{s}/test_accuracy"] = clf.accuracy(test, test_y)
        classifiers[s] = clf
    train = data.digits("train")
    for name, images in {"val": val, "test": test, **defective_sets(test, test_y)}.items():
        for key, value in metrics.sample_quality(images, train, classifiers[0]).items():
            out[f"quality/{name}/{key}"] = value
    return out
