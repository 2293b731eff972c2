"""The bench's chapter timings: each chapter's seconds over the calibrations timed beside it."""

from __future__ import annotations

from pathlib import Path

import benchmarks.book as book


def test_calibrated_is_seconds_over_the_calibrations_beside_it(monkeypatch, tmp_path):
    chapters = []
    for stem in ("intro", "01_a", "02_b"):
        path = tmp_path / f"{stem}.md"
        path.write_text("```{code-cell} ipython3\n1\n```\n")
        chapters.append(path)
    monkeypatch.setattr(book, "chapters", lambda: chapters)
    seconds = iter([10.0, 30.0, 8.0])
    calibrations = iter([100.0, 1.0, 3.0, 2.0, 4.0])  # the first is the discarded warm-up
    monkeypatch.setattr(book, "execute", lambda path: next(seconds))
    monkeypatch.setattr(book, "calibration_seconds", lambda: next(calibrations))
    out = book.run()
    assert out["book/intro/seconds"] == 10.0
    assert out["book/intro/calibrated"] == 5.0  # 10 / mean(1, 3)
    assert out["book/01_a/calibrated"] == 12.0  # 30 / mean(3, 2)
    assert out["book/02_b/calibrated"] == round(8.0 / 3.0, 2)
    assert out["bench/calibration_seconds"] == 2.5  # median of 1, 3, 2, 4: the warm-up counts nowhere
    assert next(calibrations, None) is None  # and no call more


def test_chapters_come_from_the_toc():
    stems = [p.stem for p in book.chapters()]
    assert stems[0] == "intro" and "05_flows" in stems
    assert all(isinstance(p, Path) and p.exists() for p in book.chapters())
