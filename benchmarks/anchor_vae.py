"""The anchor's VAE design, re-run on our split: the reference for chapter 6's digits VAE.

The anchor is the VAE of Tomczak, *Deep Generative Modeling* (bib key ``tomczak2022dgm``),
notebook ``vaes/vae_example.ipynb`` of ``jmtomczak/intro_dgm``, which reports a validation
curve and a test loss but no number we could check. Its design, rebuilt here in our own code:

- input: the raw pixel values (0..16) as 64 real numbers, not rescaled;
- encoder: 64 -> 256 -> 256 -> 2 x 16 (mean and log-variance of a diagonal Gaussian
  ``q(z | x)``), LeakyReLU (slope 0.01) after each hidden layer;
- decoder: 16 -> 256 -> 256 -> 64 x 17 logits, LeakyReLU after each hidden layer, a softmax
  over the 17 levels of each pixel (a 17-level categorical ``p(x | z)``);
- prior: standard normal ``p(z) = N(0, I)``;
- objective: the one-draw ELBO as the notebook writes it, ``ln p(x | z) + ln p(z) - ln q(z | x)``
  at one reparameterised draw ``z ~ q(z | x)`` (the KL is estimated by that same draw, not in
  closed form), averaged over the batch;
- training: Adamax at lr 1e-3, batch 64 reshuffled every epoch, at most 1000 epochs, the
  validation -ELBO (the same one-draw estimate, fresh draws) after every epoch, the best
  epoch's parameters kept, and early stopping with patience 20 as the notebook counts it:
  training stops at the 21st epoch in a row without a new best (its counter must exceed 20).

Deliberate differences and uncertainties:

- the notebook clamps each probability to [1e-5, 1 - 1e-5] before the logarithm; we use the
  exact log-softmax;
- an earlier version of the notebook's diagonal-Gaussian log-density multiplied the
  log-variance term by the latent dimension (a bug, fixed in the version we follow); we
  use the correct density. Which version produced the book's published figure we do not know;
- the notebook's PyTorch defaults (weight initialisation, LeakyReLU slope 0.01) are ours too;
  its random draws are not reproduced, so a re-run differs from its curve by seed noise.

The split is ``genbook.data.digits``: the first 1000 images train, the next 350 validate,
the last 447 test (the notebook's own split of scikit-learn's digits).

:func:`run_anchor` returns, for the best epoch, the validation and test -ELBO (nats per image)
estimated as chapter 6 estimates its own VAE's: 10 reparameterised draws for the
reconstruction term and the KL in closed form, so the numbers compare with
``vae/digits/*_neg_elbo_nats``; also the epochs trained and the training throughput, measured as
:func:`genbook.fit` measures its ``examples_per_second``: images passed through optimiser steps
divided by the wall time of the whole loop, the per-epoch validation included.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import genbook
from genbook import data
from genbook.vae import gaussian_kl

from ._anchor_loop import train_like_the_anchor

DIM, LATENT, HIDDEN = 64, 16, 256
EVAL_DRAWS = 10  # draws of the reconstruction term when evaluating (the chapter's estimator)
_LOG_2PI = math.log(2 * math.pi)


class AnchorVAE(nn.Module):
    """The anchor's network: raw levels in, two LeakyReLU layers each way, 17 logits per pixel out."""

    def __init__(self, dim: int = DIM, latent: int = LATENT, hidden: int = HIDDEN, levels: int = data.DIGITS_LEVELS):
        super().__init__()
        self.dim, self.latent, self.levels = dim, latent, levels
        self.encoder = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, dim * levels),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z | x)``, each ``(B, latent)``; ``x`` holds the raw levels ``(B, dim)``."""
        return self.encoder(x.float()).chunk(2, dim=-1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., latent) -> (..., dim, levels)``."""
        return self.decoder(z).unflatten(-1, (self.dim, self.levels))

    def log_px_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``ln p(x | z)`` in nats, ``x (B, dim)`` levels, ``z (..., B, latent)`` -> ``(..., B)``."""
        logp = F.log_softmax(self.logits(z), dim=-1)
        idx = x.long().expand(*logp.shape[:-1])[..., None]
        return logp.gather(-1, idx).squeeze(-1).sum(-1)

    def one_draw_elbo(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """The notebook's objective per image, ``(B,)`` nats: ``ln p(x | z) + ln p(z) - ln q(z | x)`` at
        ``z = mu + exp(logvar / 2) eps``, ``eps ~ N(0, I)`` (drawn here unless given, ``(B, latent)``)."""
        mu, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + (0.5 * logvar).exp() * eps
        log_prior = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
        log_q = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(-1)  # (z - mu)^2 / var = eps^2
        return self.log_px_z(x, z) + log_prior - log_q

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """``-mean_b`` of the one-draw ELBO: the quantity the notebook minimises."""
        return -self.one_draw_elbo(x).mean()

    @torch.no_grad()
    def neg_elbo(
        self, x: torch.Tensor, *, n_samples: int = EVAL_DRAWS, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Our estimator of ``-ELBO``, ``(B,)`` nats: ``n_samples`` draws for ``-E_q[ln p(x | z)]`` plus the
        closed-form ``KL(q(z | x) || N(0, I))``, as chapter 6 evaluates :class:`genbook.vae.VAE`."""
        mu, logvar = self.encode(x)
        eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + (0.5 * logvar).exp() * eps
        return gaussian_kl(mu, logvar) - self.log_px_z(x, z).mean(0)


@torch.no_grad()
def _one_draw_loss(model: AnchorVAE, x: torch.Tensor) -> float:
    model.eval()
    return model.loss(x).item()


def _neg_elbo(model: AnchorVAE, x: torch.Tensor, dev: torch.device) -> float:
    model.eval()
    gen = torch.Generator(device=dev).manual_seed(1)
    return model.neg_elbo(x, generator=gen).mean().item()


def run_anchor(
    seed: int = 0, device: torch.device | None = None, *, max_epochs: int | None = None, log=None
) -> dict[str, float]:
    """Train the anchor's design once; ``max_epochs`` caps the epochs (e.g. for a throughput-only run).

    Returns ``test_neg_elbo_nats`` and ``val_neg_elbo_nats`` (of the best epoch, our 10-draw
    estimator), ``val_one_draw_nats`` (the best one-draw validation loss that early stopping
    saw), ``epochs`` (trained), ``best_epoch`` and ``train_images_per_s``. ``log(epoch, val)``,
    if given, is called after every epoch with the one-draw validation loss.
    """
    dev = device or genbook.device()
    train, val, test = (data.digits(s).to(dev) for s in ("train", "val", "test"))
    genbook.seed(seed)
    model = AnchorVAE().to(dev)
    run = train_like_the_anchor(model, train, lambda m: _one_draw_loss(m, val), max_epochs=max_epochs, log=log)
    return dict(
        test_neg_elbo_nats=_neg_elbo(model, test, dev),
        val_neg_elbo_nats=_neg_elbo(model, val, dev),
        val_one_draw_nats=run.best_val,
        epochs=float(run.epochs),
        best_epoch=float(run.best_epoch),
        train_images_per_s=run.train_images_per_s,
    )


if __name__ == "__main__":  # one run, printing the validation curve: python -m benchmarks.anchor_vae
    got = run_anchor(log=lambda e, v: print(f"epoch {e:4d}  val {v:.3f}", flush=True))
    for k, v in got.items():
        print(f"{k:20s} {v:.4g}")
