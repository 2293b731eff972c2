"""Denoising diffusion models: a fixed Gaussian noising chain and a learned denoising chain (chapter 8).

The forward (noising) process adds Gaussian noise in ``T`` steps,
``q(z_t | z_{t-1}) = N(sqrt(1 - beta_t) z_{t-1}, beta_t I)``, ``z_0 = x``. Its kernel from the data is
``q(z_t | x) = N(sqrt(alpha_t) x, (1 - alpha_t) I)`` with ``alpha_t = prod_{s <= t} (1 - beta_s)``
(chapter 8, ``eq-dm-step`` and ``eq-dm-kernel``, proved by induction there).

Notation: ``alpha_t`` here is the CUMULATIVE product, as on the slides (Ho et al. 2020 write it
``alpha-bar_t`` and keep ``alpha_t`` for ``1 - beta_t``). Steps are counted ``t = 1..T``; the
tensors ``betas`` and ``alphas`` hold ``beta_t`` and ``alpha_t`` at index ``t - 1``.

The reverse (generative) process ``p(z_T) = N(0, I)``, ``p(z_{t-1} | z_t) = N(mu(z_t, t), sigma_t^2 I)``
and a decoder ``p(x | z_1)`` is trained through the variational bound (Sohl-Dickstein et al. 2015;
Ho et al. 2020)

    -ln p(x) <= KL(q(z_T | x) || p(z_T))                                    (prior)
              + sum_{t=2..T} E_q KL(q(z_{t-1} | z_t, x) || p(z_{t-1} | z_t))  (diffusion)
              - E_q ln p(x | z_1)                                            (reconstruction)

(``eq-dm-elbo``, derived with its telescoping step in chapter 8), which :meth:`Diffusion.nll_bound`
returns term by term, per example, in nats. Sign convention:
``nll_bound`` is an UPPER bound on ``-ln p(x)`` (lower is better), never a likelihood.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _random
from ._checks import check_choice, check_float, check_int, check_points, check_sequences, check_tensor, describe
from ._nn import mlp
from .io import Configurable

__all__ = [
    "linear_schedule",
    "cosine_schedule",
    "normal_kl",
    "discretized_gaussian_log_prob",
    "Diffusion",
]

_LOG_2PI = math.log(2 * math.pi)
_SCHEDULES = ("linear", "cosine")


# ------------------------------------------------------------------ noise schedules
def linear_schedule(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """``beta_t`` rising linearly from ``beta_1`` (t = 1) to ``beta_T`` (t = T), float64 ``(T,)``
    (Ho et al. 2020 use ``1e-4`` to ``0.02`` with ``T = 1000``). Both ends must lie in ``(0, 1)``."""
    check_int("T", T)
    check_float("beta_1", beta_1, gt=0, lt=1)
    check_float("beta_T", beta_T, gt=0, lt=1)
    if T == 1:
        return torch.tensor([beta_1], dtype=torch.float64)
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def cosine_schedule(T: int, s: float = 0.008) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal (2021), float64 ``(T,)``: ``alpha_t = f(t) / f(0)`` with
    ``f(t) = cos^2((t / T + s) / (1 + s) pi / 2)``, so ``beta_t = 1 - alpha_t / alpha_{t-1}``, clipped at
    0.999 (near ``t = T``, where ``f`` reaches 0). ``s > 0`` keeps ``beta_1`` from vanishing."""
    check_int("T", T)
    check_float("s", s, gt=0)
    u = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2).pow(2)
    alpha = f / f[0]
    return (1 - alpha[1:] / alpha[:-1]).clamp(max=0.999)


