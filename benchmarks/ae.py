"""Chapter 6: the linear autoencoder and PCA, ICA, the linear VAE and PPCA, the digits VAE.

All numbers are ours, measured in one run of this suite on one machine.

- ``ae/digits/linear/max_angle_rad``: the largest principal angle (radians) between the
  column span of a ``LinearAutoencoder``'s decoder and scikit-learn's PCA subspace, m = 10,
  on the training digits scaled to [0, 1] and centred (the chapter's data), trained with
  ``genbook.fit`` at full batch, lr 0.01 decayed linearly to zero, for ``AE_STEPS`` steps (the
  chapter: 600 at a constant lr; at a constant lr the float32 angle wanders between 3e-7 and
  2e-5 with the step count, the decay settles it, 1e-6 seen). Goal: below 1e-4.
- ``ica/cocktail/amari_genbook`` and ``ica/cocktail/amari_fastica``: the Amari index (0 is
  perfect separation) of genbook's ``ICA(prior="extended", lr=0.2, max_iter=300)`` and of
  scikit-learn's ``FastICA`` (unit-variance whitening, ``random_state=0``, up to 1000 steps)
  on the same ``data.cocktail(2000)`` mixture, generator seed ``ICA_SEED``. Goal: both
  below 0.1, genbook's no worse than FastICA's by more than 0.02.
- ``vae/linear/elbo_gap_nats``: probabilistic PCA's maximum log-likelihood per point minus
  the exact (closed-form, ``exact_elbo``) ELBO per point of a trained linear-Gaussian VAE
  (``layers=0``, learned noise variance), on the chapter's synthetic data recipe (500 points,
  D = 5, M = 2: ``x = W z + b + 0.5 noise``, W = 1.5 x standard normal, b standard normal),
  drawn from a generator seeded 0, float64. The VAE trains with AdamW at full batch, lr 0.05
  decayed linearly, for ``LIN_STEPS`` steps (the chapter takes 2000). Non-negative by
  theory; goal below 0.01 (the chapter sees about 5e-4).
- ``vae/digits/val_neg_elbo_nats``, ``vae/digits/test_neg_elbo_nats``: -ELBO (nats per image)
  of the digits VAE on validation and test, 10 reparameterised draws for the reconstruction
  term and the KL in closed form (the chapter's estimator; draws seeded).
- ``vae/digits/test_iwae_nats``: the importance-weighted bound ``-ln (1/K) sum_k p(x, z_k) /
  q(z_k | x)`` on test with K = ``vae/digits/iwae_k`` draws (1000). Goal: at most 90.
- ``vae/digits/train_images_per_s``: training throughput of the digits recipe on the CPU,
  images per second as ``genbook.fit`` measures it (per-epoch validation included). With
  ``IW5`` an image would cost five decoder passes: the key is the recipe's speed.
- ``vae/digits/anchor/{test,val}_neg_elbo_nats``, ``.../epochs``, ``.../train_images_per_s``:
  our re-run of the anchor's VAE design (Tomczak, *Deep Generative Modeling*, code
  ``jmtomczak/intro_dgm``; see ``benchmarks/anchor_vae.py`` for the design and recipe: two
  LeakyReLU layers of 256 each way, raw levels in, 17-level categorical out, Adamax 1e-3,
  batch 64, early stopping with patience 20), seed 0, on the same split in the same run,
  evaluated with the same 10-draw estimator as ours. Its throughput is measured on the CPU.

The digits VAE (``RECIPE = LOCAL``): the chapter's network, ``VAE(dim=64, latent=16,
hidden=512, layers=1, activation="tanh", dropout=0.5)``, AdamW lr 1e-3, batch 64, trained longer
than the chapter: up to 600 epochs with patience 40 on the validation -ELBO (the chapter: 200
epochs, patience 20), best epoch kept. What we tried, seed 0 on a shared CPU, one thread
(val -ELBO / test -ELBO / test IW bound, K = 500 for the first two, else 1000):

- the chapter's factorised decoder and recipe, 100 epochs: 99.41 / 94.83 / 91.98;
- ``IW5`` (the importance-weighted bound with 5 draws as the training loss, ``VAE(train_k=5)``,
  Burda et al. 2016), 100 epochs: 101.49 / 96.87 / 92.03, no gain in the IW bound;
- ``DIGITS`` (one-draw ELBO, patience 40): best epoch 105: 99.42 / 94.82 / 91.76;
- ``MOG``, ``DIGITS`` with a learned prior, a mixture of 50 diagonal Gaussians
  (``VAE(prior="mog", components=50)``, Monte Carlo KL): 98.27 / 93.45 / 89.92 for seed 0, but
  90.46 and 91.10 test IW bound for seeds 1 and 2: the goal of 90 met by one seed in three.

``LOCAL``, the recipe in use, is ``MOG`` with the chapter's local autoregressive decoder
(``context=1``: each pixel's logits also see its left and three upper neighbours, eq.
``eq-vae-local-decoder``). Seeds 0, 1, 2 gave 92.88 / 88.78 / 85.80, 92.98 / 89.07 / 86.07 and
93.21 / 88.98 / 85.93: the goal of 90 met by every seed, by about 4 nats. With the standard
prior and the chapter's 200 epochs and patience 20, the same decoder gave test IW bounds of
88.17, 86.75 and 86.53 (the chapter's recipe is seed 0). The factorised recipes stay here to
switch to. With ``RECIPE = LOCAL`` the suite saves its model as ``_build/bench/models/ae.LOCAL.pt``
for the leaderboard (``benchmarks/leaderboard.py``).
"""

