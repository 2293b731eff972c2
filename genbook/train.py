"""One training loop for every gradient-trained model in the book."""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from . import _random
from . import distributed as _dist
from ._checks import check_choice, check_float, check_int
from ._device import eval_mode, model_device

__all__ = ["History", "EarlyStopping", "configure_optimizer", "get_lr", "evaluate", "fit"]

Batch = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass
class History:
    """What :func:`fit` measured: losses per step and per evaluation, timing, the best point."""

    train_loss: list[float] = field(default_factory=list)  # one per optimiser step (models with loss)
    losses: dict[str, list[float]] = field(default_factory=dict)  # models with training_step: each loss, per step
    val_loss: list[float] = field(default_factory=list)  # one per evaluation
    val_step: list[int] = field(default_factory=list)  # the step of each evaluation
    best_step: int | None = None
    best_val: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    examples_per_second: float = 0.0

    @property
    def steps(self) -> int:
        if self.train_loss or not self.losses:
            return len(self.train_loss)
        return len(next(iter(self.losses.values())))


def _as_tuple(data: Batch, name: str) -> tuple[torch.Tensor, ...]:
    parts = data if isinstance(data, tuple) else (data,)
    if not parts or not all(isinstance(p, torch.Tensor) for p in parts):
        raise TypeError(f"{name} must be a tensor or a tuple of tensors, got {type(data).__name__}")
    n = parts[0].shape[0]
    if any(p.shape[0] != n for p in parts):
        raise ValueError(f"{name}: all tensors need the same first dimension, got {[p.shape[0] for p in parts]}")
    if n == 0:
        raise ValueError(f"{name} is empty")
    for p in parts:
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    return parts


def _progress_default() -> bool:
    return os.environ.get("GENBOOK_PROGRESS", "1") not in ("0", "false", "no")


def _progress_bar():
    """tqdm's notebook bar where ipywidgets is installed, its text bar otherwise (without the warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm


@torch.no_grad()
def _loss_sum(model: nn.Module, parts: tuple[torch.Tensor, ...], batch_size: int) -> tuple[float, int]:
    """``model.loss`` summed over the examples of ``parts`` (in eval mode), and their number."""
    dev = model_device(model)
    total, n = 0.0, parts[0].shape[0]
    with eval_mode(model):
        for i in range(0, n, batch_size):
            batch = tuple(p[i : i + batch_size].to(dev) for p in parts)
            total += float(model.loss(*batch)) * batch[0].shape[0]
    return total, n


def evaluate(model: nn.Module, data: Batch, *, batch_size: int = 1024) -> float:
    """Mean of ``model.loss`` over ``data`` (batches weighted by their size)."""
    total, n = _loss_sum(model, _as_tuple(data, "data"), batch_size)
    return total / n


def configure_optimizer(
    params: list[nn.Parameter],
    *,
    optimizer: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
) -> torch.optim.Optimizer:
    """AdamW (``optimizer="adamw"``) or SGD with ``momentum`` (``"sgd"``) over ``params``, both with
    decoupled (AdamW) or L2 (SGD) ``weight_decay``; ``lr`` is the starting learning rate."""
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    # the fused kernel updates all parameters in one call instead of ~10 small ops per
    # tensor: 1.2-1.4x faster steps for the book's small models on a CPU
    fused = params[0].device.type in ("cpu", "cuda") and all(p.dtype.is_floating_point for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def get_lr(step: int, total: int, *, lr: float, schedule: str = "constant") -> float:
    """The learning rate of optimiser step ``step`` (counted from 0) of ``total``: ``lr`` throughout
    (``"constant"``), or ``lr * (1 - step / total)`` (``"linear"``), which reaches ``lr / total``
    at the last step and would be zero one step later."""
    return lr * (1 - step / total) if schedule == "linear" else lr


class EarlyStopping:
    """The bookkeeping of validation: records each evaluation in a :class:`History`, keeps a copy
    of the best parameters, and says when ``patience`` evaluations in a row brought no improvement
    (never, with ``patience=None``)."""

    def __init__(self, hist: History, patience: int | None = None):
        self.hist, self.patience = hist, patience
        self.bad_evals = 0  # evaluations since the last improvement
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, model: nn.Module, step: int, val_loss: float) -> bool:
        """Record ``val_loss`` (mean loss on the validation data) at ``step``; True means stop."""
        hist = self.hist
        hist.val_loss.append(val_loss)
        hist.val_step.append(step)
        if hist.best_val is None or val_loss < hist.best_val:
            hist.best_val, hist.best_step, self.bad_evals = val_loss, step, 0
            self.best_state = copy.deepcopy(model.state_dict())  # a copy: training goes on changing the tensors
            return False
        self.bad_evals += 1
        hist.stopped_early = self.patience is not None and self.bad_evals >= self.patience
        return hist.stopped_early

    def restore_best(self, model: nn.Module) -> None:
        """Load the best parameters seen, if there was any evaluation."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def _nonfinite_loss(
    loss: torch.Tensor | float, step: int, total: int, per_epoch: int, train_loss: list[float], name: str = "loss"
) -> FloatingPointError:
    """The error for a NaN or infinite ``loss`` (called ``name``) at ``step`` (counted from 1), with the
    last finite value of that loss."""
    return FloatingPointError(
        f"{name} became {loss.item() if isinstance(loss, torch.Tensor) else loss} at step {step} of {total} "
        f"(epoch {(step - 1) // per_epoch + 1}); last finite {name} "
        f"{train_loss[-1] if train_loss else 'none'}. Try a lower lr"
        f"{' or grad_clip' if name == 'loss' else ''}."
    )


