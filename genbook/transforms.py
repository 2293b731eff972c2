"""Chapter 2: sampling by transforming variables (eq. ``eq-change-of-variables``).

Each sampler turns uniform or Gaussian noise into draws from a target density through a
map whose Jacobian we know; the densities to check them against are in
``torch.distributions``.
"""

from __future__ import annotations

import math

import torch

from . import _random
from ._checks import check_float, check_int, check_tensor

__all__ = ["exponential", "cauchy", "box_muller", "correlated_gaussian"]


def _uniform(n: int, generator, dtype=torch.float64) -> torch.Tensor:
    # open interval (0, 1): the inverse CDFs below are infinite at 0 or 1
    u = _random.rand(n, generator, dtype=dtype)  # on the CPU: nothing to go with
    return u.clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)


def exponential(n: int, *, rate: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF sampling: ``F(x) = 1 - e^{-rate x}`` so ``x = -log(1 - u) / rate`` (eq. ``eq-inverse-cdf``)."""
    check_int("n", n)
    check_float("rate", rate, gt=0)
    return -torch.log1p(-_uniform(n, generator)) / rate


def cauchy(n: int, *, loc: float = 0.0, scale: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF sampling: ``F(x) = 1/2 + arctan((x - loc)/scale)/pi`` so ``x = loc + scale tan(pi (u - 1/2))``."""
    check_int("n", n)
    check_float("loc", loc)
    check_float("scale", scale, gt=0)
    return loc + scale * torch.tan(math.pi * (_uniform(n, generator) - 0.5))


def box_muller(n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Two independent standard normals from two uniforms (eq. ``eq-box-muller``): ``(n,) -> (n, 2)``.

    ``r = sqrt(-2 log u1)``, ``phi = 2 pi u2``, ``(z1, z2) = (r cos phi, r sin phi)``.
    """
    check_int("n", n)
    u1, u2 = _uniform(n, generator), _uniform(n, generator)
    r, phi = torch.sqrt(-2 * torch.log(u1)), 2 * math.pi * u2
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], 1)


def correlated_gaussian(
    n: int, mean: torch.Tensor, cov: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x = mean + L z`` with ``z ~ N(0, I)`` and ``L L^T = cov`` (Cholesky), so ``x ~ N(mean, cov)``
    (eq. ``eq-linear-gaussian``)."""
    check_int("n", n)
    D = check_tensor("mean", mean, shape=("D",)).shape[0]
    check_tensor("cov", cov, shape=(D, D))
    if not torch.allclose(cov, cov.mT):
        raise ValueError("cov must be symmetric positive definite; it is not symmetric")  # cholesky reads one triangle
    try:
        L = torch.linalg.cholesky(cov.double())
    except RuntimeError as err:
        raise ValueError("cov must be symmetric positive definite") from err
    z = _random.randn((n, D), generator, device=mean.device, dtype=torch.float64)
    return mean.double() + z @ L.T