from __future__ import annotations

import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import FastICA

import genbook
from genbook import data
from genbook.linear import ICA, LinearAutoencoder, ProbabilisticPCA, amari_index, principal_angles
from genbook.vae import VAE

from ._models import BenchModel
from .anchor_vae import run_anchor

AE_M, AE_STEPS = 10, 2000
ICA_SEED = 0
LIN_STEPS = 4000
NETWORK = dict(dim=64, latent=16, hidden=512, layers=1, activation="tanh", dropout=0.5)
CHAPTER = dict(fit=dict(epochs=200, batch_size=64, lr=1e-3, patience=20))
DIGITS = dict(fit=dict(epochs=600, batch_size=64, lr=1e-3, patience=40))
IW5 = dict(network=dict(train_k=5), fit=DIGITS["fit"])
MOG = dict(network=dict(prior="mog", components=50), fit=DIGITS["fit"])
LOCAL = dict(network=dict(prior="mog", components=50, context=1), fit=DIGITS["fit"])
RECIPE = LOCAL
EVAL_DRAWS, IWAE_K = 10, 1000
SPEED_EPOCHS = 10  # CPU epochs timed when the full run was on a GPU
ANCHOR_SPEED_EPOCHS = 10


def linear_ae_angle(steps: int = AE_STEPS) -> float:
    """The largest principal angle between the trained linear autoencoder and scikit-learn's PCA."""
    x = data.digits("train").double() / 16
    x = x - x.mean(0)
    g = genbook.seed(0)
    sk = SkPCA(n_components=AE_M, svd_solver="full").fit(x.numpy())
    ae = LinearAutoencoder(dim=64, n_components=AE_M)
    genbook.fit(
        ae, x.float(), steps=steps, batch_size=x.shape[0], lr=0.01, schedule="linear", generator=g, progress=False
    )
    B = ae.decoder.weight.detach().double()
    return principal_angles(B, torch.from_numpy(sk.components_.T)).max().item()


def cocktail_amari(n: int = 2000, max_iter: int = 300) -> tuple[float, float]:
    """Amari indices of genbook's extended ICA and of FastICA on one cocktail mixture."""
    g = torch.Generator().manual_seed(ICA_SEED)
    _, A, X = data.cocktail(n, generator=g)
    ica = ICA(prior="extended", lr=0.2, max_iter=max_iter).fit(X, generator=g)
    fast = FastICA(3, whiten="unit-variance", random_state=0, max_iter=1000).fit(X.numpy())
    return amari_index(ica.components_, A), amari_index(torch.from_numpy(fast.components_), A)


