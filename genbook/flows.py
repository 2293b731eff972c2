"""Normalising flows: RealNVP couplings, invertible residual networks, dequantised digits.

A flow is a bijection ``z = f(x)`` from data to noise whose Jacobian we can afford, and
``log p(x) = log N(f(x); 0, I) + log |det df/dx|`` (eq. ``eq-flow-change-of-variables``).
Convention throughout: ``forward(x) -> (z, logabsdet)`` maps DATA to NOISE, with
``logabsdet = log|det dz/dx|`` of shape ``(B,)``; ``inverse(z)`` maps noise back to data;
``log_prob(x) -> (B,)`` is in nats and ``sample(n)`` pushes base noise through ``inverse``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from ._checks import check_choice, check_float, check_int, check_points, check_sequences
from ._device import eval_mode
from ._nn import mlp
from .io import Configurable

__all__ = [
    "NotConvergedError",
    "ACTIVATIONS",
    "StandardNormal",
    "Flow",
    "ActNorm",
    "coupling_masks",
    "AffineCoupling",
    "RealNVP",
    "power_iteration",
    "spectral_scale",
    "SpectralLinear",
    "LipSwish",
    "power_series_log_det",
    "ResidualBlock",
    "ResidualFlow",
    "dequantize",
    "LogitTransform",
    "DigitsFlow",
]


class NotConvergedError(RuntimeError):
    """The fixed-point inverse of a :class:`ResidualBlock` did not reach its tolerance."""


ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


# ------------------------------------------------------------------ base distribution, flow skeleton
class StandardNormal(Configurable, nn.Module):
    """``N(0, I_dim)``: ``log_prob (B, D) -> (B,)`` in nats, ``sample(n) -> (n, D)``."""

    def __init__(self, *, dim: int = 2):
        super().__init__()
        check_int("dim", dim)
        self.dim = dim
        self.register_buffer("loc", torch.zeros(dim))  # carries the device and dtype

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((z - self.loc) ** 2).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        check_int("n", n)
        return self.loc + _random.randn((n, self.dim), generator, device=self.loc.device, dtype=self.loc.dtype)


class Flow(nn.Module):
    """A :class:`StandardNormal` base and a list of bijections applied in order, data -> noise.

    Every bijection has ``forward(x) -> (y, logabsdet)`` and ``inverse(y)``; the flow adds
    up the log-determinants (the chain rule for Jacobians).
    """

    def __init__(self, dim: int, transforms: list[nn.Module]):
        super().__init__()
        self.dim = dim
        self.base = StandardNormal(dim=dim)
        self.transforms = nn.ModuleList(transforms)

    def _check(self, x, name: str) -> torch.Tensor:
        ref = self.base.loc
        return check_points(name, x, self.dim).to(ref.device, ref.dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, D) -> (z (B, D), log|det dz/dx| (B,))``."""
        x = self._check(x, "x")
        logdet = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ld = t(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, D) -> x (B, D)``, the bijections undone in reverse order."""
        z = self._check(z, "z")
        for t in reversed(self.transforms):
            z = t.inverse(z)
        return z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x) = log N(f(x); 0, I) + log|det df/dx|`` in nats,
        ``(B, D) -> (B,)`` (eq. ``eq-flow-change-of-variables``)."""
        z, logdet = self(x)
        return self.base.log_prob(z) + logdet

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``(n, D)``: ``x = f^{-1}(z)`` with ``z ~ N(0, I)`` (in eval mode, so without dropout)."""
        with eval_mode(self):
            return self.inverse(self.base.sample(n, generator=generator))


class ActNorm(Configurable, nn.Module):
    """Per-dimension affine map ``z = x * exp(log_scale) + shift``, starting as the identity.

    Glow's actnorm without its data-dependent initialisation. Unlike batch norm it has no
    batch statistics, so a sample's density never depends on the rest of its batch.
    ``log|det| = sum(log_scale)`` for every sample.
    """

    def __init__(self, *, dim: int = 2):
        super().__init__()
        check_int("dim", dim)
        self.dim = dim
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.shift) * torch.exp(-self.log_scale)


# ------------------------------------------------------------------ RealNVP
def coupling_masks(dim: int, n: int, *, image_shape: tuple[int, int] | None = None) -> list[list[int]]:
    """``n`` binary masks for RealNVP (1 = passed through and conditioned on, 0 = transformed).

    Masks come in complementary pairs, so every dimension is transformed in every two
    couplings, and the pairs cycle through different patterns so that information crosses
    between any two dimensions: even/odd index and first/second half; for images flattened
    row by row (``image_shape = (rows, cols)``) the checkerboard ``(r + c) % 2``, top/bottom
    and left/right halves. In 2-D the masks simply alternate which coordinate is transformed.
    """
    idx = range(dim)
    if image_shape is not None:
        rows, cols = image_shape
        if rows * cols != dim:
            raise ValueError(f"image_shape must have rows * cols = dim = {dim}, got {tuple(image_shape)}")
        patterns = [
            [1 - (i // cols + i % cols) % 2 for i in idx],
            [int(i // cols < rows // 2) for i in idx],
            [int(i % cols < cols // 2) for i in idx],
        ]
    else:
        patterns = [[1 - i % 2 for i in idx], [int(i < dim // 2) for i in idx]]
    patterns = [p for p in patterns if 0 < sum(p) < dim]  # a 1-pixel-wide image has no left/right halves
    if dim == 2:
        patterns = patterns[:1]
    masks = []
    for k in range(n):
        base = patterns[(k // 2) % len(patterns)]
        masks.append(base if k % 2 == 0 else [1 - m for m in base])
    return masks


class AffineCoupling(Configurable, nn.Module):
    """RealNVP coupling (eq. ``eq-coupling``): ``z_a = x_a``, ``z_b = exp(s(x_a)) * x_b + t(x_a)``.

    ``mask`` marks the conditioning part ``a`` with 1. ``s = scale * tanh(.)`` is bounded
    (the coupling cannot blow up a sample in one step) and the network's last layer starts
    at zero, so the coupling starts as the identity. ``log|det| = sum_b s_b``, ``(B,)``.
    ``dropout`` in the network acts in training mode only: evaluate and invert in eval mode.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        mask: list[int] | None = None,
        hidden: int = 64,
        layers: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        check_int("dim", dim)
        check_int("hidden", hidden)
        check_int("layers", layers)
        check_choice("activation", activation, list(ACTIVATIONS))
        check_float("dropout", dropout, ge=0, lt=1)
        mask = [int(i < dim // 2) for i in range(dim)] if mask is None else [int(m) for m in mask]
        if len(mask) != dim or set(mask) != {0, 1}:
            raise ValueError(f"mask must be {dim} zeros and ones with at least one of each, got {mask}")
        self.dim, self.hidden, self.layers = dim, hidden, layers
        self.activation, self.dropout = activation, float(dropout)
        self.register_buffer("mask", torch.tensor(mask, dtype=torch.get_default_dtype()))
        self.net = mlp(dim, 2 * dim, hidden, layers, ACTIVATIONS[activation], self.dropout)
        nn.init.zeros_(self.net[-1].weight)  # the last layer starts at zero,
        nn.init.zeros_(self.net[-1].bias)  # so the coupling starts as the identity map
        self.scale = nn.Parameter(torch.ones(dim))

    def config(self) -> dict:
        # the mask lives in a buffer (it moves with the model); the constructor takes a list of 0/1
        return self._config_with(mask=[int(m) for m in self.mask.tolist()])

    def _s_t(self, x_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_a).chunk(2, dim=1)  # (B, D) each
        keep = 1 - self.mask  # only the transformed part gets a scale and a shift
        return self.scale * torch.tanh(s) * keep, t * keep

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._s_t(x * self.mask)
        return x * torch.exp(s) + t, s.sum(1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        s, t = self._s_t(z * self.mask)  # z_a = x_a, so s and t can be recomputed
        return (z - t) * torch.exp(-s)


class RealNVP(Configurable, Flow):
    """A stack of ``couplings`` affine couplings with the masks of :func:`coupling_masks`,
    each preceded by an :class:`ActNorm` when ``actnorm``; base ``N(0, I)``.

    ``hidden``, ``layers``, ``activation`` and ``dropout`` shape every coupling's network.
    On the 2-D toys ``layers=3`` with ReLU trains best per second of CPU time.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        couplings: int = 8,
        layers: int = 2,
        actnorm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
        image_shape: tuple[int, int] | None = None,
    ):
        check_int("dim", dim, min=2)  # a coupling needs a part to condition on
        check_int("couplings", couplings, min=2)  # so that every dimension is transformed
        transforms: list[nn.Module] = []
        for mask in coupling_masks(dim, couplings, image_shape=image_shape):
            if actnorm:
                transforms.append(ActNorm(dim=dim))
            transforms.append(
                AffineCoupling(dim=dim, mask=mask, hidden=hidden, layers=layers, activation=activation, dropout=dropout)
            )
        super().__init__(dim, transforms)
        self.hidden, self.couplings, self.layers, self.actnorm = hidden, couplings, layers, bool(actnorm)
        self.activation, self.dropout = activation, float(dropout)
        self.image_shape = None if image_shape is None else [int(v) for v in image_shape]


# ------------------------------------------------------------------ invertible residual networks
_TINY = 1e-12  # floor for the norms that power iteration divides by, as in F.normalize


def power_iteration(W: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` steps of ``v <- W^T u / |W^T u|``, ``u <- W v / |W v|`` for ``W (..., out, in)``,
    ``u (..., out)``, ``v (..., in)``: one matrix or a stack of them."""
    for _ in range(n):
        v = (u.unsqueeze(-2) @ W).squeeze(-2)
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_TINY)
        u = (W @ v.unsqueeze(-1)).squeeze(-1)
        u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(_TINY)
    return u, v


def spectral_scale(W: torch.Tensor, u: torch.Tensor, v: torch.Tensor, coeff: float) -> torch.Tensor:
    """``max(1, u^T W v / coeff)`` for one matrix (0-d) or a stack ``(...)``, differentiable in ``W``."""
    sigma = (u.unsqueeze(-2) @ W @ v.unsqueeze(-1))[..., 0, 0]
    return torch.clamp(sigma / coeff, min=1.0)


class SpectralLinear(nn.Module):
    """``y = W x + b`` with ``W`` divided by ``max(1, sigma / coeff)``, so ``||W||_2 <= coeff``
    (eq. ``eq-spectral-norm``).

    ``sigma = u^T W v`` is the largest singular value estimated by power iteration; the
    vectors ``u, v`` persist between calls, and :meth:`power_iteration` refines them (the
    residual block calls it once per training step, so they track ``W`` as it changes).
    """

    def __init__(self, in_features: int, out_features: int, *, coeff: float = 0.97, n_power_iterations: int = 1):
        super().__init__()
        ref = nn.Linear(in_features, out_features)  # PyTorch's default initialisation
        self.weight, self.bias = nn.Parameter(ref.weight.detach()), nn.Parameter(ref.bias.detach())
        self.coeff = check_float("coeff", coeff, gt=0)
        self.n_power_iterations = check_int("n_power_iterations", n_power_iterations)
        self.register_buffer("u", F.normalize(torch.randn(out_features), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(in_features), dim=0))
        self.power_iteration(50)  # start from converged vectors

    @torch.no_grad()
    def power_iteration(self, n: int | None = None) -> None:
        """``n`` (default ``n_power_iterations``) steps of ``v <- W^T u / |W^T u|``, ``u <- W v / |W v|``.

        The buffers are replaced, not written in place, so a graph that saved the old
        vectors (in :meth:`normalised_weight`) stays valid."""
        self.u, self.v = power_iteration(self.weight, self.u, self.v, self.n_power_iterations if n is None else n)

    def scale(self) -> torch.Tensor:
        """``max(1, sigma / coeff)``, a 0-d tensor, with ``sigma = u^T W v`` differentiable in ``W``
        (``u, v`` held fixed)."""
        return spectral_scale(self.weight, self.u, self.v, self.coeff)

    def normalised_weight(self) -> torch.Tensor:
        return self.weight / self.scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


class LipSwish(nn.Module):
    """``phi(x) = x * sigmoid(beta x) / 1.1`` (Chen et al. 2019): smooth and 1-Lipschitz for every
    ``beta > 0``; elementwise, any shape."""

    def __init__(self):
        super().__init__()
        self.raw_beta = nn.Parameter(torch.tensor(math.log(math.e - 1)))  # softplus(raw) = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(F.softplus(self.raw_beta) * x) / 1.1

    def slope(self, x: torch.Tensor) -> torch.Tensor:
        """``phi'(x) = (s + beta x s (1 - s)) / 1.1`` with ``s = sigmoid(beta x)``, the shape of ``x``."""
        bx = F.softplus(self.raw_beta) * x
        s = torch.sigmoid(bx)
        return (s + bx * s * (1 - s)) / 1.1


def power_series_log_det(
    gx: torch.Tensor,
    x: torch.Tensor,
    *,
    n_terms: int = 10,
    n_probes: int = 1,
    generator: torch.Generator | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Stochastic ``log det(I + J)``, ``(B,)``:
    ``sum_{k=1}^{n_terms} (-1)^{k+1} v^T J^k v / k``
    (eq. ``eq-log-det-series``).

    The series ``log det(I + J) = sum_k (-1)^{k+1} tr(J^k) / k``
    converges when ``||J||_2 < 1``; each trace is estimated with
    Hutchinson's ``E[v^T A v] = tr(A)``, ``v ~ N(0, I)``
    (eq. ``eq-hutchinson``), and ``v^T J^k`` costs ``k`` vector-Jacobian
    products. Averaged over ``n_probes`` probes per sample. Unbiased for
    the truncated series; truncation adds a bias of at most
    ``D sum_{k > n_terms} Lip^k / k``. Differentiable with ``create_graph``.
    """
    check_int("n_terms", n_terms)
    check_int("n_probes", n_probes)
    total = x.new_zeros(x.shape[0])
    for _ in range(n_probes):
        v = _random.randn_like(x, generator)
        w = v
        for k in range(1, n_terms + 1):
            (w,) = torch.autograd.grad(  # w <- w^T J
                gx, x, w, retain_graph=True, create_graph=create_graph
            )
            total = total + (-1) ** (k + 1) * (w * v).sum(1) / k
    return total / n_probes


class ResidualBlock(Configurable, nn.Module):
    """i-ResNet block (Behrmann et al. 2019, eq. ``eq-iresnet``): ``z = x + g(x)`` in the forward
    (data -> noise) direction.

    ``g`` is an MLP of :class:`SpectralLinear` layers (eq. ``eq-spectral-norm``, each
    ``||W||_2 <= lipschitz^(1/(layers+1))``) and :class:`LipSwish` activations, so
    ``Lip(g) <= lipschitz < 1`` (eq. ``eq-lipschitz``) and the map is invertible.
    ``log|det dz/dx| = log det(I + J_g(x))``: exact when ``exact`` (default ``dim <= 2``; the Jacobian
    is carried through the layers, ``O(D)`` times the cost of ``g``), else the series
    (eq. ``eq-log-det-series``) by :func:`power_series_log_det` with ``n_terms`` and ``n_probes``.
    ``inverse`` solves ``x = z - g(x)`` by fixed-point iteration (eq. ``eq-fixed-point``), a
    contraction, from ``x_0 = z`` until every coordinate moves by at most ``tol * (1 + |x|)``
    (default ``tol``: 100 machine epsilons), and raises :class:`NotConvergedError` after ``max_iter``.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        layers: int = 2,
        lipschitz: float = 0.9,
        n_power_iterations: int = 1,
        exact: bool | None = None,
        n_terms: int = 10,
        n_probes: int = 1,
        max_iter: int = 1000,
        tol: float | None = None,
    ):
        super().__init__()
        for name, v in dict(
            dim=dim,
            hidden=hidden,
            layers=layers,
            n_power_iterations=n_power_iterations,
            n_terms=n_terms,
            n_probes=n_probes,
            max_iter=max_iter,
        ).items():
            check_int(name, v)
        check_float("lipschitz", lipschitz, gt=0, lt=1)  # Lip(g) < 1: the block is invertible
        check_float("tol", tol, gt=0, optional=True)
        self.dim, self.hidden, self.layers, self.lipschitz = dim, hidden, layers, float(lipschitz)
        self.n_power_iterations, self.n_terms, self.n_probes = n_power_iterations, n_terms, n_probes
        self.exact = dim <= 2 if exact is None else bool(exact)
        self.max_iter, self.tol = max_iter, tol
        coeff = lipschitz ** (1 / (layers + 1))  # Lip of a composition <= product of the layers' Lip
        sizes = [dim] + [hidden] * layers + [dim]
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [SpectralLinear(a, b, coeff=coeff, n_power_iterations=n_power_iterations), LipSwish()]
        self.g = nn.Sequential(*mods[:-1])

    def linears(self) -> list[SpectralLinear]:
        return [m for m in self.g if isinstance(m, SpectralLinear)]

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        """``prod_l ||W_l / d_l||_2`` with exact spectral norms (LipSwish is 1-Lipschitz): an upper
        bound on ``Lip(g)``. It is ``lipschitz`` or less when the power-iteration estimates have
        caught up with the weights; in training they lag by up to a step, and the bound can pass
        ``lipschitz`` (the block stays invertible while it is below 1)."""
        bound = 1.0
        for m in self.linears():
            bound *= torch.linalg.matrix_norm(m.normalised_weight(), ord=2).item()
        return bound

    def g_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``g(x) (B, D)`` and its Jacobian ``J[b, i, j] = d g_i / d x_j`` ``(B, D, D)``, carried forward
        through the layers by the chain rule: exact, in one pass, differentiable by autograd."""
        h = x
        J = torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)  # dx/dx
        for layer in self.g:
            if isinstance(layer, SpectralLinear):
                W = layer.normalised_weight()  # (out, in)
                h, J = F.linear(h, W, layer.bias), W @ J  # J <- W J
            else:  # LipSwish acts elementwise: J <- diag(phi'(a)) J, with a the layer's input
                J = layer.slope(h).unsqueeze(-1) * J
                h = layer(h)
        return h, J

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = x + g(x)`` and ``log det(I + J_g(x))``: ``(B, D) -> ((B, D), (B,))``.

        Exact: ``slogdet`` of ``I + J`` from :meth:`g_and_jacobian`; else :func:`power_series_log_det`.
        In a training call (training mode, gradients on) the spectral norms are first refined once
        (:meth:`SpectralLinear.power_iteration`)."""
        if self.training and torch.is_grad_enabled():  # so u, v keep up with the weights, step by step
            for m in self.linears():
                m.power_iteration()
        if self.exact:
            gx, J = self.g_and_jacobian(x)
            eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
            return x + gx, torch.linalg.slogdet(eye + J)[1]  # ||J||_2 < 1, so det(I + J) > 0
        grad_wanted = torch.is_grad_enabled()
        with torch.enable_grad():  # the series needs vector-Jacobian products even under no_grad
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            gx = self.g(x)
            logdet = power_series_log_det(gx, x, n_terms=self.n_terms, n_probes=self.n_probes, create_graph=grad_wanted)
            z = x + gx
        return (z, logdet) if grad_wanted else (z.detach(), logdet.detach())

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        tol = 100 * torch.finfo(z.dtype).eps if self.tol is None else self.tol
        x = z
        for _ in range(self.max_iter):
            x_new = z - self.g(x)
            step = ((x_new - x).abs() / (1 + x_new.abs())).max()
            x = x_new
            if step <= tol:
                return x
        raise NotConvergedError(
            f"ResidualBlock.inverse: the fixed-point iteration x <- z - g(x) did not converge in "
            f"max_iter={self.max_iter} iterations (last relative step {float(step):.3g} > tol={tol:.3g}); "
            "raise max_iter or tol"
        )


class ResidualFlow(Configurable, Flow):
    """``blocks`` :class:`ResidualBlock` s, each preceded by an :class:`ActNorm` when ``actnorm``; base ``N(0, I)``.

    The other keyword arguments go to every block. With the exact log-determinant the flow runs
    its actnorms and blocks through ``genbook._residual_fast``, a faster equivalent implementation
    (batched spectral norms, a hand-written backward) tested equal to :class:`ResidualBlock`.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        blocks: int = 8,
        layers: int = 2,
        lipschitz: float = 0.9,
        actnorm: bool = True,
        n_power_iterations: int = 1,
        exact: bool | None = None,
        n_terms: int = 10,
        n_probes: int = 1,
        max_iter: int = 1000,
        tol: float | None = None,
    ):
        check_int("blocks", blocks)
        block_kw = dict(
            dim=dim,
            hidden=hidden,
            layers=layers,
            lipschitz=lipschitz,
            n_power_iterations=n_power_iterations,
            exact=exact,
            n_terms=n_terms,
            n_probes=n_probes,
            max_iter=max_iter,
            tol=tol,
        )
        transforms: list[nn.Module] = []
        for _ in range(blocks):
            if actnorm:
                transforms.append(ActNorm(dim=dim))
            transforms.append(ResidualBlock(**block_kw))
        super().__init__(dim, transforms)
        self.blocks, self.actnorm = blocks, bool(actnorm)
        block = transforms[-1]  # every block resolved the same arguments (exact=None became dim <= 2)
        self.hidden, self.layers, self.lipschitz = block.hidden, block.layers, block.lipschitz
        self.n_power_iterations, self.exact = block.n_power_iterations, block.exact
        self.n_terms, self.n_probes, self.max_iter, self.tol = block.n_terms, block.n_probes, block.max_iter, block.tol

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, D) -> (z (B, D), log|det dz/dx| (B,))``, the same as :meth:`Flow.forward`; exact
        blocks take the fast path, series blocks the readable one."""
        if not self.exact:
            return super().forward(x)
        blocks = self.transforms[1::2] if self.actnorm else self.transforms
        from ._residual_fast import exact_residual_stack  # here: that module imports this one

        actnorms = list(self.transforms[0::2]) if self.actnorm else None
        return exact_residual_stack(self._check(x, "x"), list(blocks), actnorms)


# ------------------------------------------------------------------ dequantised digits
def dequantize(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + u`` with ``u ~ U[0, 1)^D`` (eq. ``eq-dequantization``): integer levels -> float, same shape.

    ``u`` is drawn on ``x``'s device, so a ``generator`` must live there."""
    x = x.float() if not x.is_floating_point() else x
    return x + _random.rand_like(x, generator)


class LogitTransform(Configurable, nn.Module):
    """``y = logit(alpha + (1 - 2 alpha) x / levels)`` for ``x`` in ``[0, levels]`` (eq. ``eq-logit``).

    ``alpha`` keeps the logit away from +-inf at the ends. ``log|dy/dx| =
    sum_d [log(1 - 2 alpha) - log(levels) - log p_d - log(1 - p_d)]`` with ``p = alpha + (1 - 2 alpha) x / levels``,
    so densities stay in the units of ``x``. Its image of ``[0, levels]`` is a bounded box;
    ``inverse`` maps all of R^D onto the slightly wider ``(-alpha', levels + alpha')``,
    ``alpha' = alpha levels / (1 - 2 alpha)``.
    """

    def __init__(self, *, levels: int = 17, alpha: float = 0.05):
        super().__init__()
        check_int("levels", levels)
        check_float("alpha", alpha, gt=0, lt=0.5)
        self.levels, self.alpha = levels, float(alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x / self.levels
        y = torch.log(p) - torch.log1p(-p)
        logdet = (math.log(1 - 2 * self.alpha) - math.log(self.levels) - torch.log(p) - torch.log1p(-p)).sum(1)
        return y, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha) * self.levels


class DigitsFlow(RealNVP):
    """RealNVP on dequantised images: ``x + u`` (``u ~ U[0,1)^D``) -> :class:`LogitTransform` -> couplings.

    ``log_prob(x)`` is a density in the original integer units (its support, slightly wider than
    ``[0, levels]^D``, is that of :class:`LogitTransform`; ``log_prob`` accepts ``x`` in ``[0, levels]``),
    so the dequantisation bound (eq. ``eq-dequantization-bound``) holds:
    ``log P(x) = log int_[0,1)^D p(x + u) du >= E_u[log p(x + u)]`` by Jensen. ``loss(x)``
    takes integer levels and returns a one-sample estimate of ``-E_u[log p(x + u)]`` (mean
    over the batch); :meth:`nll_bound` evaluates the same bound with the same noise. Neither
    is a likelihood: the exact ``-log P(x)`` is at most the bound.

    The defaults are those that generalise best from the 1000 training digits (8 x 8 masks,
    tanh, dropout 0.5 in the coupling networks: the data set is small and a RealNVP overfits it).
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        levels: int = 17,
        alpha: float = 0.01,
        hidden: int = 256,
        couplings: int = 8,
        layers: int = 2,
        actnorm: bool = True,
        activation: str = "tanh",
        dropout: float = 0.5,
        image_shape: tuple[int, int] | None = (8, 8),
    ):
        super().__init__(
            dim=dim,
            hidden=hidden,
            couplings=couplings,
            layers=layers,
            actnorm=actnorm,
            activation=activation,
            dropout=dropout,
            image_shape=image_shape,
        )
        self.transforms.insert(0, LogitTransform(levels=levels, alpha=alpha))
        self.levels, self.alpha = levels, float(alpha)

    def _check(self, x, name: str) -> torch.Tensor:
        if name == "x" and isinstance(x, torch.Tensor) and not x.is_floating_point():
            raise ValueError(
                f"x must hold dequantised (floating-point) values, got dtype {x.dtype}; "
                "integer levels go to loss or nll_bound"
            )
        x = super()._check(x, name)
        if name == "x" and (x.min() < 0 or x.max() > self.levels):
            raise ValueError(
                f"x must hold dequantised values in [0, {self.levels}], found {float(x.min()):.4g}"
                f"..{float(x.max()):.4g}; integer levels go to loss or nll_bound"
            )
        return x

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """One-sample estimate of the mean NLL bound, ``-mean_b log p(x_b + u_b)``,
        for integer ``x (B, D)``."""
        x = check_sequences(x, self.levels, self.dim).to(self.base.loc.device)
        return -self.log_prob(dequantize(x.to(self.base.loc.dtype))).mean()

    @torch.no_grad()
    def nll_bound(
        self, x: torch.Tensor, *, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``-(1/S) sum_s log p(x + u_s)``, ``(B,)`` nats per image, ``u_s ~ U[0,1)^D`` (in eval mode): an unbiased
        estimate of an upper bound on ``-log P(x)``."""
        check_int("n_samples", n_samples)
        x = check_sequences(x, self.levels, self.dim).to(self.base.loc.device, self.base.loc.dtype)
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        with eval_mode(self):
            for _ in range(n_samples):
                total -= self.log_prob(dequantize(x, generator=generator)).double()
        return total / n_samples

    @torch.no_grad()
    def iw_nll_bound(
        self, x: torch.Tensor, *, n_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``-log (1/S) sum_s p(x + u_s)``, ``(B,)`` nats per image, ``u_s ~ U[0,1)^D`` (in eval mode).

        The importance-weighted dequantisation bound (Ho et al. 2019; Burda et al. 2016 for the
        general form): the noise density is 1 on the unit cell and ``log_prob`` is in the units of
        ``x``, so ``P(x) = E_u p(x + u)`` and, by Jensen, ``E[log mean_s p(x + u_s)] <= log P(x)``.
        In expectation it is an upper bound on ``-log P(x)``, no looser than :meth:`nll_bound`'s
        with the same ``S`` (equal to it for ``S = 1``), and it tends to ``-log P(x)`` as ``S`` grows.
        """
        check_int("n_samples", n_samples)
        x = check_sequences(x, self.levels, self.dim).to(self.base.loc.device, self.base.loc.dtype)
        with eval_mode(self):
            lp = torch.stack([self.log_prob(dequantize(x, generator=generator)).double() for _ in range(n_samples)])
        return math.log(n_samples) - torch.logsumexp(lp, dim=0)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images as integer levels, ``LongTensor (n, D)``: ``floor`` of the continuous draw,
        clipped to ``0..levels-1``."""
        x = super().sample(n, generator=generator)
        return x.floor().clamp(0, self.levels - 1).long()
