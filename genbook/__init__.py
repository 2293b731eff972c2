"""genbook: the PyTorch package behind the executable textbook on generative models.

The core contract (see the book's introduction):

- :func:`device` picks the device (``GENBOOK_DEVICE``, else CUDA, else MPS, else CPU);
- :func:`seed` seeds Python, NumPy and torch;
- a random draw happens on the device of the tensor it goes with, and a ``torch.Generator``
  passed to it must live on that device (``genbook._random`` states the policy; ``fit``'s
  batch order is drawn on the CPU);
- :func:`fit` trains any model that defines ``loss(batch)``, or ``training_step(batch, step)``
  with ``configure_optimizers(lr)`` (a GAN: two networks, two optimisers);
- :func:`save` / :func:`load` store a model as ``state_dict`` + constructor arguments.
"""

from . import data, distributed, metrics
from ._device import device, seed
from .io import load, load_meta, save
from .train import History, evaluate, fit

__version__ = "0.1.0"
__all__ = [
    "data",
    "distributed",
    "metrics",
    "device",
    "seed",
    "fit",
    "evaluate",
    "History",
    "save",
    "load",
    "load_meta",
    "__version__",
]
