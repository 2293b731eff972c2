"""Chapter 8: the denoising diffusion model's variational bound on the three 2-D toys, against each
toy's true entropy.

All numbers are ours, from one run of this suite on one machine, seed 0. Protocol, the same for each
toy: train ``Diffusion(kind="points", dim=2, ...)`` with the toy's recipe in ``TOYS`` on ``n_train``
fresh points (data seed 0), by ``genbook.fit(..., schedule="linear")`` (the learning rate decays
linearly to 0). The recipes were chosen on a validation sample (data seed 1); the keys report a
separate held-out sample of ``HELD_OUT`` points (data seed 2). The bound is ``nll_bound`` with every
step visited, one draw of ``z_t`` per step and point (seed 3), so each point's value is an unbiased,
noisy estimate of its bound; the standard errors include that noise.

- ``diffusion/<toy>/bound_nats``: the mean over the held-out points of the bound on ``-ln p(x)``, in
  nats (a continuous density: comparable with the entropy, and it can be negative).
- ``diffusion/<toy>/gap_nats``: ``bound_nats`` minus the toy's true entropy (``data.toy(name).entropy()``:
  exactly ln 8 for the checkerboard, Monte Carlo with 200 000 points, s.e. below 0.003, for the others).
  Goal: at most 0.2 for every toy.
- ``diffusion/<toy>/gap_se``: the standard error of ``gap_nats`` (of the held-out mean; the entropy's
  own error is not added).
- ``diffusion/<toy>/exact_gap_nats``: the mean over the same points of the bound minus their exact
  ``-ln p(x)``, paired point by point. Its expectation is the same as the gap's (the bound's slack plus
  the model's ``KL(p || p_theta)``), but pairing removes the spread of ``-ln p(x)`` from its error. For
  the checkerboard, where ``-ln p(x) = ln 8`` on every point, it equals ``gap_nats``.
- ``diffusion/<toy>/exact_gap_se``: its standard error.
- ``diffusion/<toy>/train_seconds``: the wall time of ``fit``.

Measured (one CPU thread, seed 0, 10 000 held-out points): gap 0.03 +- 0.02 (moons), 0.04 +- 0.02
(eight Gaussians), 0.10 +- 0.01 (checkerboard), training 53, 52 and 107 s, the suite 264 s; the
checkerboard with model seeds 1 and 2 (4000 points): 0.10 and 0.11 +- 0.02. ``BOOK_TOY``: gap
0.08 +- 0.02 after 18 s of training. On the validation sample, the checkerboard with the default three
hidden layers gave 0.34 after 20 000 steps and 0.15 after 60 000; 256 wide with three layers 0.19
(30 000 steps); ``loss="elbo"`` 0.45 and ``variance="posterior"`` 1.23 (20 000 steps, three layers);
a batch of 1024, 0.23 (20 000 steps). Eight layers (30 000 steps) 0.12, six (50 000) 0.09.
"""

from __future__ import annotations

import math
import time

import torch

import genbook
from genbook import data
from genbook.diffusion import Diffusion

HELD_OUT = 10_000
# Ho et al.'s schedule (T = 1000, beta from 1e-4 to 0.02) and the default network made deeper: five
# hidden layers of 128 instead of three
_NET = dict(T=1000, schedule="linear", beta_1=1e-4, beta_T=0.02, hidden=128, layers=5)
TOYS = {
    "moons": dict(model=_NET, n_train=20_000, steps=30_000, batch_size=256, lr=2e-3),
    "8gaussians": dict(model=_NET, n_train=20_000, steps=30_000, batch_size=256, lr=2e-3),
    "checkerboard": dict(model=_NET, n_train=200_000, steps=60_000, batch_size=256, lr=2e-3),
}
# the chapter's short run on the eight Gaussians
BOOK_TOY = dict(model=_NET, n_train=20_000, steps=10_000, batch_size=256, lr=2e-3)


def toy_bound(
    name: str, recipe: dict, dev: torch.device, *, seed: int = 0, n_eval: int = HELD_OUT, eval_seed: int = 2
) -> dict:
    """Train the recipe on ``name`` (model seed ``seed``) and score ``n_eval`` points of data seed ``eval_seed``."""
    toy = data.toy(name)
    x = toy.sample(recipe["n_train"], generator=torch.Generator().manual_seed(0))
    genbook.seed(seed)
    model = Diffusion(kind="points", dim=2, **recipe["model"]).to(dev)
    fit_kw = {k: recipe[k] for k in ("steps", "batch_size", "lr")}
    start = time.perf_counter()
    genbook.fit(model, x, schedule="linear", progress=False, **fit_kw)
    seconds = time.perf_counter() - start
    model.eval()
    x_eval = toy.sample(n_eval, generator=torch.Generator().manual_seed(eval_seed))
    gen = torch.Generator(device=dev).manual_seed(3)
    bound = torch.cat([model.nll_bound(xb.to(dev), generator=gen)["total"].cpu() for xb in x_eval.split(2500)])
    bound = bound.double()
    slack = bound + toy.log_prob(x_eval.double())  # bound minus the exact -ln p(x), point by point
    entropy = toy.entropy(generator=torch.Generator().manual_seed(4))[0]
    n = len(bound)
    return {
        "bound_nats": bound.mean().item(),
        "gap_nats": bound.mean().item() - entropy,
        "gap_se": bound.std().item() / math.sqrt(n),
        "exact_gap_nats": slack.mean().item(),
        "exact_gap_se": slack.std().item() / math.sqrt(n),
        "train_seconds": seconds,
    }


def toys() -> dict[str, float]:
    dev = genbook.device()
    out = {}
    for name, recipe in TOYS.items():
        for key, value in toy_bound(name, recipe, dev).items():
            out[f"diffusion/{name}/{key}"] = value
    return out
