"""Two processes against one: the speed of ``genbook.fit`` under ``torchrun``.

- ``ddp/cpu2/steps_per_s_1proc``: optimiser steps per second of chapter 4's convolutional ARM on
  the digits, global batch 32, one process with 2 threads;
- ``ddp/cpu2/steps_per_s_2proc``: the same steps with ``torchrun --standalone --nproc_per_node=2``
  (two gloo processes of 1 thread each, each computing half of every batch);
- ``ddp/cpu2/steps_per_s_ratio``: the second over the first, measured in one run.

Both use the same machine's two cores, so the ratio says what splitting a batch across processes
costs or gains here: on a small model the gradient all-reduce and the loss all-reduce of every
step weigh against half a batch of computation. On a machine with two or more GPUs the same
processes run on CUDA with NCCL (the key keeps its name) and the ratio measures the scale-out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

STEPS, BATCH = 400, 32
ROOT = Path(__file__).resolve().parent.parent


def _worker(out: Path) -> None:
    """Run under torchrun or alone: train for STEPS steps and (rank 0) write the steps per second."""
    import genbook
    from genbook import data, distributed
    from genbook.autoregressive import ConvARM

    genbook.seed(0)
    model = ConvARM(levels=17, length=64, channels=64, kernel_size=7, layers=4, dilations=[1, 1, 2, 4], dropout=0.3)
    model.to(genbook.device())
    genbook.fit(model, data.digits("train"), steps=20, batch_size=BATCH, progress=False)  # warm-up
    hist = genbook.fit(model, data.digits("train"), steps=STEPS, batch_size=BATCH, progress=False)
    if distributed.is_main():
        out.write_text(json.dumps({"steps_per_s": hist.steps / hist.seconds, "world": distributed.world_size()}))
    if distributed.active():
        torch.distributed.destroy_process_group()


def _launch(args: list[str], out: Path, env: dict) -> dict:
    cmd = [sys.executable, *args, "-m", "benchmarks.ddp", "--worker", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def run() -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["GENBOOK_PROGRESS"] = "0"
    if not (torch.cuda.is_available() and torch.cuda.device_count() >= 2):
        env["GENBOOK_DEVICE"] = "cpu"  # two processes need two GPUs for NCCL; else both on the CPU
    with tempfile.TemporaryDirectory() as tmp:
        one = _launch([], Path(tmp) / "one.json", {**env, "OMP_NUM_THREADS": "2"})
        two = _launch(
            ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"],
            Path(tmp) / "two.json",
            {**env, "OMP_NUM_THREADS": "1"},
        )
    assert one["world"] == 1 and two["world"] == 2, (one, two)
    return {
        "ddp/cpu2/steps_per_s_1proc": one["steps_per_s"],
        "ddp/cpu2/steps_per_s_2proc": two["steps_per_s"],
        "ddp/cpu2/steps_per_s_ratio": two["steps_per_s"] / one["steps_per_s"],
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(Path(sys.argv[2]))
    else:
        print(run())
