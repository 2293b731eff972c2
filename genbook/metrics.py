"""Units of likelihood: nats per example, bits per dimension, and the baselines they compare with."""

from __future__ import annotations

import math

import torch

from ._checks import check_int, describe

__all__ = ["nll", "bits_per_dim", "uniform_nll"]


@torch.no_grad()
def nll(model, data: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Mean negative log-likelihood ``-mean(model.log_prob(x))`` in nats per example.

    Accumulated in float64. Raises if any log-probability is NaN or +inf (a bug in the
    model, never a likelihood to report).
    """
    if not isinstance(data, torch.Tensor) or data.ndim < 1 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty tensor, got {describe(data)}")
    check_int("batch_size", batch_size)
    total = 0.0
    for i in range(0, data.shape[0], batch_size):
        lp = model.log_prob(data[i : i + batch_size]).double()
        if torch.isnan(lp).any() or (lp == math.inf).any():
            raise FloatingPointError(f"log_prob returned NaN or +inf in batch starting at row {i}")
        total -= float(lp.sum())
    return total / data.shape[0]


def bits_per_dim(nats_per_example: float, dims: int) -> float:
    """Convert nats per example to bits per dimension: ``nats / (dims * ln 2)``."""
    check_int("dims", dims)
    return nats_per_example / (dims * math.log(2))


def uniform_nll(levels: int, dims: int) -> float:
    """NLL in nats of the uniform distribution over ``levels**dims`` outcomes: ``dims * ln(levels)``.

    For 8x8 digits with 17 levels this is 64 ln 17 = 181.3 nats per image.
    """
    check_int("levels", levels, min=2)
    check_int("dims", dims)
    return dims * math.log(levels)
