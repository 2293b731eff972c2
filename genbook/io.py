"""Saving and loading models as ``state_dict`` + constructor arguments (never pickled modules)."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

__all__ = ["save", "load"]

_FORMAT = 1


def save(model: nn.Module, path: str | Path) -> None:
    """Write ``model`` to ``path``: its class, its ``config()`` and its ``state_dict``.

    Only genbook models can be saved; they define ``config() -> dict`` returning the
    keyword arguments that rebuild them (plain numbers, strings, lists, dicts).
    """
    cls = type(model)
    if not cls.__module__.startswith("genbook.") or not hasattr(model, "config"):
        raise TypeError(f"model must be a genbook model with a config() method, got {cls.__module__}.{cls.__name__}")
    payload = {
        "format": _FORMAT,
        "module": cls.__module__,
        "class": cls.__qualname__,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    torch.save(payload, Path(path))


def load(path: str | Path, *, map_location: str | torch.device | None = None) -> nn.Module:
    """Rebuild a model written by :func:`save` (loaded with ``weights_only=True``)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises KeyError, UnpicklingError, RuntimeError, ... for foreign files
        raise ValueError(f"{path}: not a genbook model file ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a genbook model file (format {_FORMAT} expected)")
    module = payload["module"]
    if not module.startswith("genbook."):
        raise ValueError(f"{path}: refusing to load a class from module {module!r} outside genbook")
    cls = getattr(importlib.import_module(module), payload["class"])
    model = cls(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    if map_location is not None:
        model.to(map_location)
    return model.eval()
