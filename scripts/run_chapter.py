"""Execute one or more chapters as the book build does, and report what a build would reject.

    .venv/bin/python scripts/run_chapter.py book/03_energy.md [more.md ...] [--out DIR] [--allow-errors]

Each chapter is read with myst-nb's MyST reader and run in a fresh kernel (no cache). Prints
the wall time, and fails (exit 1) on a cell error or on any output to stderr, which the
build turns into an error. The executed notebook is written to DIR (default
``_build/chapters``) as ``<stem>.ipynb``, so its outputs can be read without a site build.
With ``--allow-errors`` every cell runs even after one fails, and each failing cell is listed
(one run shows every failing assert of a chapter); the exit status is still 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from myst_nb.core.read import read_myst_markdown_notebook
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run(path: Path, out: Path, allow_errors: bool = False) -> bool:
    nb = read_myst_markdown_notebook(path.read_text())
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.perf_counter()
    ok = True
    try:
        client.execute()
    except CellExecutionError as err:
        print(f"{path.stem}: cell error\n{err}", file=sys.stderr)
        ok = False
    seconds = time.perf_counter() - t0
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                print(f"{path.stem}: cell {i} raised {o['ename']}: {o['evalue']}\n{cell.source}", file=sys.stderr)
                ok = False
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                print(f"{path.stem}: cell {i} wrote to stderr:\n{o['text']}", file=sys.stderr)
                ok = False
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{path.stem}.ipynb")
    print(f"{path.stem}: {seconds:.1f} s, {'ok' if ok else 'FAILED'} (outputs in {out / (path.stem + '.ipynb')})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("_build/chapters"))
    parser.add_argument("--allow-errors", action="store_true", help="run every cell; list the failing ones")
    args = parser.parse_args()
    import os

    os.environ.setdefault("GENBOOK_PROGRESS", "0")
    os.environ.setdefault("MPLBACKEND", "Agg")
    results = [run(p, args.out, args.allow_errors) for p in args.chapters]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
