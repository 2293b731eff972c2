"""Shared test setup: the CPU (unless GENBOOK_TEST_DEVICE says otherwise), no progress bars, a headless
matplotlib, a fresh seed per test."""

import os

# Set before genbook (and so matplotlib) is imported by any test module.
os.environ["MPLBACKEND"] = "Agg"
os.environ["GENBOOK_DEVICE"] = os.environ.get("GENBOOK_TEST_DEVICE", "cpu")  # make gpu-check sets cuda
os.environ["GENBOOK_PROGRESS"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by torch and OpenBLAS at import

import pytest  # noqa: E402
import torch  # noqa: E402

import genbook  # noqa: E402

# The tests use tiny tensors: one thread is faster, and avoids OpenMP threads spinning
# against each other when the CPU is shared (e.g. with a book build), which made the
# suite ten times slower on a busy 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global random state, whatever ran before it."""
    genbook.seed(0)


@pytest.fixture
def gen():
    """A fresh CPU generator, seed 0."""
    return torch.Generator().manual_seed(0)


def _grid_integral(log_prob, box, h, *, chunk=8192):
    """Midpoint rule for the integral of exp(log_prob) over box = (x0, x1, y0, y1), cell side h."""
    x0, x1, y0, y1 = box
    xs = torch.arange(x0 + h / 2, x1, h, dtype=torch.float64)
    ys = torch.arange(y0 + h / 2, y1, h, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    total = 0.0
    for i in range(0, pts.shape[0], chunk):
        total += float(torch.exp(log_prob(pts[i : i + chunk]).double()).sum())
    return total * h * h


@pytest.fixture
def grid_integral():
    """``grid_integral(log_prob, box, h) -> float``: integral of the density over a 2-D box."""
    return _grid_integral
