"""Linear latent-variable models of chapter 6: PCA, probabilistic PCA, the linear autoencoder and
maximum-likelihood ICA (MacKay, *Information Theory, Inference and Learning Algorithms*, ch. 34).

Conventions shared by the closed-form models (:class:`PCA`, :class:`ProbabilisticPCA`, :class:`ICA`):

- they compute in float64 and keep what they learn in buffers whose names end in ``_``, so
  ``genbook.save`` / ``genbook.load`` round-trip them;
- ``n_features`` may be left ``None``: ``fit`` reads it off the data (``config()`` then reports
  the fitted size, so a saved model rebuilds with buffers of the right shapes);
- variances are maximum-likelihood ones, normalised by ``N`` (not ``N - 1`` as in scikit-learn's
  ``explained_variance_``): the sample covariance is ``S = (1/N) sum_n (x_n - mean)(x_n - mean)^T``,
  which makes the PCA error identity and the probabilistic-PCA solution exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from . import _random
from ._checks import check_bool, check_choice, check_float, check_int, check_points, check_tensor, describe
from .io import Configurable

__all__ = [
    "PCA",
    "ProbabilisticPCA",
    "LinearAutoencoder",
    "principal_angles",
    "ICA_PRIORS",
    "ica_log_prior",
    "ica_phi",
    "ica_log_likelihood",
    "ica_gradient",
    "ICA",
    "amari_index",
]

LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------- shared helpers
def _points(name: str, x, n_features: int | None) -> torch.Tensor:
    """``x`` as a finite float64 tensor ``(B, D)``; ``D = n_features`` when it is known."""
    if n_features is None:
        n_features = x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 2 else "D"
    return check_points(name, x, n_features).double()


def _principal_axes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean (D,), eigenvalues (D,), axes (r, D))`` of the sample covariance ``S`` (normalised by N).

    Eigenvalues descend (zeros pad them to ``D`` when ``N < D``); the ``r = min(N, D)`` axes are
    orthonormal rows, each signed so that its entry of largest magnitude is positive.
    """
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)  # the SVD of the centred data avoids forming S
    eig = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    eig[: s.shape[0]] = s**2 / x.shape[0]
    sign = torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True)))  # (r, 1)
    return mean, eig, vh * sign


class _Fitted(Configurable, nn.Module):
    """Buffers that ``fit`` fills: allocated as zeros when ``n_features`` is known, else ``None`` until ``fit``."""

    def _allocate(self, shapes: dict[str, tuple[int, ...]] | None, names: tuple[str, ...]) -> None:
        for name in names:
            tensor = None if shapes is None else torch.zeros(shapes[name], dtype=torch.float64)
            self.register_buffer(name, tensor)

    def _check_fitted(self) -> None:
        if self.mean_ is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")

    def config(self) -> dict:
        if self.mean_ is None:
            return self._config_with()
        return self._config_with(n_features=self.mean_.shape[0])


