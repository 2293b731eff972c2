"""Device selection and seeding: the only place in genbook that picks a device."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ._checks import check_int

_VALID = ("cpu", "cuda", "mps")


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s tensors live: its first parameter, else its first buffer (a model fit by
    counting has only buffers), else the CPU."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run the body with ``model`` in eval mode (no dropout), restoring its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def device() -> torch.device:
    """The device every chapter and model uses.

    ``GENBOOK_DEVICE`` wins when set (``cpu``, ``cuda``, ``cuda:1``, ``mps``);
    otherwise CUDA, then Apple's MPS, then the CPU. Under ``torchrun`` with several processes,
    CUDA without an index means each process's own GPU, ``cuda:LOCAL_RANK``.
    """
    wanted = os.environ.get("GENBOOK_DEVICE", "").strip()
    if wanted:
        kind = wanted.split(":")[0]
        if kind not in _VALID:
            raise ValueError(
                f"GENBOOK_DEVICE must be one of {', '.join(_VALID)} (optionally with ':index'), got {wanted!r}"
            )
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"GENBOOK_DEVICE={wanted!r} but torch sees no CUDA device")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"GENBOOK_DEVICE={wanted!r} but torch sees no MPS device")
        return _local_gpu() if wanted == "cuda" else torch.device(wanted)
    if torch.cuda.is_available():
        return _local_gpu()
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _local_gpu() -> torch.device:
    """``cuda:LOCAL_RANK`` for a process that torchrun started among several, else ``cuda``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device("cuda")


def seed(n: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CUDA included) with ``n``.

    Returns a CPU ``torch.Generator`` seeded with ``n`` for functions that take one.
    """
    check_int("n", n, min=0)
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)  # also seeds every CUDA device
    return torch.Generator().manual_seed(n)
