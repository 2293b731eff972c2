"""Latent-variable models of chapter 1: a Gaussian mixture fitted by EM (clustering), the same EM for a
mixture of categoricals over discrete images, and a mixture over a grid of latent points with a learned
decoder (dimensional reduction)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from ._checks import check_choice, check_float, check_int, check_points, check_sequences, check_tensor
from .io import Configurable

__all__ = ["gaussian_log_density", "kmeans_plusplus", "GaussianMixture", "CategoricalMixture", "GridLatentModel"]

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(x: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> torch.Tensor:
    """``log N(x_i; mu_c, Sigma_c)`` for every point and component: ``(B, D), (C, D), (C, D, D) -> (B, C)``."""
    chol = torch.linalg.cholesky(covariances)  # (C, D, D)
    diff = (x[None] - means[:, None]).transpose(1, 2)  # (C, D, B)
    sol = torch.linalg.solve_triangular(chol, diff, upper=False)  # (C, D, B)
    maha = sol.pow(2).sum(1)  # (C, B)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # (C,)
    return (-0.5 * (x.shape[1] * LOG_2PI + log_det[:, None] + maha)).T


def kmeans_plusplus(x: torch.Tensor, k: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick ``k`` rows of ``x`` as starting means by k-means++ seeding (Arthur & Vassilvitskii, 2007).

    The first centre is a uniformly random point; each next one is drawn with probability
    proportional to its squared distance from the nearest centre chosen so far, which
    spreads the starts over the clusters. ``(N, D) -> (k, D)``; drawn on ``x``'s device, so a
    ``generator`` must live there.
    """
    check_int("k", k, max=x.shape[0])  # at most the number of rows
    first = int(_random.randint(0, x.shape[0], (1,), generator, device=x.device))
    centres = [x[first]]
    nearest = ((x - x[first]) ** 2).sum(1)  # (N,)
    for _ in range(1, k):
        weights = nearest if float(nearest.sum()) > 0 else torch.ones(x.shape[0], device=x.device)
        nxt = int(_random.multinomial(weights, 1, generator))
        centres.append(x[nxt])
        nearest = torch.minimum(nearest, ((x - x[nxt]) ** 2).sum(1))
    return torch.stack(centres)