# ---------------------------------------------------------------- PCA
class PCA(_Fitted):
    """Principal component analysis: the ``m``-dimensional subspace with the least squared
    reconstruction error (eqs. ``eq-pca``, ``eq-pca-error``).

    Fitted: ``mean_ (D,)``, ``components_ (m, D)`` (orthonormal rows, the leading eigenvectors of
    ``S``), ``eigenvalues_ (D,)`` (all eigenvalues of ``S``, descending). Properties:
    ``explained_variance_`` (the first ``m`` eigenvalues) and ``discarded_variance_`` (the sum of
    the other ``D - m``), which equals the least reconstruction error per example.
    """

    def __init__(self, *, n_components: int = 2, n_features: int | None = None):
        super().__init__()
        check_int("n_features", n_features, optional=True)
        check_int("n_components", n_components, max=n_features)
        self.n_components, self.n_features = n_components, n_features
        D, m = n_features, n_components
        shapes = None if D is None else {"mean_": (D,), "components_": (m, D), "eigenvalues_": (D,)}
        self._allocate(shapes, ("mean_", "components_", "eigenvalues_"))

    def fit(self, X: torch.Tensor) -> PCA:
        """Eigen-decompose the sample covariance of ``X (N, D)`` (via the SVD of the centred data)."""
        x = _points("X", X, self.n_features)
        check_int("n_components", self.n_components, max=min(x.shape))  # at most min(N, D) axes
        mean, eig, axes = _principal_axes(x)
        self.mean_, self.eigenvalues_, self.components_ = mean, eig, axes[: self.n_components].contiguous()
        return self

    @property
    def explained_variance_(self) -> torch.Tensor:
        """The variances along the kept axes, ``(m,)``, descending (normalised by N)."""
        return self.eigenvalues_[: self.n_components]

    @property
    def discarded_variance_(self) -> torch.Tensor:
        """``sum_{j > m} lambda_j``: the mean squared reconstruction error on the training data."""
        return self.eigenvalues_[self.n_components :].sum()

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Coordinates in the principal subspace, ``z = U_m^T (x - mean)``: ``(B, D) -> (B, m)``."""
        self._check_fitted()
        return (_points("X", X, self.mean_.shape[0]) - self.mean_) @ self.components_.T

    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        """Back to data space, ``x_hat = mean + U_m z``: ``(B, m) -> (B, D)``."""
        self._check_fitted()
        return _points("Z", Z, self.n_components) @ self.components_ + self.mean_

    def reconstruction_error(self, X: torch.Tensor) -> torch.Tensor:
        """Mean over examples of ``||x - x_hat||^2`` (summed over dimensions): a scalar."""
        x = _points("X", X, self.mean_.shape[0] if self.mean_ is not None else None)
        return (x - self.inverse_transform(self.transform(x))).pow(2).sum(1).mean()


# ---------------------------------------------------------------- probabilistic PCA
class ProbabilisticPCA(_Fitted):
    """``x = W z + mean + sigma eps`` with ``z ~ N(0, I_m)``, ``eps ~ N(0, I_D)``, so that
    ``p(x) = N(x; mean, W W^T + sigma^2 I)`` (Tipping & Bishop, 1999; eq. ``eq-ppca``).

    ``fit`` sets the maximum-likelihood parameters in closed form: ``mean_`` the sample mean,
    ``sigma2_`` the mean of the ``D - m`` discarded eigenvalues of ``S`` and
    ``W_ = U_m (Lambda_m - sigma^2 I)^{1/2}`` (the rotation ``R`` of the general solution taken as I).
    """

    def __init__(self, *, n_components: int = 2, n_features: int | None = None):
        super().__init__()
        check_int("n_features", n_features, optional=True)
        check_int("n_components", n_components, max=None if n_features is None else n_features - 1)
        self.n_components, self.n_features = n_components, n_features
        D, m = n_features, n_components
        shapes = None if D is None else {"mean_": (D,), "W_": (D, m), "sigma2_": ()}
        self._allocate(shapes, ("mean_", "W_", "sigma2_"))
        if D is not None:
            self.sigma2_.fill_(1.0)

    def fit(self, X: torch.Tensor) -> ProbabilisticPCA:
        """The closed-form maximum-likelihood fit to ``X (N, D)`` (eq. ``eq-ppca-ml``)."""
        x = _points("X", X, self.n_features)
        m = self.n_components
        check_int("n_components", m, max=min(x.shape[1] - 1, x.shape[0]))  # one discarded direction at least
        mean, eig, axes = _principal_axes(x)
        sigma2 = eig[m:].mean()
        if not sigma2 > 0:
            raise ValueError(f"X has no variance outside its first {m} principal axes, so sigma2 would be 0")
        self.mean_, self.sigma2_ = mean, sigma2
        self.W_ = (axes[:m].T * (eig[:m] - sigma2).clamp_min(0).sqrt()).contiguous()  # (D, m)
        return self

    def _m_cholesky(self) -> torch.Tensor:
        """The Cholesky factor of ``M = W^T W + sigma^2 I``, ``(m, m)``."""
        self._check_fitted()
        eye = torch.eye(self.n_components, dtype=self.W_.dtype, device=self.W_.device)
        return torch.linalg.cholesky(self.W_.T @ self.W_ + self.sigma2_ * eye)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log N(x; mean, W W^T + sigma^2 I)`` in nats, ``(B, D) -> (B,)`` float64.

        With ``M = W^T W + sigma^2 I = L L^T`` the determinant lemma (eq. ``eq-det-lemma``) gives
        ``log det C = (D - m) log sigma^2 + log det M`` and Woodbury's identity
        ``e^T C^{-1} e = (||e||^2 - ||L^{-1} W^T e||^2) / sigma^2`` (eq. ``eq-woodbury``): no ``D x D`` matrix
        is formed.
        """
        L = self._m_cholesky()
        e = _points("x", x, self.mean_.shape[0]) - self.mean_  # (B, D)
        u = torch.linalg.solve_triangular(L, self.W_.T @ e.T, upper=False)  # (m, B)
        maha = (e.pow(2).sum(1) - u.pow(2).sum(0)) / self.sigma2_
        D, m = e.shape[1], self.n_components
        log_det = (D - m) * torch.log(self.sigma2_) + 2 * torch.log(torch.diagonal(L)).sum()
        return -0.5 * (D * LOG_2PI + log_det + maha)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(z | x) = N(z; M^{-1} W^T (x - mean), sigma^2 M^{-1})``: ``(B, D) -> (mean (B, m), cov (m, m))``.

        The covariance does not depend on ``x``; the exact posterior of a linear-Gaussian VAE
        (eq. ``eq-ppca-posterior``).
        """
        L = self._m_cholesky()
        e = _points("x", x, self.mean_.shape[0]) - self.mean_
        mean = torch.cholesky_solve(self.W_.T @ e.T, L).T  # (B, m)
        eye = torch.eye(self.n_components, dtype=L.dtype, device=L.device)
        return mean, self.sigma2_ * torch.cholesky_solve(eye, L)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral samples ``x = W z + mean + sigma eps``: ``(n, D)`` float64 on the model's device
        (a ``generator`` must live there)."""
        check_int("n", n)
        self._check_fitted()
        dev, D = self.W_.device, self.W_.shape[0]
        z = _random.randn((n, self.n_components), generator, device=dev, dtype=torch.float64)
        eps = _random.randn((n, D), generator, device=dev, dtype=torch.float64)
        return z @ self.W_.T + self.mean_ + self.sigma2_.sqrt() * eps


