"""Chapter 1: learning as Bayesian inference.

The coin (binomial likelihood, Beta prior) in closed form, and the energy picture of a
linear model with Gaussian noise and a Laplace prior, whose MAP estimate is the lasso.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Beta

from ._checks import check_finite, check_float, check_int, check_tensor

__all__ = [
    "binomial_log_likelihood",
    "coin_posterior",
    "coin_map",
    "coin_log_evidence",
    "lasso_energy",
    "LassoMAP",
]


def _check_counts(k: int, n: int) -> None:
    check_int("n", n, min=0)
    check_int("k", k, min=0, max=n)


def _check_prior(a: float, b: float) -> None:
    check_float("a", a, gt=0)  # the Beta prior's parameters
    check_float("b", b, gt=0)


def binomial_log_likelihood(theta: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """``log p(k | theta) = log C(n, k) + k log theta + (n - k) log(1 - theta)`` (eq. ``eq-binomial``)."""
    _check_counts(k, n)
    theta = torch.as_tensor(theta, dtype=torch.float64)
    bad = (theta < 0) | (theta > 1) | torch.isnan(theta)
    if bad.any():
        raise ValueError(f"theta must lie in [0, 1], found {theta[bad][0].item()}")
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_choose + torch.xlogy(torch.tensor(float(k)), theta) + torch.xlogy(torch.tensor(float(n - k)), 1 - theta)


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
    n = check_tensor("X", X, shape=("n", "d")).shape[0]
    check_tensor("z", z, shape=(n,))
    return check_finite("X", X.double()), check_finite("z", z.double())


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
        self.lam, self.sigma = check_float("lam", lam, ge=0), check_float("sigma", sigma, gt=0)
        self.tol, self.max_iter = check_float("tol", tol, gt=0), check_int("max_iter", max_iter)

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
        for sweep in range(1, self.max_iter + 1):  # noqa: B007 (the count is kept as n_iter_)
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