def _record_step_losses(losses, step: int, total: int, per_epoch: int, hist: History) -> None:
    """Record the losses returned by ``training_step`` at ``step`` (counted from 1) in ``hist.losses``,
    as floats; a ``FloatingPointError`` names the first that is not finite."""
    if not isinstance(losses, dict) or not losses or not all(isinstance(k, str) for k in losses):
        raise TypeError(f"training_step must return a non-empty dict of named losses, got {type(losses).__name__}")
    values = {k: float(v) for k, v in losses.items()}
    for name, v in values.items():
        if not math.isfinite(v):
            raise _nonfinite_loss(v, step, total, per_epoch, hist.losses.get(name, []), name)
    for name, v in values.items():
        hist.losses.setdefault(name, []).append(v)


def _check_own_optimisation(model: nn.Module, val, **settings) -> None:
    """Refuse ``fit``'s optimiser settings (and ``val`` without ``model.loss``) for a model that trains
    itself through ``training_step``."""
    name = type(model).__name__
    defaults = dict(weight_decay=0.0, grad_clip=None, optimizer="adamw", momentum=0.0)
    for key, default in defaults.items():
        if settings[key] != default:
            raise ValueError(
                f"{key}={settings[key]!r} does not apply to {name}, which supplies training_step and its own "
                f"optimisers (configure_optimizers); leave {key} at {default!r}"
            )
    if val is not None and not callable(getattr(model, "loss", None)):
        raise ValueError(
            f"val needs a validation loss, and {name} (trained through training_step) defines no loss(batch); "
            f"measure it with a callback instead"
        )


