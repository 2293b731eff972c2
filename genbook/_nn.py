"""Small network pieces shared by the models (private: the models are the public face)."""

from __future__ import annotations

from torch import nn


def mlp(
    n_in: int, n_out: int, hidden: int, layers: int, activation: type[nn.Module], dropout: float = 0.0
) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden``, each ``Linear``, ``activation()`` and (when
    ``dropout``) ``Dropout``, then a ``Linear`` to ``n_out``; ``layers=0`` is one linear map.
    ``(..., n_in) -> (..., n_out)``."""
    sizes = [n_in] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [nn.Linear(a, b), activation()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*mods, nn.Linear(sizes[-1], n_out))
