from pathlib import Path

import pytest
import torch

import genbook
from genbook import zoo
from genbook.autoregressive import ConvARM

BOOK = Path(__file__).resolve().parent.parent / "book"


@pytest.mark.parametrize("name", list(zoo.RECIPES))
def test_each_chapter_shows_its_recipe_and_saves_to_its_file(name):
    recipe = zoo.RECIPES[name]
    text = (BOOK / f"{recipe.chapter}.md").read_text()
    missing = [s for s in recipe.settings if s not in text]
    assert not missing, f"book/{recipe.chapter}.md no longer shows {missing}: update genbook.zoo's recipe with it"
    assert recipe.file in text, f"book/{recipe.chapter}.md does not save {recipe.file}"
    assert "train_seconds" in text  # the chapter stores its training time with the model


def test_recipes_name_distinct_files():
    files = [r.file for r in zoo.RECIPES.values()]
    assert len(set(files)) == len(files)


def test_load_or_train_loads_a_saved_file_without_training(tmp_path, gen, monkeypatch):
    model = ConvARM(levels=17, length=64, channels=4, kernel_size=3, layers=1)
    genbook.save(model, tmp_path / "arm_digits.pt", meta={"train_seconds": 12.5})

    def refuse(*args, **kwargs):
        raise AssertionError("load_or_train trained a model whose file exists")

    monkeypatch.setattr(zoo, "train", refuse)
    loaded, meta = zoo.load_or_train("arm", tmp_path, device="cpu")
    assert type(loaded) is ConvARM and not loaded.training and meta == {"train_seconds": 12.5}
    x = torch.randint(0, 17, (3, 64), generator=gen)
    assert torch.equal(loaded.log_prob(x), model.eval().log_prob(x))


def test_load_or_train_trains_saves_and_then_loads(tmp_path, monkeypatch):
    calls = []

    def small_recipe(dev):
        calls.append(dev)
        return ConvARM(levels=17, length=64, channels=4, kernel_size=3, layers=1).to(dev), 3.25

    recipe = zoo.RECIPES["arm"]
    monkeypatch.setitem(zoo.RECIPES, "arm", zoo.Recipe(recipe.chapter, recipe.file, small_recipe, recipe.settings))
    first, meta = zoo.load_or_train("arm", tmp_path / "models", device="cpu")
    assert calls == [torch.device("cpu")] and meta == {"train_seconds": 3.25}
    assert (tmp_path / "models" / "arm_digits.pt").exists()
    second, meta2 = zoo.load_or_train("arm", tmp_path / "models", device="cpu")
    assert len(calls) == 1 and meta2 == meta  # the second call loaded the file
    x = torch.randint(0, 17, (2, 64))
    assert torch.equal(first.log_prob(x), second.log_prob(x))


def test_train_seeds_so_a_recipe_repeats(monkeypatch):
    def tiny(dev):
        return ConvARM(levels=3, length=4, channels=2, kernel_size=2, layers=1).to(dev), 0.0

    monkeypatch.setitem(zoo.RECIPES, "arm", zoo.Recipe("04_autoregressive", "arm_digits.pt", tiny, ()))
    a, _ = zoo.train("arm", device="cpu")
    torch.manual_seed(123)
    b, _ = zoo.train("arm", device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_unknown_name_raises(tmp_path):
    with pytest.raises(ValueError, match="^name must be one of"):
        zoo.load_or_train("pixelcnn", tmp_path)
    with pytest.raises(ValueError, match="^name must be one of"):
        zoo.train("pixelcnn")


def test_fit_baselines_picks_each_family_on_validation(gen):
    from genbook import metrics
    from genbook.autoregressive import MarkovChain
    from genbook.mixture import CategoricalMixture

    # two prototypes with noise: a mixture helps, and neighbouring positions are correlated
    proto = torch.randint(0, 4, (2, 6), generator=gen)
    pick = torch.randint(0, 2, (300,), generator=gen)
    noise = torch.rand(300, 6, generator=gen) < 0.2
    x = torch.where(noise, torch.randint(0, 4, (300, 6), generator=gen), proto[pick])
    train, val = x[:200], x[200:]
    found = zoo.fit_baselines(train, val, levels=4)
    assert set(found) == {"independent", "mixture", "markov"}
    assert type(found["independent"]) is CategoricalMixture and found["independent"].components == 1
    assert type(found["mixture"]) is CategoricalMixture and type(found["markov"]) is MarkovChain
    val_nll = {k: float(metrics.nll_values(m, val).mean()) for k, m in found.items()}
    assert val_nll["mixture"] < val_nll["independent"] - 1  # the two prototypes are found
    for a in (0.03, 0.1, 0.3, 1):  # no other pseudo-count does better on validation
        other = CategoricalMixture(components=1, levels=4, dims=6, alpha=a).fit(train)
        assert float(metrics.nll_values(other, val).mean()) >= val_nll["independent"] - 1e-12
    for k in (1, 2, 3):
        other = MarkovChain(levels=4, length=6, order=k, alpha=300, prior="backoff").fit(train)
        assert float(metrics.nll_values(other, val).mean()) >= val_nll["markov"] - 1e-12


def test_scores_name_known_models_and_say_exact_or_bound():
    baselines = {"independent", "mixture", "markov"}
    for key, score in zoo.SCORES.items():
        assert score.model in zoo.RECIPES or score.model in baselines, key
        assert score.exact == (score.kind == "exact") == (score.bound is None), key
        assert score.kind == "exact" or score.kind.startswith("bound: "), key
        assert score.bound is not None or score.n_samples == 1, key


@pytest.mark.parametrize("name", list(zoo.RECIPES))
def test_each_recipe_uses_the_settings_it_names(name):
    import inspect
    import re

    recipe = zoo.RECIPES[name]
    source = inspect.getsource(recipe.build)
    source += "".join(f"{k}={v}" for k, v in inspect.getclosurevars(recipe.build).nonlocals.items())  # _vae(1)
    source = source.replace(" ", "").lower()
    for fragment in recipe.settings:
        for piece in re.split(r",\s*(?=\w+\s*=)", fragment):
            assert piece.replace(" ", "").lower() in source, f"{name}: {piece!r} is not in the recipe's code"
