import math
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from genbook import data, plot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_subplots_shape_and_size():
    fig, axes = plot.subplots(3, 2, width=2.0, height=1.5)
    assert axes.shape == (2, 3)
    np.testing.assert_allclose(fig.get_size_inches(), [6.0, 3.0])
    assert matplotlib.rcParams["axes.spines.top"] is False  # the book's style is on


def test_image_grid_tiles_images():
    images = data.digits("train")[:10]
    fig, axes = plot.subplots()
    ax = plot.image_grid(axes[0, 0], images, nrow=4)
    (im,) = ax.images
    canvas = np.ma.filled(im.get_array(), np.nan)
    assert canvas.shape == (3 * 9 + 1, 4 * 9 + 1)  # 3 rows of 4 tiles, 1-pixel gaps
    np.testing.assert_array_equal(canvas[1:9, 1:9], images[0].reshape(8, 8).numpy())
    np.testing.assert_array_equal(canvas[10:18, 1 + 9 : 9 + 9], images[5].reshape(8, 8).numpy())  # row 1, col 1
    assert np.isnan(canvas[0]).all() and np.isnan(canvas[19:27, 19:]).all()  # gaps and the two empty tiles
    assert im.get_clim() == (0, 16)
    assert not ax.axison


def test_scatter_draws_every_point():
    x = data.toy("8gaussians").sample(123)
    fig, axes = plot.subplots()
    pc = plot.scatter(axes[0, 0], x, c=torch.arange(123))
    offsets = pc.get_offsets()
    assert offsets.shape == (123, 2)
    np.testing.assert_allclose(offsets, x.numpy())
    assert axes[0, 0].get_aspect() == 1.0


def test_density_shows_exp_log_prob_on_the_grid():
    def log_prob(x):  # standard normal in 2-D
        return -0.5 * x.pow(2).sum(1) - math.log(2 * math.pi)

    fig, axes = plot.subplots()
    im = plot.density(axes[0, 0], log_prob, extent=(-2, 2, -1, 3), n=30)
    arr = np.asarray(im.get_array())
    assert arr.shape == (30, 30)
    assert im.get_extent() == [-2, 2, -1, 3]
    assert im.origin == "lower"  # drawn with y increasing upwards, as the array below assumes
    # origin="lower": row 0 is y = -1, column 0 is x = -2; row i varies y
    ys, xs = np.linspace(-1, 3, 30), np.linspace(-2, 2, 30)
    expected = np.exp(-0.5 * (xs[None, :] ** 2 + ys[:, None] ** 2)) / (2 * math.pi)
    np.testing.assert_allclose(arr, expected, rtol=1e-5)


def test_plot_helpers_emit_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, axes = plot.subplots(3)
        plot.image_grid(axes[0, 0], data.digits("val")[:5])
        plot.scatter(axes[0, 1], torch.zeros(4, 2))
        plot.density(axes[0, 2], lambda x: -x.pow(2).sum(1), n=10)
        fig.canvas.draw()
    assert len(axes[0, 0].images) == 1 and len(axes[0, 2].images) == 1


def test_dag_draws_one_node_per_label_and_one_arrow_per_edge():
    fig, axes = plot.subplots()
    ax = axes[0, 0]
    pos = {"a": (0, 0), "b": (1, 0), "c": (0.5, 1)}
    plot.dag(ax, pos, [("a", "c"), ("b", "c")])
    assert sorted(t.get_text() for t in ax.texts if t.get_text()) == ["a", "b", "c"]
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == 2
    # each arrow ends on the rim of its child's circle, not at its centre
    end = np.asarray(arrows[0].xy)
    assert np.linalg.norm(end - np.array([0.5, 1.0])) == pytest.approx(0.28)
    with pytest.raises(ValueError, match="without a position.*'d'"):
        plot.dag(ax, pos, [("a", "d")])
    plt.close(fig)
