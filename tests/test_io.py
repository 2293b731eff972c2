import importlib
import inspect
import pickle
import pkgutil

import pytest
import torch
from torch import nn

import genbook
from genbook import autoregressive, diffusion, flows, gan, linear, metrics, rbm, transformer, vae
from genbook.io import Configurable
from genbook.mixture import CategoricalMixture, GaussianMixture, GridLatentModel


def _fitted_mixture(gen):
    x = torch.cat([torch.randn(40, 2, generator=gen) - 2, torch.randn(40, 2, generator=gen) + 2]).double()
    return GaussianMixture(n_components=3, n_features=2, tol=1e-6).fit(x, generator=gen), x


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


def test_gaussian_mixture_round_trip(tmp_path, gen):
    model, x = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt")
    loaded = genbook.load(tmp_path / "gm.pt")
    assert type(loaded) is GaussianMixture
    assert loaded.config() == model.config()
    _assert_same_state(model, loaded)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert not torch.equal(loaded.means_, GaussianMixture(n_components=3).means_)  # the fit travelled


def test_grid_latent_model_round_trip(tmp_path):
    model = GridLatentModel(n_features=2, n_latent=16, hidden=8)
    with torch.no_grad():
        model.log_sigma.fill_(-0.5)
    genbook.save(model, str(tmp_path / "glm.pt"))  # str paths work too
    loaded = genbook.load(str(tmp_path / "glm.pt"))
    assert type(loaded) is GridLatentModel
    assert loaded.config() == dict(n_features=2, n_latent=16, hidden=8)
    _assert_same_state(model, loaded)
    x = torch.randn(10, 2)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert not loaded.training  # returned ready for evaluation


def test_load_map_location(tmp_path, gen):
    model, x = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt")
    loaded = genbook.load(tmp_path / "gm.pt", map_location="cpu")
    assert loaded.means_.device.type == "cpu"
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_saving_a_non_genbook_module_raises(tmp_path):
    with pytest.raises(TypeError, match="torch.nn.modules.linear.Linear"):
        genbook.save(nn.Linear(2, 2), tmp_path / "lin.pt")
    assert not (tmp_path / "lin.pt").exists()


@pytest.mark.parametrize("payload", [{"weights": torch.zeros(3)}, torch.zeros(3), {"format": 99}])
def test_loading_a_torch_file_that_is_not_genbook_raises(tmp_path, payload):
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a genbook model file"):
        genbook.load(tmp_path / "other.pt")


def test_loading_a_text_file_raises(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(ValueError, match="notes.pt: not a genbook model file"):
        genbook.load(tmp_path / "notes.pt")


def test_class_outside_genbook_is_refused(tmp_path):
    lin = nn.Linear(2, 2)
    payload = {
        "format": 1,
        "module": "torch.nn",
        "class": "Linear",
        "config": {"in_features": 2, "out_features": 2},
        "state_dict": lin.state_dict(),
    }
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="outside genbook"):
        genbook.load(tmp_path / "evil.pt")


