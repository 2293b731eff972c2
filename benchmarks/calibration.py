"""A fixed workload that looks like the book's, to put chapter times in machine-independent units.

This machine's speed drifts by up to 2x within a session, so a chapter's seconds from two
moments do not compare. ``calibration_seconds()`` times a workload that exercises what the
chapters spend their time on: small-network training steps (forward, backward, AdamW) and a
batched Markov chain (many small tensor operations and random draws). A chapter's time divided
by the calibration measured beside it (``book/<stem>/calibrated``) stays put when the machine
as a whole slows down or speeds up.

The workload is written in plain torch, not with ``genbook``, so that it stays the same
when the package changes; do not edit it, or earlier calibrated numbers stop comparing.
"""

from __future__ import annotations

import time

import torch
from torch import nn

STEPS = 300  # AdamW steps of the MLP
CHAINS = 2000  # random-walk Metropolis chains ...
MH_STEPS = 400  # ... and their steps, on a 10-D standard Gaussian


def _train_mlp(gen: torch.Generator) -> float:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 64))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(256, 64, generator=gen)
    y = torch.randn(256, 64, generator=gen)
    for _ in range(STEPS):
        loss = (net(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def _metropolis(gen: torch.Generator) -> float:
    x = torch.zeros(CHAINS, 10)
    log_p = -0.5 * x.pow(2).sum(1)
    for _ in range(MH_STEPS):
        prop = x + 0.7 * torch.randn(x.shape, generator=gen)
        log_q = -0.5 * prop.pow(2).sum(1)
        accept = torch.rand(CHAINS, generator=gen).log() < log_q - log_p
        x = torch.where(accept[:, None], prop, x)
        log_p = torch.where(accept, log_q, log_p)
    return x.pow(2).mean().item()


def calibration_seconds() -> float:
    """Wall seconds of the fixed workload on the CPU (about 2-4 s on a quiet 2-core machine)."""
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    _train_mlp(gen)
    _metropolis(gen)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"calibration: {calibration_seconds():.3f} s")
