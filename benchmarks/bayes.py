"""Chapter 1: agreement with scikit-learn on the chapter's own problems, at larger sizes too."""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.linear_model import Lasso
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import genbook
from genbook import bayes, data, mixture


def run() -> dict[str, float]:
    out = {}
    g = genbook.seed(0)
    # lasso: the chapter's problem and a larger one
    for n, d in ((100, 20), (2000, 200)):
        X, z, _ = data.sparse_regression(n, d, n_informative=d // 5, generator=g)
        t0 = time.perf_counter()
        ours = bayes.LassoMAP(lam=20.0).fit(X, z)
        seconds = time.perf_counter() - t0
        sk = Lasso(alpha=ours.sklearn_alpha(n), tol=1e-12, max_iter=100_000).fit(X.numpy(), z.numpy())
        out[f"bayes/lasso_n{n}_d{d}/max_coef_gap"] = float(np.abs(ours.coef_.numpy() - sk.coef_).max())
        out[f"bayes/lasso_n{n}_d{d}/seconds"] = seconds
    # Gaussian mixture on 8 Gaussians from the same start
    toy = data.toy("8gaussians")
    x = toy.sample(20_000, generator=g).double()
    C = 8
    means0 = x[torch.randperm(len(x), generator=g)[:C]]
    covs0 = torch.cov(x.T).repeat(C, 1, 1)
    w0 = torch.full((C,), 1.0 / C, dtype=torch.float64)
    t0 = time.perf_counter()
    gm = mixture.GaussianMixture(n_components=C, tol=1e-10, max_iter=1000).fit(
        x, means_init=means0, covariances_init=covs0, weights_init=w0
    )
    out["bayes/gmm8/em_seconds"] = time.perf_counter() - t0
    sk = SkGaussianMixture(
        C,
        tol=1e-10,
        max_iter=1000,
        means_init=means0.numpy(),
        weights_init=w0.numpy(),
        precisions_init=np.linalg.inv(covs0.numpy()),
    ).fit(x.numpy())
    out["bayes/gmm8/loglik_gap_nats"] = abs(gm.score(x) - float(sk.score(x.numpy())))
    out["bayes/gmm8/mean_loglik_nats"] = gm.score(x)
    out["bayes/gmm8/true_neg_entropy_nats"] = -toy.entropy(200_000, generator=g)[0]
    return out
