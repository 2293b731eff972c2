"""Chapter 1: learning as Bayesian inference.

The coin (binomial likelihood, Beta prior) in closed form, and the energy picture of a
linear model with Gaussian noise and a Laplace prior, whose MAP estimate is the lasso.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Beta


def _check_counts(k: int, n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= n:
        raise ValueError(f"k must be an int in 0..n={n}, got {k!r}")


def _check_prior(a: float, b: float) -> None:
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"Beta prior parameters must be finite and > 0, got a={a!r}, b={b!r}")


def binomial_log_likelihood(theta: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """``log p(k | theta) = log C(n, k) + k log theta + (n - k) log(1 - theta)`` (eq. ``eq-binomial``)."""
    _check_counts(k, n)
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if ((theta < 0) | (theta > 1)).any() or torch.isnan(theta).any():
        raise ValueError("theta must lie in [0, 1]")
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_choose + torch.xlogy(torch.tensor(float(k)), theta) + torch.xlogy(
        torch.tensor(float(n - k)), 1 - theta
    )


def coin_posterior(k: int, n: int, *, a: float = 1.0, b: float = 1.0) -> Beta:
    """Posterior of the heads probability after ``k`` heads in ``n`` tosses (eq. ``eq-beta-posterior``).

    With a ``Beta(a, b)`` prior it is ``Beta(a + k, b + n - k)``; ``a = b = 1`` is the flat prior.
    """
    _check_counts(k, n)
    _check_prior(a, b)
    return Beta(torch.tensor(a + k, dtype=torch.float64), torch.tensor(b + n - k, dtype=torch.float64))


def coin_map(k: int, n: int, *, a: float = 1.0, b: float = 1.0) -> float:
    """The posterior mode ``(k + a - 1) / (n + a + b - 2)`` (eq. ``eq-coin-map``).

    Defined when both posterior parameters exceed 1; with the flat prior it is ``k / n``.
    """
    _check_counts(k, n)
    _check_prior(a, b)
    if a + k <= 1 or b + n - k <= 1:
        raise ValueError(
            f"the posterior Beta({a + k}, {b + n - k}) has its mode on the boundary; "
            "the MAP formula needs both parameters > 1"
        )
    return (k + a - 1) / (n + a + b - 2)


def coin_log_evidence(k: int, n: int, *, a: float = 1.0, b: float = 1.0) -> float:
    """``log p(k) = log C(n, k) + log B(a + k, b + n - k) - log B(a, b)`` (eq. ``eq-coin-evidence``)."""
    _check_counts(k, n)
    _check_prior(a, b)

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_choose + log_beta(a + k, b + n - k) - log_beta(a, b)


# ------------------------------------------------------------------ the lasso as MAP
def _check_regression(X: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(X, torch.Tensor) or X.ndim != 2:
        raise ValueError(f"X must be a 2-D tensor (n, d), got {getattr(X, 'shape', type(X).__name__)}")
    if not isinstance(z, torch.Tensor) or z.ndim != 1 or z.shape[0] != X.shape[0]:
        raise ValueError(f"z must be a 1-D tensor of length n={X.shape[0]}, got {getattr(z, 'shape', type(z).__name__)}")
    X, z = X.double(), z.double()
    if not (torch.isfinite(X).all() and torch.isfinite(z).all()):
        raise ValueError("X and z must be finite (found NaN or inf)")
    return X, z


def lasso_energy(
    W: torch.Tensor, b: torch.Tensor | float, X: torch.Tensor, z: torch.Tensor, *, lam: float, sigma: float = 1.0
) -> torch.Tensor:
    """Negative log-posterior up to the evidence and the constant (eq. ``eq-lasso-energy``).

    ``L(W) = 1/(2 sigma^2) sum_l (z_l - x_l W - b)^2 + lam sum_j |W_j|``, differentiable in
    ``W`` and ``b`` (a flat prior on the intercept ``b``).
    """
    residual = z - X @ W - b
    return residual.pow(2).sum() / (2 * sigma**2) + lam * W.abs().sum()


class LassoMAP:
    """MAP estimate of a linear model with Gaussian noise and a Laplace prior (the lasso).

    Minimises :func:`lasso_energy` by cyclic coordinate descent, each coordinate
    solved exactly by soft thresholding (eq. ``eq-soft-threshold``). The intercept has
    a flat prior. The same minimiser as scikit-learn's ``Lasso(alpha=lam * sigma**2 / n)``.
    """

    def __init__(self, *, lam: float = 1.0, sigma: float = 1.0, tol: float = 1e-10, max_iter: int = 10_000):
        if not (lam >= 0 and math.isfinite(lam)):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        if not (tol > 0 and math.isfinite(tol)):
            raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
        self.lam, self.sigma, self.tol, self.max_iter = float(lam), float(sigma), float(tol), max_iter

    def sklearn_alpha(self, n: int) -> float:
        """The ``alpha`` at which scikit-learn's ``Lasso`` minimises the same objective on ``n`` points."""
        return self.lam * self.sigma**2 / n

    def fit(self, X: torch.Tensor, z: torch.Tensor) -> "LassoMAP":
        X, z = _check_regression(X, z)
        x_mean, z_mean = X.mean(0), z.mean()
        Xc, zc = X - x_mean, z - z_mean  # the unpenalised intercept absorbs the means
        col_sq = (Xc * Xc).sum(0)  # (d,)
        threshold = self.lam * self.sigma**2
        W = torch.zeros(X.shape[1], dtype=torch.float64)
        r = zc.clone()  # residual zc - Xc W
        for sweep in range(1, self.max_iter + 1):
            biggest = 0.0
            for j in range(X.shape[1]):
                if col_sq[j] == 0:
                    continue
                rho = Xc[:, j] @ r + col_sq[j] * W[j]
                new = torch.sign(rho) * torch.clamp(rho.abs() - threshold, min=0) / col_sq[j]
                delta = new - W[j]
                if delta != 0:
                    r -= delta * Xc[:, j]
                    W[j] = new
                    biggest = max(biggest, abs(float(delta)))
            if biggest <= self.tol * max(1.0, float(W.abs().max())):
                break
        self.n_iter_ = sweep
        self.converged_ = sweep < self.max_iter or biggest <= self.tol
        self.coef_ = W
        self.intercept_ = float(z_mean - x_mean @ W)
        return self

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        return X.double() @ self.coef_ + self.intercept_

    def energy(self, X: torch.Tensor, z: torch.Tensor) -> float:
        """:func:`lasso_energy` at the fitted parameters."""
        X, z = _check_regression(X, z)
        return float(lasso_energy(self.coef_, self.intercept_, X, z, lam=self.lam, sigma=self.sigma))
