"""Plotting helpers: one style for every figure of the book. Models never plot."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["PALETTE", "STYLE", "use_style", "subplots", "scatter", "density", "image_grid", "dag"]

PALETTE = ["#1f5f8b", "#d1495b", "#edae49", "#66a182", "#8d6a9f", "#2e4057", "#00798c", "#b07d62"]

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 3.6),
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "legend.fontsize": 9.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "image.cmap": "viridis",
    "lines.linewidth": 1.8,
}


def use_style() -> None:
    """Apply the book's matplotlib style (idempotent)."""
    mpl.rcParams.update(STYLE)


def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 3.2, height: float = 3.0, **kwargs):
    """``plt.subplots`` in the book's style, sized per panel (inches)."""
    use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def scatter(ax, x, *, c=None, s: float = 4, alpha: float = 0.6, **kwargs):
    """Scatter 2-D points ``(N, 2)`` with small markers and equal axes."""
    x = _np(x)
    out = ax.scatter(x[:, 0], x[:, 1], c=_np(c) if c is not None else None, s=s, alpha=alpha, linewidths=0, **kwargs)
    ax.set_aspect("equal")
    return out


@torch.no_grad()
def density(ax, log_prob, *, extent=(-3, 3, -3, 3), n: int = 200, device=None, **kwargs):
    """Show ``exp(log_prob)`` on an ``n x n`` grid over ``extent = (x0, x1, y0, y1)``."""
    x0, x1, y0, y1 = extent
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, n), torch.linspace(y0, y1, n), indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    if device is not None:
        pts = pts.to(device)
    p = torch.exp(log_prob(pts).double()).reshape(n, n)
    im = ax.imshow(_np(p), extent=extent, origin="lower", aspect="equal", **kwargs)
    ax.grid(False)
    return im


def image_grid(ax, images, *, nrow: int = 8, side: int = 8, vmax: float | None = 16, cmap: str = "gray_r"):
    """Tile flattened square images ``(N, side*side)`` into one picture, ``nrow`` per row."""
    imgs = _np(images).reshape(-1, side, side).astype(float)
    n = len(imgs)
    rows = int(np.ceil(n / nrow))
    canvas = np.full((rows * (side + 1) + 1, nrow * (side + 1) + 1), np.nan)
    for k, im in enumerate(imgs):
        r, c = divmod(k, nrow)
        canvas[1 + r * (side + 1) : 1 + r * (side + 1) + side, 1 + c * (side + 1) : 1 + c * (side + 1) + side] = im
    cm = plt.get_cmap(cmap).with_extremes(bad="white")  # a copy; NaN gaps show as white
    ax.imshow(canvas, cmap=cm, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    return ax


def dag(ax, positions: dict, edges, *, radius: float = 0.28, color: str = PALETTE[0]):
    """Draw a directed graph: ``positions`` maps node labels to ``(x, y)``, ``edges`` lists ``(parent, child)``."""
    unknown = {n for e in edges for n in e} - set(positions)
    if unknown:
        raise ValueError(f"edges name nodes without a position: {sorted(map(str, unknown))}")
    for a, b in edges:
        pa, pb = np.asarray(positions[a], float), np.asarray(positions[b], float)
        u = (pb - pa) / np.linalg.norm(pb - pa)  # arrows run between the circles' rims
        ax.annotate(
            "",
            xy=pb - radius * u,
            xytext=pa + radius * u,
            arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.3, shrinkA=0, shrinkB=0),
        )
    for label, (x, y) in positions.items():
        ax.add_patch(mpl.patches.Circle((x, y), radius, facecolor="white", edgecolor=color, lw=1.6, zorder=3))
        ax.text(x, y, label, ha="center", va="center", zorder=4)
    xs, ys = zip(*positions.values())
    ax.set_xlim(min(xs) - 2 * radius, max(xs) + 2 * radius)
    ax.set_ylim(min(ys) - 2 * radius, max(ys) + 2 * radius)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax
