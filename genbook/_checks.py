"""Input checks shared by the models: one clear error naming the argument, the expectation and what came."""

from __future__ import annotations

import torch


def describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def check_positive_int(name: str, value) -> None:
    """Raise unless ``value`` is an ``int`` >= 1 (``bool`` is refused although it is an ``int``)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_points(x, name: str, n_features: int) -> torch.Tensor:
    """A finite floating-point tensor of shape ``(B, n_features)``, B >= 1."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != n_features or x.shape[0] == 0:
        raise ValueError(f"{name} must be a tensor of shape (B, {n_features}) with B >= 1, got {describe(x)}")
    if not x.is_floating_point():
        x = x.double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x
