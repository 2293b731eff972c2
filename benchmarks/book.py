"""Chapter execution times, raw and in calibrated units.

- ``book/<stem>/seconds``: wall time to execute each chapter's notebook from a fresh kernel.
  Every chapter listed in ``_toc.yml`` is read with myst-nb's MyST reader and executed with
  nbclient, as the book build does, but without the cache, so the time is always measured.
- ``bench/calibration_seconds``: the median of the fixed workload of
  ``benchmarks.calibration``, timed before every chapter and after the last one.
- ``book/<stem>/calibrated``: the chapter's seconds divided by the mean of the two
  calibrations timed just before and just after it. This machine's speed drifts by up to 2x
  within a session; a slowdown of the whole machine divides out of this ratio, so compare
  these between runs, not raw seconds. The README states the chapter budget (150 s on a
  quiet 2-core machine) in these units.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import yaml
from myst_nb.core.read import read_myst_markdown_notebook
from nbclient import NotebookClient

from .calibration import calibration_seconds

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [ROOT / f"{f}.md" for f in files]


def execute(path: Path) -> float:
    nb = read_myst_markdown_notebook(path.read_text())
    if not any(c.cell_type == "code" for c in nb.cells):
        return 0.0
    os.environ.setdefault("GENBOOK_PROGRESS", "0")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


def run() -> dict[str, float]:
    out = {}
    calibration_seconds()  # a first call pays for imports and allocations: not a measurement
    calibrations = [calibration_seconds()]
    for path in chapters():
        text = path.read_text()
        if "code-cell" not in text:
            continue
        seconds = execute(path)
        calibrations.append(calibration_seconds())
        beside = (calibrations[-2] + calibrations[-1]) / 2
        out[f"book/{path.stem}/seconds"] = round(seconds, 2)
        out[f"book/{path.stem}/calibrated"] = round(seconds / beside, 2)
        print(f"  {path.stem}: {seconds:.1f} s = {seconds / beside:.1f} calibrations of {beside:.2f} s", flush=True)
    out["bench/calibration_seconds"] = round(statistics.median(calibrations), 3)
    return out
