"""Argument checks shared by every genbook module: one line per argument, one form of error.

Each check raises ``ValueError`` naming the argument, what was expected and what came, e.g.
``steps must be an int >= 1, got True (bool)``, and returns the value when it passes. The
numeric checks follow scikit-learn's ``_parameter_constraints`` (an interval of a type, a set of
options), written as small functions called once per argument rather than as a table.
Everywhere a number is expected ``bool`` is refused, although Python counts it as an ``int``;
a float must be a finite real number (an ``int`` is accepted, NaN and infinities are not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch


def describe(x) -> str:
    """What came, for an error message: a tensor's shape and dtype, else the value and its type."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    text = repr(x)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({type(x).__name__})"


# ------------------------------------------------------------------ numbers, flags and names
def check_int(name: str, value, *, min: int = 1, max: int | None = None, optional: bool = False) -> int | None:
    """``value``, an ``int`` with ``min <= value`` (and ``value <= max`` when ``max`` is given), or
    ``None`` when ``optional``."""
    if optional and value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < min or (max is not None and value > max):
        want = f"an int >= {min}" if max is None else f"an int in {min}..{max}"
        raise ValueError(f"{name} must be {want}{' or None' if optional else ''}, got {describe(value)}")
    return value


def _interval(gt, ge, lt, le) -> str:
    """``" in [0, 1)"``, ``" > 0"``, ... for the bounds of :func:`check_float` (``""`` when there are none)."""
    lo, lo_open = (gt, True) if gt is not None else (ge, False)
    hi, hi_open = (lt, True) if lt is not None else (le, False)
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


def check_float(
    name: str,
    value,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    optional: bool = False,
) -> float | None:
    """``value`` as a ``float``: a finite real number (``int`` accepted; ``bool``, NaN, inf and
    non-numbers refused) above ``gt`` / at least ``ge`` (an open / closed lower end) and below
    ``lt`` / at most ``le`` (an open / closed upper end); or ``None`` when ``optional``."""
    if optional and value is None:
        return None
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (gt is None or v > gt) and (ge is None or v >= ge) and (lt is None or v < lt) and (le is None or v <= le)
    if not ok:
        want = f"a finite number{_interval(gt, ge, lt, le)}{' or None' if optional else ''}"
        raise ValueError(f"{name} must be {want}, got {describe(value)}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """``value``, which must be ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {describe(value)}")
    return value


def _one_of(choices: Sequence[str]) -> str:
    quoted = [repr(c) for c in choices]
    if len(quoted) <= 2:
        return " or ".join(quoted)
    return f"one of {', '.join(quoted[:-1])} or {quoted[-1]}"


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    """``value``, which must be one of the names ``choices`` (listed in the error)."""
    if not isinstance(value, str) or value not in tuple(choices):
        raise ValueError(f"{name} must be {_one_of(tuple(choices))}, got {describe(value)}")
    return value


# ------------------------------------------------------------------ tensors
def _shape_text(shape: Sequence[int | str]) -> str:
    parts = [str(s) for s in shape]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def check_tensor(name: str, x, *, shape: Sequence[int | str], dtype: str | None = None) -> torch.Tensor:
    """``x``, which must be a tensor of ``shape`` (an int is an exact size, a str names a free one:
    ``("B", 64)``) and, with ``dtype="float"`` or ``"int"``, of that kind of dtype (``bool`` is
    neither)."""
    fits = _has_shape(x, shape)
    if fits and dtype is not None:
        fits = x.is_floating_point() if dtype == "float" else _is_integer(x)
    if not fits:
        kind = {"float": "a floating-point tensor", "int": "an integer tensor", None: "a tensor"}[dtype]
        raise ValueError(f"{name} must be {kind} of shape {_shape_text(shape)}, got {describe(x)}")
    return x


def _has_shape(x, shape: Sequence[int | str]) -> bool:
    return (
        isinstance(x, torch.Tensor)
        and x.ndim == len(shape)
        and all(isinstance(n, str) or x.shape[i] == n for i, n in enumerate(shape))
    )


def _is_integer(x: torch.Tensor) -> bool:
    return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x``, which must hold no NaN or infinite value."""
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_points(name: str, x, n_features: int) -> torch.Tensor:
    """A finite floating-point tensor of shape ``(B, n_features)``, B >= 1 (an integer tensor is
    converted to float64)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != n_features or x.shape[0] == 0:
        raise ValueError(f"{name} must be a tensor of shape (B, {n_features}) with B >= 1, got {describe(x)}")
    return check_finite(name, x if x.is_floating_point() else x.double())


def check_sequences(x: torch.Tensor, levels: int, length: int | None = None, name: str = "x") -> torch.Tensor:
    """``x`` as a ``LongTensor (B, D)`` of levels ``0 .. levels - 1`` (``D = length`` when given), or a
    ``ValueError`` saying what is wrong."""
    check_tensor(name, x, shape=("batch", "length"))
    if not _is_integer(x):
        raise ValueError(f"{name} must hold integer levels 0..{levels - 1}, got dtype {x.dtype}")
    if length is not None and x.shape[1] != length:
        raise ValueError(f"{name} must have length {length}, got {x.shape[1]}")
    if x.numel() and (x.min() < 0 or x.max() >= levels):
        bad = x[(x < 0) | (x >= levels)][0].item()
        raise ValueError(f"{name} must hold levels 0..{levels - 1}, found {bad}")
    return x.long()


def check_spins(name: str, s, shape: Sequence[int | str]) -> torch.Tensor:
    """``s``, which must be a tensor of ``shape`` (as in :func:`check_tensor`) holding only +1 and -1."""
    if not _has_shape(s, shape):
        raise ValueError(f"{name} must be a tensor of shape {_shape_text(shape)} of +-1 spins, got {describe(s)}")
    if not ((s == 1) | (s == -1)).all():
        bad = s[(s != 1) & (s != -1)][0].item()
        hint = " (0/1 data? convert it with rbm.to_spins)" if bad == 0 else ""
        raise ValueError(f"{name} must contain only +1 and -1, found {bad}{hint}")
    return s
