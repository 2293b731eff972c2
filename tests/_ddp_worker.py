"""Run by tests/test_distributed.py, as one process or under torchrun: train two small models with
genbook.fit and write what each process ended with (not a test module: its name starts with _)."""

import os
import sys
from pathlib import Path

os.environ["GENBOOK_DEVICE"] = "cpu"
os.environ["GENBOOK_PROGRESS"] = "0"

import torch  # noqa: E402

import genbook  # noqa: E402
from genbook.autoregressive import ConvARM  # noqa: E402


def data(n: int, seed: int) -> torch.Tensor:
    """Sequences of 6 symbols from 3 where each repeats the previous one with probability 0.7."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (n, 6), generator=g)
    keep = torch.rand(n, 6, generator=g) < 0.7
    for t in range(1, 6):
        x[:, t] = torch.where(keep[:, t], x[:, t - 1], x[:, t])
    return x


def model() -> ConvARM:
    genbook.seed(0)  # the same initialisation on every process (DDP also broadcasts rank 0's)
    return ConvARM(levels=3, length=6, channels=8, kernel_size=3, layers=2, dropout=0.0)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    # 37 examples in global batches of 10: the last batch of each epoch (7) splits unevenly
    steps = model()
    hist = genbook.fit(steps, data(37, 1), steps=9, batch_size=10, lr=3e-2, generator=torch.Generator().manual_seed(2))
    # early stopping on validation: a large learning rate on a little data overfits within a few epochs
    early = model()
    early_hist = genbook.fit(
        early,
        data(24, 3),
        val=data(61, 4),
        epochs=60,
        batch_size=8,
        lr=0.3,
        patience=2,
        generator=torch.Generator().manual_seed(5),
    )
    rank = genbook.distributed.rank()  # fit joined the process group that torchrun describes
    genbook.save(steps, out / f"saved_by_rank{rank}.pt")
    record = {
        "world": genbook.distributed.world_size(),
        "steps": {k: v.clone() for k, v in steps.state_dict().items()},
        "train_loss": hist.train_loss,
        "early": {k: v.clone() for k, v in early.state_dict().items()},
        "val_loss": early_hist.val_loss,
        "val_step": early_hist.val_step,
        "best_step": early_hist.best_step,
        "stopped_early": early_hist.stopped_early,
        "early_steps": len(early_hist.train_loss),
    }
    torch.save(record, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
