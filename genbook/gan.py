"""Generative adversarial networks: a generator ``g(z)`` and a discriminator ``d(x)`` trained
against each other (chapter 7).

The two players share one value function (Goodfellow et al. 2014)

    V(D, G) = E_x[ln D(x)] + E_z[ln(1 - D(g(z)))],

which the discriminator maximises and the generator minimises. Everything here works with the
discriminator's logit ``l(x)``, ``D(x) = sigmoid(l(x))``, so that ``ln D = -softplus(-l)`` and
``ln(1 - D) = -softplus(l)`` are computed without overflow.

There is no likelihood: the model is trained through ``training_step``, which
:func:`genbook.fit` calls instead of a ``loss`` (see :func:`genbook.train.fit`), and judged by its
samples.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from ._checks import check_choice, check_float, check_int, check_points, check_sequences, check_tensor
from ._nn import mlp
from .io import Configurable

__all__ = ["GENERATOR_LOSSES", "discriminator_loss", "generator_loss", "r1_penalty", "GAN"]

GENERATOR_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-V(D, G)`` estimated on one batch: ``-mean ln D(x) - mean ln(1 - D(g(z)))``, a scalar in nats
    (the cross-entropy of the labels real = 1, generated = 0: the slides' ``E_GAN``, eq. ``eq-gan-error``).

    ``real_logits (B,)`` and ``fake_logits (B',)`` are the discriminator's logits on data and on
    generated points. Its minimum over ``D`` for fixed densities is at ``D* = p_data / (p_data + p_g)``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss on the logits ``fake_logits (B,)`` of generated points, a scalar.

    ``"minimax"``: ``mean ln(1 - D(g(z))) = -mean softplus(l)``, the generator's own side of
    ``V(D, G)``. Its derivative in the logit is ``-D(g(z))``, which vanishes when the
    discriminator rejects the samples with confidence (``D -> 0``), early in training.

    ``"non_saturating"``: ``-mean ln D(g(z)) = mean softplus(-l)`` (eq. ``eq-gan-nonsaturating``). It has
    the same fixed point (both push ``D(g(z))`` up), but its derivative in the logit is ``-(1 - D(g(z)))``, close to
    ``-1`` exactly where the minimax loss gives nothing.
    """
    check_choice("kind", kind, GENERATOR_LOSSES)
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    return F.softplus(-fake_logits).mean()