# ------------------------------------------------------------------ densities
def normal_kl(mean_q: torch.Tensor, var_q: torch.Tensor, mean_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean_q, diag var_q) || N(mean_p, diag var_p))`` summed over the last axis, nats:
    ``1/2 sum_j [ln(var_p / var_q) + (var_q + (mean_q - mean_p)^2) / var_p - 1]``. The arguments
    broadcast against each other; ``(..., D) -> (...)``. Chapter 8, ``eq-dm-kl``, with its constant."""
    mean_q, var_q, mean_p, var_p = torch.broadcast_tensors(mean_q, var_q, mean_p, var_p)
    return 0.5 * (var_p.log() - var_q.log() + (var_q + (mean_q - mean_p).pow(2)) / var_p - 1).sum(-1)


def _log_diff_ndtr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``ln(Phi(b) - Phi(a))`` for ``a < b``, accurate in both tails (by symmetry, the tail nearer 0 is used)."""
    flip = (a + b) > 0  # both far right: Phi(b) - Phi(a) = Phi(-a) - Phi(-b)
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log(-torch.expm1(log_lo - log_hi))


def discretized_gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float, levels: int
) -> torch.Tensor:
    """``ln P(x)`` of the levels ``x`` (an integer tensor, ``0..levels-1``) under a Gaussian ``N(mean, std^2)``
    on ``[-1, 1]`` discretised into ``levels`` bins (Ho et al. 2020, for 256 levels): level ``k`` sits at
    ``c_k = 2 k / (levels - 1) - 1`` and owns ``[c_k - h, c_k + h]``, ``h = 1 / (levels - 1)``, except that
    the first bin reaches down to ``-inf`` and the last up to ``+inf``, so the probabilities of the
    ``levels`` bins sum to 1 for any mean. Elementwise (no sum); ``x``, ``mean`` and ``std`` broadcast."""
    check_int("levels", levels, min=2)
    if x.is_floating_point() or x.dtype == torch.bool:
        raise ValueError(f"x must hold integer levels 0..{levels - 1}, got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() >= levels):
        raise ValueError(f"x must hold levels 0..{levels - 1}, found {x[(x < 0) | (x >= levels)][0].item()}")
    c = 2 * x.to(mean.dtype) / (levels - 1) - 1
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    h = 1.0 / (levels - 1)
    a, b = (c - h - mean) / std, (c + h - mean) / std
    middle = _log_diff_ndtr(torch.where(x == 0, b - 1, a), b)  # x == 0: a dummy value, replaced below
    first = torch.special.log_ndtr(b)  # P(z < c_0 + h)
    last = torch.special.log_ndtr(-a)  # P(z > c_{K-1} - h)
    return torch.where(x == 0, first, torch.where(x == levels - 1, last, middle))


def _sinusoidal(t: torch.Tensor, T: int, dim: int) -> torch.Tensor:
    """Features of the step ``t (B,)``: ``sin`` and ``cos`` of ``(t / T) w_k`` for ``dim / 2`` frequencies
    ``w_k`` spaced geometrically from 1 to ``1000``, enough to tell apart neighbouring steps of ``T <= 1000``.
    ``(B,) -> (B, dim)``."""
    half = dim // 2
    freqs = 1000.0 ** (torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    angle = (t.to(torch.float32) / T)[:, None] * freqs  # (B, half)
    return torch.cat([angle.sin(), angle.cos()], -1)


# ------------------------------------------------------------------ the model
class Diffusion(Configurable, nn.Module):
    """A denoising diffusion model with a noise predictor ``eps_hat(z_t, t)``.

    ``kind="points"``: ``x`` is a float tensor ``(B, dim)`` used as it is, and the decoder is the density
    ``p(x | z_1) = N(x; mu(z_1, 1), beta_1 I)``, so :meth:`nll_bound` bounds the continuous NLL (comparable
    with a toy's entropy).

    ``kind="levels"``: ``x`` is a ``LongTensor (B, dim)`` of levels ``0..levels-1`` (the digits: ``dim=64``,
    ``levels=17``), mapped to ``[-1, 1]`` as ``2 v / (levels - 1) - 1``. The decoder is the discretised
    Gaussian of :func:`discretized_gaussian_log_prob` with mean ``mu(z_1, 1)`` and variance ``beta_1``, a
    distribution over the ``levels`` values of each pixel, so the bound is on the same discrete NLL (nats
    per image) as the autoregressive models' exact one.

    The schedule: ``"linear"`` (:func:`linear_schedule` from ``beta_1`` to ``beta_T``) or ``"cosine"``
    (:func:`cosine_schedule`; ``beta_1`` and ``beta_T`` are then unused), over ``T`` steps.

    The network: an MLP (``layers`` hidden layers of width ``hidden``, SiLU, ``dropout`` after each) fed
    with ``z_t`` and ``time_dim`` sinusoidal features of ``t / T``. ``head="noise"``: it outputs
    ``eps_hat`` directly. ``head="levels"`` (only for ``kind="levels"``): it outputs logits ``l_ik`` for
    each pixel ``i`` and level ``k``, and :meth:`level_probs` adds the exact log-likelihood
    ``ln N(z_ti; sqrt(alpha_t) c_k, 1 - alpha_t)`` of the pixel's noisy value under each level before a
    softmax over ``k``; the mean ``x_hat = sum_k p_ik c_k`` gives
    ``eps_hat = (z_t - sqrt(alpha_t) x_hat) / sqrt(1 - alpha_t)``. At low noise the likelihood rounds
    ``z_t`` to its level exactly, which a plain noise predictor has to learn.

    The reverse step's mean uses the noise parameterisation
    ``mu(z_t, t) = (z_t - beta_t eps_hat / sqrt(1 - alpha_t)) / sqrt(1 - beta_t)``; its variance is
    ``beta_t`` (``variance="beta"``), the forward posterior's
    ``beta~_t = (1 - alpha_{t-1}) / (1 - alpha_t) beta_t`` (``variance="posterior"``), or, with
    ``head="levels"``, ``beta~_t + (sqrt(alpha_{t-1}) beta_t / (1 - alpha_t))^2 Var[x_i | z_t]`` per pixel,
    the variance under the head's ``p(x | z_t)`` (``variance="levels"``): the true reverse step is the
    mixture of ``q(z_{t-1} | z_t, x)`` over ``p(x | z_t)``, and this Gaussian has its mean and variance
    (the choice that minimises the expected KL when ``p(x | z_t)`` is exact; Bao et al. 2022 estimate
    the same quantity for continuous data). For ``t = 1``, where ``beta~_1`` is 0, the decoder keeps
    ``beta_1``.

    ``loss``: ``"simple"`` is Ho et al.'s ``||eps - eps_hat(z_t, t)||^2`` (summed over the ``dim``
    coordinates) at a uniform ``t`` (chapter 8, ``eq-dm-simple``); ``"elbo"`` is a one-draw unbiased
    estimate of :meth:`nll_bound`'s total: the prior term plus ``T`` times the term of a uniform step
    ``t`` (the reconstruction term for ``t = 1``, the KL for ``t >= 2``), which weights the squared
    noise error of step ``t`` by ``eq-dm-weight``'s ``lambda_t`` instead of 1.

    Recipes measured on one CPU thread, seed 0, ``fit(..., batch_size=..., schedule="linear")``, the
    bound with one draw of ``z_t`` per step (``nll_bound`` with every step):

    - eight Gaussians (``data.toy("8gaussians")``, 20 000 training points): the defaults with ``T=1000``
      (Ho et al.'s ``beta`` from ``1e-4`` to ``0.02``), ``steps=20000``, ``batch_size=256``, ``lr=2e-3``, in
      about 60 s: bound 1.75 +- 0.04 nats on 2000 held-out points, where their exact NLL is 1.71 and the
      toy's entropy 1.70; 97% of samples within 3 standard deviations of a centre, every mode 12-13%.
      With ``T=100`` and the cosine schedule (40 s) the bound was 2.07.
    - digits, the noise head: ``kind="levels", dim=64, T=400, beta_1=0.01, beta_T=0.05, hidden=512``,
      ``steps=16000``, ``batch_size=128``, ``lr=1e-3``, ``loss="elbo"``, in about 100 s: validation bound
      110.9 +- 0.9 nats per image (diffusion 71.7, reconstruction 39.2; the simple loss: 122.4). With
      Ho et al.'s schedule (``T=1000``, ``beta_1=1e-4``) the reconstruction term vanishes but this head
      has to round ``z_t`` to the levels itself: about 200 nats after 12 000 steps. With this head
      ``variance="posterior"`` did worse than ``"beta"``, and the cosine schedule's last steps (``beta_t``
      up to 0.999) cost hundreds of nats.
    - digits, ``head="levels"`` with Ho et al.'s schedule, ``hidden=512, layers=3``, ``loss="elbo"``,
      batches of 128, ``lr=1e-3``, validation bound (prior and reconstruction terms below 0.01 nats):
      ``variance="posterior"``, 2000 steps (23 s): 104.9, and 107.0 after 5000 steps (both estimated with
      ``n_steps=100``): it overfits the 1000 training images; with ``dropout=0.2`` and an exponential
      moving average of the weights (decay 0.999, as in ``benchmarks/diffusion.py``), 4000 steps: 102.4.
      The same with ``variance="levels"``: 96.8 (the first 350 training images: 77.0); its first 50 steps, where the
      noise is comparable with the gap between levels, carry 61 of its 97 nats. With the optimal head
      on 64 independent uniform pixels of 17 levels the bound exceeds their exact NLL by 10.8 +- 0.8
      nats with ``"posterior"`` and 1.4 +- 0.6 with ``"levels"`` (100 draws). No gain (96.2-96.9):
      ``T=2000`` (``beta_T=0.01``; its ``n_steps=100`` estimate read 144: a few steps are heavy-tailed),
      ``dropout=0.3``, weight decay 0.1, ``loss="simple"``, 8000 steps with decay 0.9995, a residual MLP
      with the time added in every block (width 256, 4 blocks), ``hidden=1024``;
      batches of 256 at ``lr=2e-3`` gave 98.8, and training the head by the cross-entropy of the levels
      (``-ln p(x | z_t)`` at a uniform ``t``) instead of the bound 105.4. The chapter's recipe
      (``DIGITS_BOOK``: 3000 steps, 43 s): validation 97.1 +- 0.7, test 93.3 +- 0.5. The bench's
      (``DIGITS_BENCH``: ``hidden=1024, dropout=0.3``, 4000 steps, 136 s): validation 96.2, test
      93.0 +- 0.6 nats per image.
    """

    def __init__(
        self,
        *,
        kind: str = "points",
        dim: int = 2,
        levels: int = 17,
        T: int = 100,
        schedule: str = "linear",
        beta_1: float = 1e-4,
        beta_T: float = 0.02,
        hidden: int = 128,
        layers: int = 3,
        time_dim: int = 32,
        variance: str = "beta",
        loss: str = "simple",
        head: str = "noise",
        dropout: float = 0.0,
    ):
        super().__init__()
        check_choice("kind", kind, ("points", "levels"))
        check_int("dim", dim)
        check_int("levels", levels, min=2)
        check_int("T", T)
        check_choice("schedule", schedule, _SCHEDULES)
        check_float("beta_1", beta_1, gt=0, lt=1)
        check_float("beta_T", beta_T, gt=0, lt=1)
        check_int("hidden", hidden)
        check_int("layers", layers, min=0)
        check_int("time_dim", time_dim, min=2)
        check_choice("variance", variance, ("beta", "posterior", "levels"))
        check_choice("loss", loss, ("simple", "elbo"))
        check_choice("head", head, ("noise", "levels"))
        check_float("dropout", dropout, ge=0, lt=1)
        if head == "levels" and kind != "levels":
            raise ValueError(f'head="levels" needs kind="levels" (data on a grid of levels), got kind={kind!r}')
        if variance == "levels" and head != "levels":
            raise ValueError(f'variance="levels" needs head="levels", got head={head!r}')
        self.kind, self.dim, self.levels, self.T, self.schedule = kind, dim, levels, T, schedule
        self.beta_1, self.beta_T = float(beta_1), float(beta_T)
        self.hidden, self.layers, self.time_dim = hidden, layers, time_dim
        self.variance, self.head, self.dropout = variance, head, float(dropout)
        self.loss_kind = loss
        betas = linear_schedule(T, beta_1, beta_T) if schedule == "linear" else cosine_schedule(T)
        alphas = torch.cumprod(1 - betas, 0)
        alphas_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas[:-1]])  # alpha_0 = 1
        # derived from the configuration: not saved, rebuilt by the constructor
        self.register_buffer("betas", betas, persistent=False)  # (T,) beta_t at t - 1
        self.register_buffer("alphas", alphas, persistent=False)  # (T,) alpha_t at t - 1
        self.register_buffer("alphas_prev", alphas_prev, persistent=False)  # (T,) alpha_{t-1} at t - 1
        n_out = dim * levels if head == "levels" else dim  # logits of each pixel's level, or eps_hat
        self.net = mlp(dim + time_dim, n_out, hidden, layers, nn.SiLU, dropout)  # (z_t, features of t) -> n_out
        c = torch.linspace(-1, 1, levels)  # (levels,) the values c_k of the levels
        self.register_buffer("grid", c, persistent=False)

    def config(self) -> dict:
        return self._config_with(loss=self.loss_kind)

    # ------------------------------------------------------------------ checks and conversions
    def _ref(self) -> torch.Tensor:
        return self.net[0].weight

    def _check(self, x, name: str = "x") -> torch.Tensor:
        """The data ``x`` as the model's float tensor ``(B, dim)``: levels mapped to ``[-1, 1]``."""
        ref = self._ref()
        if self.kind == "levels":
            v = check_sequences(x, self.levels, self.dim, name=name).to(ref.device)
            return 2 * v.to(ref.dtype) / (self.levels - 1) - 1
        return check_points(name, x, self.dim).to(ref.device, ref.dtype)

    def _check_z(self, z, name: str = "z_t") -> torch.Tensor:
        ref = self._ref()
        return check_points(name, z, self.dim).to(ref.device, ref.dtype)

    def _check_t(self, t, B: int) -> torch.Tensor:
        """``t`` (an int, or an integer tensor ``()`` or ``(B,)``) as a ``LongTensor (B,)`` of steps ``1..T``."""
        if isinstance(t, int) and not isinstance(t, bool):
            t = torch.tensor(t)
        ok = isinstance(t, torch.Tensor) and t.ndim <= 1 and not (t.is_floating_point() or t.dtype == torch.bool)
        if not ok or (t.ndim == 1 and t.shape[0] != B):
            raise ValueError(f"t must be an int or an integer tensor of shape () or ({B},), got {describe(t)}")
        if t.numel() and (t.min() < 1 or t.max() > self.T):
            bad = t[(t < 1) | (t > self.T)].reshape(-1)[0].item()
            raise ValueError(f"t must hold steps 1..T = 1..{self.T}, found {bad}")
        return t.to(self._ref().device).long().expand(B)

    def _at(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``table`` (a schedule buffer) at steps ``t (B,)``, as a column ``(B, 1)`` in the model's dtype."""
        return table[t - 1].to(self._ref().dtype)[:, None]

    # ------------------------------------------------------------------ the forward process
    def q_sample(
        self, x: torch.Tensor, t, eps: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A draw of ``z_t ~ q(z_t | x) = N(sqrt(alpha_t) x, (1 - alpha_t) I)``, ``(B, dim)``, as
        ``sqrt(alpha_t) x + sqrt(1 - alpha_t) eps`` with the given ``eps (B, dim)`` or a fresh one."""
        x0 = self._check(x)
        t = self._check_t(t, x0.shape[0])
        return self._q_sample(x0, t, self._eps(x0, eps, generator))

    def _eps(self, x0: torch.Tensor, eps, generator) -> torch.Tensor:
        if eps is None:
            return _random.randn_like(x0, generator)
        return check_tensor("eps", eps, shape=tuple(x0.shape), dtype="float").to(x0.device, x0.dtype)

    def _q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self._at(self.alphas, t)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def q_posterior(self, x: torch.Tensor, z_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward posterior ``q(z_{t-1} | z_t, x) = N(m, beta~_t I)`` for steps ``t >= 1`` (for ``t = 1``
        it is the point mass at ``x``: variance 0). Completing the square in
        ``q(z_{t-1} | x) q(z_t | z_{t-1})``:
        ``m = [sqrt(alpha_{t-1}) beta_t x + sqrt(1 - beta_t) (1 - alpha_{t-1}) z_t] / (1 - alpha_t)`` and
        ``beta~_t = (1 - alpha_{t-1}) beta_t / (1 - alpha_t)`` (chapter 8, ``eq-dm-posterior``, where
        ``beta~_t`` is written ``sigma_t^2``). Returns ``(m (B, dim), var (B, 1))``."""
        x0, z = self._check(x), self._check_z(z_t)
        if x0.shape != z.shape:
            raise ValueError(f"x and z_t must have the same shape, got {tuple(x0.shape)} and {tuple(z.shape)}")
        return self._q_posterior(x0, z, self._check_t(t, x0.shape[0]))

    def _q_posterior(self, x0, z, t) -> tuple[torch.Tensor, torch.Tensor]:
        a, a_prev, beta = self._at(self.alphas, t), self._at(self.alphas_prev, t), self._at(self.betas, t)
        mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * z) / (1 - a)
        return mean, (1 - a_prev) * beta / (1 - a)

    # ------------------------------------------------------------------ the reverse process
    def predict_noise(self, z_t: torch.Tensor, t) -> torch.Tensor:
        """The network's noise estimate ``eps_hat(z_t, t)``, ``(B, dim)``. Trained well, it approaches
        ``E[eps | z_t] = -sqrt(1 - alpha_t) grad ln q(z_t)`` (Tweedie's formula, chapter 8, ``eq-dm-tweedie``)."""
        z = self._check_z(z_t)
        return self._predict_noise(z, self._check_t(t, z.shape[0]))

    def _net_out(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network fed with ``z_t`` and the features of ``t``: ``eps_hat (B, dim)`` (``head="noise"``) or
        the logits of each pixel's level ``(B, dim * levels)`` (``head="levels"``)."""
        return self.net(torch.cat([z, _sinusoidal(t, self.T, self.time_dim).to(z.dtype)], -1))

    def _predict_noise(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.head == "levels":
            return self._network(z, t)[0]
        return self._net_out(z, t)  # (B, dim)

    def _network(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``eps_hat (B, dim)`` and, for ``head="levels"``, the variance of each pixel under
        ``p(x_i | z_t)``, ``(B, dim)`` (else None)."""
        if self.head == "noise":
            return self._predict_noise(z, t), None
        a = self._at(self.alphas, t)
        p = self._level_log_probs(z, t, self._net_out(z, t)).exp()  # (B, dim, levels)
        c = self.grid.to(z.dtype)
        x_hat = p @ c  # (B, dim)
        x_var = (p @ c.pow(2) - x_hat.pow(2)).clamp(min=0)
        return (z - a.sqrt() * x_hat) / (1 - a).sqrt(), x_var

    def level_probs(self, z_t: torch.Tensor, t) -> torch.Tensor:
        """For ``head="levels"``: the model's ``p(x_i = c_k | z_t)`` for each pixel ``i`` and level ``k``,
        ``(B, dim, levels)``, summing to 1 over the levels. It is the softmax over ``k`` of the network's
        logits ``l_ik(z_t, t)`` plus the exact log-likelihood of the pixel's noisy value,
        ``ln N(z_ti; sqrt(alpha_t) c_k, 1 - alpha_t)``: at low noise the likelihood picks the level, at high
        noise the network does. The denoised mean ``x_hat_i = sum_k p_ik c_k`` gives the noise estimate
        ``eps_hat = (z_t - sqrt(alpha_t) x_hat) / sqrt(1 - alpha_t)`` that the rest of the model uses
        (chapter 8, ``eq-dm-levels-head``)."""
        if self.head != "levels":
            raise ValueError(f'level_probs needs head="levels", got head={self.head!r}')
        z = self._check_z(z_t)
        t = self._check_t(t, z.shape[0])
        return self._level_log_probs(z, t, self._net_out(z, t)).exp()

    def _level_log_probs(self, z: torch.Tensor, t: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``ln p(x_i = c_k | z_t)``, ``(B, dim, levels)``, from the network's ``logits (B, dim * levels)``."""
        a = self._at(self.alphas, t)[:, :, None]  # (B, 1, 1)
        c = self.grid.to(z.dtype)
        log_lik = -(z[:, :, None] - a.sqrt() * c).pow(2) / (2 * (1 - a))  # (B, dim, levels), up to a constant
        return torch.log_softmax(logits.view(z.shape[0], self.dim, self.levels) + log_lik, -1)

    def p_mean_var(self, z_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the reverse step ``p(z_{t-1} | z_t) = N(mu, sigma_t^2 I)`` (for ``t = 1``:
        of the decoder's Gaussian): ``mu = (z_t - beta_t eps_hat / sqrt(1 - alpha_t)) / sqrt(1 - beta_t)``,
        ``(B, dim)`` (chapter 8, ``eq-dm-noise-mean``), and the variance: ``beta_t`` or ``beta~_t``, ``(B, 1)``,
        or with ``variance="levels"`` one per pixel, ``(B, dim)`` (``eq-dm-levels-variance``)."""
        z = self._check_z(z_t)
        return self._p_mean_var(z, self._check_t(t, z.shape[0]))

    def _p_mean_var(self, z, t, eps_hat=None, x_var=None) -> tuple[torch.Tensor, torch.Tensor]:
        a, beta = self._at(self.alphas, t), self._at(self.betas, t)
        if eps_hat is None:
            eps_hat, x_var = self._network(z, t)
        mean = (z - beta * eps_hat / (1 - a).sqrt()) / (1 - beta).sqrt()
        var = beta
        if self.variance in ("posterior", "levels"):
            a_prev = self._at(self.alphas_prev, t)
            var = (1 - a_prev) * beta / (1 - a)
            if self.variance == "levels":  # + the spread of q's mean under p(x | z_t): (B, dim)
                var = var + a_prev * beta.pow(2) / (1 - a).pow(2) * x_var
            var = torch.where(t[:, None] == 1, beta, var)
        return mean, var

    def _decoder_log_prob(self, x, x0, mean, var) -> torch.Tensor:
        """``ln p(x | z_1)`` per example ``(B,)`` for the decoder's Gaussian ``N(mean, var)``."""
        if self.kind == "levels":
            v = check_sequences(x, self.levels, self.dim).to(mean.device)
            return discretized_gaussian_log_prob(v, mean, var.sqrt(), self.levels).sum(-1)
        return -0.5 * ((x0 - mean).pow(2) / var + var.log() + _LOG_2PI).sum(-1)

    # ------------------------------------------------------------------ bound and loss
    def prior_kl(self, x: torch.Tensor) -> torch.Tensor:
        """``KL(q(z_T | x) || N(0, I))`` in nats, ``(B,)``: the bound's prior term, which no parameter moves."""
        return self._prior_kl(self._check(x))

    def _prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        a = self.alphas[-1].to(x0.dtype)
        return normal_kl(a.sqrt() * x0, 1 - a, torch.zeros_like(x0), torch.ones_like(x0))

    def _step_terms(self, x, x0, t, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """At one draw ``z_t ~ q(z_t | x)`` for each example's step ``t (B,)``: the bound's term of that step
        (``-ln p(x | z_1)`` where ``t = 1``, ``KL(q(z_{t-1} | z_t, x) || p(z_{t-1} | z_t))`` where ``t >= 2``),
        and the noise and its estimate."""
        eps = _random.randn_like(x0, generator)
        z = self._q_sample(x0, t, eps)
        eps_hat, x_var = self._network(z, t)
        mean_p, var_p = self._p_mean_var(z, t, eps_hat, x_var)
        mean_q, var_q = self._q_posterior(x0, z, t)
        first = t == 1
        kl = normal_kl(mean_q, torch.where(first[:, None], 1.0, var_q), mean_p, var_p)  # t = 1: a dummy var
        if first.any():
            rec = -self._decoder_log_prob(x, x0, mean_p, var_p)
            kl = torch.where(first, rec, kl)
        return kl, eps, eps_hat

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss, a scalar: the mean over the batch of ``||eps - eps_hat(z_t, t)||^2``
        (``loss="simple"``) or of the one-draw estimate of the bound (``loss="elbo"``), at a uniform
        step ``t`` in ``1..T`` per example."""
        x0 = self._check(x)
        t = _random.randint(1, self.T + 1, (x0.shape[0],), generator, device=x0.device)
        term, eps, eps_hat = self._step_terms(x, x0, t, generator)
        if self.loss_kind == "simple":
            return (eps - eps_hat).pow(2).sum(-1).mean()
        return (self._prior_kl(x0) + self.T * term).mean()

    @torch.no_grad()
    def nll_bound(
        self, x: torch.Tensor, *, n_steps: int | None = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """The variational upper bound on ``-ln p(x)`` term by term, each per example ``(B,)`` in nats
        (nats per image for the digits): ``"prior"`` ``KL(q(z_T | x) || N(0, I))`` (closed form),
        ``"diffusion"`` the sum over ``t = 2..T`` of ``KL(q(z_{t-1} | z_t, x) || p(z_{t-1} | z_t))``,
        ``"reconstruction"`` ``-ln p(x | z_1)``, and ``"total"``, their sum.

        Each KL is in closed form given ``z_t``; the expectation over ``z_t ~ q(z_t | x)`` is estimated with
        one draw per step and example (so the bound is estimated without bias, not computed exactly).
        With ``n_steps=None`` every step is visited (``T`` network evaluations per example) and
        ``"per_step"`` ``(B, T)`` holds the term of each step (column ``t - 1``: the reconstruction for
        ``t = 1``, the KL for ``t >= 2``). With ``n_steps = k``, ``k`` steps of ``2..T`` drawn uniformly
        without replacement (the same for the whole batch) stand for all ``T - 1``: their sum is scaled by
        ``(T - 1) / k``, still an unbiased estimate of the diffusion term (with a larger variance).
        """
        x0 = self._check(x)
        B = x0.shape[0]
        check_int("n_steps", n_steps, max=max(self.T - 1, 1), optional=True)
        steps = torch.arange(2, self.T + 1, device=x0.device)
        if n_steps is not None:
            pick = _random.randperm(self.T - 1, _cpu_generator(generator)).to(x0.device)[:n_steps]
            steps = steps[pick]
        one = torch.ones(B, dtype=torch.long, device=x0.device)
        rec = self._step_terms(x, x0, one, generator)[0]
        kls = [self._step_terms(x, x0, s * one, generator)[0] for s in steps.tolist()]
        kl = torch.stack(kls, -1) if kls else x0.new_zeros(B, 0)  # (B, number of steps visited)
        diffusion = kl.sum(-1) * ((self.T - 1) / max(len(kls), 1))
        prior = self._prior_kl(x0)
        out = {"prior": prior, "diffusion": diffusion, "reconstruction": rec, "total": prior + diffusion + rec}
        if n_steps is None:
            out["per_step"] = torch.cat([rec[:, None], kl], -1)
        return out

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws by ancestral sampling: ``z_T ~ N(0, I)``, ``z_{t-1} ~ p(z_{t-1} | z_t)`` for
        ``t = T..2``, then ``x ~ p(x | z_1)``: ``(n, dim)`` floats (points) or a ``LongTensor (n, dim)`` of
        levels, the Gaussian draw rounded to its bin (an exact draw of the discretised decoder)."""
        check_int("n", n)
        ref = self._ref()
        z = _random.randn((n, self.dim), generator, device=ref.device, dtype=ref.dtype)
        for s in range(self.T, 0, -1):
            t = torch.full((n,), s, dtype=torch.long, device=ref.device)
            mean, var = self._p_mean_var(z, t)
            z = mean + var.sqrt() * _random.randn_like(z, generator)
        if self.kind == "points":
            return z
        v = torch.round((z + 1) * (self.levels - 1) / 2)
        return v.clamp(0, self.levels - 1).long()


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A CPU generator seeded from ``generator`` (for ``randperm``, always drawn on the CPU), or None."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return torch.Generator().manual_seed(seed)
