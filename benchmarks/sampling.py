"""Chapter 2: speed of the MCMC kernels, as effective samples per second and per gradient, and of batching.

Four runs, each of 1,000 chains batched on dim 0, in float32 (torch's default dtype; on a
CPU, float64 normal draws alone cost ~6x more, see ``batched_speedup_gauss100_f64``):

- ``rwm_gauss100`` / ``mala_gauss100``: ``N(0, ill_conditioned_cov(100, 100))``, a 100-D
  Gaussian with variances log-spaced from 1 to 100 (condition number 100);
- ``rwm_banana`` / ``mala_banana``: ``banana_log_prob`` (2-D, b = 0.1, scale = 10).

Every run starts its chains at exact draws from the target, tunes one step size for all
chains during a burn-in (Robbins-Monro on log step size towards the acceptance rate the
theory calls optimal: 0.234 for RWM in 100-D, 0.3 for RWM in 2-D, 0.574 for MALA), then
holds that step size fixed for the kept steps: one ``sampling.run`` call from the burn-in's
last state, whose ``seconds`` cover exactly the kept steps (the burn-in is a loop of its own
before it; ``run`` is called with ``diagnostics=False`` and the ESS is computed after it).

ESS, per coordinate, is that of the estimate of the mean: ``C * Var_p(x_i) / E[(m_ci - mu_i)^2]``
with ``m_ci`` the mean of chain ``c`` over the kept steps. The chains are independent and
stationary from the start (exact draws), and the targets' moments are known in closed form,
so this needs no autocorrelation estimate and stays right when a run is only a few
autocorrelation times long (the slowest RWM coordinate on gauss100 has one of ~5,000 steps).
The metrics take the MINIMUM over coordinates; ``.../ess_min_rel_se`` is the relative standard
error of that coordinate's ESS (large on the banana, whose chain means are heavy-tailed).
``.../ess_min_genbook`` is ``genbook.sampling.effective_sample_size`` on the same (thinned)
samples, as a cross-check of the package's autocorrelation-based estimator.
"""

from __future__ import annotations

import functools
import math
import os
import time

import torch

import genbook
from genbook import sampling

CHAINS = 1_000
WORKERS = 2  # sampling.run(workers=...) for the batched chains on a CPU: one group per core of a 2-core laptop
BANANA_B, BANANA_SCALE = 0.1, 10.0
DTYPE = torch.float32

# name -> (kernel, target, target acceptance, first step size, burn-in steps, kept steps, thin)
# Kept steps are several autocorrelation times of the slowest coordinate, as measured
# (C * steps / ESS: RWM gauss100 ~6,000 steps, MALA gauss100 ~500, RWM banana ~4,000-6,000,
# MALA banana ~20,000-30,000, where the budget allows only ~5-7 of them). Thinning keeps
# 500-1,500 draws per chain at intervals far below those times, so the chain means lose
# nothing that matters.
RUNS = {
    "rwm_gauss100": ("rwm", "gauss100", 0.234, 0.3, 600, 40_000, 80),
    "mala_gauss100": ("mala", "gauss100", 0.574, 0.3, 600, 10_000, 20),
    "rwm_banana": ("rwm", "banana", 0.30, 2.0, 600, 150_000, 100),
    "mala_banana": ("mala", "banana", 0.574, 0.5, 600, 150_000, 150),
}
KERNELS = {"rwm": sampling.RandomWalkMetropolis, "mala": sampling.MALA}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _target(name: str, dev: torch.device, dtype: torch.dtype = DTYPE):
    """``(log_prob, exact_draw(n, generator), mean (D,), variance (D,))`` of a named target."""
    if name == "gauss100":
        cov = sampling.ill_conditioned_cov(100, 100.0, dtype=dtype).to(dev)
        mean = torch.zeros(100, dtype=dtype, device=dev)
        chol = torch.linalg.cholesky(cov)

        def draw(n, g):
            return mean + torch.randn(n, 100, generator=g, dtype=dtype, device=dev) @ chol.T

        return sampling.gaussian_target(mean, cov), draw, mean, cov.diagonal()
    if name == "banana":
        b, s = BANANA_B, BANANA_SCALE

        def draw(n, g):  # x1 ~ N(0, s^2), x2 = y2 - b (x1^2 - s^2), y2 ~ N(0, 1)
            z = torch.randn(n, 2, generator=g, dtype=dtype, device=dev)
            x1 = s * z[:, 0]
            return torch.stack([x1, z[:, 1] - b * (x1**2 - s**2)], 1)

        var = torch.tensor([s**2, 1 + 2 * b**2 * s**4], dtype=dtype, device=dev)  # banana_log_prob's docstring
        return (
            functools.partial(sampling.banana_log_prob, b=b, scale=s),
            draw,
            torch.zeros(2, dtype=dtype, device=dev),
            var,
        )
    raise ValueError(name)


