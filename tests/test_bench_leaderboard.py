"""The leaderboard suite on untrained tiny models: every row of zoo.SCORES gets its four numbers, the exact
rows are the models' mean NLL, and a row without a recipe is refused by name."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from benchmarks import _models
from benchmarks import leaderboard as bench_lb
from genbook import data, zoo
from genbook.autoregressive import ConvARM
from genbook.diffusion import Diffusion
from genbook.flows import DigitsFlow
from genbook.gan import GAN
from genbook.transformer import TransformerLM
from genbook.vae import VAE

TINY = {
    "arm": lambda: ConvARM(levels=17, length=64, channels=8, kernel_size=3, layers=2),
    "transformer": lambda: TransformerLM(vocab=17, context=64, dim=16, heads=2, layers=1),
    "realnvp": lambda: DigitsFlow(couplings=2, hidden=16),
    "vae": lambda: VAE(dim=64, latent=2, hidden=16, layers=1),
    "vae_local": lambda: VAE(dim=64, latent=2, hidden=16, layers=1, context=1),
    "diffusion": lambda: Diffusion(kind="levels", dim=64, levels=17, head="levels", variance="levels", T=4, hidden=16),
}


def _tiny(name: str, build) -> _models.BenchModel:
    return _models.BenchModel(f"tiny.{name}", {}, lambda dev: (build().to(dev).eval(), 1.5))


@pytest.fixture
def tiny_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(_models, "MODELS", tmp_path)
    monkeypatch.setattr(bench_lb, "SOURCES", {name: _tiny(name, build) for name, build in TINY.items()})
    gan = lambda: GAN(kind="levels", dim=64, levels=17, latent=4, hidden=16, layers=1)  # noqa: E731
    monkeypatch.setattr(bench_lb, "GAN", _tiny("gan", gan))
    # the same rows with fewer draws: the IWAE rows' 1000 would take most of the test's time
    fewer = {key: replace(score, n_samples=min(score.n_samples, 10)) for key, score in zoo.SCORES.items()}
    monkeypatch.setattr(zoo, "SCORES", fewer)


def test_every_row_gets_its_numbers(tiny_sources):
    out = bench_lb.run()
    rows = [*zoo.SCORES, "gan", "floor"]
    assert {key.split("/")[1] for key in out} == set(rows)
    assert all(key.startswith("leaderboard/") and math.isfinite(v) for key, v in out.items())
    for key, score in zoo.SCORES.items():
        assert out[f"leaderboard/{key}/exact"] == float(score.bound is None)
        assert 0 < out[f"leaderboard/{key}/ci95_nats"] < 5
        assert out[f"leaderboard/{key}/fd"] > 0
        assert (f"leaderboard/{key}/train_seconds" in out) == (score.model in bench_lb.SOURCES)
    # rows of one model share its samples
    assert out["leaderboard/vae_elbo/fd"] == out["leaderboard/vae_iwae/fd"]
    assert out["leaderboard/vae_iwae/test_nats"] < out["leaderboard/vae_elbo/test_nats"]
    # an exact row is the model's mean test NLL
    arm, _ = bench_lb.SOURCES["arm"].load_or_train(torch.device("cpu"))
    with torch.no_grad():
        want = -arm.log_prob(data.digits("test")).double().mean().item()
    assert out["leaderboard/arm/test_nats"] == pytest.approx(want, rel=1e-6)
    assert out["leaderboard/gan/train_seconds"] == 1.5
    assert 0 < out["leaderboard/floor/fd"] < out["leaderboard/independent/fd"]


def test_a_row_without_a_recipe_is_refused(monkeypatch):
    monkeypatch.setitem(zoo.SCORES, "rbm", zoo.Score("RBM", "rbm_binary", None, 1, "exact"))
    with pytest.raises(ValueError, match=r"\['rbm_binary'\].*SOURCES"):
        bench_lb._row_models(torch.device("cpu"))
