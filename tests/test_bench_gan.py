"""The GAN bench's 2-D scoring: modes covered and the high-quality share, on a short run."""

from __future__ import annotations

import torch

from benchmarks import gan as bench_gan


def test_eight_gaussians_scores_are_counts_and_fractions(monkeypatch):
    monkeypatch.setitem(bench_gan.EIGHT, "steps", 30)
    modes, frac = bench_gan.eight_gaussians(0, torch.device("cpu"))
    assert isinstance(modes, int) and 0 <= modes <= 8
    assert 0.0 <= frac <= 1.0
    assert frac < 0.9  # 30 steps are far from the trained GAN, so the score can tell them apart
