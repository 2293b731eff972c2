"""Random draws: one device policy for every genbook function that draws random numbers.

The policy (in the spirit of blackjax's single ``generate_gaussian_noise``):

- A draw happens on the device of the tensor it goes with (the chains it moves, the model
  whose sample it is, the data it dequantises), in that tensor's dtype unless a caller keeps
  another: noise is never drawn on one device and copied to another.
- An optional ``torch.Generator`` must live on that same device, else a ``ValueError`` names
  the argument and both devices. A CPU generator cannot drive CUDA draws (torch refuses, and
  drawing on the CPU and copying would make every step wait for a transfer); on a GPU pass
  ``torch.Generator(device=x.device)``.
- Without a generator the draw uses torch's global generator of that device (which
  :func:`genbook.seed` seeds).
- A draw with no tensor to go with (the transforms of chapter 2, the toy data sets) happens
  on the CPU.

One exception: the batch order of :func:`genbook.fit` (:func:`randperm`) is always drawn on
the CPU, with a CPU generator, and the indices are moved to the model's device. The order is
an index into the training set, not noise in the model's arithmetic; drawing it on the CPU
makes a seeded ``fit`` visit the same batches on every device.

Parameter initialisation in constructors is not a draw of this kind: like ``torch.nn`` it uses
torch's global CPU generator.

On the CPU every function here makes exactly the draw torch's function of the same name
makes with the same arguments, so seeded results do not depend on this module.
"""

from __future__ import annotations

import torch

from ._checks import describe

Shape = int | tuple[int, ...] | torch.Size

_CPU = torch.device("cpu")


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def check_generator(
    generator: torch.Generator | None, device: torch.device | str | None, *, name: str = "generator"
) -> None:
    """Raise unless ``generator`` is ``None`` or a ``torch.Generator`` on ``device`` (``None``: the CPU)."""
    if generator is None:
        return
    device = _CPU if device is None else torch.device(device)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"{name} must be a torch.Generator or None, got {describe(generator)}")
    if not _same_device(generator.device, device):
        raise ValueError(
            f"{name} is on {generator.device} but the draws it drives happen on {device}; "
            f"pass torch.Generator(device={str(device)!r})"
        )


def randn(shape: Shape, generator: torch.Generator | None = None, *, device=None, dtype=None) -> torch.Tensor:
    """Standard normal draws of ``shape`` on ``device`` (``None``: the CPU)."""
    device = _CPU if device is None else torch.device(device)
    check_generator(generator, device)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def rand(shape: Shape, generator: torch.Generator | None = None, *, device=None, dtype=None) -> torch.Tensor:
    """Uniform draws on ``[0, 1)`` of ``shape`` on ``device`` (``None``: the CPU)."""
    device = _CPU if device is None else torch.device(device)
    check_generator(generator, device)
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal draws with ``x``'s shape, device and dtype."""
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def rand_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform draws on ``[0, 1)`` with ``x``'s shape, device and dtype."""
    return rand(x.shape, generator, device=x.device, dtype=x.dtype)


def randint(
    low: int, high: int, shape: Shape, generator: torch.Generator | None = None, *, device=None
) -> torch.Tensor:
    """Integers uniform on ``low .. high - 1``, ``LongTensor`` of ``shape`` on ``device`` (``None``: the CPU)."""
    device = _CPU if device is None else torch.device(device)
    check_generator(generator, device)
    return torch.randint(low, high, shape if isinstance(shape, tuple) else (shape,), generator=generator, device=device)


def multinomial(
    probs: torch.Tensor, num_samples: int, generator: torch.Generator | None = None, *, replacement: bool = False
) -> torch.Tensor:
    """Category indices drawn with the (unnormalised) weights ``probs`` ``(K,)`` or ``(B, K)``, on
    ``probs``'s device."""
    check_generator(generator, probs.device)
    return torch.multinomial(probs, num_samples, replacement=replacement, generator=generator)


def bernoulli_spins(p_up: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Independent spins, +1 with probability ``p_up`` (elementwise) and -1 otherwise; ``p_up``'s shape,
    device and dtype."""
    u = rand_like(p_up, generator)
    return torch.where(u < p_up, 1.0, -1.0).to(p_up.dtype)


def randperm(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random order of ``0 .. n - 1`` drawn on the CPU (the batch order of ``fit``: see the module's
    docstring); ``generator`` must be a CPU generator."""
    check_generator(generator, _CPU)
    return torch.randperm(n, generator=generator)