class GaussianMixture(Configurable, nn.Module):
    """``q(x | w) = sum_c alpha_c N(x; mu_c, Sigma_c)`` fitted by expectation-maximisation (eq. ``eq-mixture``).

    Full covariances, with ``reg_covar`` added to their diagonals as in scikit-learn, and the
    same stopping rule (the change of the mean log-likelihood below ``tol``). Computes in
    float64. Fitted parameters: ``weights_ (C,)``, ``means_ (C, D)``, ``covariances_ (C, D, D)``.
    """

    def __init__(
        self,
        *,
        n_components: int = 2,
        n_features: int = 2,
        reg_covar: float = 1e-6,
        tol: float = 1e-3,
        max_iter: int = 100,
    ):
        super().__init__()
        check_int("n_components", n_components)
        check_int("n_features", n_features)
        check_float("reg_covar", reg_covar, ge=0)
        check_float("tol", tol, ge=0)
        check_int("max_iter", max_iter)
        self.n_components, self.n_features = n_components, n_features
        self.reg_covar, self.tol, self.max_iter = float(reg_covar), float(tol), int(max_iter)
        C, D = n_components, n_features
        self.register_buffer("weights_", torch.full((C,), 1.0 / C, dtype=torch.float64))
        self.register_buffer("means_", torch.zeros(C, D, dtype=torch.float64))
        self.register_buffer("covariances_", torch.eye(D, dtype=torch.float64).repeat(C, 1, 1))

    # ---- the two EM steps
    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        """``log alpha_c + log N(x; mu_c, Sigma_c)``: ``(B, D) -> (B, C)``."""
        return torch.log(self.weights_) + gaussian_log_density(x, self.means_, self.covariances_)

    def e_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Responsibilities ``log r_ic = log q(c | x_i)`` (eq. ``eq-em-e``) and ``log q(x_i)``."""
        joint = self._joint(x)
        log_px = torch.logsumexp(joint, dim=1)  # (B,)
        return joint - log_px[:, None], log_px

    def m_step(self, x: torch.Tensor, log_resp: torch.Tensor) -> None:
        """Closed-form maximisers of the expected complete-data log-likelihood (eq. ``eq-em-m``)."""
        resp = log_resp.exp()  # (B, C)
        nk = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps  # (C,), never exactly 0
        means = resp.T @ x / nk[:, None]  # (C, D)
        diff = x[None] - means[:, None]  # (C, B, D)
        cov = torch.einsum("cb,cbd,cbe->cde", resp.T, diff, diff) / nk[:, None, None]
        cov = cov + self.reg_covar * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        self.weights_, self.means_, self.covariances_ = nk / x.shape[0], means, cov

    def fit(
        self,
        X: torch.Tensor,
        *,
        means_init: torch.Tensor | None = None,
        weights_init: torch.Tensor | None = None,
        covariances_init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> "GaussianMixture":
        """Run EM from the given starting point (default: k-means++ seeds as means,
        the data covariance for every component, equal weights)."""
        x = check_points("X", X, self.n_features).to(self.means_.device, torch.float64)
        C = self.n_components
        if x.shape[0] < C:
            raise ValueError(f"X needs at least n_components={C} rows, got {x.shape[0]}")
        if means_init is None:
            means_init = kmeans_plusplus(x, C, generator=generator)
        if covariances_init is None:
            cov = torch.cov(x.T).reshape(self.n_features, self.n_features)
            covariances_init = cov.repeat(C, 1, 1)
        if weights_init is None:
            weights_init = torch.full((C,), 1.0 / C)
        self._set_parameters(weights_init, means_init, covariances_init)

        self.lower_bounds_: list[float] = []
        self.converged_ = False
        previous = -math.inf
        for it in range(1, self.max_iter + 1):  # noqa: B007 (the count is kept as n_iter_)
            log_resp, log_px = self.e_step(x)
            current = float(log_px.mean())
            self.m_step(x, log_resp)
            self.lower_bounds_.append(current)
            if abs(current - previous) < self.tol:
                self.converged_ = True
                break
            previous = current
        self.n_iter_ = it
        return self

    def _set_parameters(self, weights, means, covariances) -> None:
        C, D = self.n_components, self.n_features
        kw = dict(dtype=torch.float64, device=self.means_.device)
        weights, means, covariances = (torch.as_tensor(t, **kw) for t in (weights, means, covariances))
        check_tensor("weights_init", weights, shape=(C,))
        check_tensor("means_init", means, shape=(C, D))
        check_tensor("covariances_init", covariances, shape=(C, D, D))
        if (weights <= 0).any() or abs(float(weights.sum()) - 1) > 1e-6:
            raise ValueError(f"weights_init must be positive and sum to 1, got {weights.tolist()}")
        self.weights_, self.means_, self.covariances_ = weights, means, covariances

    # ---- the density-model contract
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log q(x)`` in nats, ``(B, D) -> (B,)`` float64."""
        x = check_points("x", x, self.n_features).to(self.means_.device, torch.float64)
        return torch.logsumexp(self._joint(x), dim=1)

    def score_samples(self, X: torch.Tensor) -> torch.Tensor:
        return self.log_prob(X)

    def score(self, X: torch.Tensor) -> float:
        """Mean log-likelihood per point in nats (as scikit-learn's ``score``)."""
        return float(self.log_prob(X).mean())

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        x = check_points("X", X, self.n_features).to(self.means_.device, torch.float64)
        return self.e_step(x)[0].exp()

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        return self.predict_proba(X).argmax(1)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: ``c ~ alpha``, then ``x ~ N(mu_c, Sigma_c)``; ``(n, D)`` float64, drawn on the
        model's device (a ``generator`` must live there)."""
        check_int("n", n)
        c = _random.multinomial(self.weights_, n, generator, replacement=True)
        eps = _random.randn((n, self.n_features, 1), generator, device=self.means_.device, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covariances_)
        return self.means_[c] + (chol[c] @ eps).squeeze(-1)