def linear_vae_gap(steps: int = LIN_STEPS) -> float:
    """PPCA's maximum mean log-likelihood minus the trained linear VAE's exact mean ELBO, nats per point."""
    D, M, n = 5, 2, 500
    g = torch.Generator().manual_seed(0)
    W = 1.5 * torch.randn(D, M, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    z = torch.randn(n, M, generator=g, dtype=torch.float64)
    x = z @ W.T + b + 0.5 * torch.randn(n, D, generator=g, dtype=torch.float64)
    genbook.seed(1)
    lin = VAE(dim=D, latent=M, layers=0, decoder="gaussian").double()
    genbook.fit(lin, x, steps=steps, batch_size=n, lr=5e-2, schedule="linear", progress=False)
    ppca = ProbabilisticPCA(n_components=M).fit(x)
    with torch.no_grad():
        return ppca.log_prob(x).mean().item() - lin.exact_elbo(x).mean().item()


def train_digits_vae(recipe: dict, dev: torch.device, seed: int = 0, *, epochs: int | None = None):
    """The digits VAE trained with ``recipe`` (``epochs`` overrides its epochs); returns ``(vae, history)``."""
    train, val = data.digits("train"), data.digits("val")
    genbook.seed(seed)
    vae = VAE(**NETWORK, **recipe.get("network", {})).to(dev)
    fit_kw = dict(recipe["fit"]) if epochs is None else {**recipe["fit"], "epochs": epochs}
    hist = genbook.fit(vae, train, val=val, progress=False, **fit_kw)
    return vae, hist


def _train_local(dev: torch.device) -> tuple[VAE, float]:
    """``LOCAL``, seed 0: the VAE in eval mode and its training seconds."""
    vae, hist = train_digits_vae(LOCAL, dev)
    return vae.eval(), hist.seconds


LOCAL_MODEL = BenchModel("ae.LOCAL", {"base": NETWORK, **LOCAL}, _train_local)


def evaluate_digits_vae(vae: VAE, dev: torch.device, iwae_k: int = IWAE_K) -> dict[str, float]:
    """Validation and test -ELBO (10 draws, closed-form KL) and the test IWAE bound with ``iwae_k`` draws."""
    vae.eval()
    gen = torch.Generator(device=dev).manual_seed(1)
    out = {}
    for split in ("val", "test"):
        x = data.digits(split).to(dev)
        out[f"{split}_neg_elbo_nats"] = vae.nll_bound(x, n_samples=EVAL_DRAWS, generator=gen).mean().item()
    out["test_iwae_nats"] = vae.iw_nll_bound(data.digits("test").to(dev), n_samples=iwae_k, generator=gen).mean().item()
    out["iwae_k"] = float(iwae_k)
    return out


def run() -> dict[str, float]:
    dev, cpu = genbook.device(), torch.device("cpu")
    out = {"ae/digits/linear/max_angle_rad": linear_ae_angle()}
    out["ica/cocktail/amari_genbook"], out["ica/cocktail/amari_fastica"] = cocktail_amari()
    out["vae/linear/elbo_gap_nats"] = linear_vae_gap()

    vae, hist = train_digits_vae(RECIPE, dev)
    for key, value in evaluate_digits_vae(vae, dev).items():
        out[f"vae/digits/{key}"] = value
    if RECIPE is LOCAL:  # the leaderboard's local-decoder VAE
        LOCAL_MODEL.save(vae, hist.seconds)
    speed = hist if dev == cpu else train_digits_vae(RECIPE, cpu, epochs=SPEED_EPOCHS)[1]
    out["vae/digits/train_images_per_s"] = speed.examples_per_second

    anchor = run_anchor(seed=0, device=dev)
    for key in ("test_neg_elbo_nats", "val_neg_elbo_nats", "epochs"):
        out[f"vae/digits/anchor/{key}"] = anchor[key]
    anchor_cpu = anchor if dev == cpu else run_anchor(seed=0, device=cpu, max_epochs=ANCHOR_SPEED_EPOCHS)
    out["vae/digits/anchor/train_images_per_s"] = anchor_cpu["train_images_per_s"]
    return out
