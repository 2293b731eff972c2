"""The bench's saved digits models: the leaderboard reuses a saved model only when it was trained with
the same recipe and settings."""

from __future__ import annotations

import torch

import genbook
from benchmarks import _models
from genbook import data, zoo
from genbook.autoregressive import MarkovChain

CPU = torch.device("cpu")


def _chain(alpha: float = 1.0) -> MarkovChain:
    return MarkovChain(levels=17, length=64, order=1, alpha=alpha).fit(data.digits("train"))


def _refuse(dev):
    raise AssertionError("trained although a matching model was saved")


def test_a_saved_model_with_the_same_settings_is_loaded_not_trained(tmp_path, monkeypatch):
    monkeypatch.setattr(_models, "MODELS", tmp_path)
    saved = _chain()
    _models.BenchModel("suite.A", {"fit": dict(epochs=3, dims=(1, 2))}, _refuse).save(saved, 12.5)
    assert genbook.load_meta(tmp_path / "suite.A.pt") == {
        "train_seconds": 12.5,
        "recipe": "suite.A",
        "settings": {"fit": dict(epochs=3, dims=(1, 2))},
    }
    # settings compare as saved: a list matches the tuple it was saved from
    model, seconds = _models.BenchModel("suite.A", {"fit": dict(epochs=3, dims=[1, 2])}, _refuse).load_or_train(CPU)
    x = data.digits("test")
    assert seconds == 12.5
    torch.testing.assert_close(model.log_prob(x), saved.log_prob(x), rtol=0, atol=0)


def test_a_model_saved_with_other_settings_is_trained_again_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(_models, "MODELS", tmp_path)
    _models.BenchModel("suite.A", {"fit": dict(epochs=3)}, _refuse).save(_chain(1.0), 12.5)
    fresh = _models.BenchModel("suite.A", {"fit": dict(epochs=4)}, lambda dev: (_chain(30.0), 7.0))
    model, seconds = fresh.load_or_train(CPU)
    assert seconds == 7.0 and model.alpha == 30.0
    assert genbook.load_meta(tmp_path / "suite.A.pt")["settings"] == {"fit": dict(epochs=4)}
    assert fresh.load_or_train(CPU)[1] == 7.0  # now saved


def test_chapter_models_carry_the_zoo_recipe():
    chapter = _models.chapter_model("vae")
    assert chapter.recipe == "zoo.vae" and chapter.path.name == "zoo.vae.pt"
    assert chapter.settings == {"chapter": "06_autoencoders", "settings": list(zoo.RECIPES["vae"].settings)}
