"""The language-model bench on tiny settings: its parts return the documented keys, and its scores can tell
a trained model from an untrained one."""

from __future__ import annotations

import torch

import genbook
from benchmarks import lm as bench_lm
from genbook import data
from genbook.transformer import TransformerLM


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


def test_digits_model_is_saved_as_a_plain_transformer_with_the_same_log_prob(tmp_path):
    model = bench_lm._ShiftedLM(vocab=17, context=64, shifted=0.5, dim=16, heads=2, layers=1, dropout=0.1, tie=False)
    genbook.fit(model, data.digits("train")[:64], epochs=1, batch_size=32, lr=1e-2, progress=False)
    plain = bench_lm.plain_lm(model)
    assert type(plain) is TransformerLM and not plain.training
    x = data.digits("test")[:20]
    want = model.eval().log_prob(x)
    torch.testing.assert_close(plain.log_prob(x), want, rtol=0, atol=0)
    genbook.save(plain, tmp_path / "lm.pt")
    torch.testing.assert_close(genbook.load(tmp_path / "lm.pt").log_prob(x), want, rtol=0, atol=0)
