"""Training on several processes with PyTorch's own engine: ``torchrun`` and ``DistributedDataParallel``.

Nothing here runs unless the process was started by ``torchrun`` (or another launcher that sets
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) with a world of more
than one process. Then :func:`setup` joins the process group (``gloo`` on the CPU, ``nccl`` on CUDA),
:func:`genbook.device` gives each process its own GPU (``cuda:LOCAL_RANK``), :func:`genbook.fit`
wraps the model in ``DistributedDataParallel`` and shards every global batch across the processes,
and :func:`genbook.save` writes on rank 0 only. One process, the book's case, is untouched: every
function below answers as for a world of one.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["launched", "setup", "active", "rank", "world_size", "is_main", "backend"]


def launched() -> bool:
    """True when a launcher such as ``torchrun`` started this process in a world of more than one."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError as err:
        raise ValueError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from err


def backend() -> str:
    """``"nccl"`` when this process trains on CUDA, else ``"gloo"``."""
    from ._device import device

    return "nccl" if device().type == "cuda" else "gloo"


def setup() -> bool:
    """Join the process group that the launcher describes, once; True when training is distributed.

    Called by :func:`genbook.fit` itself, so a script written for one process runs unchanged under
    ``torchrun``. A process group that the script created itself (any backend) is used as it is."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this build of torch has no torch.distributed")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for distributed training, but {missing} "
            f"{'is' if len(missing) == 1 else 'are'} not set: start the script with torchrun"
        )
    kind = backend()
    if kind == "nccl":
        from ._device import device

        torch.cuda.set_device(device())
    dist.init_process_group(backend=kind)
    return dist.get_world_size() > 1


def active() -> bool:
    """True when a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on rank 0, which alone shows progress and writes files."""
    return rank() == 0
