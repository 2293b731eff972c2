"""The language-model bench on tiny settings: its parts return the documented keys, and its scores can tell
a trained model from an untrained one."""

from __future__ import annotations

import torch

from benchmarks import lm as bench_lm


def test_copy_task_part_reports_excess_over_the_exact_entropy(monkeypatch):
    monkeypatch.setitem(bench_lm.COPY, "task", dict(length=4, symbols=6))
    monkeypatch.setitem(bench_lm.COPY, "n_train", 300)
    monkeypatch.setitem(bench_lm.COPY, "fit", dict(steps=3, batch_size=64, lr=1e-3))
    out = bench_lm.copy_task(torch.device("cpu"))
    assert set(out) == {"lm/copy/excess_pct", "lm/copy/markov_excess_pct"}
    assert out["lm/copy/excess_pct"] > 20  # three steps learn nothing of the copy
    assert 50 < out["lm/copy/markov_excess_pct"] < 120  # 300 of 1296 strings seen: the chain pays for most copies again


def test_windows_overlap_by_half():
    w = bench_lm._windows(torch.arange(10), 4)
    assert w.tolist() == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