# ---------------------------------------------------------------- linear autoencoder
class LinearAutoencoder(Configurable, nn.Module):
    """``x_hat = B (A x + a) + b``: a linear encoder ``A (m, D)`` and decoder ``B (D, m)`` trained by
    :func:`genbook.fit` on the squared reconstruction error (eq. ``eq-linear-ae``).

    With ``bias=True`` (the default) the biases ``a``, ``b`` absorb the data mean, so the data need
    not be centred; at a minimum ``B A`` is the orthogonal projection onto the PCA subspace (``B``'s
    columns span it, but need not be orthonormal). With ``bias=False`` centre the data first.
    """

    def __init__(self, *, dim: int = 2, n_components: int = 1, bias: bool = True):
        super().__init__()
        check_int("dim", dim)
        check_int("n_components", n_components, max=dim)
        check_bool("bias", bias)
        self.dim, self.n_components, self.bias = dim, n_components, bias
        self.encoder = nn.Linear(dim, n_components, bias=bias)  # weight: A (m, D)
        self.decoder = nn.Linear(n_components, dim, bias=bias)  # weight: B (D, m)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B, m)``."""
        x = check_points("x", x, self.dim).to(self.encoder.weight.dtype)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, m) -> (B, D)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``x_hat``: ``(B, D) -> (B, D)``."""
        return self.decode(self.encode(x))

    reconstruct = forward

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``||x - x_hat||^2`` (summed over dimensions), as :meth:`PCA.reconstruction_error`."""
        x = check_points("x", x, self.dim).to(self.encoder.weight.dtype)
        return (x - self(x)).pow(2).sum(1).mean()


