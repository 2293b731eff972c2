"""The training loop of the anchor's notebooks (``jmtomczak/intro_dgm``), shared by our re-runs of
its ARM (``anchor_arm.py``) and VAE (``anchor_vae.py``): Adamax, batches reshuffled every epoch,
one validation score per epoch, the best epoch's parameters kept, and early stopping with
patience counted as the notebooks count it (training stops at the ``patience + 1``-th epoch in a
row without a new best).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

RECIPE = dict(lr=1e-3, batch_size=64, max_epochs=1000, patience=20)


@dataclass
class AnchorRun:
    best_val: float  # the best validation score seen
    epochs: int  # epochs trained
    best_epoch: int
    train_images_per_s: float  # images through optimiser steps over the loop's wall time, validation included


def train_like_the_anchor(
    model: nn.Module,
    train: torch.Tensor,
    val_score: Callable[[nn.Module], float],
    *,
    max_epochs: int | None = None,
    log: Callable[[int, float], None] | None = None,
) -> AnchorRun:
    """Train ``model`` (its ``loss(batch)``) on ``train`` with the anchor's recipe, in place; on
    return it holds the best epoch's parameters. ``val_score(model)`` (lower is better) is called
    after every epoch, and ``log(epoch, score)`` too when given."""
    opt = torch.optim.Adamax(model.parameters(), lr=RECIPE["lr"])
    epochs = RECIPE["max_epochs"] if max_epochs is None else max_epochs
    bs, n = RECIPE["batch_size"], train.shape[0]
    best_val, best_state, best_epoch, since_best, seen = float("inf"), None, 0, 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n).to(train.device)
        for i in range(0, n, bs):
            loss = model.loss(train[order[i : i + bs]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += min(bs, n - i)
        v = val_score(model)
        if log is not None:
            log(epoch, v)
        if v < best_val:
            best_val, best_state, best_epoch, since_best = v, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            since_best += 1
            if since_best > RECIPE["patience"]:
                break
    seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    return AnchorRun(best_val=best_val, epochs=epoch, best_epoch=best_epoch, train_images_per_s=seen / seconds)
