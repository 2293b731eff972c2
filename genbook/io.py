"""Saving and loading models as ``state_dict`` + constructor arguments (never pickled modules).

A model's constructor arguments come from :class:`Configurable`, which reads them off the
constructor's signature, so a new argument is written once (in ``__init__``) and saved with it.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import torch
from torch import nn

from . import distributed as _dist

__all__ = ["Configurable", "save", "load", "load_meta"]

_FORMAT = 1
_PLAIN = (bool, int, float, str, type(None))  # what weights_only=True loads back without surprises


class Configurable:
    """Mixin for a saveable model: ``config()`` returns its constructor's keyword arguments.

    Every parameter of ``type(self).__init__`` (after ``self``) names an attribute that the
    constructor stores under the same name, holding a value that rebuilds the same model:
    ``type(self)(**self.config())`` has the same architecture and parameter shapes
    (scikit-learn's ``get_params`` rule; nanoGPT saves its ``model_args`` the same way).
    A subclass that stores an argument differently (e.g. in a buffer) overrides ``config`` as
    ``return self._config_with(name=value that rebuilds it)``.
    """

    def config(self) -> dict:
        """``{argument name: value}`` for every constructor argument: plain numbers, strings,
        ``None``, and lists / tuples / dicts of those."""
        return self._config_with()

    def _config_with(self, **stored_differently) -> dict:
        """:meth:`config`, taking the arguments in ``stored_differently`` from there instead of
        from the attributes of the same names (for an override of ``config``)."""
        cls = type(self)
        out = {}
        for name in _init_arguments(cls):
            if name in stored_differently:
                value = stored_differently[name]
            elif hasattr(self, name):
                value = getattr(self, name)
            else:  # a constructor that forgot to store an argument would otherwise save a model that loads wrong
                raise AttributeError(
                    f"{cls.__name__}.config: the constructor argument {name!r} is not stored as self.{name}; "
                    f"store it in __init__ (or override config)"
                )
            if not _is_plain(value):
                raise TypeError(
                    f"{cls.__name__}.config: self.{name} is a {type(value).__name__}, not plain data "
                    f"(numbers, strings, None, lists / tuples / dicts of those); override config to say "
                    f"which value of {name!r} rebuilds it"
                )
            out[name] = value
        unknown = set(stored_differently) - set(out)
        if unknown:
            raise TypeError(f"{cls.__name__}.config: {sorted(unknown)} are not constructor arguments")
        return out


def _init_arguments(cls: type) -> list[str]:
    """The names of ``cls.__init__``'s parameters after ``self``, in order; ``*args`` and
    ``**kwargs`` are refused (no signature to read them from)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}.__init__ takes {p}: a Configurable model names every argument")
    return [p.name for p in params]


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN)


def save(model: nn.Module, path: str | Path, *, meta: dict | None = None) -> None:
    """Write ``model`` to ``path``: its class, its ``config()`` and its ``state_dict``.

    Only genbook models can be saved; they define ``config() -> dict`` returning the
    keyword arguments that rebuild them (plain numbers, strings, lists, dicts), most of them
    by inheriting :class:`Configurable`. ``meta``, a dict of plain data, travels with the model
    (the book stores how long training took, ``{"train_seconds": ...}``); :func:`load_meta` reads it.
    Under ``torchrun`` with several processes only rank 0 writes (the processes hold the same model).
    """
    cls = type(model)
    if not cls.__module__.startswith("genbook.") or not hasattr(model, "config"):
        raise TypeError(f"model must be a genbook model with a config() method, got {cls.__module__}.{cls.__name__}")
    if meta is not None and not (isinstance(meta, dict) and _is_plain(meta)):
        raise TypeError(
            "meta must be a dict of plain data (str keys; numbers, strings, None, lists / dicts of those), "
            f"got {meta!r}"
        )
    payload = {
        "format": _FORMAT,
        "module": cls.__module__,
        "class": cls.__qualname__,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    if _dist.is_main():
        torch.save(payload, Path(path))


def _payload(path: str | Path) -> dict:
    """The checked contents of a file written by :func:`save`."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises KeyError, UnpicklingError, RuntimeError, ... for foreign files
        raise ValueError(f"{path}: not a genbook model file ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a genbook model file (format {_FORMAT} expected)")
    return payload


def load_meta(path: str | Path) -> dict:
    """The ``meta`` dict that :func:`save` stored with the model at ``path`` (``{}`` if none was given)."""
    return dict(_payload(path).get("meta", {}))


def load(path: str | Path, *, map_location: str | torch.device | None = None) -> nn.Module:
    """Rebuild a model written by :func:`save` (loaded with ``weights_only=True``)."""
    payload = _payload(path)
    module = payload["module"]
    if not module.startswith("genbook."):
        raise ValueError(f"{path}: refusing to load a class from module {module!r} outside genbook")
    cls = getattr(importlib.import_module(module), payload["class"])
    model = cls(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    if map_location is not None:
        model.to(map_location)
    return model.eval()