def r1_penalty(d_net: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """``mean_x |grad_x l(x)|^2`` over the real points ``real (B, D)``, a scalar (Mescheder et al. 2018):
    the squared gradient norm of the discriminator's logit on the data, differentiable in ``d_net``'s
    parameters."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d_net(real).sum(), real, create_graph=True)
    return grad.pow(2).sum(1).mean()


class GAN(Configurable, nn.Module):
    """A generator ``g: z -> x`` with ``z ~ N(0, I_latent)`` and a discriminator ``d: x -> (0, 1)``,
    both MLPs with ``layers`` hidden layers of width ``hidden`` (ReLU in ``g``, leaky ReLU of slope
    0.2 in ``d``).

    ``kind="points"``: ``x`` is a float tensor ``(B, dim)`` and ``g``'s last layer is linear.

    ``kind="levels"``: ``x`` is a ``LongTensor (B, dim)`` of levels ``0..levels-1`` (the digits:
    ``dim=64``, ``levels=17``). The generator's last layer is a sigmoid scaled to the range,
    ``g(z) = (levels - 1) sigmoid(a(z))``, a real number in ``[0, levels - 1]``; :meth:`sample`
    rounds it to the nearest level (``torch.round``: a tie goes to the even level). The
    discriminator sees real levels and generated reals alike, scaled to ``[-1, 1]``; nothing
    dequantises the data, so ``d`` could in principle tell integers from reals, which did not
    stop the generator on the digits.

    ``generator_loss``: ``"non_saturating"`` (the default) or ``"minimax"``, the slides' loss
    (:func:`generator_loss`). ``r1`` adds ``r1 / 2 * mean |grad_x l(x)|^2`` on the data to the
    discriminator's loss (:func:`r1_penalty`; 0 switches it off); it costs a second backward pass
    (1.5-1.7x the time of a step in our runs).

    Training (:meth:`configure_optimizers`, :meth:`training_step`): two Adam optimisers with
    ``betas = (beta1, 0.999)``; with ``fit(..., lr=lr)`` the generator's learning rate is ``lr`` and
    the discriminator's ``lr_ratio * lr``. Each step updates ``d`` once on a batch of data and as
    many generated points, then ``g`` once against the updated ``d``, on the same ``z``.

    Recipes measured on one CPU thread, seed 0 (``fit(..., schedule="linear")`` in both):

    - eight Gaussians (``data.EightGaussians()``, 10 000 points): the defaults, ``steps=3000``,
      ``batch_size=256``, ``lr=2e-3``: all 8 modes (11.5-12.9% of the samples each), 96% of
      samples within 3 standard deviations of a centre, in about 9 s (8 modes and 96-97% for
      seeds 0-4). With ``beta1=0.9`` (Adam's usual value) three of five seeds collapsed onto one
      or two modes.
    - digits (``data.digits("train")``): ``kind="levels", dim=64, latent=32, hidden=256,
      layers=2, r1=1.0``, ``steps=15000``, ``batch_size=64``, ``lr=1e-3``, in about 40-43 s. With
      the seed-0 ``metrics.digits_classifier``: every class 8.5-11.7% of the samples
      (``metrics.class_histogram``); ``metrics.sample_quality`` of 350 samples against the
      unseen test digits FD 10.4, precision 0.68, recall 0.81, where the real validation digits
      give 12.8, 0.78, 0.77. Without ``r1``: classes from 2% (the twos) to 21% (the zeros), FD 45.
    """

    def __init__(
        self,
        *,
        kind: str = "points",
        dim: int = 2,
        levels: int = 17,
        latent: int = 2,
        hidden: int = 128,
        layers: int = 3,
        generator_loss: str = "non_saturating",
        lr_ratio: float = 1.0,
        beta1: float = 0.5,
        r1: float = 0.0,
    ):
        super().__init__()
        check_choice("kind", kind, ("points", "levels"))
        check_int("dim", dim)
        check_int("levels", levels, min=2)
        check_int("latent", latent)
        check_int("hidden", hidden)
        check_int("layers", layers, min=0)
        check_choice("generator_loss", generator_loss, GENERATOR_LOSSES)
        check_float("lr_ratio", lr_ratio, gt=0)
        check_float("beta1", beta1, ge=0, lt=1)
        check_float("r1", r1, ge=0)
        self.kind, self.dim, self.levels, self.latent = kind, dim, levels, latent
        self.hidden, self.layers, self.generator_loss = hidden, layers, generator_loss
        self.lr_ratio, self.beta1, self.r1 = float(lr_ratio), float(beta1), float(r1)
        self.g_net = mlp(latent, dim, hidden, layers, nn.ReLU)  # z -> x (points) or pre-sigmoid (levels)
        self.d_net = mlp(dim, 1, hidden, layers, partial(nn.LeakyReLU, 0.2))  # x -> logit
        self._optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None

    # ------------------------------------------------------------------ the two players
    def _ref(self) -> torch.Tensor:
        return self.g_net[0].weight

    def _check(self, x, name: str = "x") -> torch.Tensor:
        """Data as the discriminator's input: points as they are, levels (integers, or reals such as
        ``g(z)``) scaled from ``[0, levels - 1]`` to ``[-1, 1]``."""
        ref = self._ref()
        if self.kind == "points":
            return check_points(name, x, self.dim).to(ref.device, ref.dtype)
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            top = self.levels - 1
            check_tensor(name, x, shape=("B", self.dim))
            if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= top):
                raise ValueError(f"{name} must lie in [0, {top}], got values in {x.min():.4g}..{x.max():.4g}")
        else:
            x = check_sequences(x, self.levels, self.dim, name=name)
        return self._unit(x.to(ref.device, ref.dtype) / (self.levels - 1))

    @staticmethod
    def _unit(u: torch.Tensor) -> torch.Tensor:
        return 2 * u - 1  # [0, 1] -> [-1, 1]

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        """``g(z)`` as the discriminator sees it, ``(B, latent) -> (B, dim)``."""
        out = self.g_net(z)
        return out if self.kind == "points" else self._unit(torch.sigmoid(out))

    def g(self, z: torch.Tensor) -> torch.Tensor:
        """The generator, ``z (B, latent) -> x (B, dim)``: points, or levels as real numbers in
        ``[0, levels - 1]`` (not rounded: :meth:`sample` rounds)."""
        ref = self._ref()
        z = check_tensor("z", z, shape=("B", self.latent), dtype="float").to(ref.device, ref.dtype)
        out = self.g_net(z)
        return out if self.kind == "points" else (self.levels - 1) * torch.sigmoid(out)

    def d(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator, ``D(x) = sigmoid(l(x))`` in ``(0, 1)``: its probability that ``x (B, dim)``
        came from the data, ``(B,)``. Levels may be given as integers or as reals in ``[0, levels - 1]``."""
        return torch.sigmoid(self.d_net(self._check(x))[:, 0])

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of ``g(z)``, ``z ~ N(0, I)`` on the model's device: float points ``(n, dim)``, or a
        ``LongTensor (n, dim)`` of levels, each pixel ``g(z)`` rounded to the nearest of ``0..levels-1``."""
        check_int("n", n)
        ref = self._ref()
        z = _random.randn((n, self.latent), generator, device=ref.device, dtype=ref.dtype)
        x = self.g(z)
        return x if self.kind == "points" else x.round().long()

    # ------------------------------------------------------------------ training (called by genbook.fit)
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Fresh Adam optimisers ``[discriminator's, generator's]`` with learning rates ``lr_ratio * lr``
        and ``lr``, kept for :meth:`training_step`."""
        check_float("lr", lr, gt=0)
        betas = (self.beta1, 0.999)
        fused = self._ref().device.type in ("cpu", "cuda")
        d_opt = torch.optim.Adam(self.d_net.parameters(), lr=self.lr_ratio * lr, betas=betas, fused=fused)
        g_opt = torch.optim.Adam(self.g_net.parameters(), lr=lr, betas=betas, fused=fused)
        self._optimizers = (d_opt, g_opt)
        return [d_opt, g_opt]

    def training_step(self, batch: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One update of each player on ``batch (B, dim)`` of data; returns the losses by name:
        ``d_loss`` (:func:`discriminator_loss`, before the update), ``g_loss`` (:func:`generator_loss`,
        against the updated discriminator) and, with ``r1 > 0``, ``r1_penalty``. ``step`` is unused:
        every step updates both players."""
        if self._optimizers is None:
            raise RuntimeError("GAN.training_step: call configure_optimizers(lr) first (genbook.fit does)")
        d_opt, g_opt = self._optimizers
        real = self._check(batch, "batch")
        z = _random.randn((real.shape[0], self.latent), device=real.device, dtype=real.dtype)
        fake = self._generate(z)

        d_loss = discriminator_loss(self.d_net(real)[:, 0], self.d_net(fake.detach())[:, 0])
        out = {"d_loss": d_loss.detach()}
        objective = d_loss
        if self.r1 > 0:
            penalty = r1_penalty(self.d_net, real)
            objective = d_loss + 0.5 * self.r1 * penalty
            out["r1_penalty"] = penalty.detach()
        d_opt.zero_grad(set_to_none=True)
        objective.backward()
        d_opt.step()

        self.d_net.requires_grad_(False)  # the generator's gradient flows through d, not into it
        try:
            g_loss = generator_loss(self.d_net(fake)[:, 0], self.generator_loss)
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
        finally:
            self.d_net.requires_grad_(True)
        out["g_loss"] = g_loss.detach()
        return out
