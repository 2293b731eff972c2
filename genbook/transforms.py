"""Chapter 2: sampling by transforming variables (eq. ``eq-change-of-variables``).

Each sampler turns uniform or Gaussian noise into draws from a target density through a
map whose Jacobian we know; the densities to check them against are in
``torch.distributions``.
"""

from __future__ import annotations

import math

import torch


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")


def _uniform(n: int, generator, dtype=torch.float64) -> torch.Tensor:
    # open interval (0, 1): the inverse CDFs below are infinite at 0 or 1
    u = torch.rand(n, generator=generator, dtype=dtype)
    return u.clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)


def exponential(n: int, *, rate: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF sampling: ``F(x) = 1 - e^{-rate x}`` so ``x = -log(1 - u) / rate`` (eq. ``eq-inverse-cdf``)."""
    _check_n(n)
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    return -torch.log1p(-_uniform(n, generator)) / rate


def cauchy(n: int, *, loc: float = 0.0, scale: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF sampling: ``F(x) = 1/2 + arctan((x - loc)/scale)/pi`` so ``x = loc + scale tan(pi (u - 1/2))``."""
    _check_n(n)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    return loc + scale * torch.tan(math.pi * (_uniform(n, generator) - 0.5))


def box_muller(n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Two independent standard normals from two uniforms (eq. ``eq-box-muller``): ``(n,) -> (n, 2)``.

    ``r = sqrt(-2 log u1)``, ``phi = 2 pi u2``, ``(z1, z2) = (r cos phi, r sin phi)``.
    """
    _check_n(n)
    u1, u2 = _uniform(n, generator), _uniform(n, generator)
    r, phi = torch.sqrt(-2 * torch.log(u1)), 2 * math.pi * u2
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], 1)


def correlated_gaussian(
    n: int, mean: torch.Tensor, cov: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x = mean + L z`` with ``z ~ N(0, I)`` and ``L L^T = cov`` (Cholesky), so ``x ~ N(mean, cov)`` (eq. ``eq-linear-gaussian``)."""
    _check_n(n)
    D = mean.shape[0]
    if cov.shape != (D, D):
        raise ValueError(f"cov must have shape ({D}, {D}) to match mean, got {tuple(cov.shape)}")
    if not torch.allclose(cov, cov.mT):
        raise ValueError("cov must be symmetric positive definite; it is not symmetric")  # cholesky reads one triangle
    try:
        L = torch.linalg.cholesky(cov.double())
    except RuntimeError as err:
        raise ValueError("cov must be symmetric positive definite") from err
    z = torch.randn(n, D, generator=generator, dtype=torch.float64)
    return mean.double() + z @ L.T