def _tune(kernel_cls, log_prob, x0, generator, target_acc, step_size, steps):
    """Burn-in from ``x0``: adapt one step size for all chains for 2/3 of ``steps``, then hold it.

    Returns the step size and the last state's positions. The adaptation only looks at the
    mean acceptance over 1,000 chains, so it barely depends on any one chain, and every
    kernel along the way leaves the target invariant: chains started at exact draws stay so.
    """
    adapt = 2 * steps // 3
    state = kernel_cls(log_prob, step_size=step_size, generator=generator).init(x0)
    with torch.no_grad():
        for t in range(steps):
            kernel = kernel_cls(log_prob, step_size=step_size, generator=generator)
            state, info = kernel.step(state)
            if t < adapt:
                acc = float(info.accepted.float().mean())
                step_size *= math.exp(2.0 * (acc - target_acc) / math.sqrt(t + 1))
    return step_size, state.x


def _ess_known_moments(
    samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESS per coordinate of the pooled mean from C independent stationary chains, ``(S, C, D) -> (D,)``,
    and its relative standard error ``(D,)`` (that of the mean over chains of the squared errors)."""
    sq = (samples.double().mean(0) - mean.double()) ** 2  # (C, D): (m_c - mu)^2, mean Var p / ESS per chain
    C = sq.shape[0]
    return C * var.double() / sq.mean(0), sq.std(0) / sq.mean(0) / math.sqrt(C)


def _ess_genbook(samples: torch.Tensor, block: int = 10) -> torch.Tensor:
    # per coordinate, so a few coordinates at a time to bound the FFT's memory
    return torch.cat(
        [sampling.effective_sample_size(samples[:, :, j : j + block]) for j in range(0, samples.shape[2], block)]
    )


def _ess_run(name: str, dev: torch.device, seed: int) -> dict[str, float]:
    kname, tname, target_acc, h0, burn_in, kept, thin = RUNS[name]
    kernel_cls = KERNELS[kname]
    log_prob, draw, mean, var = _target(tname, dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    x0 = draw(CHAINS, g)
    step_size, x_burned = _tune(kernel_cls, log_prob, x0, g, target_acc, h0, burn_in)
    # the kept steps: one run() call from the burn-in's last state; RunResult.seconds times
    # only these steps (init is before the clock, diagnostics are off and computed below)
    res = sampling.run(
        kernel_cls(log_prob, step_size=step_size, generator=g), x_burned, kept, thin=thin, diagnostics=False
    )
    ess_all, rel_se = _ess_known_moments(res.samples, mean, var)
    worst = int(ess_all.argmin())
    ess = ess_all[worst].item()
    # "gradient evaluation" = one evaluation of log p (and, for MALA, its gradient) for one
    # chain: each step costs C of them. RWM evaluates only log p, once per chain per step, and
    # is counted the same way, so ess_per_grad compares the two kernels per target evaluation.
    evaluations = CHAINS * kept
    p = f"sampling/{name}"
    return {
        f"{p}/ess_per_s": ess / res.seconds,
        f"{p}/ess_per_grad": ess / evaluations,
        f"{p}/ess_min": ess,
        f"{p}/ess_min_rel_se": rel_se[worst].item(),
        f"{p}/ess_min_genbook": _ess_genbook(res.samples).min().item(),
        f"{p}/step_size": step_size,
        f"{p}/acceptance": res.acceptance_rate,
        f"{p}/kept_steps": float(kept),
        f"{p}/sampling_seconds": res.seconds,
    }


def _chain_steps_per_s(kernel, x0: torch.Tensor, steps: int, warmup: int) -> float:
    state = kernel.init(x0)
    with torch.no_grad():
        for _ in range(warmup):
            state, _ = kernel.step(state)
        _sync(x0.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            state, _ = kernel.step(state)
        _sync(x0.device)
        return x0.shape[0] * steps / (time.perf_counter() - t0)


def _run_steps_per_s(kernel, x0: torch.Tensor, steps: int, workers: int) -> float:
    """Chain-steps per second of ``sampling.run`` keeping one state (its ``seconds`` include ``init``)."""
    res = sampling.run(kernel, x0, steps, thin=steps, diagnostics=False, workers=workers)
    return x0.shape[0] * steps / res.seconds


def _speedup(tname: str, step_size: float, dev: torch.device, dtype: torch.dtype, batched_steps: int, repeats: int = 7):
    """(batched, batched over workers, single) chain-steps per second of RWM, each the median of
    ``repeats`` interleaved timings.

    Batched: one ``kernel.step`` on a ``(1000, D)`` state; over workers: ``sampling.run`` with
    ``workers=WORKERS`` on a CPU (the 1000 chains in groups stepped side by side, one thread
    each); single: a ``(1, D)`` state stepped in a Python loop, the same kernel, target and
    step size, ~the same wall time per timing.
    """
    log_prob, draw, _, _ = _target(tname, dev, dtype)
    g = torch.Generator(device=dev).manual_seed(1)
    kernel = sampling.RandomWalkMetropolis(log_prob, step_size=step_size, generator=g)
    xb, x1 = draw(CHAINS, g), draw(1, g)
    # calibrate the single-chain loop to take about as long as the batched one
    t_b = CHAINS * batched_steps / _chain_steps_per_s(kernel, xb, batched_steps, warmup=20)
    single_steps = max(500, int(t_b * _chain_steps_per_s(kernel, x1, 500, warmup=100)))
    workers = WORKERS if dev.type == "cpu" else 1
    batched, spread, single = [], [], []
    for _ in range(repeats):
        batched.append(_chain_steps_per_s(kernel, xb, batched_steps, warmup=5))
        spread.append(_run_steps_per_s(kernel, xb, batched_steps, workers))
        single.append(_chain_steps_per_s(kernel, x1, single_steps, warmup=50))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return med(batched), med(spread), med(single)


def run() -> dict[str, float]:
    t_start = time.perf_counter()
    dev = genbook.device()
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.8 * (os.cpu_count() or 1) / 2:
        # with 2 cores, one other busy process slowed the batched (2-thread) steps 3-30x in testing
        print(f"    warning: load average {os.getloadavg()[0]:.1f} at the start; the timings share the CPU", flush=True)
    out: dict[str, float] = {}
    for i, name in enumerate(RUNS):
        t0 = time.perf_counter()
        out.update(_ess_run(name, dev, seed=100 + i))
        print(f"    {name}: {time.perf_counter() - t0:.1f} s", flush=True)

    # Batching. Headline sampling/batched_speedup: RWM on gauss100 in float32 (the ESS runs'
    # setting), at the tuned step size. Also the banana (2-D: per-chain work is tiny, so this is
    # nearly all per-step overhead amortised) and gauss100 in float64 (ill_conditioned_cov's default).
    # On a 2-core CPU the gauss100 ratio is bound by the normal draws: 1000 x 100 of them take
    # ~0.24 ms in float32 (~1.5 ms in float64), against ~25-60 us for a whole single-chain step,
    # and torch's CPU generator is serial, so in one group of 1000 chains one core waits while
    # the other draws. So each target is timed two ways: ``..._one_group``, a single (1000, D)
    # batch with torch's default threads, and ``..._groups``, the chains spread over WORKERS
    # groups stepped side by side (sampling.run(workers=2), one thread and one generator each).
    # ``batched_speedup{key}`` is the faster of the two, the choice a user would make: groups
    # win when the per-chain work is large (gauss100), one group when per-step overhead
    # dominates (the 2-D banana, where threads contend for Python's GIL).
    h_gauss, h_banana = out["sampling/rwm_gauss100/step_size"], out["sampling/rwm_banana/step_size"]
    for key, tname, h, dtype, steps in (
        ("", "gauss100", h_gauss, torch.float32, 300),
        ("_banana", "banana", h_banana, torch.float32, 2_000),
        ("_gauss100_f64", "gauss100", h_gauss, torch.float64, 100),
    ):
        batched, spread, single = _speedup(tname, h, dev, dtype, steps)
        out[f"sampling/batched_speedup{key}"] = max(batched, spread) / single
        out[f"sampling/batched_speedup{key}_one_group"] = batched / single
        out[f"sampling/batched_speedup{key}_groups"] = spread / single
        out[f"sampling/batched{key}_chain_steps_per_s"] = max(batched, spread)
        out[f"sampling/single{key}_chain_steps_per_s"] = single
    out["sampling/seconds"] = time.perf_counter() - t_start
    return out