class _Loss(nn.Module):
    """``model.loss`` as a module's ``forward``, so that ``DistributedDataParallel`` (which hooks
    ``forward``) synchronises its gradients. A process whose share of a batch is empty returns a
    zero that still touches every parameter, so that it joins the gradients' all-reduce."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        if batch[0].shape[0] == 0:
            return sum(p.sum() * 0.0 for p in self.model.parameters() if p.requires_grad)
        return self.model.loss(*batch)


def _all_sum(values: list[float], dev: torch.device) -> list[float]:
    """The sums of ``values`` over every process (one all-reduce)."""
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _val_loss(model: nn.Module, parts: tuple[torch.Tensor, ...], batch_size: int, distributed: bool) -> float:
    """The mean validation loss: :func:`evaluate`, or under several processes each process's share of
    the examples (every ``world_size``-th) summed and counted, then all-reduced, so that every process
    gets the same number and early stopping decides the same everywhere."""
    if not distributed:
        return evaluate(model, parts, batch_size=batch_size)
    total, n = _loss_sum(model, tuple(p[_dist.rank() :: _dist.world_size()] for p in parts), batch_size)
    total, n = _all_sum([total, float(n)], model_device(model))
    return total / n


def _shared_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """Under several processes, a CPU generator seeded alike on every process (rank 0 draws the seed),
    so that every process draws the same order of the examples each epoch; ``generator`` itself
    when given (seed it alike on every process)."""
    if generator is not None:
        return generator
    seed = [int(torch.randint(0, 2**62, (1,)))]
    torch.distributed.broadcast_object_list(seed, src=0)
    return torch.Generator().manual_seed(seed[0])


def fit(
    model: nn.Module,
    train: Batch,
    *,
    val: Batch | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    patience: int | None = None,
    eval_every: int | None = None,
    progress: bool | None = None,
    generator: torch.Generator | None = None,
    optimizer: str = "adamw",
    momentum: float = 0.0,
    schedule: str = "constant",
    callback: Callable[[int], None] | None = None,
    precision: str = "fp32",
) -> History:
    """Train ``model`` by minimising ``model.loss(*batch)`` with AdamW (or SGD).

    Give exactly one of ``epochs`` or ``steps``. ``train`` (and ``val``) is a tensor or a
    tuple of tensors sharing dim 0; batches are drawn without replacement each epoch and
    moved to the model's device. With ``val`` the validation loss is computed every
    ``eval_every`` steps (default: once per epoch); the best parameters are restored at the
    end, and training stops after ``patience`` evaluations without improvement.
    ``optimizer="sgd"`` uses plain SGD with ``momentum`` instead of AdamW (RBMs trained by
    contrastive divergence want it); ``schedule="linear"`` decays the learning rate linearly
    to zero at the last step instead of holding it constant.
    ``callback(step)``, if given, is called after every optimiser step (``step`` counts from
    1), e.g. to record a metric the loss does not show.
    Raises ``FloatingPointError`` naming the step when the loss stops being finite.
    The parts, each usable alone: :func:`configure_optimizer`, :func:`get_lr`, :class:`EarlyStopping`.

    **Mixed precision.** ``precision="bf16"`` computes the loss under ``torch.autocast`` with
    bfloat16 (on CUDA, and on CPUs whose torch supports it); parameters, optimiser state and the
    validation loss stay in float32. It applies to models with ``loss``.

    **Several processes.** Started by ``torchrun --nproc_per_node=N`` (see :mod:`genbook.distributed`),
    the same call trains with ``DistributedDataParallel``: ``batch_size`` is the global batch, each
    epoch's order of the examples is the same on every process (drawn from ``generator``, which must
    then be seeded alike everywhere, or from a seed that rank 0 draws), and each global batch is split
    into ``N`` interleaved shares without padding or duplicates. Each process's loss is weighted by its
    share of the batch, so the averaged gradient is the gradient of the global batch's mean loss and
    ``N`` processes take the same steps as one (up to floating-point rounding). Training losses and
    the validation loss are all-reduced, so ``History`` and early stopping agree on every process; the
    progress bar shows on rank 0 only, and :func:`genbook.save` writes on rank 0 only. Models with
    ``training_step`` (the GAN) train on one process only.

    **Models that train themselves.** A model without a likelihood to minimise (a GAN, with two
    networks and two optimisers) defines instead

    - ``configure_optimizers(lr) -> list[torch.optim.Optimizer]``, which ``fit`` calls once, at
      the start of every call (fresh optimiser state, as for any other model), with its ``lr``;
      the model keeps the optimisers and may give each its own learning rate (a multiple of
      ``lr``);
    - ``training_step(batch, step) -> dict[str, Tensor | float]``, which ``fit`` calls once per
      step instead of ``loss``: it computes its losses, calls ``backward`` and steps its own
      optimisers, and returns the losses by name. ``batch`` has the form of ``train`` (one
      tensor, or a tuple); ``step`` counts the steps already taken (from 0).

    Everything else stays here: the batches, the step count, the progress bar, the
    ``callback``, ``schedule`` (applied to every parameter group of every optimiser, as a
    multiple of the group's own starting learning rate), the history (``History.losses``: one
    list per returned name; ``train_loss`` stays empty) and the ``FloatingPointError`` that
    names the step and the loss that stopped being finite (checked after the step's updates,
    since the model makes them). ``weight_decay``, ``grad_clip``, ``optimizer`` and ``momentum``
    are the model's business and are refused. ``val`` needs a validation loss: it is accepted
    only if the model also defines ``loss(batch)``, which :func:`evaluate` then averages for
    early stopping as for any model; a GAN has none (its losses measure the two players
    against each other, not the model against the data), so ``fit`` refuses ``val`` for it.
    """
    if (epochs is None) == (steps is None):
        raise ValueError(f"give exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}")
    check_int("epochs", epochs, optional=True)
    check_int("steps", steps, optional=True)
    check_int("batch_size", batch_size)
    check_float("lr", lr, gt=0)
    check_float("weight_decay", weight_decay, ge=0)
    check_float("grad_clip", grad_clip, gt=0, optional=True)
    check_int("patience", patience, optional=True)
    check_int("eval_every", eval_every, optional=True)
    check_choice("optimizer", optimizer, ("adamw", "sgd"))
    check_choice("schedule", schedule, ("constant", "linear"))
    check_float("momentum", momentum, ge=0, lt=1)
    if momentum and optimizer != "sgd":
        raise ValueError(f"momentum={momentum!r} applies only to optimizer='sgd' (AdamW keeps its own moments)")
    check_choice("precision", precision, ("fp32", "bf16"))
    own_step = callable(getattr(model, "training_step", None))
    if precision == "bf16" and own_step:
        raise ValueError(
            f"precision='bf16' applies to models trained through loss; {type(model).__name__} supplies "
            f"training_step and chooses its own precision"
        )
    distributed = _dist.setup()
    if distributed and own_step:
        raise NotImplementedError(
            f"{type(model).__name__} trains itself through training_step, which genbook.fit does not "
            f"distribute; run it as one process"
        )
    if own_step:
        _check_own_optimisation(
            model, val, weight_decay=weight_decay, grad_clip=grad_clip, optimizer=optimizer, momentum=momentum
        )
    train_parts = _as_tuple(train, "train")
    val_parts = _as_tuple(val, "val") if val is not None else None
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")

    dev = params[0].device
    if precision == "bf16" and dev.type not in ("cpu", "cuda"):
        raise ValueError(f"precision='bf16' needs a CPU or CUDA model, got one on {dev}")
    n = train_parts[0].shape[0]
    per_epoch = math.ceil(n / batch_size)
    total = steps if steps is not None else epochs * per_epoch
    eval_every = eval_every or per_epoch
    show = (_progress_default() if progress is None else progress) and _dist.is_main()
    world, rank = _dist.world_size(), _dist.rank()
    if distributed:
        generator = _shared_generator(generator)
        ddp = nn.parallel.DistributedDataParallel(_Loss(model), device_ids=[dev] if dev.type == "cuda" else None)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    if own_step:
        groups = [g for o in model.configure_optimizers(lr) for g in o.param_groups]
        base_lrs = [g["lr"] for g in groups]  # the schedule scales each group's own learning rate
    else:
        opt = configure_optimizer(params, optimizer=optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum)
    hist = History()
    stopper = EarlyStopping(hist, patience)
    train_parts = tuple(p.to(dev) for p in train_parts)

    bar = _progress_bar()(total=total, disable=not show, desc=type(model).__name__, leave=False)
    t0 = time.perf_counter()
    model.train()
    step, seen = 0, 0
    try:
        while step < total:
            order = _random.randperm(n, generator).to(dev)  # on the CPU: the same batches on every device
            for i in range(0, n, batch_size):
                if step == total:
                    break
                idx = order[i : i + batch_size]
                mine = idx[rank::world] if distributed else idx  # this process's share of the global batch
                batch = tuple(p[mine] for p in train_parts)
                if own_step:
                    for group, base in zip(groups, base_lrs):  # set before the model's updates, as below
                        group["lr"] = get_lr(step, total, lr=base, schedule=schedule)
                    losses = model.training_step(batch if len(batch) > 1 else batch[0], step)
                    _record_step_losses(losses, step + 1, total, per_epoch, hist)
                else:
                    with autocast:
                        loss = ddp(*batch) if distributed else model.loss(*batch)
                    if distributed:  # the global batch's mean loss, and each share's weight in it
                        weight = mine.numel() / idx.numel()
                        shown = torch.tensor(_all_sum([loss.item() * weight], dev)[0])
                        loss = loss * (weight * world)  # DDP averages over processes: a sum of weighted shares
                    else:
                        shown = loss
                    if not torch.isfinite(shown):
                        raise _nonfinite_loss(shown, step + 1, total, per_epoch, hist.train_loss)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if grad_clip is not None:
                        nn.utils.clip_grad_norm_(params, grad_clip)
                    for group in opt.param_groups:  # set before every step: the schedule is a function of the step
                        group["lr"] = get_lr(step, total, lr=lr, schedule=schedule)
                    opt.step()
                    hist.train_loss.append(shown.item())
                step += 1
                seen += idx.numel()
                bar.update(1)
                if callback is not None:
                    callback(step)
                if val_parts is not None and (step % eval_every == 0 or step == total):
                    v = _val_loss(model, val_parts, max(batch_size, 1024), distributed)
                    shown = {} if own_step else dict(loss=f"{hist.train_loss[-1]:.4g}")
                    bar.set_postfix(**shown, val=f"{v:.4g}")
                    if stopper.update(model, step, v):
                        total = step  # ends the epoch loop as well
                        break
    finally:
        bar.close()
    stopper.restore_best(model)
    model.eval()
    hist.seconds = time.perf_counter() - t0
    hist.examples_per_second = seen / hist.seconds if hist.seconds > 0 else float("nan")
    return hist