def principal_angles(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Principal angles in radians between the column spans of ``U (D, p)`` and ``V (D, q)``,
    ascending, ``(min(p, q),)``: 0 where the spans share a direction.

    The columns need not be orthonormal (QR makes them so). Cosines come from the singular values
    of ``Q_U^T Q_V`` and sines from those of ``Q_V - Q_U Q_U^T Q_V``; ``atan2`` of the pair is
    accurate for small angles too, where ``arccos`` alone would lose half the digits.
    """
    check_tensor("U", U, shape=("D", "p"), dtype="float")
    check_tensor("V", V, shape=(U.shape[0], "q"), dtype="float")
    if U.shape[1] < V.shape[1]:
        U, V = V, U  # V is the narrower basis
    qu, qv = torch.linalg.qr(U)[0], torch.linalg.qr(V)[0]
    cos = torch.linalg.svdvals(qu.T @ qv)  # (q,), descending
    sin = torch.linalg.svdvals(qv - qu @ (qu.T @ qv)).flip(0)  # (q,), ascending
    return torch.atan2(sin, cos)


# ---------------------------------------------------------------- ICA
ICA_PRIORS = ("tanh", "cubic", "gaussian")
_LOG_Z_CUBIC = math.lgamma(0.25) - 0.5 * math.log(2)  # log of the integral of exp(-a^4 / 4)

Prior = str | Sequence[str]


def _priors(name: str, prior, m: int) -> list[str]:
    """``prior`` as a list of ``m`` names: one name for every component, or one name per component."""
    names = [prior] * m if isinstance(prior, str) else list(prior) if isinstance(prior, (list, tuple)) else None
    if names is None or len(names) != m:
        raise ValueError(f"{name} must be one name or a list of {m} names from {ICA_PRIORS}, got {describe(prior)}")
    for p in names:
        check_choice(name, p, ICA_PRIORS)
    return names


def _columnwise(a: torch.Tensor, prior: Prior, one) -> torch.Tensor:
    """``one(a_i, name_i)`` for every column ``a_i`` of ``a (..., m)``."""
    if isinstance(prior, str):
        check_choice("prior", prior, ICA_PRIORS)
        return one(a, prior)
    names = _priors("prior", prior, a.shape[-1])
    return torch.stack([one(a[..., i], p) for i, p in enumerate(names)], -1)


def _log_prior(a: torch.Tensor, prior: str) -> torch.Tensor:
    if prior == "tanh":  # ln cosh a = |a| + ln(1 + e^{-2|a|}) - ln 2, without overflow
        return -math.log(math.pi) - (a.abs() + torch.log1p(torch.exp(-2 * a.abs())) - math.log(2))
    if prior == "cubic":
        return -0.25 * a.pow(4) - _LOG_Z_CUBIC
    return -0.5 * a.pow(2) - 0.5 * LOG_2PI


def _phi(a: torch.Tensor, prior: str) -> torch.Tensor:
    return -torch.tanh(a) if prior == "tanh" else -a.pow(3) if prior == "cubic" else -a


def ica_log_prior(a: torch.Tensor, prior: Prior = "tanh") -> torch.Tensor:
    """``ln p(a)`` elementwise for ``a (..., m)``, normalised densities (the ``p_i`` of eq. ``eq-ica-loglik``):

    - ``"tanh"``: ``p(a) = 1 / (pi cosh a)``, heavy tails (super-Gaussian sources);
    - ``"cubic"``: ``p(a) = exp(-a^4 / 4) / Z``, ``Z = Gamma(1/4) / sqrt(2)``, light tails (sub-Gaussian);
    - ``"gaussian"``: ``p(a) = N(a; 0, 1)``, under which no rotation of the sources can be identified.

    ``prior`` is one name for every component or a list of ``m`` names, one per column of ``a``.
    """
    return _columnwise(a, prior, _log_prior)


def ica_phi(a: torch.Tensor, prior: Prior = "tanh") -> torch.Tensor:
    """``phi(a) = d ln p(a) / da`` elementwise: ``-tanh(a)``, ``-a^3`` or ``-a`` (eq. ``eq-ica-phi``)."""
    return _columnwise(a, prior, _phi)


def ica_log_likelihood(W: torch.Tensor, X: torch.Tensor, *, prior: Prior = "tanh") -> torch.Tensor:
    """``ln P(x | G) = ln |det W| + sum_i ln p(a_i)``, ``a = W x``, ``W = G^{-1}``, per example:
    ``W (m, m)``, ``X (N, m) -> (N,)`` nats (eq. ``eq-ica-loglik``)."""
    check_tensor("W", W, shape=("m", "m"), dtype="float")
    check_tensor("X", X, shape=("N", W.shape[0]), dtype="float")
    a = X @ W.T  # (N, m)
    return torch.linalg.slogdet(W).logabsdet + ica_log_prior(a, prior).sum(1)


def ica_gradient(W: torch.Tensor, X: torch.Tensor, *, prior: Prior = "tanh") -> torch.Tensor:
    """The gradient of the mean of :func:`ica_log_likelihood` over ``X`` with respect to ``W``:
    ``W^{-T} + mean_n z_n x_n^T``, ``z = phi(W x)``; ``(m, m)`` (eq. ``eq-ica-grad``)."""
    check_tensor("W", W, shape=("m", "m"), dtype="float")
    check_tensor("X", X, shape=("N", W.shape[0]), dtype="float")
    z = ica_phi(X @ W.T, prior)  # (N, m)
    return torch.linalg.inv(W).T + z.T @ X / X.shape[0]


def _natural_gradient(W: torch.Tensor, X: torch.Tensor, prior: Prior) -> torch.Tensor:
    """``ica_gradient(W, X) W^T W = (I + mean_n z_n a_n^T) W``: no inverse needed (eq. ``eq-ica-natural``)."""
    a = X @ W.T
    z = ica_phi(a, prior)
    return W + (z.T @ a / X.shape[0]) @ W


class ICA(_Fitted):
    """Maximum-likelihood independent component analysis (MacKay, ch. 34; eqs. ``eq-ica-loglik``, ``eq-ica-natural``).

    The model: ``x = G s`` with independent sources ``s_i ~ p`` (``prior``, see :func:`ica_log_prior`).
    A fixed prior separates only sources on its side of the Gaussian: ``"tanh"`` heavy-tailed ones,
    ``"cubic"`` light-tailed ones. ``prior="extended"`` picks, before every step and for each
    component, ``"tanh"`` where the current ``a_i`` has positive excess kurtosis and ``"cubic"``
    elsewhere (the switching rule of Lee, Girolami & Sejnowski's extended infomax, 1999), so it
    separates a mixture of both kinds; the fitted choice is ``priors_``.
    ``fit`` ascends the mean log-likelihood in the unmixing matrix ``W = G^{-1}`` by fixed steps of
    size ``lr``, along the gradient (``method="plain"``, :func:`ica_gradient`) or the covariant
    (natural) gradient ``(I + z a^T) W`` (``"natural"``), until the mean log-likelihood changes by
    less than ``tol`` or after ``max_iter`` steps.

    The data are centred; with ``whiten=True`` they are also projected on their first
    ``n_components`` principal axes and scaled to unit variance, ``y = K (x - mean)``, and ``W``
    acts on ``y``; with ``whiten=False``, ``y = x - mean`` and ``n_components`` must be ``D``.
    Fitted: ``mean_ (D,)``, ``whitening_ K (m, D)`` (the identity without whitening),
    ``unmixing_ W (m, m)``, ``log_likelihood_`` (the mean log-likelihood of ``y`` after each step,
    entry 0 at the start), ``n_iter_``, ``converged_``. In the original space: ``components_ = W K``
    (``a = components_ (x - mean)``) and ``mixing_`` its pseudo-inverse ``(D, m)``.
    """

    def __init__(
        self,
        *,
        n_components: int | None = None,
        n_features: int | None = None,
        prior: str = "tanh",
        method: str = "natural",
        lr: float = 0.1,
        max_iter: int = 200,
        tol: float = 1e-7,
        whiten: bool = True,
    ):
        super().__init__()
        check_int("n_features", n_features, optional=True)
        check_int("n_components", n_components, max=n_features, optional=True)
        check_choice("prior", prior, (*ICA_PRIORS, "extended"))
        check_choice("method", method, ("natural", "plain"))
        check_float("lr", lr, gt=0)
        check_int("max_iter", max_iter)
        check_float("tol", tol, ge=0)
        check_bool("whiten", whiten)
        if not whiten and n_components is not None and n_features is not None and n_components != n_features:
            raise ValueError(f"n_components must equal n_features={n_features} when whiten=False, got {n_components}")
        self.n_components, self.n_features, self.prior, self.method = n_components, n_features, prior, method
        self.lr, self.max_iter, self.tol, self.whiten = float(lr), max_iter, float(tol), whiten
        D = n_features
        m = n_components or D
        shapes = None if D is None else {"mean_": (D,), "whitening_": (m, D), "unmixing_": (m, m)}
        self._allocate(shapes, ("mean_", "whitening_", "unmixing_"))
        self.register_buffer("sub_gaussian_", None if D is None else torch.zeros(m, dtype=torch.bool))
        self.log_likelihood_: list[float] = []

    def config(self) -> dict:
        if self.mean_ is None:
            return self._config_with()
        return self._config_with(n_features=self.mean_.shape[0], n_components=self.unmixing_.shape[0])

    def _choose_priors(self, W: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Which components take the light-tailed prior: ``(m,)`` bool (all False or all True unless
        ``prior="extended"``, which asks the sign of each source estimate's excess kurtosis)."""
        if self.prior != "extended":
            return torch.full((W.shape[0],), self.prior == "cubic", device=W.device)
        a = y @ W.T
        return (a.pow(4).mean(0) / a.pow(2).mean(0).pow(2) - 3) < 0

    @property
    def priors_(self) -> list[str]:
        """The prior of each component, e.g. ``["cubic", "cubic", "tanh"]``."""
        self._check_fitted()
        if self.prior not in ("tanh", "cubic", "extended"):
            return [self.prior] * self.unmixing_.shape[0]
        return ["cubic" if s else "tanh" for s in self.sub_gaussian_.tolist()]

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The coordinates ``W`` acts on: ``y = K (x - mean)``, ``(B, D) -> (B, m)``."""
        return (x - self.mean_) @ self.whitening_.T

    def fit(
        self, X: torch.Tensor, *, w_init: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> ICA:
        """Fit to ``X (N, D)`` from ``w_init (m, m)`` (default: a random orthogonal matrix, drawn on
        ``X``'s device with ``generator``). Raises ``FloatingPointError`` naming the step when the
        log-likelihood stops being finite (a step size too large)."""
        x = _points("X", X, self.n_features)
        N, D = x.shape
        m = self.n_components or D
        check_int("n_components", m, max=D)
        if not self.whiten and m != D:
            raise ValueError(f"n_components must equal the {D} features of X when whiten=False, got {m}")
        mean, eig, axes = _principal_axes(x)
        if self.whiten:
            if m > min(N, D) or not eig[m - 1] > 1e-12 * eig[0]:
                raise ValueError(f"X has fewer than n_components={m} directions of non-zero variance to whiten")
            K = axes[:m] / eig[:m, None].sqrt()  # (m, D)
        else:
            K = torch.eye(D, dtype=x.dtype, device=x.device)
        self.mean_, self.whitening_ = mean, K.contiguous()
        y = self._inputs(x)  # (N, m)
        if w_init is None:
            g = _random.randn((m, m), generator, device=x.device, dtype=torch.float64)
            W = torch.linalg.qr(g)[0]
        else:
            W = check_tensor("w_init", w_init, shape=(m, m), dtype="float").to(x.device, torch.float64)
        self.sub_gaussian_ = self._choose_priors(W, y)
        self.log_likelihood_ = [float(ica_log_likelihood(W, y, prior=self.priors_).mean())]
        self.converged_ = False
        for it in range(1, self.max_iter + 1):  # noqa: B007 (the count is kept as n_iter_)
            prior = self.priors_
            step = ica_gradient(W, y, prior=prior) if self.method == "plain" else _natural_gradient(W, y, prior)
            W = W + self.lr * step
            self.sub_gaussian_ = self._choose_priors(W, y)
            ll = float(ica_log_likelihood(W, y, prior=self.priors_).mean())
            if not math.isfinite(ll):
                raise FloatingPointError(f"the log-likelihood became {ll} at step {it}; try a lower lr")
            self.log_likelihood_.append(ll)
            if abs(ll - self.log_likelihood_[-2]) < self.tol:
                self.converged_ = True
                break
        self.n_iter_, self.unmixing_ = it, W.contiguous()  # contiguous: a loaded copy computes bit for bit alike
        return self

    @property
    def components_(self) -> torch.Tensor:
        """The unmixing matrix in the original space, ``W K``: ``(m, D)``."""
        self._check_fitted()
        return self.unmixing_ @ self.whitening_

    @property
    def mixing_(self) -> torch.Tensor:
        """The mixing matrix ``G`` in the original space, the pseudo-inverse of ``components_``: ``(D, m)``."""
        return torch.linalg.pinv(self.components_)

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """The recovered sources ``a = W K (x - mean)``: ``(B, D) -> (B, m)``."""
        self._check_fitted()
        return (_points("X", X, self.mean_.shape[0]) - self.mean_) @ self.components_.T

    def inverse_transform(self, A: torch.Tensor) -> torch.Tensor:
        """Back to data space, ``x = mean + mixing_ a``: ``(B, m) -> (B, D)``."""
        self._check_fitted()
        return _points("A", A, self.unmixing_.shape[0]) @ self.mixing_.T + self.mean_

    def log_likelihood(self, X: torch.Tensor) -> torch.Tensor:
        """``ln P(y | G)`` per example for the coordinates ``y = K (x - mean)`` that ``W`` acts on,
        ``(B, D) -> (B,)`` nats; its mean over the training data is ``log_likelihood_[-1]``.

        Without whitening this is the density of ``x`` itself. With whitening and ``m = D`` the
        density of ``x`` adds ``ln |det K|``: ``ica_log_likelihood(components_, X - mean_)``.
        """
        self._check_fitted()
        y = self._inputs(_points("X", X, self.mean_.shape[0]))
        return ica_log_likelihood(self.unmixing_, y, prior=self.priors_)


def amari_index(W: torch.Tensor, A: torch.Tensor) -> float:
    """The Amari performance index (eq. ``eq-amari``) of ``P = W A`` (``W (m, D)``, ``A (D, m)``), in [0, 1]:

    ``(sum_i (sum_j |P_ij| / max_k |P_ik| - 1) + sum_j (sum_i |P_ij| / max_k |P_kj| - 1)) / (2 m (m - 1))``.

    Each row (column) term lies in [0, m - 1], hence the normalisation; 0 exactly when ``P`` is a
    permutation matrix times a diagonal one, i.e. when ``W`` undoes ``A`` up to order and scale.
    """
    check_tensor("W", W, shape=("m", "D"), dtype="float")
    check_tensor("A", A, shape=(W.shape[1], W.shape[0]), dtype="float")
    m = W.shape[0]
    if m < 2:
        raise ValueError(f"amari_index needs at least 2 components, got W of shape {tuple(W.shape)}")
    P = (W.double() @ A.double()).abs()
    rows = (P / P.amax(1, keepdim=True)).sum(1) - 1
    cols = (P / P.amax(0, keepdim=True)).sum(0) - 1
    return float((rows.sum() + cols.sum()) / (2 * m * (m - 1)))
