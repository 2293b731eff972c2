"""Variational auto-encoders: a Gaussian encoder, a prior (standard normal or learned), and a decoder (chapter 6).

The marginal ``p(x) = int p(x | z) p(z) dz`` (eq. ``eq-vae-marginal``) is intractable for a
neural decoder, so the model is trained and evaluated through lower bounds on ``ln p(x)``
(eq. ``eq-elbo-identity``):

- ``elbo(x)``: ``E_q[ln p(x | z)] - KL(q(z | x) || p(z))`` (eq. ``eq-elbo-terms``; one-sample
  or ``n_samples``-sample reparameterised estimate of the first term; the KL in closed form for
  the standard normal prior, else estimated by ``ln q(z | x) - ln p(z)`` at the same draws);
- ``iwae_bound(x, k)``: ``E[ln (1/K) sum_k p(x, z_k) / q(z_k | x)]`` (Burda et al. 2016;
  eq. ``eq-iwae``), no looser than the ELBO and tending to ``ln p(x)`` as ``K`` grows.

Sign convention: ``elbo`` and ``iwae_bound`` are LOWER bounds on ``ln p(x)`` (nats, ``(B,)``,
higher is better); ``nll_bound`` and ``iw_nll_bound`` are their negatives, UPPER bounds on
``-ln p(x)`` (the names and signs of :class:`genbook.flows.DigitsFlow`). ``loss`` is the mean
``-elbo``. None of them is a likelihood, except :meth:`VAE.exact_log_prob` of the
linear-Gaussian VAE, whose marginal is probabilistic PCA.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _random
from ._checks import check_choice, check_float, check_int, check_points, check_sequences, check_tensor
from ._nn import mlp
from .io import Configurable

__all__ = ["gaussian_kl", "gaussian_kl_full", "causal_neighbours", "VAE"]

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU}
_LOG_2PI = math.log(2 * math.pi)
_LOCAL_HIDDEN = 64  # width of the per-pixel network of the local autoregressive decoder (context > 0)


def _causal_offsets(context: int) -> list[tuple[int, int]]:
    """The ``(row, column)`` offsets of the pixels that come before a pixel in raster order within the
    ``(2 context + 1)``-square window around it: ``2 context (context + 1)`` of them (4 for ``context=1``)."""
    return [(dr, dc) for dr in range(-context, 1) for dc in range(-context, context + 1) if dr < 0 or dc < 0]


def causal_neighbours(
    x: torch.Tensor, levels: int, context: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The causal neighbours of every pixel of square images ``x (B, side^2)`` of levels ``0..levels-1``:
    ``(B, side^2, 2 n)``, the ``n = 2 context (context + 1)`` neighbours' values scaled to ``[0, 1]`` then a
    flag per neighbour that is 1 where it falls outside the image (its value then reads 0).
    Row ``d`` depends on ``x_<d`` only (eq. ``eq-vae-local-decoder``)."""
    B, D = x.shape
    side, c = math.isqrt(D), context
    img = x.reshape(B, side, side).to(dtype) / (levels - 1)
    padded = nn.functional.pad(img, (c, c, c, 0))  # c columns left and right, c rows on top
    outside = nn.functional.pad(torch.zeros_like(img[:1]), (c, c, c, 0), value=1.0)
    views, flags = [], []
    for dr, dc in _causal_offsets(context):
        rows, cols = slice(c + dr, c + dr + side), slice(c + dc, c + dc + side)
        views.append(padded[:, rows, cols])
        flags.append(outside[:, rows, cols].expand(B, side, side))
    return torch.stack(views + flags, -1).reshape(B, D, -1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - ln sigma_j^2)``,
    ``(..., L) -> (...)`` nats (eq. ``eq-vae-kl-gaussian``)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def gaussian_kl_full(mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu_q, diag var_q) || N(mu_p, cov_p))`` in nats, ``(B,)``, for a full covariance ``cov_p``.

    ``1/2 [tr(cov_p^-1 diag var_q) + (mu_p - mu_q)^T cov_p^-1 (mu_p - mu_q) - L + ln det cov_p
    - sum_j ln var_q_j]``. ``mu_q``, ``var_q``, ``mu_p``: ``(B, L)``; ``cov_p``: ``(L, L)`` or
    ``(B, L, L)``, symmetric positive definite (eq. ``eq-kl-two-gaussians``).
    """
    L = mu_q.shape[-1]
    chol = torch.linalg.cholesky(cov_p)  # (L, L) or (B, L, L)
    chol = chol.expand(mu_q.shape[0], L, L)
    inv_chol = torch.linalg.solve_triangular(chol, torch.eye(L, dtype=chol.dtype, device=chol.device), upper=False)
    trace = (inv_chol.pow(2) * var_q[:, None, :]).sum((1, 2))  # tr(C^-1 diag v) = sum_ij (L^-1)_ij^2 v_j
    maha = (inv_chol @ (mu_p - mu_q)[:, :, None]).squeeze(2).pow(2).sum(1)
    logdet_p = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(1)
    return 0.5 * (trace + maha - L + logdet_p - var_q.log().sum(1))


class VAE(Configurable, nn.Module):
    """A VAE with ``q(z | x) = prod_j N(z_j; mu_j(x), sigma_j^2(x))``, a prior ``p(z)`` and a decoder.

    ``decoder="categorical"``: ``x`` is a ``LongTensor (B, dim)`` of levels ``0..levels-1`` and
    ``p(x | z) = prod_d Cat(x_d; softmax(logits_d(z)))`` with ``levels`` logits per pixel, so
    ``-elbo`` bounds the same discrete NLL that the autoregressive models of chapter 4 compute
    exactly. The encoder sees ``x / (levels - 1)``, in ``[0, 1]``.

    ``decoder="gaussian"``: ``x`` is a float tensor ``(B, dim)`` and ``p(x | z) = N(x; m(z),
    sigma^2 I)`` with one scalar variance, learned (``obs_var=None``, starting at 1) or fixed at
    ``obs_var``; ``levels`` is then unused. The encoder sees ``x`` as it is.

    ``layers`` hidden layers of width ``hidden`` in the encoder (``dim -> 2 latent``: mean and
    log-variance) and in the decoder. ``layers=0`` makes both maps linear; with the Gaussian
    decoder that is the linear VAE of Lucas et al. (2019), whose marginal is probabilistic PCA,
    ``p(x) = N(b, W W^T + sigma^2 I)``: :meth:`exact_log_prob`, :meth:`exact_posterior` and
    :meth:`exact_elbo` exist for it only.

    ``dropout`` follows every hidden layer (training only). The defaults (two tanh layers of 256,
    16 latents) generalised best from the 1000 training digits among the small networks we tried;
    tanh beat (leaky) ReLU there.

    ``prior``: ``"standard"`` is ``p(z) = N(0, I)``, with the KL in closed form
    (eq. ``eq-vae-kl-gaussian``). The two learned priors are mixtures of ``components`` diagonal
    Gaussians (eq. ``eq-mixture``), trained with the rest of the model: ``"mog"`` has free means,
    log-variances and mixing weights; ``"vamp"`` is the VampPrior of Tomczak & Welling (2018),
    ``p(z) = (1/C) sum_c q(z | u_c)``, the average of the encoder's posteriors at ``C`` learned
    pseudo-inputs ``u_c`` (for the categorical decoder ``u_c = sigmoid(a_c)`` lies in the encoder's
    input range ``[0, 1]``; for the Gaussian decoder ``u_c = a_c``), through the encoder without its
    dropout, so that the prior is the same density in training and in evaluation. With a learned prior the KL
    has no closed form; ``elbo`` then estimates it by ``ln q(z | x) - ln p(z)`` at the same
    reparameterised draws as the reconstruction term, so the ELBO estimate stays an unbiased
    estimate of the same lower bound on ``ln p(x)`` (with a larger variance). ``log_weights`` (hence
    ``iwae_bound``) and ``sample`` use the learned ``p(z)``. ``components`` is unused for
    ``prior="standard"``. On the digits (one tanh layer of 512, dropout 0.5) a 50-component
    ``"mog"`` prior gained about 1.3 nats of validation IWAE bound over the standard prior and a
    VampPrior about 0.5-1; the KL stayed small (about 12 nats) either way.

    ``context`` (categorical decoder, square images only): with ``context = c > 0`` the decoder is
    a *local autoregressive* one, ``p(x | z) = prod_d Cat(x_d; softmax(l_d(z) + r_d))``, where the
    correction ``r_d`` of pixel ``d``'s logits comes from a small network (one hidden layer of 64)
    shared by all pixels, fed with ``l_d(z)`` and the ``2 c (c + 1)`` pixels that precede ``d`` in
    raster order within the ``(2c + 1)``-square window around it (see :func:`causal_neighbours`;
    eq. ``eq-vae-local-decoder``). Each factor is normalised and reads earlier pixels only, so
    ``p(x | z)`` is still a distribution over images and every bound above stays a bound. The
    window is kept small on purpose: local texture is left to the decoder, the digit's shape must
    still pass through ``z`` (Gulrajani et al. 2017; Chen et al. 2017). ``sample`` then draws the
    pixels one at a time in raster order.

    ``train_k``: ``loss`` is the one-draw ELBO for ``train_k = 1``, else the importance-weighted
    bound with ``train_k`` draws (Burda et al. 2016).
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        latent: int = 16,
        hidden: int = 256,
        layers: int = 2,
        decoder: str = "categorical",
        levels: int = 17,
        activation: str = "tanh",
        obs_var: float | None = None,
        dropout: float = 0.0,
        prior: str = "standard",
        components: int = 100,
        context: int = 0,
        train_k: int = 1,
    ):
        super().__init__()
        check_int("dim", dim)
        check_int("latent", latent)
        check_int("hidden", hidden)
        check_int("layers", layers, min=0)
        check_choice("decoder", decoder, ("categorical", "gaussian"))
        check_int("levels", levels, min=2)
        check_choice("activation", activation, list(_ACTIVATIONS))
        check_float("obs_var", obs_var, gt=0, optional=True)
        check_float("dropout", dropout, ge=0, lt=1)
        check_choice("prior", prior, ("standard", "mog", "vamp"))
        check_int("components", components)
        check_int("context", context, min=0)
        check_int("train_k", train_k)
        side = math.isqrt(dim)
        if context and (decoder != "categorical" or side * side != dim):
            raise ValueError(
                f"context > 0 needs decoder='categorical' and square images (dim = side^2), "
                f"got context={context}, decoder={decoder!r}, dim={dim}"
            )
        if obs_var is not None and decoder != "gaussian":
            raise ValueError(f"obs_var applies only to decoder='gaussian', got obs_var={obs_var!r} with {decoder!r}")
        self.dim, self.latent, self.hidden, self.layers = dim, latent, hidden, layers
        self.decoder, self.levels, self.activation = decoder, levels, activation
        self.obs_var = None if obs_var is None else float(obs_var)
        self.dropout = float(dropout)
        self.prior, self.components = prior, components
        self.context, self.train_k = context, train_k
        out = dim * levels if decoder == "categorical" else dim
        self.encoder = mlp(dim, 2 * latent, hidden, layers, _ACTIVATIONS[activation], self.dropout)  # x -> (mu, logvar)
        self.decoder_net = mlp(
            latent, out, hidden, layers, _ACTIVATIONS[activation], self.dropout
        )  # z -> logits or mean
        if decoder == "gaussian":
            log_var = torch.tensor(0.0 if obs_var is None else math.log(obs_var))
            if obs_var is None:
                self.log_obs_var = nn.Parameter(log_var)
            else:
                self.register_buffer("log_obs_var", log_var)
        # the learned priors' parameters, made after the networks' so that prior="standard" draws the same init
        if prior == "mog":
            self.prior_means = nn.Parameter(torch.randn(components, latent))
            self.prior_logvars = nn.Parameter(torch.zeros(components, latent))
            self.prior_logits = nn.Parameter(torch.zeros(components))
        elif prior == "vamp":  # pseudo-inputs u = sigmoid(a) near 1/2 (categorical) or a ~ N(0, 1) (Gaussian)
            scale = 0.1 if decoder == "categorical" else 1.0
            self.pseudo_inputs = nn.Parameter(scale * torch.randn(components, dim))
        if context:  # each pixel's logits also see its causal neighbours, after the priors' parameters
            self._offsets = _causal_offsets(context)
            n_in = 2 * len(self._offsets) + levels
            self.local_net = nn.Sequential(
                nn.Linear(n_in, _LOCAL_HIDDEN), _ACTIVATIONS[activation](), nn.Linear(_LOCAL_HIDDEN, levels)
            )

    # ------------------------------------------------------------------ checks and the two networks
    def _ref(self) -> torch.Tensor:
        return self.encoder[0].weight

    def _check(self, x, name: str = "x") -> torch.Tensor:
        ref = self._ref()
        if self.decoder == "categorical":
            return check_sequences(x, self.levels, self.dim, name=name).to(ref.device)
        return check_points(name, x, self.dim).to(ref.device, ref.dtype)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.to(self._ref().dtype) / (self.levels - 1) if self.decoder == "categorical" else x
        mu, logvar = self.encoder(h).chunk(2, dim=-1)
        return mu, logvar

    def _prior_mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned prior as a mixture: means ``(C, L)``, log-variances ``(C, L)``, log-weights ``(C,)``."""
        if self.prior == "mog":
            return self.prior_means, self.prior_logvars, self.prior_logits.log_softmax(0)
        h = self.pseudo_inputs.sigmoid() if self.decoder == "categorical" else self.pseudo_inputs
        for mod in self.encoder:  # without dropout: the prior is one density, in training as in evaluation
            h = h if isinstance(mod, nn.Dropout) else mod(h)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar, torch.full_like(mu[:, 0], -math.log(self.components))

    def _log_prior(self, z: torch.Tensor, mixture=None) -> torch.Tensor:
        """``ln p(z)`` for ``z (..., L)`` -> ``(...)``; ``mixture``: a precomputed :meth:`_prior_mixture`."""
        if self.prior == "standard":
            return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
        means, logvars, log_w = self._prior_mixture() if mixture is None else mixture
        d = z[..., None, :] - means  # (..., C, L)
        log_comp = -0.5 * (d.pow(2) * (-logvars).exp() + logvars + _LOG_2PI).sum(-1)  # (..., C)
        return torch.logsumexp(log_comp + log_w, -1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """``ln p(z)`` in nats of the model's prior (standard or learned), ``z (N, latent)`` -> ``(N,)``."""
        ref = self._ref()
        z = check_tensor("z", z, shape=("N", self.latent), dtype="float")
        return self._log_prior(z.to(ref.device, ref.dtype))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z | x)``, each ``(B, latent)``."""
        return self._encode(self._check(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output for ``z (..., latent)``: logits ``(..., dim, levels)`` (categorical) or the
        mean ``(..., dim)`` (Gaussian). With ``context > 0`` these are the logits' part from ``z`` alone:
        each pixel's logits also depend on its causal neighbours, which ``sample`` draws in raster order."""
        out = self.decoder_net(z)
        return out.unflatten(-1, (self.dim, self.levels)) if self.decoder == "categorical" else out

    def _local_logits(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The local autoregressive decoder's logits ``(..., B, D, K)``: ``base`` (the decoder's logits from
        ``z``) plus the per-pixel network's correction from the causal neighbours of ``x (B, D)`` and
        ``base`` itself (eq. ``eq-vae-local-decoder``)."""
        nb = causal_neighbours(x, self.levels, self.context, dtype=base.dtype)  # (B, D, 2n)
        nb = nb.expand(*base.shape[:-1], nb.shape[-1])
        return base + self.local_net(torch.cat([nb, base], -1))

    def _log_px_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``ln p(x | z)`` for checked ``x (B, D)`` and ``z (..., B, L)`` -> ``(..., B)``."""
        out = self.decode(z)
        if self.decoder == "categorical":
            if self.context:
                out = self._local_logits(x, out)
            logp = out.log_softmax(-1)  # (..., B, D, K)
            idx = x.expand(*out.shape[:-1])[..., None]
            return logp.gather(-1, idx).squeeze(-1).sum(-1)
        var = self.log_obs_var.exp()
        return -0.5 * ((x - out).pow(2).sum(-1) / var + self.dim * (_LOG_2PI + self.log_obs_var))

    def log_p_x_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``ln p(x | z)`` in nats, ``x (B, dim)``, ``z (B, latent)`` -> ``(B,)`` (eq. ``eq-vae-categorical-decoder``
        for the categorical decoder)."""
        x = self._check(x)
        z = check_tensor("z", z, shape=(x.shape[0], self.latent), dtype="float").to(x.device, self._ref().dtype)
        return self._log_px_z(x, z)

    def _reparameterise(self, mu, logvar, n: int, generator) -> torch.Tensor:
        """``z = mu + sigma * eps``, ``eps ~ N(0, I)``: ``(n, B, L)`` draws from q, differentiable in (mu, logvar)
        (eq. ``eq-reparameterisation``)."""
        eps = _random.randn((n, *mu.shape), generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * logvar).exp() * eps

    # ------------------------------------------------------------------ bounds
    def elbo_terms(
        self, x: torch.Tensor, *, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, kl)``, each ``(B,)`` nats: an ``n_samples``-sample reparameterised estimate of
        ``E_q[ln p(x | z)]`` and ``KL(q(z | x) || p(z))``; ``elbo = reconstruction - kl``
        (eq. ``eq-elbo-terms``). Differentiable.

        The KL is in closed form for ``prior="standard"``. For a learned prior it is the Monte Carlo
        estimate ``mean_s [ln q(z_s | x) - ln p(z_s)]`` at the reconstruction's own draws ``z_s``:
        unbiased, so ``reconstruction - kl`` is still an unbiased estimate of the ELBO (which is still a
        lower bound on ``ln p(x)``), but a single estimate may be negative."""
        check_int("n_samples", n_samples)
        x = self._check(x)
        mu, logvar = self._encode(x)
        z = self._reparameterise(mu, logvar, n_samples, generator)  # (S, B, L)
        rec = self._log_px_z(x, z).mean(0)
        if self.prior == "standard":
            return rec, gaussian_kl(mu, logvar)
        return rec, (self._log_q(z, mu, logvar) - self._log_prior(z)).mean(0)

    @staticmethod
    def _log_q(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``ln N(z; mu, diag exp(logvar))``, ``z (..., B, L)`` -> ``(..., B)``."""
        return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + _LOG_2PI).sum(-1)

    def elbo(self, x: torch.Tensor, *, n_samples: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """The evidence lower bound ``E_q[ln p(x | z)] - KL(q(z | x) || p(z)) <= ln p(x)``, ``(B,)`` nats,
        estimated with ``n_samples`` reparameterised draws (an unbiased estimate of the bound; eq. ``eq-elbo``)."""
        rec, kl = self.elbo_terms(x, n_samples=n_samples, generator=generator)
        return rec - kl

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The quantity to minimise: ``-mean_b elbo(x_b)`` with one reparameterised draw per example, or
        for ``train_k > 1`` minus the mean importance-weighted bound with ``train_k`` reparameterised draws
        (Burda et al. 2016; eq. ``eq-iwae``), differentiable in every parameter."""
        if self.train_k == 1:
            return -self.elbo(x).mean()
        x = self._check(x)
        mu, logvar = self._encode(x)
        z = self._reparameterise(mu, logvar, self.train_k, None)
        log_w = self._log_weights(x, mu, logvar, z)
        return -(torch.logsumexp(log_w, 0) - math.log(self.train_k)).mean()

    @torch.no_grad()
    def log_weights(
        self, x: torch.Tensor, k: int, *, generator: torch.Generator | None = None, batch: int = 8192
    ) -> torch.Tensor:
        """``ln p(x, z_k) - ln q(z_k | x)`` for ``K = k`` draws ``z_k ~ q(z | x)``, ``(k, B)`` float64 nats.

        At most ``batch`` (example, draw) pairs are decoded at once, so memory does not grow with ``k``.
        """
        check_int("k", k)
        check_int("batch", batch)
        x = self._check(x)
        mu, logvar = self._encode(x)
        per = max(1, batch // x.shape[0])  # draws per chunk
        mixture = None if self.prior == "standard" else self._prior_mixture()
        out = []
        for start in range(0, k, per):
            z = self._reparameterise(mu, logvar, min(per, k - start), generator)  # (c, B, L)
            out.append(self._log_weights(x, mu, logvar, z, mixture).double())
        return torch.cat(out)

    def _log_weights(self, x, mu, logvar, z, mixture=None) -> torch.Tensor:
        """``ln p(x | z) + ln p(z) - ln q(z | x)`` for checked ``x (B, D)``, ``q``'s ``mu, logvar (B, L)`` and
        draws ``z (c, B, L)`` -> ``(c, B)`` nats; differentiable."""
        return self._log_px_z(x, z) + self._log_prior(z, mixture) - self._log_q(z, mu, logvar)

    @torch.no_grad()
    def iwae_bound(
        self, x: torch.Tensor, k: int, *, generator: torch.Generator | None = None, batch: int = 8192
    ) -> torch.Tensor:
        """``ln (1/K) sum_k p(x, z_k) / q(z_k | x)``, ``z_k ~ q(z | x)``, ``(B,)`` float64 nats (Burda et al. 2016).

        Its expectation is a lower bound on ``ln p(x)``, at least the ELBO (equal for ``k = 1``),
        non-decreasing in ``k`` and tending to ``ln p(x)`` (eq. ``eq-iwae``). Memory-safe for large ``k``
        (see :meth:`log_weights`); no gradients.
        """
        return torch.logsumexp(self.log_weights(x, k, generator=generator, batch=batch), 0) - math.log(k)

    @torch.no_grad()
    def nll_bound(
        self, x: torch.Tensor, *, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``-elbo(x)``: an estimate of an upper bound on ``-ln p(x)``, ``(B,)`` nats."""
        return -self.elbo(x, n_samples=n_samples, generator=generator)

    @torch.no_grad()
    def iw_nll_bound(
        self, x: torch.Tensor, *, n_samples: int = 10, generator: torch.Generator | None = None, batch: int = 8192
    ) -> torch.Tensor:
        """``-iwae_bound(x, n_samples)``: an upper bound on ``-ln p(x)`` in expectation, ``(B,)`` nats."""
        return -self.iwae_bound(x, n_samples, generator=generator, batch=batch)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from ``p(x) = int p(x | z) p(z) dz``: ``z ~ p(z)`` (for a learned prior a component,
        then a Gaussian draw from it), then ``x ~ p(x | z)`` (each pixel's level drawn from its softmax, not
        its argmax). ``LongTensor (n, dim)`` of levels (categorical) or float ``(n, dim)`` (Gaussian)."""
        check_int("n", n)
        z = self.sample_prior(n, generator=generator)
        out = self.decode(z)
        if self.decoder == "categorical":
            if self.context:
                return self._raster(out, lambda logits: _random.multinomial(logits.softmax(-1), 1, generator)[:, 0])
            probs = out.softmax(-1).reshape(n * self.dim, self.levels)
            return _random.multinomial(probs, 1, generator).reshape(n, self.dim)
        return out + (0.5 * self.log_obs_var).exp() * _random.randn_like(out, generator)

    def _raster(self, base: torch.Tensor, pick) -> torch.Tensor:
        """Pixels chosen one at a time in raster order by ``pick(logits (B, K)) -> (B,)`` from the local
        decoder's conditionals given ``base (B, D, K)``; pixels not yet chosen are never read."""
        x = torch.zeros(base.shape[:2], dtype=torch.long, device=base.device)
        for d in range(self.dim):
            x[:, d] = pick(self._local_logits(x, base)[:, d])
        return x

    @torch.no_grad()
    def sample_prior(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``z ~ p(z)``, ``(n, latent)``."""
        check_int("n", n)
        ref = self._ref()
        if self.prior == "standard":
            return _random.randn((n, self.latent), generator, device=ref.device, dtype=ref.dtype)
        means, logvars, log_w = self._prior_mixture()
        c = _random.multinomial(log_w.exp(), n, generator, replacement=True)  # (n,)
        eps = _random.randn((n, self.latent), generator, device=ref.device, dtype=ref.dtype)
        return means[c] + (0.5 * logvars[c]).exp() * eps

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's most probable ``x`` at ``z = mu(x)``: argmax levels ``(B, dim)`` (categorical) or
        the mean (Gaussian). A picture of what the code keeps, not a draw. With ``context > 0`` each
        pixel's argmax is taken in raster order given the ones before it (a greedy approximation of
        the most probable image)."""
        mu, _ = self.encode(x)
        out = self.decode(mu)
        if self.decoder == "categorical" and self.context:
            return self._raster(out, lambda logits: logits.argmax(-1))
        return out.argmax(-1) if self.decoder == "categorical" else out

    # ------------------------------------------------------------------ the linear-Gaussian VAE, exactly
    def _linear(self, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W (D, L), b (D,), sigma^2)`` of the linear-Gaussian decoder, or an error naming ``what``."""
        if self.layers != 0 or self.decoder != "gaussian":
            raise ValueError(
                f"{what} needs the linear-Gaussian VAE (layers=0, decoder='gaussian'), "
                f"got layers={self.layers}, decoder={self.decoder!r}: its likelihood is intractable"
            )
        lin = self.decoder_net[0]
        return lin.weight, lin.bias, self.log_obs_var.exp()

    def exact_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``ln N(x; b, W W^T + sigma^2 I)``, the exact ``ln p(x)`` of the linear-Gaussian VAE, ``(B,)`` nats
        (probabilistic PCA; eq. ``eq-vae-marginal`` in closed form)."""
        W, b, var = self._linear("exact_log_prob")
        x = self._check(x)
        cov = W @ W.T + var * torch.eye(self.dim, dtype=W.dtype, device=W.device)
        return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)

    def exact_posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(z | x) = N(M^-1 W^T (x - b), sigma^2 M^-1)``, ``M = W^T W + sigma^2 I``, of the linear-Gaussian
        VAE: the mean ``(B, latent)`` and the covariance ``(latent, latent)``, the same for every x."""
        W, b, var = self._linear("exact_posterior")
        x = self._check(x)
        M = W.T @ W + var * torch.eye(self.latent, dtype=W.dtype, device=W.device)
        mean = torch.linalg.solve(M, W.T @ (x - b).T).T
        return mean, var * torch.linalg.inv(M)

    def exact_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The ELBO of the linear-Gaussian VAE in closed form (no sampling), ``(B,)`` nats:
        ``-1/2 [D ln(2 pi sigma^2) + (||x - W mu - b||^2 + sum_j ||W_:j||^2 s_j^2) / sigma^2] - KL(q || p(z))``
        (eq. ``eq-linear-vae-elbo``)."""
        W, b, var = self._linear("exact_elbo")
        x = self._check(x)
        mu, logvar = self._encode(x)
        resid = (x - mu @ W.T - b).pow(2).sum(1) + (logvar.exp() * W.pow(2).sum(0)).sum(1)
        rec = -0.5 * (self.dim * (_LOG_2PI + var.log()) + resid / var)
        return rec - gaussian_kl(mu, logvar)