class CategoricalMixture(Configurable, nn.Module):
    """``q(x | w) = sum_c pi_c prod_d theta_{c,d,x_d}``: a mixture of categoricals, fitted by EM as chapter 1's
    Gaussian mixture is (:class:`GaussianMixture`; the responsibilities of eq. ``eq-em-e``).

    Each of the ``components`` components is a product of independent categoricals over ``dims``
    positions with ``levels`` values each: for the 8x8 digits (``dims=64``, ``levels=17``, the
    defaults) a prototype image with its own distribution of grey levels per pixel. It is the
    latent-variable baseline for discrete images; its log-likelihood is exact (a sum over ``C``
    components).

    The M-step adds ``alpha`` pseudo-counts to every level count (a symmetric Dirichlet prior with
    parameter ``alpha + 1`` on each ``theta_{c,d}``; the weights keep their maximum-likelihood update):

        ``theta_{c,d,l} = (sum_i r_ic [x_id = l] + alpha) / (N_c + levels alpha)``,  ``pi_c = N_c / N``.

    So the fit is MAP EM: each iteration raises the mean objective
    ``(1/N) [sum_i log q(x_i) + alpha sum_{c,d,l} log theta_{c,d,l}]`` (kept in ``history_``, one
    value per iteration, at the parameters before that iteration's M-step), and no probability is
    ever 0, so ``log_prob`` stays finite on images with a level never seen in training. ``alpha``
    must be > 0: without pseudo-counts such an image would get ``-inf``.

    The first responsibilities are a hard assignment: with ``init="kmeans++"`` to the nearest of
    ``components`` images picked by :func:`kmeans_plusplus` on one-hot rows (there squared distance
    is twice the Hamming distance), with ``init="random"`` to a uniformly drawn component. EM stops
    when the objective improves by less than ``tol``, or after ``max_iter`` iterations. Computes in
    float64. Fitted: ``weights_ (C,)`` (``pi``) and ``log_theta_ (C, dims, levels)``, NaN until
    :meth:`fit`.
    """

    def __init__(
        self,
        *,
        components: int = 10,
        levels: int = 17,
        dims: int = 64,
        alpha: float = 1.0,
        init: str = "kmeans++",
        tol: float = 1e-6,
        max_iter: int = 200,
    ):
        super().__init__()
        check_int("components", components)
        check_int("levels", levels, min=2)  # one level leaves nothing to model
        check_int("dims", dims)
        self.alpha = check_float("alpha", alpha, gt=0)
        self.init = check_choice("init", init, ("kmeans++", "random"))
        self.tol = check_float("tol", tol, ge=0)
        check_int("max_iter", max_iter)
        self.components, self.levels, self.dims, self.max_iter = components, levels, dims, max_iter
        C, D, L = components, dims, levels
        self.register_buffer("weights_", torch.full((C,), math.nan, dtype=torch.float64))
        self.register_buffer("log_theta_", torch.full((C, D, L), math.nan, dtype=torch.float64))

    # ---- inputs
    def _check_fitted(self) -> None:
        if torch.isnan(self.weights_).any():
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(x) first")

    def _one_hot(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Levels ``(B, dims)`` (checked) -> one-hot rows ``(B, dims * levels)`` float64 on the model's device."""
        check_tensor(name, x, shape=("B", self.dims), dtype="int")
        x = check_sequences(x, self.levels, self.dims, name=name).to(self.weights_.device)
        return F.one_hot(x, self.levels).reshape(x.shape[0], -1).to(torch.float64)

    # ---- the two EM steps
    def _joint(self, onehot: torch.Tensor) -> torch.Tensor:
        """``log pi_c + sum_d log theta_{c,d,x_d}``: ``(B, D L) -> (B, C)`` (the one-hot row picks the terms)."""
        return torch.log(self.weights_) + onehot @ self.log_theta_.reshape(self.components, -1).T

    def _e_step(self, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log r_ic`` ``(B, C)`` and ``log q(x_i)`` ``(B,)``."""
        joint = self._joint(onehot)
        log_px = torch.logsumexp(joint, dim=1)
        return joint - log_px[:, None], log_px

    def _m_step(self, onehot: torch.Tensor, resp: torch.Tensor) -> None:
        """The MAP update of the class docstring from responsibilities ``resp (N, C)``."""
        C, D, L = self.components, self.dims, self.levels
        nk = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps  # (C,), never exactly 0
        counts = (resp.T @ onehot).reshape(C, D, L) + self.alpha  # expected level counts + pseudo-counts
        self.log_theta_ = counts.log() - counts.sum(-1, keepdim=True).log()  # (C, D, L)
        self.weights_ = nk / nk.sum()

    def _initial_responsibilities(self, onehot: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A hard assignment of every row to a component, as one-hot responsibilities ``(N, C)``."""
        C = self.components
        if self.init == "kmeans++":
            seeds = kmeans_plusplus(onehot, C, generator=generator)  # (C, D L), rows of onehot
            label = (onehot @ seeds.T).argmax(1)  # most positions in common = least Hamming distance
        else:
            label = _random.randint(0, C, (onehot.shape[0],), generator, device=onehot.device)
        return F.one_hot(label, C).to(onehot.dtype)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> CategoricalMixture:
        """Run MAP EM on ``x``, a ``LongTensor (N, dims)`` of levels ``0..levels-1`` with ``N >= components``;
        the initial assignment is drawn on the model's device (a ``generator`` must live there)."""
        onehot = self._one_hot(x)
        N, C = onehot.shape[0], self.components
        if N < C:
            raise ValueError(f"x needs at least components={C} rows, got {N}")
        self._m_step(onehot, self._initial_responsibilities(onehot, generator))
        self.history_: list[float] = []
        self.converged_ = False
        previous = -math.inf
        for it in range(1, self.max_iter + 1):  # noqa: B007 (the count is kept as n_iter_)
            log_resp, log_px = self._e_step(onehot)
            current = float(log_px.mean()) + self.alpha * float(self.log_theta_.sum()) / N
            self._m_step(onehot, log_resp.exp())
            self.history_.append(current)
            if current - previous < self.tol:
                self.converged_ = True
                break
            previous = current
        self.n_iter_ = it
        return self

    # ---- the density-model contract
    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log q(x)`` in nats, exact: ``LongTensor (B, dims) -> (B,)`` float64."""
        self._check_fitted()
        return torch.logsumexp(self._joint(self._one_hot(x)), dim=1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """``-log q(x)`` averaged over the batch, in nats."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior over components ``q(c | x)``: ``LongTensor (B, dims) -> (B, C)`` float64, rows sum to 1."""
        self._check_fitted()
        return torch.softmax(self._joint(self._one_hot(x)), dim=1)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: ``c ~ pi``, then ``x_d ~ theta_{c,d}`` for every position; ``LongTensor (n, dims)``
        drawn on the model's device (a ``generator`` must live there)."""
        check_int("n", n)
        self._check_fitted()
        c = _random.multinomial(self.weights_, n, generator, replacement=True)  # (n,)
        probs = self.log_theta_[c].exp().reshape(n * self.dims, self.levels)  # one row per (image, position)
        return _random.multinomial(probs, 1, generator).reshape(n, self.dims)


class GridLatentModel(Configurable, nn.Module):
    """``q(x | w) = sum_j N(x; f_w(z_j), diag(sigma^2)) p(z_j)`` with ``J`` fixed latent points (eq. ``eq-latent``).

    The latent points ``z_j`` are evenly spaced in [-1, 1] (one latent dimension) with
    ``p(z_j) = 1/J``; the decoder ``f_w`` is a small MLP and ``sigma`` is learned. The
    likelihood is exact (a finite sum), so ``loss`` is the true negative log-likelihood.
    """

    def __init__(self, *, n_features: int = 2, n_latent: int = 64, hidden: int = 64):
        super().__init__()
        check_int("n_features", n_features)
        check_int("n_latent", n_latent)
        check_int("hidden", hidden)
        self.n_features, self.n_latent, self.hidden = n_features, n_latent, hidden
        self.register_buffer("z", torch.linspace(-1, 1, n_latent)[:, None])  # (J, 1)
        self.decoder = nn.Sequential(
            nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, n_features)
        )
        self.log_sigma = nn.Parameter(torch.full((n_features,), -1.0))

    def decode(self) -> torch.Tensor:
        """The decoded latent grid ``f_w(z_j)``: ``(J, D)``."""
        return self.decoder(self.z)

    def joint(self, x: torch.Tensor) -> torch.Tensor:
        """``log N(x_i; f(z_j), sigma^2) + log p(z_j)``: ``(B, D) -> (B, J)``."""
        x = check_points("x", x, self.n_features).to(self.z.device, self.z.dtype)
        mu = self.decode()  # (J, D)
        var = torch.exp(2 * self.log_sigma)  # (D,)
        sq = ((x[:, None, :] - mu[None]) ** 2 / var).sum(-1)  # (B, J)
        log_norm = self.log_sigma.sum() + 0.5 * self.n_features * LOG_2PI
        return -0.5 * sq - log_norm - math.log(self.n_latent)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.joint(x), dim=1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean ``E[z | x] = sum_j q(z_j | x) z_j``: ``(B, D) -> (B,)``."""
        return torch.softmax(self.joint(x), dim=1) @ self.z[:, 0]

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z_j`` uniform on the grid, then ``x = f(z_j) + sigma eps``: ``(n, D)``, drawn on the model's device
        (a ``generator`` must live there)."""
        check_int("n", n)
        j = _random.randint(0, self.n_latent, (n,), generator, device=self.z.device)
        eps = _random.randn((n, self.n_features), generator, device=self.z.device)  # in torch's default dtype
        return self.decode()[j] + torch.exp(self.log_sigma) * eps
