"""The sample-quality bench's defective images: what each set is said to be."""

from __future__ import annotations

import pytest
import torch

from benchmarks.quality import NOISE, defective_sets
from genbook import data


def test_defective_sets_are_what_the_docstring_says():
    test, labels = data.digits("test", labels=True)
    sets = defective_sets(test, labels)
    assert set(sets) == {f"test_noise{a}" for a in NOISE} | {"test_digits0to4", "uniform"}
    for images in sets.values():
        assert images.dtype == torch.long and images.min() >= 0 and images.max() <= 16
    for a in NOISE:
        assert sets[f"test_noise{a}"].shape == test.shape
        assert (sets[f"test_noise{a}"] - test).abs().max() == a
    assert sets["test_digits0to4"].shape == (225, 64)
    assert sets["uniform"].shape == test.shape
    assert sets["uniform"].double().mean().item() == pytest.approx(8.0, abs=0.15)  # sd of the mean about 0.03
