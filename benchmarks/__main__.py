"""Run the benchmarks and write ``_build/bench/results.json``.

``python -m benchmarks`` runs every suite; ``python -m benchmarks book bayes`` runs some.
Output: ``{"machine": {...}, "metrics": {"KEY": number, ...}}``, also printed as a table.
Each suite is a module with ``run() -> dict[str, float]``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

import genbook

# later chapters add theirs; "leaderboard" last, as it reuses the digits models the others save
SUITES = [
    "book",
    "bayes",
    "sampling",
    "rbm",
    "ar",
    "flows",
    "ae",
    "quality",
    "gan",
    "diffusion",
    "lm",
    "ddp",
    "leaderboard",
]
OUT = Path("_build/bench/results.json")


def machine() -> dict:
    dev = genbook.device()
    info = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return info


def main(argv: list[str]) -> int:
    chosen = argv or SUITES
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        print(f"unknown suite(s) {unknown}; choose from {SUITES}", file=sys.stderr)
        return 2
    results = json.loads(OUT.read_text()) if OUT.exists() else {"metrics": {}}
    results["machine"] = machine()
    metrics = results.setdefault("metrics", {})
    for name in chosen:
        t0 = time.perf_counter()
        print(f"--- {name}", flush=True)
        got = importlib.import_module(f"benchmarks.{name}").run()
        bad = {k: v for k, v in got.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
        if bad:
            raise ValueError(f"suite {name} returned non-finite or non-numeric metrics: {bad}")
        metrics.update(got)
        print(f"--- {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    results["metrics"] = dict(sorted(metrics.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"\nmachine: {results['machine']['device']} ({results['machine']['device_name']}), "
        f"torch {results['machine']['torch']}, {results['machine']['cpu_count']} CPUs"
    )
    width = max(map(len, results["metrics"]))
    for key, value in results["metrics"].items():
        print(f"{key:<{width}}  {value:.6g}")
    print(f"\nwritten to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
