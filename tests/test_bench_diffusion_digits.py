"""The diffusion bench's digits helpers: the moving average it evaluates and the bound it reports."""

from __future__ import annotations

import torch

import genbook
from benchmarks import diffusion as bench_diffusion
from genbook import data
from genbook.diffusion import Diffusion

TINY = dict(
    model=dict(kind="levels", dim=64, levels=17, head="levels", variance="levels", T=8, hidden=16, layers=1),
    fit=dict(steps=3, batch_size=32, lr=1e-2),
)


def test_the_trained_model_is_the_moving_average():
    cpu = torch.device("cpu")
    genbook.seed(0)
    initial = Diffusion(**TINY["model"]).state_dict()
    frozen, _ = bench_diffusion.train_digits({**TINY, "ema": 1.0}, cpu)  # decay 1: the average never moves
    last, seconds = bench_diffusion.train_digits({**TINY, "ema": 0.0}, cpu)  # decay 0: the last weights
    assert not frozen.training and seconds > 0
    for k, v in initial.items():
        assert torch.equal(frozen.state_dict()[k], v)
        assert not torch.equal(last.state_dict()[k], v)


def test_bound_reports_the_terms_and_their_sum():
    genbook.seed(0)
    model = Diffusion(**TINY["model"]).eval()
    out = bench_diffusion.bound(model, data.digits("val")[:20])
    assert set(out) == {"prior", "diffusion", "reconstruction", "total", "se"}
    assert abs(out["total"] - (out["prior"] + out["diffusion"] + out["reconstruction"])) < 1e-3
    assert out["se"] > 0
