"""The book's digit models in one place: each chapter's recipe, and the file the chapter saves it to.

Chapters 3 to 9 each train a model of the 8x8 digits and save it with :func:`genbook.save` under
``_build/models/`` (with its training time as ``meta={"train_seconds": ...}``); later chapters
compare them. :func:`load_or_train` gives a later chapter the model the reader saw: the saved file
when it is there, and otherwise (a chapter built on its own) the same recipe trained afresh, with
``genbook.seed(0)``, and saved for the next time.

A recipe here is the chapter's code, written once more as a function; ``tests/test_zoo.py`` checks
that each chapter still shows the same settings, so the two cannot drift apart silently.

========================  =========  ==============================================================
name                      chapter    model
========================  =========  ==============================================================
``"rbm_binary"``          3          RBM with 16 hidden units on the binarised digits, PCD
``"arm"``                 4          convolutional autoregressive model (:class:`ConvARM`)
``"realnvp"``             5          RealNVP on uniformly dequantised levels (:class:`DigitsFlow`)
``"vae"``                 6          VAE with a factorised 17-level decoder
``"vae_local"``           6          VAE whose decoder also reads the causal neighbours
``"gan"``                 7          GAN with an R1 penalty, levels by straight-through rounding
``"diffusion"``           8          diffusion model on levels, trained on the bound, EMA weights
``"transformer"``         9          :class:`TransformerLM` over the 64 pixels in raster order
========================  =========  ==============================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import data, rbm
from ._checks import check_choice
from ._device import device as default_device
from ._device import seed
from .autoregressive import ConvARM, MarkovChain
from .diffusion import Diffusion
from .flows import DigitsFlow
from .gan import GAN
from .io import load, load_meta, save
from .metrics import nll_values
from .mixture import CategoricalMixture
from .train import fit
from .transformer import TransformerLM
from .vae import VAE

__all__ = ["Recipe", "RECIPES", "train", "load_or_train", "fit_baselines", "Score", "SCORES"]


@dataclass(frozen=True)
class Recipe:
    """How a chapter trains one digits model: ``build(device, **fit_overrides) -> (model, train_seconds)``
    (the overrides change :func:`genbook.fit`'s settings, e.g. ``epochs``); the file
    it saves to; and ``settings``, fragments of the chapter's code that must appear in the chapter
    (``book/<chapter>.md``) as written here."""

    chapter: str
    file: str
    build: Callable[..., tuple[nn.Module, float]]
    settings: tuple[str, ...]


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    return data.digits("train"), data.digits("val")


def _settings(chapter: dict, overrides: dict) -> dict:
    """The chapter's ``fit`` settings with ``overrides`` (a length given in ``steps`` replaces one in
    ``epochs`` and the reverse; nothing is printed)."""
    out = dict(chapter, progress=False)
    if "steps" in overrides:
        out.pop("epochs", None)
    if "epochs" in overrides:
        out.pop("steps", None)
    return out | overrides


def _arm(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
    train, val = _digits()
    model = ConvARM(levels=17, length=64, channels=64, kernel_size=7, layers=4, dilations=[1, 1, 2, 4], dropout=0.3)
    chapter = dict(val=val, epochs=60, batch_size=32, lr=3e-3, weight_decay=0.3, schedule="linear")
    hist = fit(model.to(dev), train, **_settings(chapter, overrides))
    return model, hist.seconds


def _realnvp(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
    train, val = _digits()
    model = DigitsFlow().to(dev)
    hist = fit(
        model, train, **_settings(dict(val=val, epochs=100, batch_size=64, lr=2e-3, schedule="linear"), overrides)
    )
    return model, hist.seconds


def _vae(context: int) -> Callable[..., tuple[nn.Module, float]]:
    def build(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
        train, val = _digits()
        model = VAE(dim=64, latent=16, hidden=512, layers=1, activation="tanh", dropout=0.5, context=context).to(dev)
        chapter = dict(val=val, epochs=200, batch_size=64, lr=1e-3, patience=20)
        hist = fit(model, train, **_settings(chapter, overrides))
        return model, hist.seconds

    return build


def _gan(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
    model = GAN(kind="levels", dim=64, levels=17, latent=32, hidden=256, layers=2, r1=1.0).to(dev)
    chapter = dict(steps=15_000, batch_size=64, lr=1e-3, schedule="linear")
    hist = fit(model, data.digits("train"), **_settings(chapter, overrides))
    return model, hist.seconds


def _diffusion(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
    model = Diffusion(
        kind="levels",
        dim=64,
        levels=17,
        T=1000,
        beta_1=1e-4,
        beta_T=0.02,
        head="levels",
        variance="levels",
        hidden=512,
        layers=3,
        dropout=0.2,
        loss="elbo",
    ).to(dev)
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    chapter = dict(
        steps=3000, batch_size=128, lr=1e-3, schedule="linear", callback=lambda step: average.update_parameters(model)
    )
    hist = fit(model, data.digits("train"), **_settings(chapter, overrides))
    return average.module.eval(), hist.seconds


def _transformer(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
    train, val = _digits()
    model = TransformerLM(vocab=17, context=64, dim=64, heads=4, layers=2, dropout=0.1, tie=False).to(dev)
    chapter = dict(val=val, epochs=30, batch_size=32, lr=3e-3, weight_decay=0.3, schedule="linear")
    hist = fit(model, train, **_settings(chapter, overrides))
    return model, hist.seconds


def _rbm_binary(dev: torch.device, **overrides) -> tuple[nn.Module, float]:
    spins = rbm.to_spins(data.binary_digits("train")).to(dev)
    t0 = time.perf_counter()
    model = rbm.RBM(n_visible=64, n_hidden=16, fields=True).to(dev)
    with torch.no_grad():
        model.a.copy_(rbm.base_fields_from_data(spins))
    pcd = rbm.ContrastiveDivergence(
        model, k=1, persistent=True, chains=100, generator=torch.Generator(dev).manual_seed(0)
    )
    chapter = dict(epochs=30, batch_size=10, lr=0.02, optimizer="sgd", momentum=0.5, schedule="linear")
    fit(pcd, spins, **_settings(chapter, overrides))
    return model, time.perf_counter() - t0


RECIPES: dict[str, Recipe] = {
    "rbm_binary": Recipe(
        "03_energy",
        "rbm_binary_digits.pt",
        _rbm_binary,
        ("n_hidden=16", "chains=100", "batch_size=10, lr=0.02", 'optimizer="sgd", momentum=0.5', "EPOCHS = 30"),
    ),
    "arm": Recipe(
        "04_autoregressive",
        "arm_digits.pt",
        _arm,
        ("channels=64, kernel_size=7", "dilations=[1, 1, 2, 4], dropout=0.3", "epochs=60, lr=3e-3, weight_decay=0.3"),
    ),
    "realnvp": Recipe(
        "05_flows", "realnvp_digits.pt", _realnvp, ("DigitsFlow()", "epochs=100, batch_size=64, lr=2e-3")
    ),
    "vae": Recipe(
        "06_autoencoders",
        "vae_digits.pt",
        _vae(0),
        ("latent=16, hidden=512, layers=1", "dropout=0.5", "epochs=200", "lr=1e-3, patience=20"),
    ),
    "vae_local": Recipe("06_autoencoders", "vae_digits_local.pt", _vae(1), ("context=1",)),
    "gan": Recipe(
        "07_gans",
        "gan_digits.pt",
        _gan,
        ("latent=32, hidden=256, layers=2", "r1=1.0", "steps=15_000, batch_size=64, lr=1e-3"),
    ),
    "diffusion": Recipe(
        "08_diffusion",
        "diffusion_digits.pt",
        _diffusion,
        ("T=1000", "hidden=512", "layers=3", "dropout=0.2", 'loss="elbo"', "steps=3000", "batch_size=128"),
    ),
    "transformer": Recipe(
        "09_transformers",
        "transformer_digits.pt",
        _transformer,
        ("dim=64, heads=4, layers=2", "dropout=0.1, tie=False", "epochs=30, batch_size=32, lr=3e-3"),
    ),
}


def train(name: str, *, device: torch.device | str | None = None, **fit_overrides) -> tuple[nn.Module, float]:
    """Train the model ``name`` (a key of :data:`RECIPES`) with its chapter's recipe, after
    ``genbook.seed(0)``, on ``device`` (default :func:`genbook.device`): ``(model in eval mode,
    training seconds)``. ``fit_overrides`` replace the recipe's :func:`genbook.fit` settings
    (``epochs=5`` for a quick run; ``steps`` replaces ``epochs`` and the reverse)."""
    check_choice("name", name, list(RECIPES))
    seed(0)
    model, seconds = RECIPES[name].build(
        torch.device(device) if device is not None else default_device(), **fit_overrides
    )
    return model.eval(), float(seconds)


def load_or_train(
    name: str, models_dir: str | Path = "_build/models", *, device: torch.device | str | None = None
) -> tuple[nn.Module, dict]:
    """The model ``name`` and its saved ``meta``: loaded from ``models_dir / RECIPES[name].file`` when
    that file exists, else trained with :func:`train` and saved there first (with
    ``meta={"train_seconds": ...}``). The model comes back on ``device`` (default :func:`genbook.device`),
    in eval mode."""
    check_choice("name", name, list(RECIPES))
    dev = torch.device(device) if device is not None else default_device()
    path = Path(models_dir) / RECIPES[name].file
    if not path.exists():
        model, seconds = train(name, device=dev)
        path.parent.mkdir(parents=True, exist_ok=True)
        save(model, path, meta={"train_seconds": seconds})
    return load(path).to(dev).eval(), load_meta(path)


# ------------------------------------------------------------------ baselines fitted by counting
def _best(models: list[nn.Module], val: torch.Tensor) -> nn.Module:
    return min(models, key=lambda m: float(nll_values(m, val).mean()))


def fit_baselines(train: torch.Tensor, val: torch.Tensor, *, levels: int = 17) -> dict[str, nn.Module]:
    """The three baselines that are fitted by counting, each with its settings chosen on ``val``:

    - ``"independent"``: one categorical per pixel (:class:`CategoricalMixture` with one component),
      pseudo-count ``alpha`` from 0.03, 0.1, 0.3, 1;
    - ``"mixture"``: a mixture of categoricals fitted by EM (chapter 1), 5, 10, 20 or 40 components and
      ``alpha`` from 0.1, 0.3, 1, the first assignment drawn with seed 0;
    - ``"markov"``: chapter 4's Markov chain with the backoff prior, order 1, 2 or 3, ``alpha`` from
      3, 10, 30, 100, 300.

    ``train`` and ``val`` are ``LongTensor (N, 64)`` of ``levels`` levels. A few seconds on a CPU."""
    dims = train.shape[1]
    independent = [
        CategoricalMixture(components=1, levels=levels, dims=dims, alpha=a).fit(train) for a in (0.03, 0.1, 0.3, 1)
    ]
    mixtures = [
        CategoricalMixture(components=c, levels=levels, dims=dims, alpha=a).fit(
            train, generator=torch.Generator().manual_seed(0)
        )
        for c in (5, 10, 20, 40)
        for a in (0.1, 0.3, 1)
    ]
    chains = [
        MarkovChain(levels=levels, length=dims, order=k, alpha=a, prior="backoff").fit(train)
        for k in (1, 2, 3)
        for a in (3, 10, 30, 100, 300)
    ]
    return {"independent": _best(independent, val), "mixture": _best(mixtures, val), "markov": _best(chains, val)}


# ------------------------------------------------------------------ the likelihood table
@dataclass(frozen=True)
class Score:
    """One row of the likelihood table: ``model`` (a key of :data:`RECIPES` or of :func:`fit_baselines`)
    scored by :func:`genbook.metrics.nll_values` with ``bound`` and ``n_samples``; ``kind`` says what the
    number is, ``"exact"`` or ``"bound: ..."``."""

    label: str
    model: str
    bound: str | None
    n_samples: int
    kind: str

    @property
    def exact(self) -> bool:
        return self.bound is None


SCORES: dict[str, Score] = {
    "independent": Score("independent categoricals", "independent", None, 1, "exact"),
    "mixture": Score("mixture of categoricals (ch. 1's EM)", "mixture", None, 1, "exact"),
    "markov": Score("Markov chain, backoff (ch. 4)", "markov", None, 1, "exact"),
    "arm": Score("convolutional ARM (ch. 4)", "arm", None, 1, "exact"),
    "transformer": Score("transformer (ch. 9)", "transformer", None, 1, "exact"),
    "realnvp_uniform": Score("RealNVP (ch. 5)", "realnvp", "plain", 10, "bound: uniform dequantisation, 10 draws"),
    "realnvp_iw": Score(
        "RealNVP (ch. 5)", "realnvp", "importance", 100, "bound: importance-weighted dequantisation, S = 100"
    ),
    "vae_elbo": Score("VAE, factorised decoder (ch. 6)", "vae", "plain", 10, "bound: -ELBO, 10 draws"),
    "vae_iwae": Score("VAE, factorised decoder (ch. 6)", "vae", "importance", 1000, "bound: IWAE, K = 1000"),
    "vae_local_elbo": Score("VAE, local decoder (ch. 6)", "vae_local", "plain", 10, "bound: -ELBO, 10 draws"),
    "vae_local_iwae": Score("VAE, local decoder (ch. 6)", "vae_local", "importance", 1000, "bound: IWAE, K = 1000"),
    "diffusion": Score("diffusion (ch. 8)", "diffusion", "plain", 1, "bound: variational, all 1000 steps"),
}
