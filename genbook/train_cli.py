"""Train one of the book's digits models from the command line, on one process or several.

    python -m genbook.train_cli arm --out runs/arm
    torchrun --standalone --nproc_per_node=2 -m genbook.train_cli arm --out runs/arm

The model is trained with its chapter's recipe (:data:`genbook.zoo.RECIPES`), optionally with
another length (``--epochs`` or ``--steps``), global batch size or precision, and written to
``OUT/<the chapter's file name>`` with :func:`genbook.save` (its training time and the settings in
``meta``); its test negative log-likelihood (exact, or the bound of :data:`genbook.zoo.SCORES`)
goes to ``OUT/<model>_test.json`` and to the screen. Under ``torchrun`` every process trains its
share of each batch (see :func:`genbook.fit`) and rank 0 alone evaluates and writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import distributed, zoo
from ._device import device
from .data import digits
from .io import save
from .metrics import bits_per_dim, bootstrap_ci, nll_values

__all__ = ["MODELS", "main"]

# models trained through loss (fit distributes those); the GAN and the RBM train otherwise
MODELS = ("arm", "transformer", "realnvp", "vae", "vae_local", "diffusion")


def _score(name: str) -> zoo.Score:
    """The first likelihood row of the model ``name``: its exact value, or its plain bound."""
    return next(s for s in zoo.SCORES.values() if s.model == name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genbook.train_cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=MODELS, help="which digits model (genbook.zoo.RECIPES)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder for the model and its score")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train for this many epochs instead of the chapter's")
    length.add_argument("--steps", type=int, help="train for this many steps instead of the chapter's")
    parser.add_argument("--batch-size", type=int, help="global batch size (split across the processes)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("epochs", args.epochs), ("steps", args.steps)) if v is not None}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.precision != "fp32":
        overrides["precision"] = args.precision
    try:
        model, seconds = zoo.train(args.model, **overrides)
        if distributed.is_main():
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / zoo.RECIPES[args.model].file
            world = distributed.world_size()
            save(model, path, meta={"train_seconds": seconds, "processes": world, **overrides})
            score = _score(args.model)
            gen = torch.Generator(device()).manual_seed(0)
            values = nll_values(model, digits("test"), bound=score.bound, n_samples=score.n_samples, generator=gen)
            mean, lo, hi = bootstrap_ci(values, generator=torch.Generator().manual_seed(0))
            result = {
                "model": args.model,
                "the number is": score.kind,
                "test_nats": mean,
                "ci95": [lo, hi],
                "bits_per_dim": bits_per_dim(mean, 64),
                "train_seconds": seconds,
                "processes": world,
                "device": str(device()),
            }
            (args.out / f"{args.model}_test.json").write_text(json.dumps(result, indent=2) + "\n")
            print(
                f"{args.model}: trained in {seconds:.1f} s on {world} process(es) ({device()}); "
                f"test {mean:.2f} nats/image [{lo:.2f}, {hi:.2f}] ({score.kind}); written to {path}"
            )
    finally:
        if distributed.active():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
