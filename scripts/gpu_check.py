"""Execute every chapter on the device that ``genbook.device()`` names (``make gpu-check`` sets
``GENBOOK_DEVICE=cuda``) and write each chapter's time and outcome to ``OUT/chapters.json``.

    GENBOOK_DEVICE=cuda .venv/bin/python scripts/gpu_check.py --out _build/gpu-check

Chapters run as ``benchmarks.book`` runs them (myst-nb's reader, a fresh kernel, no cache); a
chapter that fails is recorded with its error and the others still run. Exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import genbook  # noqa: E402
from benchmarks.book import chapters, execute  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "gpu-check")
    args = parser.parse_args()
    dev = genbook.device()
    report = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "chapters": {},
    }
    for path in chapters():
        t0 = time.perf_counter()
        try:
            seconds = execute(path)
            entry = {"seconds": round(seconds, 2), "ok": True}
        except Exception as err:  # a failing chapter is reported, and the others still run
            entry = {
                "seconds": round(time.perf_counter() - t0, 2),
                "ok": False,
                "error": f"{type(err).__name__}: {err}"[:2000],
            }
        report["chapters"][path.stem] = entry
        print(f"{path.stem:<22} {entry['seconds']:8.1f} s  {'ok' if entry['ok'] else 'FAILED'}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chapters.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [k for k, v in report["chapters"].items() if not v["ok"]]
    print(f"written to {args.out / 'chapters.json'}; {len(failed)} failed {failed if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
