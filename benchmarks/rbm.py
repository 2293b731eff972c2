"""Chapter 3: RBM quality by exact likelihood, against scikit-learn, and the accuracy of AIS.

- ``rbm/bas3/kl_nats``: exact KL(p_data || q) of the slides' RBM (9 visible, 16 hidden, no
  fields) after CD-10 on the 14 bars-and-stripes patterns, the chapter's recipe (SGD, lr
  0.01 decayed linearly over 4,000 updates, batches of all 14 patterns x 10); the mean over
  ``SEEDS`` seeds, with the worst seed as ``.../kl_nats_max``; CD-1 and PCD alongside.
- ``rbm/digits16/test_nll_nats``: exact test NLL (nats per image; log Z by enumerating the
  2^16 hidden states) of a 64 x 16 RBM with fields trained by PCD on the binarised digits
  for ``EPOCHS`` epochs, the chapter's recipe; mean over seeds.
- ``rbm/digits16_sklearn/test_nll_nats``: scikit-learn's ``BernoulliRBM``, same data, hidden
  size and epochs, its learning rate chosen on the validation split from a small grid
  (its default, 0.1, is reported too), evaluated with the same exact likelihood.
- ``rbm/ais16/abs_err_nats``: |AIS log Z - exact log Z| for the trained digits RBMs
  (16 hidden units; 100 chains, 3,000 temperatures, base with the data's pixel means),
  the worst over seeds.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM

import genbook
from genbook import data, rbm

SEEDS = (0, 1, 2)
EPOCHS = 30


def _bas(dev: torch.device) -> dict[str, float]:
    bas = rbm.to_spins(data.bars_and_stripes(3)).to(dev)
    out = {}
    for name, cd_args in (("cd1", dict(k=1)), ("cd10", dict(k=10)), ("pcd", dict(k=1, persistent=True, chains=140))):
        kls, t0 = [], time.perf_counter()
        for seed in SEEDS:
            genbook.seed(seed)
            model = rbm.RBM(n_visible=9, n_hidden=16, fields=False, init_std=0.1).to(dev)
            g = torch.Generator(device=dev).manual_seed(seed)
            trainer = rbm.ContrastiveDivergence(model, generator=g, **cd_args)
            genbook.fit(
                trainer,
                bas.repeat(10, 1),
                steps=4000,
                batch_size=140,
                lr=0.01,
                optimizer="sgd",
                schedule="linear",
                progress=False,
            )
            kls.append(rbm.exact_kl(model, bas))
        key = "bas3" if name == "cd10" else f"bas3_{name}"
        out[f"rbm/{key}/kl_nats"] = float(np.mean(kls))
        out[f"rbm/{key}/kl_nats_max"] = float(np.max(kls))
        out[f"rbm/{key}/seconds_per_run"] = (time.perf_counter() - t0) / len(SEEDS)
    return out


def _nll(model: rbm.RBM, S: torch.Tensor) -> float:
    with torch.no_grad():
        return -model.log_prob(S).mean().item()


def _sklearn(tr01: torch.Tensor, lr: float, seed: int, dev: torch.device) -> rbm.RBM:
    sk = BernoulliRBM(n_components=16, learning_rate=lr, n_iter=EPOCHS, random_state=seed)
    sk.fit(tr01.numpy().astype(np.float64))
    w, c, d = (torch.from_numpy(v).float() for v in (sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_))
    return rbm.RBM.from_binary(w, c, d).to(dev)


def _digits(dev: torch.device) -> dict[str, float]:
    tr01, va01, te01 = (data.binary_digits(s) for s in ("train", "val", "test"))
    tr, va, te = (rbm.to_spins(x).to(dev) for x in (tr01, va01, te01))
    ours, sk_best, sk_default, ais_err, secs = [], [], [], [], []
    for seed in SEEDS:
        genbook.seed(seed)
        model = rbm.RBM(n_visible=64, n_hidden=16).to(dev)
        with torch.no_grad():
            model.a.copy_(rbm.base_fields_from_data(tr))
        g = torch.Generator(device=dev).manual_seed(seed)
        pcd = rbm.ContrastiveDivergence(model, k=1, persistent=True, chains=100, generator=g)
        t0 = time.perf_counter()
        genbook.fit(
            pcd,
            tr,
            epochs=EPOCHS,
            batch_size=10,
            lr=0.02,
            optimizer="sgd",
            momentum=0.5,
            schedule="linear",
            progress=False,
        )
        secs.append(time.perf_counter() - t0)
        ours.append(_nll(model, te))
        sk = {lr: _sklearn(tr01, lr, seed, dev) for lr in (0.01, 0.03, 0.1)}
        best = min(sk, key=lambda lr: _nll(sk[lr], va))
        sk_best.append(_nll(sk[best], te))
        sk_default.append(_nll(sk[0.1], te))
        with torch.no_grad():
            exact = model.log_partition().item()
        est = rbm.ais_log_partition(
            model, n_temps=3000, chains=100, base_fields=rbm.base_fields_from_data(tr), generator=g
        )
        ais_err.append(abs(est.log_Z - exact))
    return {
        "rbm/digits16/test_nll_nats": float(np.mean(ours)),
        "rbm/digits16/test_nll_nats_max": float(np.max(ours)),
        "rbm/digits16/train_seconds": float(np.mean(secs)),
        "rbm/digits16_sklearn/test_nll_nats": float(np.mean(sk_best)),
        "rbm/digits16_sklearn/test_nll_nats_min": float(np.min(sk_best)),
        "rbm/digits16_sklearn_default_lr/test_nll_nats": float(np.mean(sk_default)),
        "rbm/ais16/abs_err_nats": float(np.max(ais_err)),
    }


def run() -> dict[str, float]:
    dev = genbook.device()
    out = _bas(dev)
    out.update(_digits(dev))
    return out
