"""The anchor's ARM design, re-run on our split: the reference for chapter 4's convolutional ARM.

The anchor is the ARM of Tomczak, *Deep Generative Modeling* (bib key ``tomczak2022dgm``),
notebook ``arms/arm_example.ipynb`` of ``jmtomczak/intro_dgm``, which reports a validation
curve only. Its design, rebuilt here in our own code:

- input: the raw pixel value (0..16) as one real-valued channel, no embedding;
- four causal 1-D convolutions of kernel 7 over the raster scan, 256 channels, LeakyReLU
  (slope 0.01) between them; the first excludes the current pixel, the others include it;
  no dilation, no residual connections, no position terms, no dropout;
- output: 17 logits per pixel, a softmax over the levels (a 17-level categorical);
- training: Adamax at lr 1e-3, batch 64 reshuffled every epoch, at most 1000 epochs, the
  validation NLL after every epoch, the best epoch's parameters kept, and early stopping with
  patience 20 as the notebook counts it: training stops at the 21st epoch in a row without
  a new best (its counter must exceed 20).

One deliberate difference: the notebook clamps each probability to [1e-5, 1 - 1e-5] before
the logarithm; we use the exact log-softmax, so the test NLL is the model's exact NLL.

The split is ``genbook.data.digits``: the first 1000 images train, the next 350 validate,
the last 447 test (the notebook's own split of scikit-learn's digits).

:func:`run_anchor` returns the test and validation NLL (nats per image) of the best epoch,
the epochs trained and the training throughput, measured as :func:`genbook.fit` measures its
``examples_per_second``: images passed through optimiser steps divided by the wall time of the
whole loop, the per-epoch validation included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import genbook
from genbook import data
from genbook.autoregressive import CausalConv1d

from ._anchor_loop import train_like_the_anchor

CHANNELS, KERNEL, LAYERS = 256, 7, 4


class AnchorARM(nn.Module):
    """The anchor's network: real-valued pixel in, ``LAYERS`` causal convolutions, 17 logits out."""

    def __init__(
        self,
        levels: int = data.DIGITS_LEVELS,
        channels: int = CHANNELS,
        kernel_size: int = KERNEL,
        layers: int = LAYERS,
    ):
        super().__init__()
        self.levels = levels
        widths = [1] + [channels] * (layers - 1) + [levels]
        self.convs = nn.ModuleList(
            CausalConv1d(a, b, kernel_size, include_current=i > 0) for i, (a, b) in enumerate(zip(widths, widths[1:]))
        )

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """``log q(x_d = l | x_<d)``, ``LongTensor (B, D) -> (B, D, K)``."""
        h = x.float().unsqueeze(1)  # (B, 1, D): the level itself is the input
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = F.leaky_relu(h)
        return F.log_softmax(h, dim=1).transpose(1, 2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log q(x)`` in nats, ``LongTensor (B, D) -> (B,)``."""
        return self.conditionals(x).gather(2, x[:, :, None]).squeeze(2).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()


@torch.no_grad()
def _nll(model: AnchorARM, x: torch.Tensor) -> float:
    model.eval()
    return -model.log_prob(x).mean().item()


def run_anchor(
    seed: int = 0, device: torch.device | None = None, *, max_epochs: int | None = None, log=None
) -> dict[str, float]:
    """Train the anchor's design once; ``max_epochs`` caps the epochs (e.g. for a throughput-only run).

    Returns ``test_nll_nats``, ``val_nll_nats`` (of the best epoch), ``epochs`` (trained),
    ``best_epoch`` and ``train_images_per_s``. ``log(epoch, val_nll)``, if given, is called
    after every epoch.
    """
    dev = device or genbook.device()
    train, val, test = (data.digits(s).to(dev) for s in ("train", "val", "test"))
    genbook.seed(seed)
    model = AnchorARM().to(dev)
    run = train_like_the_anchor(model, train, lambda m: _nll(m, val), max_epochs=max_epochs, log=log)
    return dict(
        test_nll_nats=_nll(model, test),
        val_nll_nats=run.best_val,
        epochs=float(run.epochs),
        best_epoch=float(run.best_epoch),
        train_images_per_s=run.train_images_per_s,
    )


if __name__ == "__main__":  # one run, printing the validation curve: python -m benchmarks.anchor_arm
    got = run_anchor(log=lambda e, v: print(f"epoch {e:4d}  val {v:.3f}", flush=True))
    for k, v in got.items():
        print(f"{k:20s} {v:.4g}")
