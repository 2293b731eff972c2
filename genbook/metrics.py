"""How good a model is: units of likelihood, and the quality of samples on the 8x8 digits.

Likelihood: nats per example, bits per dimension, and the baselines they compare with.

Sample quality, measured the same way for every model, with or without a likelihood: a small
digits classifier (:class:`DigitsClassifier`, trained by :func:`digits_classifier`) maps an
image to the activations of its penultimate layer, and two sets of images are compared
through these features by

- :func:`frechet_distance` (FD; Heusel et al. 2017): the Frechet distance between the
  Gaussians with the two sets' means and covariances;
- :func:`kernel_distance` (KID; Binkowski et al. 2018): an unbiased estimate of the squared
  maximum mean discrepancy under a cubic polynomial kernel;
- :func:`precision_recall` (Kynkaanniemi et al. 2019): the fraction of samples that fall on
  the k-NN manifold of the real images (precision: fidelity) and of real images that fall on
  the samples' (recall: coverage).

:func:`sample_quality` computes all four for samples against real images. Two finite sets drawn
from the same distribution do not score FD = KID = 0 or precision = recall = 1: report every
number beside the floor, held-out real images against the same reference.
The distances are computed on the CPU in float64 (the trace of the FD subtracts numbers of
similar size, and MPS has no float64); only the classifier runs on its own device.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from ._checks import (
    check_bool,
    check_finite,
    check_float,
    check_int,
    check_sequences,
    check_tensor,
    describe,
)
from ._device import eval_mode, model_device
from .data import DIGITS_LEVELS, digits
from .io import Configurable
from .train import fit

__all__ = [
    "nll",
    "bits_per_dim",
    "uniform_nll",
    "nll_values",
    "bootstrap_ci",
    "paired_ci",
    "DigitsClassifier",
    "digits_classifier",
    "to_levels",
    "frechet_distance",
    "kernel_distance",
    "precision_recall",
    "sample_quality",
    "class_histogram",
]

_SIDE = 8  # the digits are 8 x 8 images, flattened row by row to 64 pixels
_CHUNK = 1024  # rows of a distance matrix computed at once by precision_recall


# ------------------------------------------------------------------ likelihood
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


@torch.no_grad()
def nll_values(
    model,
    x: torch.Tensor,
    *,
    bound: str | None = None,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """One number per example of ``x``: its negative log-likelihood under ``model``, or an upper bound on it,
    in nats; ``(N,)`` float64 on the CPU, computed in eval mode on the model's device.

    - ``bound=None``: ``-model.log_prob(x)``, exact for a model whose ``log_prob`` is (an autoregressive
      model, a mixture, an RBM);
    - ``bound="plain"``: ``model.nll_bound(x)``, the model's own bound (a VAE's ``-ELBO``, a flow's uniform
      dequantisation bound, a diffusion model's variational bound, whose ``"total"`` is taken), with
      ``n_samples`` draws where the model averages several;
    - ``bound="importance"``: ``model.iw_nll_bound(x, n_samples=n_samples)``, the importance-weighted bound.

    A stochastic bound is an unbiased estimate of a bound (see each model's method); ``generator`` draws its
    noise and must live on the model's device. Chapter 10 and the benchmarks score with this one
    function, so a table's rows differ only in the model and the bound. Raises on NaN and on a
    log-probability of ``+inf`` (a bug, never a likelihood to report; ``+inf`` NLL, an example the model
    calls impossible, is returned as it is) and when the model lacks the requested method.
    """
    if bound not in (None, "plain", "importance"):
        raise ValueError(f"bound must be None (exact), 'plain' or 'importance', got {describe(bound)}")
    check_int("n_samples", n_samples)
    check_int("batch_size", batch_size)
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty tensor, got {describe(x)}")
    method = {None: "log_prob", "plain": "nll_bound", "importance": "iw_nll_bound"}[bound]
    if not callable(getattr(model, method, None)):
        raise ValueError(f"bound={bound!r} needs model.{method}, which {type(model).__name__} does not have")
    fn = getattr(model, method)
    kwargs = {}
    if bound is not None:
        accepts = inspect.signature(fn).parameters
        if "n_samples" in accepts:
            kwargs["n_samples"] = n_samples
        elif n_samples != 1:
            raise ValueError(
                f"{type(model).__name__}.{method} draws once per example: n_samples must be 1, got {n_samples}"
            )
        if "generator" in accepts:
            kwargs["generator"] = generator
    dev = model_device(model)
    out = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            value = fn(x[i : i + batch_size].to(dev), **kwargs)
            if isinstance(value, dict):
                value = value["total"]
            value = value.double().cpu()
            out.append(-value if bound is None else value)
    values = torch.cat(out)
    if torch.isnan(values).any() or (values == -math.inf).any():  # +inf: x impossible under the model, reported
        raise FloatingPointError(f"{type(model).__name__}.{method} returned NaN or a log-probability of +inf on x")
    return values


def _per_example(name: str, values) -> torch.Tensor:
    """``values``: a 1-d float tensor with at least 2 finite entries, returned as float64 on the CPU."""
    check_tensor(name, values, shape=("N",), dtype="float")
    if values.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 values (one per test example), got {values.shape[0]}")
    values = values.detach().to("cpu", torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} must be finite, found {int((~torch.isfinite(values)).sum())} NaN or infinite values")
    return values


def bootstrap_ci(
    values: torch.Tensor, *, level: float = 0.95, n_boot: int = 10_000, generator: torch.Generator | None = None
) -> tuple[float, float, float]:
    """The mean of per-example ``values`` ``(N,)`` and a ``level`` confidence interval for it:
    ``(mean, low, high)``.

    A percentile bootstrap over examples (Efron and Tibshirani 1993): ``n_boot`` times, draw ``N``
    examples with replacement and take their mean; the interval holds the central ``level`` of those
    means. It measures how much the number would move on another test set of the same size from the
    same distribution, which is what separates two models' rows in a table, not the noise of a
    stochastic bound's own draws. Resampling runs on the CPU (a ``generator`` must live there), in
    float64, ``1000`` bootstrap samples at a time.
    """
    x = _per_example("values", values)
    level = check_float("level", level, gt=0, lt=1)
    check_int("n_boot", n_boot, min=100)
    n = x.shape[0]
    means = []
    for start in range(0, n_boot, 1000):
        idx = _random.randint(0, n, (min(1000, n_boot - start), n), generator, device="cpu")
        means.append(x[idx].mean(1))
    means = torch.cat(means)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return float(x.mean()), low, high


def paired_ci(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    level: float = 0.95,
    n_boot: int = 10_000,
    generator: torch.Generator | None = None,
) -> tuple[float, float, float]:
    """``mean(a - b)`` and its ``level`` interval, for two models' per-example values on the same examples
    (``a[i]`` and ``b[i]`` for example ``i``): :func:`bootstrap_ci` of the differences.

    Resampling the pairs keeps what the two models share (an image hard for one is hard for the other),
    so the interval of the difference is much narrower than the two models' own intervals suggest; an
    interval that excludes 0 says the order of the two models holds beyond the choice of test images.
    """
    a, b = _per_example("a", a), _per_example("b", b)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must hold one value per example for the same examples, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return bootstrap_ci(a - b, level=level, n_boot=n_boot, generator=generator)


# ------------------------------------------------------------------ the feature network
def _pixels(x, name: str = "x") -> torch.Tensor:
    """Digits as floats in ``[0, 1]``, ``(B, 64)``: integer levels 0..16, or floats on that scale."""
    check_tensor(name, x, shape=("B", _SIDE * _SIDE))
    top = DIGITS_LEVELS - 1
    if not x.is_floating_point():
        return check_sequences(x, DIGITS_LEVELS, _SIDE * _SIDE, name=name).float() / top
    check_finite(name, x)
    if x.numel() and (x.min() < 0 or x.max() > top):
        bad = x[(x < 0) | (x > top)][0].item()
        raise ValueError(f"{name} must hold values in [0, {top}] (the levels' scale), found {bad:g}")
    return x.float() / top


def _shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image of ``x (B, 64)`` moved by up to ``max_shift`` pixels along each axis (a uniform
    draw of the offset per image and axis), zeros moving in at the edges."""
    B, s = x.shape[0], max_shift
    padded = F.pad(x.view(B, _SIDE, _SIDE), (s, s, s, s))  # (B, 8 + 2s, 8 + 2s)
    offset = _random.randint(0, 2 * s + 1, (B, 2), device=x.device)  # top-left corner of the crop
    grid = torch.arange(_SIDE, device=x.device)
    rows = (offset[:, :1] + grid)[:, :, None]  # (B, 8, 1)
    cols = (offset[:, 1:] + grid)[:, None, :]  # (B, 1, 8)
    batch = torch.arange(B, device=x.device)[:, None, None]
    return padded[batch, rows, cols].reshape(B, _SIDE * _SIDE)


class DigitsClassifier(Configurable, nn.Module):
    """A small convolutional classifier of the 8x8 digits; its penultimate layer is the feature space
    of the sample-quality metrics (the role Inception-v3 plays for FID on natural images).

    Input ``x``: a ``LongTensor (B, 64)`` of levels 0..16, or a float tensor ``(B, 64)`` with values
    in ``[0, 16]``; the network sees ``x / 16``. Two 3x3 convolutions with ``channels`` channels and
    ReLU, a 2x2 max-pool to 4x4, then a linear layer to ``feature_dim`` units with ReLU:
    :meth:`features`, ``(B, feature_dim)``; a last linear layer gives the 10 logits: :meth:`forward`.
    ``dropout`` acts on the inputs of both linear layers, in training only.

    ``max_shift``: in training, :meth:`loss` moves each image by up to that many pixels along each
    axis (0: no augmentation). Trained by :func:`digits_classifier` (seeds 0-2), one-pixel shifts
    halved the best validation cross-entropy (0.012-0.024 nats against 0.028-0.047 without shifts
    and 0.034-0.058 with two-pixel shifts); the test accuracy, only reported, went from
    0.94-0.96 to 0.98-0.99. The test split's writers differ from the training split's, and the
    shifts help the network generalise to them.
    """

    def __init__(self, *, channels: int = 32, feature_dim: int = 32, dropout: float = 0.2, max_shift: int = 1):
        super().__init__()
        check_int("channels", channels)
        check_int("feature_dim", feature_dim)
        self.dropout = check_float("dropout", dropout, ge=0, lt=1)
        check_int("max_shift", max_shift, min=0, max=_SIDE - 1)
        self.channels, self.feature_dim, self.max_shift = channels, feature_dim, max_shift
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        pooled = channels * (_SIDE // 2) ** 2
        self.feature_layer = nn.Sequential(nn.Dropout(dropout), nn.Linear(pooled, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 10))

    def _features(self, h: torch.Tensor) -> torch.Tensor:
        h = self.conv(h.view(-1, 1, _SIDE, _SIDE))  # (B, channels, 4, 4)
        return self.feature_layer(h.flatten(1))  # (B, feature_dim)

    def _input(self, x, name: str = "x") -> torch.Tensor:
        ref = self.head[1].weight
        return _pixels(x, name).to(ref.device, ref.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer's activations, ``(B, 64) -> (B, feature_dim)`` (non-negative: after a
        ReLU), on the model's device; call in eval mode for the features the metrics use."""
        return self._features(self._input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of the ten digit classes, ``(B, 64) -> (B, 10)``."""
        return self.head(self.features(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the labels ``y`` (``LongTensor (B,)``, 0..9) in nats; in training the
        images are shifted first (``max_shift``)."""
        h = self._input(x)
        y = self._labels(y, h.shape[0])
        if self.training and self.max_shift:
            h = _shift(h, self.max_shift)
        return F.cross_entropy(self.head(self._features(h)), y)

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The fraction of images ``x`` whose most probable class is the label ``y`` (eval mode)."""
        with eval_mode(self):
            pred = self(x).argmax(1)
        return float((pred == self._labels(y, pred.shape[0])).double().mean())

    def _labels(self, y, n: int) -> torch.Tensor:
        check_tensor("y", y, shape=(n,), dtype="int")
        if n and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"y must hold digit labels 0..9, found {y[(y < 0) | (y > 9)][0].item()}")
        return y.to(self.head[1].weight.device)


def digits_classifier(
    seed: int = 0,
    *,
    channels: int = 32,
    feature_dim: int = 32,
    max_shift: int = 1,
    epochs: int = 300,
    patience: int = 10,
    progress: bool | None = None,
) -> DigitsClassifier:
    """A :class:`DigitsClassifier` trained on the ``"train"`` digits with early stopping on ``"val"``.

    AdamW (lr 2e-3, weight decay 1e-4, batches of 64) for at most ``epochs`` epochs, stopping after
    ``patience`` epochs without a lower validation cross-entropy, and returning the best
    parameters. Deterministic for a given ``seed``: initialisation, dropout, shifts and batch
    order are drawn from ``seed``, inside :func:`torch.random.fork_rng`, so torch's global random
    state is left as it was. It trains on the CPU whatever :func:`genbook.device` says, so that
    every machine gets the same feature space (up to floating-point rounding); move it with
    ``.to(device)`` afterwards. A few seconds on one core; nothing is cached: keep it with
    :func:`genbook.save`. Returned in eval mode. Measure its accuracy with
    :meth:`DigitsClassifier.accuracy` (chosen on validation; the test split is only reported).
    """
    check_int("seed", seed, min=0)
    check_int("epochs", epochs)
    check_int("patience", patience)
    if progress is not None:
        check_bool("progress", progress)
    train, val = digits("train", labels=True), digits("val", labels=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsClassifier(channels=channels, feature_dim=feature_dim, max_shift=max_shift)
        gen = torch.Generator().manual_seed(seed)
        fit(
            model,
            train,
            val=val,
            epochs=epochs,
            patience=patience,
            batch_size=64,
            lr=2e-3,
            weight_decay=1e-4,
            progress=progress,
            generator=gen,
        )
    return model.eval()


def to_levels(x: torch.Tensor, *, levels: int = DIGITS_LEVELS) -> torch.Tensor:
    """Float images on the levels' scale rounded to the nearest level and clipped to ``0..levels-1``:
    ``(B, D) -> LongTensor (B, D)``.

    The one explicit step from a model's continuous output to :func:`sample_quality`, which takes
    levels only. It suits a model whose output estimates the level itself (a GAN's generator
    scaled to ``[0, levels - 1]``, a diffusion model's mean). A model of dequantised data
    (``level + u``, ``u ~ U[0, 1)``) floors instead, as :meth:`genbook.flows.DigitsFlow.sample`
    does; an output on ``[0, 1]`` is multiplied by ``levels - 1`` first.
    """
    check_int("levels", levels, min=2)
    check_tensor("x", x, shape=("B", "D"), dtype="float")
    check_finite("x", x)
    return x.round().clamp(0, levels - 1).long()


# ------------------------------------------------------------------ distances between feature sets
def _feature_set(name: str, x, *, dim: int | None = None, other: str = "", min_rows: int = 2) -> torch.Tensor:
    """``x`` as a CPU float64 ``(N, F)`` tensor with ``N >= min_rows`` finite rows, ``F == dim`` when given."""
    check_tensor(name, x, shape=("N", "F"))
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"{name} must be a real-valued tensor of features, got dtype {x.dtype}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one feature (column), got {describe(x)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have the feature dimension of {other} ({dim}), got {x.shape[1]}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} rows (one sample each), got {x.shape[0]}")
    return check_finite(name, x.detach().to("cpu", torch.float64))


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(F,)`` and unbiased covariance ``(F, F)`` of the rows of ``x (N, F)``."""
    mu = x.mean(0)
    c = x - mu
    return mu, c.T @ c / (x.shape[0] - 1)


def _psd_sqrt(c: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite ``c``; eigenvalues that rounding
    made slightly negative count as 0."""
    evals, evecs = torch.linalg.eigh(c)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """The Frechet distance between the Gaussians fitted to two feature sets (Heusel et al. 2017),

    ``||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2})`` (eq. ``eq-frechet``),

    with the sample means and the unbiased sample covariances of ``feats_a (N_a, F)`` and
    ``feats_b (N_b, F)`` (``N >= 2`` each; ``N < F`` is allowed, the covariance is then singular).
    It is the squared 2-Wasserstein distance between the two Gaussians; for ``F = 1`` it is
    ``(m_a - m_b)^2 + (s_a - s_b)^2``.

    Computed in float64 from two symmetric eigendecompositions: ``C_a^{1/2}`` from those of ``C_a``,
    then the eigenvalues of the symmetric ``C_a^{1/2} C_b C_a^{1/2}`` (the eigenvalues of
    ``C_a C_b``, without a square root of a non-symmetric matrix). Eigenvalues that rounding made
    slightly negative (about ``-1e-15`` times the largest) are set to 0, and a result below 0 by
    rounding is returned as 0.
    """
    a = _feature_set("feats_a", feats_a)
    b = _feature_set("feats_b", feats_b, dim=a.shape[1], other="feats_a")
    mu_a, c_a = _mean_cov(a)
    mu_b, c_b = _mean_cov(b)
    root_a = _psd_sqrt(c_a)
    m = root_a @ c_b @ root_a
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()  # tr (C_a^1/2 C_b C_a^1/2)^1/2
    fd = (mu_a - mu_b).pow(2).sum() + c_a.trace() + c_b.trace() - 2 * cross
    return max(float(fd), 0.0)


def _kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``k(u, v) = (u . v / F + 1)^3`` for every pair of rows, ``(m, F), (n, F) -> (m, n)``."""
    return (u @ v.T / u.shape[1] + 1) ** 3


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, *, jackknife: bool = False) -> tuple[float, float]:
    """The unbiased estimate of MMD^2 with the cubic kernel from ``x (m, F)``, ``y (n, F)``: the means of
    ``k`` over pairs of distinct rows within each set minus twice its mean across sets; and, with
    ``jackknife``, its two-sample jackknife standard error (else 0), from the leave-one-row-out
    estimates, each computed in closed form from the kernel matrices' row sums."""
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    rx = kxx.sum(1) - kxx.diagonal()  # (m,) row sums over the other rows
    ry = kyy.sum(1) - kyy.diagonal()
    sx, sy, sxy = rx.sum(), ry.sum(), kxy.sum()
    value = float(sx / (m * (m - 1)) + sy / (n * (n - 1)) - 2 * sxy / (m * n))
    if not jackknife:
        return value, 0.0
    if min(m, n) < 3:
        raise ValueError(f"the jackknife needs at least 3 rows in each set, got {m} and {n}")
    without_x = (sx - 2 * rx) / ((m - 1) * (m - 2)) + sy / (n * (n - 1)) - 2 * (sxy - kxy.sum(1)) / ((m - 1) * n)
    without_y = sx / (m * (m - 1)) + (sy - 2 * ry) / ((n - 1) * (n - 2)) - 2 * (sxy - kxy.sum(0)) / (m * (n - 1))
    var = (m - 1) / m * (without_x - without_x.mean()).pow(2).sum()
    var = var + (n - 1) / n * (without_y - without_y.mean()).pow(2).sum()
    return value, float(var.sqrt())


def kernel_distance(
    feats_a: torch.Tensor,
    feats_b: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    return_std: bool = False,
    generator: torch.Generator | None = None,
) -> float | tuple[float, float]:
    """The kernel distance, KID (Binkowski et al. 2018): the unbiased estimate of the squared maximum
    mean discrepancy between two feature sets ``(N_a, F)``, ``(N_b, F)`` under the cubic polynomial
    kernel ``k(u, v) = (u . v / F + 1)^3`` (eq. ``eq-kid``),

    ``MMD^2 = mean_{i != j} k(a_i, a_j) + mean_{i != j} k(b_i, b_j) - 2 mean_{i, j} k(a_i, b_j)``.

    Unbiased, so it scatters around 0 (negative values included) when both sets come from one
    distribution. When both sets have at most ``subset_size`` rows the estimate uses all of them,
    once (no randomness), and ``return_std=True`` returns ``(mean, se)`` with ``se`` its two-sample
    jackknife standard error (each set needs 3 rows). Otherwise it is the mean over ``subsets``
    draws of ``min(subset_size, N)`` rows of each set without replacement (on the CPU, from
    ``generator``), and the second number is the spread (std) of those draws, as Binkowski et al.
    report it: the uncertainty of one subset's estimate, a conservative one for their mean.
    """
    a = _feature_set("feats_a", feats_a)
    b = _feature_set("feats_b", feats_b, dim=a.shape[1], other="feats_a")
    check_int("subsets", subsets)
    check_int("subset_size", subset_size, min=2)
    check_bool("return_std", return_std)
    _random.check_generator(generator, "cpu")
    if a.shape[0] <= subset_size and b.shape[0] <= subset_size:
        value, se = _mmd2_unbiased(a, b, jackknife=return_std)
        return (value, se) if return_std else value
    values = [
        _mmd2_unbiased(
            a[_random.randperm(a.shape[0], generator)[:subset_size]],
            b[_random.randperm(b.shape[0], generator)[:subset_size]],
        )[0]
        for _ in range(subsets)
    ]
    v = torch.tensor(values, dtype=torch.float64)
    mean, std = float(v.mean()), float(v.std()) if len(values) > 1 else 0.0
    return (mean, std) if return_std else mean


def _kth_neighbour_distance(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)``: the distance from each row of ``x`` to its ``k``-th nearest other row."""
    out = []
    for i in range(0, x.shape[0], _CHUNK):
        d = _distances(x[i : i + _CHUNK], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the nearest, at distance 0, is the row itself
    return torch.cat(out)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """The fraction of ``points`` inside at least one ball ``||p - centre_j|| <= radius_j``."""
    inside = 0
    for i in range(0, points.shape[0], _CHUNK):
        inside += int((_distances(points[i : i + _CHUNK], centres) <= radii).any(1).sum())
    return inside / points.shape[0]


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # directly, not by the |x|^2 + |y|^2 - 2 x.y shortcut, whose rounding makes a point's distance to
    # itself non-zero, so that a sample equal to a real image could miss that image's ball
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of samples against real data, in features
    (eq. ``eq-precision-recall``).

    The real manifold is the union of the balls centred at the real features ``(N_r, F)``, each
    with the radius of its ``k``-th nearest real neighbour; precision is the fraction of the fake
    features ``(N_f, F)`` inside it. Recall swaps the roles: the fraction of real features inside
    the fake manifold. Both lie in ``[0, 1]``; each set needs more than ``k`` rows. Exact
    Euclidean distances in float64, ``O(N_r N_f F)`` time, computed ``1024`` rows at a time.
    """
    check_int("k", k)
    real = _feature_set("real_feats", real_feats, min_rows=k + 1)
    fake = _feature_set("fake_feats", fake_feats, dim=real.shape[1], other="real_feats", min_rows=k + 1)
    precision = _covered(fake, real, _kth_neighbour_distance(real, k))
    recall = _covered(real, fake, _kth_neighbour_distance(fake, k))
    return precision, recall


# ------------------------------------------------------------------ all of them, one call
def _check_classifier(classifier) -> None:
    if not isinstance(classifier, DigitsClassifier):
        raise ValueError(f"classifier must be a metrics.DigitsClassifier, got {describe(classifier)}")


def _levels(name: str, x) -> torch.Tensor:
    """``x`` as digits of integer levels, with a pointer to :func:`to_levels` for floats."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        raise ValueError(
            f"{name} must be a LongTensor (B, {_SIDE * _SIDE}) of levels 0..{DIGITS_LEVELS - 1}, got dtype "
            f"{x.dtype}: convert continuous images explicitly, e.g. with metrics.to_levels (nearest level)"
        )
    check_tensor(name, x, shape=("B", _SIDE * _SIDE), dtype="int")
    return check_sequences(x, DIGITS_LEVELS, _SIDE * _SIDE, name=name)


@torch.no_grad()
def sample_quality(
    samples: torch.Tensor,
    reference: torch.Tensor,
    classifier: DigitsClassifier,
    *,
    k: int = 3,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """FD, KID, precision and recall of ``samples`` against the real images ``reference``, in the
    features of ``classifier``: ``{"fd", "kid", "kid_se", "precision", "recall"}`` (``kid_se``: the
    jackknife standard error of ``kid``, see :func:`kernel_distance`).

    Both sets are ``LongTensor (N, 64)`` of levels 0..16 (float images raise: round them with
    :func:`to_levels` or as the model defines). The features come from ``classifier`` in eval mode
    on its device; the distances from :func:`frechet_distance`, :func:`kernel_distance` (with
    ``generator``, used only when a set has more than 1000 rows) and :func:`precision_recall`
    (``k``). Every chapter calls it the same way, and reports the floor beside it: held-out real
    images (e.g. ``digits("val")``) against the same ``reference``, with as many samples as the
    held-out set has images. The number matters: FD's bias grows as the sets shrink, and a sample's
    k-NN ball shrinks as its set grows, so precision and recall change with the sizes too.
    """
    _check_classifier(classifier)
    check_int("k", k)
    s, r = _levels("samples", samples), _levels("reference", reference)
    dev = model_device(classifier)
    with eval_mode(classifier):
        fs, fr = classifier.features(s.to(dev)), classifier.features(r.to(dev))
    precision, recall = precision_recall(fr, fs, k=k)
    kid, kid_se = kernel_distance(fs, fr, return_std=True, generator=generator)
    return {"fd": frechet_distance(fs, fr), "kid": kid, "kid_se": kid_se, "precision": precision, "recall": recall}


@torch.no_grad()
def class_histogram(samples: torch.Tensor, classifier: DigitsClassifier) -> torch.Tensor:
    """The fraction of ``samples`` (``LongTensor (N, 64)`` of levels) that ``classifier`` assigns to each
    digit, ``(10,)`` float64 summing to 1: a model that dropped a class shows a zero there."""
    _check_classifier(classifier)
    s = _levels("samples", samples)
    with eval_mode(classifier):
        pred = classifier(s.to(model_device(classifier))).argmax(1).cpu()
    return torch.bincount(pred, minlength=10).double() / s.shape[0]