def test_pickled_module_is_refused_by_weights_only(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")  # a whole pickled module
    with pytest.raises(ValueError, match="not a genbook model file") as info:
        genbook.load(tmp_path / "pickled.pt")
    # the refusal comes from torch's weights_only unpickler, not from our own checks
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert "eights only" in str(info.value.__cause__)


def test_saved_file_holds_only_plain_data(tmp_path, gen):
    model, _ = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt")
    payload = torch.load(tmp_path / "gm.pt", weights_only=True)
    assert payload["module"] == "genbook.mixture" and payload["class"] == "GaussianMixture"
    assert payload["config"] == model.config()
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_meta_travels_with_the_model(tmp_path, gen):
    model, x = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt", meta={"train_seconds": 1.5, "recipe": "chapter 1", "n": [1, 2]})
    assert genbook.load_meta(tmp_path / "gm.pt") == {"train_seconds": 1.5, "recipe": "chapter 1", "n": [1, 2]}
    assert torch.equal(genbook.load(tmp_path / "gm.pt").score_samples(x), model.score_samples(x))
    genbook.save(model, tmp_path / "plain.pt")
    assert genbook.load_meta(tmp_path / "plain.pt") == {}


@pytest.mark.parametrize("meta", [{"t": torch.tensor(1.0)}, {1: 2.0}, [("t", 1.0)], {"f": lambda: 0}])
def test_meta_that_is_not_plain_data_raises(meta, tmp_path, gen):
    model, _ = _fitted_mixture(gen)
    with pytest.raises(TypeError, match="meta must be a dict of plain data"):
        genbook.save(model, tmp_path / "gm.pt", meta=meta)
    assert not (tmp_path / "gm.pt").exists()


def test_load_meta_of_a_foreign_file_raises(tmp_path):
    (tmp_path / "notes.pt").write_text("not a model")
    with pytest.raises(ValueError, match="not a genbook model file"):
        genbook.load_meta(tmp_path / "notes.pt")


# ---------------------------------------------------------------- every model class, one round trip
def _points(d: int) -> torch.Tensor:
    return torch.randn(6, d)


def _levels(k: int, d: int) -> torch.Tensor:
    return torch.randint(0, k, (6, d))


# class: (constructor arguments, none of them the default, written as config() returns them;
#         the output compared after loading). Every class with config() needs an entry.
ROUND_TRIP = {
    flows.StandardNormal: (dict(dim=3), lambda m: m.log_prob(_points(3))),
    flows.ActNorm: (dict(dim=3), lambda m: m(_points(3))),
    flows.AffineCoupling: (
        dict(dim=3, mask=[1, 0, 1], hidden=5, layers=1, activation="tanh", dropout=0.1),
        lambda m: m(_points(3)),
    ),
    flows.RealNVP: (
        dict(dim=4, hidden=6, couplings=3, layers=1, actnorm=False, activation="silu", dropout=0.2, image_shape=[2, 2]),
        lambda m: m.log_prob(_points(4)),
    ),
    flows.ResidualBlock: (
        dict(
            dim=3,
            hidden=5,
            layers=1,
            lipschitz=0.8,
            n_power_iterations=2,
            exact=False,
            n_terms=4,
            n_probes=2,
            max_iter=50,
            tol=1e-4,
        ),
        lambda m: m(_points(3)),
    ),
    flows.ResidualFlow: (
        dict(
            dim=3,
            hidden=5,
            blocks=2,
            layers=1,
            lipschitz=0.7,
            actnorm=False,
            n_power_iterations=2,
            exact=True,
            n_terms=4,
            n_probes=2,
            max_iter=50,
            tol=1e-4,
        ),
        lambda m: m.log_prob(_points(3)),
    ),
    flows.LogitTransform: (dict(levels=5, alpha=0.1), lambda m: m(5 * torch.rand(6, 3))),
    flows.DigitsFlow: (
        dict(
            dim=4,
            levels=5,
            alpha=0.02,
            hidden=6,
            couplings=3,
            layers=1,
            actnorm=False,
            activation="relu",
            dropout=0.1,
            image_shape=[2, 2],
        ),
        lambda m: m.log_prob(5 * torch.rand(6, 4)),
    ),
    autoregressive.MarkovChain: (
        dict(levels=3, length=5, order=2, alpha=0.5, prior="backoff"),
        lambda m: m.log_prob(_levels(3, 5)),
    ),
    autoregressive.WindowMLP: (dict(levels=3, length=5, window=2, hidden=4), lambda m: m.log_prob(_levels(3, 5))),
    autoregressive.ConvARM: (
        dict(levels=3, length=5, channels=4, kernel_size=2, layers=2, dilations=[1, 2], dropout=0.1),
        lambda m: m.log_prob(_levels(3, 5)),
    ),
    GaussianMixture: (
        dict(n_components=3, n_features=3, reg_covar=1e-5, tol=1e-4, max_iter=7),
        lambda m: m.log_prob(_points(3)),
    ),
    GridLatentModel: (dict(n_features=3, n_latent=5, hidden=4), lambda m: m.log_prob(_points(3))),
    CategoricalMixture: (
        dict(components=2, levels=3, dims=5, alpha=0.5, init="random", tol=1e-3, max_iter=9),
        lambda m: (m.log_prob(_levels(3, 5)), m.sample(6)),
    ),
    rbm.RBM: (
        dict(n_visible=3, n_hidden=2, beta=2.0, fields=False, init_std=0.1),
        lambda m: m.log_prob(rbm.to_spins(torch.randint(0, 2, (6, 3)))),
    ),
    linear.PCA: (dict(n_components=1, n_features=3), lambda m: m.transform(_points(3))),
    linear.ProbabilisticPCA: (dict(n_components=1, n_features=3), lambda m: m.log_prob(_points(3))),
    linear.LinearAutoencoder: (dict(dim=3, n_components=2, bias=False), lambda m: m(_points(3))),
    linear.ICA: (
        dict(
            n_components=3, n_features=3, prior="extended", method="plain", lr=0.05, max_iter=5, tol=1e-3, whiten=False
        ),
        lambda m: m.log_likelihood(_points(3)),
    ),
    vae.VAE: (
        dict(
            dim=4,
            latent=3,
            hidden=5,
            layers=1,
            decoder="gaussian",
            levels=5,
            activation="relu",
            obs_var=0.5,
            dropout=0.1,
            prior="vamp",
            components=3,
            train_k=2,
        ),
        lambda m: m.elbo(_points(4)),
    ),
    metrics.DigitsClassifier: (
        dict(channels=3, feature_dim=5, dropout=0.1, max_shift=2),
        lambda m: (m(_levels(17, 64)), m.features(16 * torch.rand(6, 64))),
    ),
    gan.GAN: (
        dict(
            kind="levels",
            dim=4,
            levels=5,
            latent=3,
            hidden=6,
            layers=1,
            generator_loss="minimax",
            lr_ratio=2.0,
            beta1=0.6,
            r1=0.5,
        ),
        lambda m: (m.d(_levels(5, 4)), m.sample(6)),
    ),
    diffusion.Diffusion: (
        dict(
            kind="levels",
            dim=4,
            levels=5,
            T=6,
            schedule="cosine",
            beta_1=0.001,
            beta_T=0.1,
            hidden=7,
            layers=1,
            time_dim=4,
            variance="posterior",
            loss="elbo",
        ),
        lambda m: (m.predict_noise(_points(4), 3), m.sample(6), m.nll_bound(_levels(5, 4))["total"]),
    ),
    transformer.TransformerLM: (
        dict(vocab=3, context=5, dim=8, heads=2, layers=1, dropout=0.1, end=True, tie=False),
        lambda m: (m.log_prob(_levels(3, 5)), m.sample(6)),
    ),
}
# classes whose arguments cannot all leave their defaults at once: a second case for the rest
MORE_ROUND_TRIP = {
    vae.VAE: (dict(dim=4, latent=2, hidden=5, levels=3, context=1), lambda m: m.elbo(_levels(3, 4))),
    gan.GAN: (dict(dim=3, latent=4, hidden=5, layers=2), lambda m: (m.d(_points(3)), m.sample(6))),
    diffusion.Diffusion: (
        dict(kind="levels", dim=4, levels=5, T=6, hidden=7, head="levels", variance="levels", dropout=0.1),
        lambda m: (m.level_probs(_points(4), 3), m.sample(6), m.nll_bound(_levels(5, 4))["total"]),
    ),
}
FIT_DATA = {  # models whose state only fitting fills
    GaussianMixture: lambda: _points(3).double(),
    CategoricalMixture: lambda: _levels(3, 5),
    autoregressive.MarkovChain: lambda: _levels(3, 5),
    linear.PCA: lambda: _points(3).double(),
    linear.ProbabilisticPCA: lambda: _points(3).double(),
    linear.ICA: lambda: _points(3).double(),
}
NOT_SAVEABLE = {  # nn.Modules without config(), and why
    flows.Flow: "built from a list of modules; its subclasses are the saveable flows",
    flows.SpectralLinear: "a layer inside ResidualBlock, saved with it",
    flows.LipSwish: "a layer inside ResidualBlock, saved with it",
    autoregressive.CausalConv1d: "a layer inside ConvARM, saved with it",
    rbm.ContrastiveDivergence: "a training objective around an RBM: save the RBM",
    transformer.CausalSelfAttention: "a layer inside TransformerLM, saved with it",
    transformer.Block: "a layer inside TransformerLM, saved with it",
}


def _module_classes() -> set[type]:
    """Every public ``nn.Module`` subclass defined in a genbook module."""
    found = set()
    for info in pkgutil.iter_modules(genbook.__path__):
        module = importlib.import_module(f"genbook.{info.name}")
        found |= {
            c
            for c in vars(module).values()
            if isinstance(c, type)
            and issubclass(c, nn.Module)
            and c.__module__ == module.__name__
            and not c.__name__.startswith("_")
        }
    return found


def _saveable_classes() -> list[type]:
    return sorted((c for c in _module_classes() if hasattr(c, "config")), key=lambda c: c.__name__)


def test_every_module_class_is_saveable_or_says_why_not():
    classes = _module_classes()
    assert classes - set(_saveable_classes()) == set(NOT_SAVEABLE)
    assert len(_saveable_classes()) == len(ROUND_TRIP) == 24


def _cases() -> list[tuple[type, int]]:
    return [(c, 0) for c in _saveable_classes()] + [(c, 1) for c in MORE_ROUND_TRIP]


@pytest.mark.parametrize("cls, case", _cases(), ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_every_model_class_round_trips(cls, case, tmp_path):
    assert cls in ROUND_TRIP, f"{cls.__name__} has config() but no ROUND_TRIP case"
    kwargs, output = (ROUND_TRIP if case == 0 else MORE_ROUND_TRIP)[cls]
    defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
    if case == 0:
        shown = set(kwargs) | {k for k, v in MORE_ROUND_TRIP.get(cls, ({},))[0].items() if v != defaults[k]}
        assert [k for k in kwargs if kwargs[k] == defaults[k]] == [], "a default value would hide a lost argument"
        assert shown == set(defaults) - {"self"}, f"arguments never round-tripped: {set(defaults) - shown - {'self'}}"
    model = cls(**kwargs)
    if cls in FIT_DATA:
        model.fit(FIT_DATA[cls]())
    with torch.no_grad():  # away from the initial values, so the state_dict is what travels
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval()
    assert model.config() == {**{k: v for k, v in defaults.items() if k != "self"}, **kwargs}  # nothing lost or added

    genbook.save(model, tmp_path / "model.pt")
    loaded = genbook.load(tmp_path / "model.pt")
    assert type(loaded) is cls
    assert loaded.config() == model.config()
    _assert_same_state(model, loaded)
    torch.manual_seed(0)  # the same inputs, and the same probes where the output draws any
    expected = output(model)
    torch.manual_seed(0)
    got = output(loaded)
    for e, g in zip(*(t if isinstance(t, tuple) else (t,) for t in (expected, got)), strict=True):
        assert torch.equal(e, g)


def test_config_names_a_constructor_argument_that_was_not_stored():
    class Forgetful(Configurable, nn.Module):
        def __init__(self, *, width: int = 3, depth: int = 2):
            super().__init__()
            self.width = width  # depth is used but never stored

    with pytest.raises(AttributeError, match=r"Forgetful.config: the constructor argument 'depth' is not stored"):
        Forgetful().config()


def test_config_refuses_a_value_that_is_not_plain_data():
    class Tensorish(Configurable, nn.Module):
        def __init__(self, *, mask: list[int] = (1, 0)):
            super().__init__()
            self.register_buffer("mask", torch.tensor(mask))

    with pytest.raises(TypeError, match=r"Tensorish.config: self.mask is a Tensor, not plain data"):
        Tensorish().config()
