"""How good a model is: units of likelihood, and the quality of samples on the 8x8 digits.

Likelihood: nats per example, bits per dimension, and the baselines they compare with.

Sample quality, measured the same way for every model, with or without a likelihood: two sets
of images are compared through features of the images (a classifier's penultimate layer) by

- :func:`frechet_distance` (FD; Heusel et al. 2017): the Frechet distance between the
  Gaussians with the two sets' means and covariances;
- :func:`kernel_distance` (KID; Binkowski et al. 2018): an unbiased estimate of the squared
  maximum mean discrepancy under a cubic polynomial kernel;
- :func:`precision_recall` (Kynkaanniemi et al. 2019): the fraction of samples that fall on
  the k-NN manifold of the real images (precision: fidelity) and of real images that fall on
  the samples' (recall: coverage).

Two finite sets drawn from the same distribution do not score FD = KID = 0 or precision =
recall = 1: report every number beside the floor, held-out real images against the same
reference.
The distances are computed on the CPU in float64 (the trace of the FD subtracts numbers of
similar size, and MPS has no float64).
"""

from __future__ import annotations

import math

import torch

from . import _random
from ._checks import check_bool, check_finite, check_int, check_tensor, describe

__all__ = [
    "nll",
    "bits_per_dim",
    "uniform_nll",
    "frechet_distance",
    "kernel_distance",
    "precision_recall",
]

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

    ``||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2})``,

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


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased estimate of MMD^2 with ``k(u, v) = (u . v / F + 1)^3`` from ``x (m, F)``, ``y (n, F)``:
    the means of ``k`` over pairs of distinct rows within each set minus twice its mean across sets."""
    d = x.shape[1]

    def within(u: torch.Tensor) -> torch.Tensor:
        k = (u @ u.T / d + 1) ** 3
        n = u.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    return float(within(x) + within(y) - 2 * ((x @ y.T / d + 1) ** 3).mean())


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
    kernel ``k(u, v) = (u . v / F + 1)^3``,

    ``MMD^2 = mean_{i != j} k(a_i, a_j) + mean_{i != j} k(b_i, b_j) - 2 mean_{i, j} k(a_i, b_j)``.

    Unbiased, so it scatters around 0 (negative values included) when both sets come from one
    distribution. When both sets have at most ``subset_size`` rows the estimate uses all of them,
    once (no randomness; the std is then 0). Otherwise it is the mean over ``subsets`` draws of
    ``min(subset_size, N)`` rows of each set without replacement (on the CPU, from ``generator``),
    and the std is the spread of those draws. ``return_std=True`` returns ``(mean, std)``.
    """
    a = _feature_set("feats_a", feats_a)
    b = _feature_set("feats_b", feats_b, dim=a.shape[1], other="feats_a")
    check_int("subsets", subsets)
    check_int("subset_size", subset_size, min=2)
    check_bool("return_std", return_std)
    _random.check_generator(generator, "cpu")
    if a.shape[0] <= subset_size and b.shape[0] <= subset_size:
        values = [_mmd2_unbiased(a, b)]
    else:
        values = [
            _mmd2_unbiased(
                a[_random.randperm(a.shape[0], generator)[:subset_size]],
                b[_random.randperm(b.shape[0], generator)[:subset_size]],
            )
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
    """Improved precision and recall (Kynkaanniemi et al. 2019) of samples against real data, in features.

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
