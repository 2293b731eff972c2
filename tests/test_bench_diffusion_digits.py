"""The diffusion bench's digits helpers: the moving average it evaluates and the bound it reports."""

from __future__ import annotations

import torch

from benchmarks import diffusion as bench_diffusion
from genbook import data
from genbook.diffusion import Diffusion

TINY = dict(
    model=dict(kind="levels", dim=64, levels=17, head="levels", variance="levels", T=8, hidden=16, layers=1),
    fit=dict(steps=3, batch_size=32, lr=1e-2),
)


def test_the_trained_model_is_the_moving_average():
    cpu = torch.device("cpu")
    one = {**TINY, "fit": {**TINY["fit"], "steps": 1}}
    after_one, _ = bench_diffusion.train_digits({**one, "ema": 0.0}, cpu)  # decay 0: the last weights
    frozen, seconds = bench_diffusion.train_digits({**TINY, "ema": 1.0}, cpu)  # decay 1: the first ones
    last, _ = bench_diffusion.train_digits({**TINY, "ema": 0.0}, cpu)
    assert not frozen.training and seconds > 0
    for k, v in after_one.state_dict().items():
        assert torch.equal(frozen.state_dict()[k], v)  # the average kept the weights after step 1
        assert not torch.equal(last.state_dict()[k], v)  # the last iterate moved on


def test_bound_reports_the_terms_and_their_sum():
    torch.manual_seed(0)
    model = Diffusion(**TINY["model"]).eval()
    out = bench_diffusion.bound(model, data.digits("val")[:20])
    assert set(out) == {"prior", "diffusion", "reconstruction", "total", "se"}
    assert abs(out["total"] - (out["prior"] + out["diffusion"] + out["reconstruction"])) < 1e-3
    assert out["se"] > 0
