"""The digits models the bench trains, kept for the leaderboard (``benchmarks/leaderboard.py``).

A suite that trains a digits model saves it with :func:`genbook.save` as
``_build/bench/models/<recipe>.pt``, with ``meta={"train_seconds", "recipe", "settings"}``; the
leaderboard loads that file, or, when it is missing or was trained with other settings (an older
recipe), trains the model itself with the same function and saves it. So ``make bench`` trains each
model once, and ``python -m benchmarks leaderboard`` works on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import genbook
from genbook import zoo

MODELS = Path("_build/bench/models")


def _same(a: dict, b: dict) -> bool:
    """Equal as saved: tuples and lists alike."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@dataclass(frozen=True)
class BenchModel:
    """One recipe of the bench: ``recipe`` names it (``"<suite>.<RECIPE>"``, also the file's name),
    ``settings`` are its settings (plain data, saved with the model: a file saved with other settings
    is not used), and ``train(device) -> (model in eval mode, training seconds)`` trains it, seeded."""

    recipe: str
    settings: dict
    train: Callable[[torch.device], tuple[nn.Module, float]]

    @property
    def path(self) -> Path:
        return MODELS / f"{self.recipe}.pt"

    def save(self, model: nn.Module, seconds: float) -> None:
        """Write ``model`` (a genbook model) and its training time to :attr:`path`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"train_seconds": float(seconds), "recipe": self.recipe, "settings": self.settings}
        genbook.save(model, self.path, meta=meta)

    def load_or_train(self, device: torch.device) -> tuple[nn.Module, float]:
        """The saved model and its training seconds if :attr:`path` holds this recipe with these
        settings; else the model trained now (and saved). On ``device``, in eval mode."""
        if self.path.exists():
            meta = genbook.load_meta(self.path)
            if meta.get("recipe") == self.recipe and _same(meta.get("settings", {}), self.settings):
                return genbook.load(self.path).to(device).eval(), float(meta["train_seconds"])
            print(f"{self.path}: trained with other settings, training {self.recipe} again", flush=True)
        else:
            print(f"{self.path}: not saved yet, training {self.recipe}", flush=True)
        model, seconds = self.train(device)
        self.save(model, seconds)
        return model.eval(), seconds


def chapter_model(name: str) -> BenchModel:
    """The chapter's recipe for ``name`` (a key of :data:`genbook.zoo.RECIPES`), trained in the bench
    with :func:`genbook.zoo.train` (seed 0); saved as ``zoo.<name>.pt``."""
    recipe = zoo.RECIPES[name]
    settings = {"chapter": recipe.chapter, "settings": list(recipe.settings)}
    return BenchModel(f"zoo.{name}", settings, lambda dev: zoo.train(name, device=dev))
