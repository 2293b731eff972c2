"""Data sets: the digits split, English text, 2-D toy densities with known log-densities, regression data,
mixed signals for ICA.

Nothing here downloads: the digits ship with scikit-learn, the text with Python itself,
everything else is generated.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from . import _random
from ._checks import check_choice, check_float, check_int, check_points, check_tensor

__all__ = [
    "DIGITS_SPLITS",
    "DIGITS_LEVELS",
    "DIGITS_THRESHOLD",
    "digits",
    "binary_digits",
    "bars_and_stripes",
    "TEXT_ALPHABET",
    "TEXT_SPLITS",
    "text",
    "encode_text",
    "decode_text",
    "CopyTask",
    "HiddenMarkov",
    "Toy2D",
    "TwoMoons",
    "EightGaussians",
    "Checkerboard",
    "TOYS",
    "toy",
    "sparse_regression",
    "cocktail",
]

DIGITS_SPLITS = {"train": (0, 1000), "val": (1000, 1350), "test": (1350, 1797)}
DIGITS_LEVELS = 17  # pixel values 0..16


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.int64), bunch.target.astype(np.int64)


def digits(split: str, *, labels: bool = False):
    """The 8x8 digits of scikit-learn as ``LongTensor (N, 64)`` with levels 0..16.

    The split follows the data set's own order (the split of the published reference
    results): the first 1000 images are ``"train"``, the next 350 ``"val"`` and the last
    447 ``"test"``. With ``labels=True`` returns ``(images, digit_labels)``.
    """
    check_choice("split", split, list(DIGITS_SPLITS))
    lo, hi = DIGITS_SPLITS[split]
    x, y = _load_digits()
    images = torch.from_numpy(x[lo:hi].copy())  # (N, 64), int64
    if labels:
        return images, torch.from_numpy(y[lo:hi].copy())
    return images


DIGITS_THRESHOLD = 8  # binarised digits: a pixel is "on" from level 8 of 0..16, half the range


def binary_digits(split: str, *, threshold: int = DIGITS_THRESHOLD) -> torch.Tensor:
    """The digits of :func:`digits` made binary: ``LongTensor (N, 64)`` of 0/1, 1 where level >= ``threshold``.

    The default threshold, 8, is the middle of the 0..16 range; 32% of the training
    pixels are then on.
    """
    check_int("threshold", threshold, min=1, max=DIGITS_LEVELS - 1)
    return (digits(split) >= threshold).long()


def bars_and_stripes(n: int = 3) -> torch.Tensor:
    """Every distinct bars-and-stripes pattern on an ``n x n`` grid: ``LongTensor (2^(n+1) - 2, n*n)`` of 0/1.

    A pattern switches on a subset of the rows (stripes) or a subset of the columns (bars);
    the empty and the full grid arise both ways and are listed once, so n = 3 gives 14
    patterns, each image flattened row by row. The data distribution is uniform over them.
    """
    check_int("n", n, max=5)  # 2^(n+1) - 2 patterns of n*n pixels
    subsets = (torch.arange(2**n)[:, None] >> torch.arange(n)) & 1  # (2^n, n): which rows/columns are on
    stripes = subsets[:, :, None].expand(-1, n, n)  # row r on -> the whole row
    bars = subsets[:, None, :].expand(-1, n, n)  # column c on -> the whole column
    patterns = torch.cat([stripes, bars]).reshape(-1, n * n)
    return torch.unique(patterns, dim=0).long()  # drops the second empty and full grids


# ---------------------------------------------------------------- text
TEXT_ALPHABET = " abcdefghijklmnopqrstuvwxyz.,"  # symbol i of a text sequence is TEXT_ALPHABET[i]
TEXT_SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


@lru_cache(maxsize=1)
def _load_text() -> str:
    import re
    from pydoc_data.topics import topics  # the Python Language Reference, shipped with the interpreter

    lines = []
    for key in sorted(topics):
        for line in topics[key].splitlines():
            s = line.strip()
            if "::=" in s or s.startswith((">>>", "...")):  # grammar rules and interactive examples
                continue
            lines.append(s)
    text = re.sub(r"[^a-z.,]+", " ", " ".join(lines).lower())
    text = re.sub(r" ?([.,])[ .,]*", r"\1 ", text)  # "word ." -> "word. ", runs of marks -> one
    return re.sub(r" +", " ", text).strip()


def text(split: str) -> torch.Tensor:
    """English prose as one ``LongTensor (N,)`` of symbols ``0 .. 28`` (see :data:`TEXT_ALPHABET`).

    The corpus is the Python Language Reference that every Python installation carries for
    ``help()`` (``pydoc_data.topics``), lower-cased, with everything but letters, ``.`` and
    ``,`` turned into single spaces and grammar rules and interactive examples left out:
    about 370,000 characters. It is split by position, without shuffling (neighbouring
    characters are not independent): the first 80% is ``"train"``, the next 10% ``"val"``
    and the last 10% ``"test"``. The exact text depends on the Python version.
    """
    check_choice("split", split, list(TEXT_SPLITS))
    full = _load_text()
    lo, hi = (int(f * len(full)) for f in TEXT_SPLITS[split])
    return encode_text(full[lo:hi])


def encode_text(s: str) -> torch.Tensor:
    """``str -> LongTensor (len(s),)`` of indices into :data:`TEXT_ALPHABET`."""
    if not isinstance(s, str):
        raise ValueError(f"s must be a str, got {type(s).__name__}")
    bad = set(s) - set(TEXT_ALPHABET)
    if bad:
        raise ValueError(f"s must use only the characters {TEXT_ALPHABET!r}, found {''.join(sorted(bad))!r}")
    lookup = {c: i for i, c in enumerate(TEXT_ALPHABET)}
    return torch.tensor([lookup[c] for c in s], dtype=torch.long)


def decode_text(x: torch.Tensor) -> str:
    """The inverse of :func:`encode_text`: ``LongTensor (N,) -> str``."""
    check_tensor("x", x, shape=("N",), dtype="int")
    if x.numel() and (x.min() < 0 or x.max() >= len(TEXT_ALPHABET)):
        raise ValueError(f"x must hold symbols 0..{len(TEXT_ALPHABET) - 1}, got {int(x.min())}..{int(x.max())}")
    return "".join(TEXT_ALPHABET[i] for i in x.tolist())


# ---------------------------------------------------------------- sequences of known entropy
class CopyTask:
    """Strings that repeat themselves: ``length`` symbols drawn independently and uniformly from
    ``0 .. symbols - 1``, then the separator ``symbols``, then the same ``length`` symbols again.

    A sequence is ``LongTensor (2 length + 1,)`` over ``vocab = symbols + 1`` symbols. Only the
    first half is random; the separator and the copy follow from it, so the entropy of a sequence
    is exactly ``length * ln(symbols)`` nats (:meth:`entropy`), and a model's cross-entropy on
    these sequences exceeds it by its KL divergence from the source. The symbol at position
    ``length + 1 + i`` equals the one ``length + 1`` positions back: a Markov chain of lower order
    cannot see it and must pay ``ln(symbols)`` again for each symbol of the copy, while attention
    can look it up.
    """

    def __init__(self, *, length: int = 8, symbols: int = 4):
        self.length = check_int("length", length)
        self.symbols = check_int("symbols", symbols, min=2)

    @property
    def vocab(self) -> int:
        """Symbols in a sequence: the alphabet and the separator."""
        return self.symbols + 1

    @property
    def separator(self) -> int:
        return self.symbols

    def entropy(self) -> float:
        """``length * ln(symbols)``: the exact entropy of a sequence in nats."""
        return self.length * math.log(self.symbols)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` sequences, ``LongTensor (n, 2 length + 1)`` on the CPU."""
        check_int("n", n)
        first = _random.randint(0, self.symbols, (n, self.length), generator)
        return torch.cat([first, torch.full((n, 1), self.separator), first], 1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The source's own ``log p(x)`` in nats, ``(B, 2 length + 1) -> (B,)``: ``-length ln(symbols)``
        for a valid sequence, ``-inf`` for any other."""
        check_tensor("x", x, shape=("B", 2 * self.length + 1), dtype="int")
        L = self.length
        first = x[:, :L]
        valid = (first >= 0).all(1) & (first < self.symbols).all(1)
        valid &= (x[:, L] == self.separator) & (x[:, L + 1 :] == first).all(1)
        return torch.full(valid.shape, -self.entropy(), dtype=torch.float64).masked_fill(~valid, -math.inf)

    def __repr__(self) -> str:
        return f"CopyTask(length={self.length}, symbols={self.symbols})"


class HiddenMarkov:
    """A hidden Markov source: a chain of hidden states ``z_t`` with ``transition[i, j] = p(z_{t+1} = j | z_t = i)``,
    each emitting a symbol with ``emission[i, k] = p(x_t = k | z_t = i)``; ``z_1`` is drawn from the
    chain's stationary distribution, so the source is stationary.

    The likelihood of a sequence is a sum over every path of hidden states, which the forward
    algorithm computes exactly in ``O(T S^2)`` (:meth:`conditionals`, :meth:`log_prob`). The
    entropy rate ``lim H(x_T | x_<T)`` has no closed form, but ``H(x_T | x_<T)`` falls to it
    (exponentially fast for a mixing chain), and :meth:`entropy_rate` estimates it from exact
    conditionals of long sampled sequences. No finite-order Markov chain reproduces the source
    exactly: a symbol depends on the whole past through the hidden state.

    ``HiddenMarkov.sticky(states, symbols, stay)`` builds one whose hidden state persists for
    ``1 / (1 - stay)`` steps on average, each state favouring its own symbols.
    """

    def __init__(self, transition: torch.Tensor, emission: torch.Tensor):
        transition, emission = torch.as_tensor(transition), torch.as_tensor(emission)
        S = transition.shape[0] if transition.ndim == 2 else -1
        check_tensor("transition", transition, shape=(S, S), dtype="float")
        check_tensor("emission", emission, shape=(S, "K"), dtype="float")
        for name, m in (("transition", transition), ("emission", emission)):
            if (m < 0).any() or not torch.allclose(m.double().sum(1), torch.ones(S, dtype=torch.float64)):
                raise ValueError(f"{name} must have non-negative rows that sum to 1, got row sums {m.sum(1).tolist()}")
        self.transition, self.emission = transition.double(), emission.double()
        evals, evecs = torch.linalg.eig(self.transition.T)  # the stationary distribution: eigenvalue 1
        pi = evecs[:, (evals - 1).abs().argmin()].real
        self.initial = pi / pi.sum()

    @classmethod
    def sticky(cls, *, states: int = 4, symbols: int = 8, stay: float = 0.9, sharpness: float = 2.0, seed: int = 0):
        """A random source whose state stays put with probability ``stay`` (else moves to another uniformly)
        and whose emissions are ``softmax(sharpness * N(0, 1))`` rows, drawn with ``seed``."""
        check_int("states", states, min=2)
        check_int("symbols", symbols, min=2)
        check_float("stay", stay, ge=0, le=1)
        check_float("sharpness", sharpness, ge=0)
        g = torch.Generator().manual_seed(check_int("seed", seed, min=0))
        transition = torch.full((states, states), (1 - stay) / (states - 1), dtype=torch.float64)
        transition.fill_diagonal_(stay)
        emission = torch.softmax(sharpness * torch.randn(states, symbols, generator=g, dtype=torch.float64), 1)
        return cls(transition, emission)

    @property
    def symbols(self) -> int:
        return self.emission.shape[1]

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` sequences, ``LongTensor (n, length)`` on the CPU."""
        check_int("n", n)
        check_int("length", length)
        z = _random.multinomial(self.initial.expand(n, -1), 1, generator).squeeze(1)
        x = torch.empty(n, length, dtype=torch.long)
        for t in range(length):
            if t:
                z = _random.multinomial(self.transition[z], 1, generator).squeeze(1)
            x[:, t] = _random.multinomial(self.emission[z], 1, generator).squeeze(1)
        return x

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_t | x_<t)`` in nats by the forward algorithm, ``(B, T) -> (B, T)`` float64."""
        check_tensor("x", x, shape=("B", "T"), dtype="int")
        if x.numel() and (x.min() < 0 or x.max() >= self.symbols):
            raise ValueError(
                f"x must hold symbols 0..{self.symbols - 1}, found {int(x[(x < 0) | (x >= self.symbols)][0])}"
            )
        belief = self.initial.expand(x.shape[0], -1)  # p(z_t | x_<t), (B, S)
        out = torch.empty(x.shape, dtype=torch.float64)
        for t in range(x.shape[1]):
            joint = belief * self.emission[:, x[:, t]].T  # p(z_t, x_t | x_<t), (B, S)
            evidence = joint.sum(1)  # p(x_t | x_<t)
            out[:, t] = evidence.log()
            belief = (joint / evidence[:, None]) @ self.transition  # p(z_{t+1} | x_<=t)
        return out

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` in nats, ``(B, T) -> (B,)`` float64: the sum of :meth:`conditionals`."""
        return self.conditionals(x).sum(1)

    def entropy_rate(
        self, *, n: int = 2000, length: int = 200, burn_in: int = 100, generator: torch.Generator | None = None
    ) -> tuple[float, float]:
        """Monte Carlo estimate of the entropy rate in nats per symbol: the mean of ``-log p(x_t | x_<t)``
        over ``n`` sampled sequences and positions ``burn_in <= t < length``. Returns ``(estimate,
        standard_error)``, the error from the spread across sequences."""
        check_int("length", length)
        check_int("burn_in", burn_in, min=0, max=length - 1)
        per_seq = -self.conditionals(self.sample(n, length, generator=generator))[:, burn_in:].mean(1)  # (n,)
        return per_seq.mean().item(), per_seq.std().item() / math.sqrt(n)

    def __repr__(self) -> str:
        return f"HiddenMarkov(states={self.transition.shape[0]}, symbols={self.symbols})"


# ---------------------------------------------------------------- 2-D toy densities
class Toy2D:
    """A 2-D density we can both sample and evaluate exactly (or to quadrature accuracy)."""

    name = "toy"

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points, ``FloatTensor (n, 2)`` on the CPU."""
        check_int("n", n)
        return self._sample(n, generator).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density in nats of points ``x`` of shape ``(B, 2)``; returns ``(B,)``."""
        check_tensor("x", x, shape=("B", 2))
        x64 = x.double()
        chunks = [self._log_prob(x64[i : i + 8192]) for i in range(0, x.shape[0], 8192)]
        return torch.cat(chunks).to(x.dtype) if chunks else x64.new_zeros(0).to(x.dtype)

    def entropy(self, n: int = 200_000, *, generator: torch.Generator | None = None) -> tuple[float, float]:
        """Monte Carlo estimate of the differential entropy ``-E[log p(x)]`` in nats.

        Returns ``(estimate, standard_error)``; subclasses with a closed form override it.
        """
        check_int("n", n)
        lp = self.log_prob(self._sample(n, generator).double())
        return float(-lp.mean()), float(lp.std() / math.sqrt(n))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class TwoMoons(Toy2D):
    """Two interleaved half circles with isotropic Gaussian noise.

    Generating process: pick a moon m in {0, 1} with probability 1/2 and an angle
    t ~ U[0, pi]; the upper moon is (cos t, sin t), the lower (1 - cos t, 1/2 - sin t);
    shift by (-1/2, -1/4) to centre the picture and add N(0, noise^2 I). The density is
    p(x) = 1/2 sum_m (1/pi) int_0^pi N(x; c_m(t), noise^2 I) dt, evaluated with
    Gauss-Legendre quadrature on 16/noise nodes per moon (64 to 1024); the integrand is
    smooth, so the error is below 1e-9 nats for noise >= 0.02.
    """

    name = "moons"

    def __init__(self, noise: float = 0.1):
        self.noise = check_float("noise", noise, gt=0)
        nodes, weights = np.polynomial.legendre.leggauss(int(min(1024, max(64, 16 / self.noise))))
        self._t = torch.tensor((nodes + 1) * math.pi / 2, dtype=torch.float64)  # nodes on [0, pi]
        self._log_w = torch.log(torch.tensor(weights / 2, dtype=torch.float64))  # U[0, pi] weights, sum 1

    def __repr__(self) -> str:
        return f"TwoMoons(noise={self.noise})"

    @staticmethod
    def _centres(t: torch.Tensor) -> torch.Tensor:  # (T,) -> (2, T, 2)
        upper = torch.stack([torch.cos(t), torch.sin(t)], -1)
        lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], -1)
        return torch.stack([upper, lower]) - torch.tensor([0.5, 0.25], dtype=t.dtype)

    def _sample(self, n, generator):
        t = _random.rand(n, generator, dtype=torch.float64) * math.pi
        moon = _random.randint(0, 2, (n,), generator)
        c = self._centres(t)[moon, torch.arange(n)]  # (n, 2)
        return c + self.noise * _random.randn((n, 2), generator, dtype=torch.float64)

    def _log_prob(self, x):
        c = self._centres(self._t).reshape(-1, 2)  # (2T, 2)
        sq = torch.cdist(x, c) ** 2  # (B, 2T)
        log_n = -sq / (2 * self.noise**2) - math.log(2 * math.pi * self.noise**2)
        return torch.logsumexp(log_n + self._log_w.repeat(2) + math.log(0.5), dim=1)


class EightGaussians(Toy2D):
    """Eight isotropic Gaussians of equal weight with centres on a circle.

    p(x) = (1/8) sum_k N(x; r (cos 2 pi k/8, sin 2 pi k/8), std^2 I), k = 0..7.
    """

    name = "8gaussians"

    def __init__(self, radius: float = 2.0, std: float = 0.2):
        self.radius, self.std = check_float("radius", radius, gt=0), check_float("std", std, gt=0)

    def centres(self) -> torch.Tensor:
        """The eight means, ``(8, 2)`` float64."""
        a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return self.radius * torch.stack([torch.cos(a), torch.sin(a)], -1)

    def _sample(self, n, generator):
        k = _random.randint(0, 8, (n,), generator)
        return self.centres()[k] + self.std * _random.randn((n, 2), generator, dtype=torch.float64)

    def mode_shares(self, points: torch.Tensor, within: float = 3.0) -> tuple[float, torch.Tensor]:
        """How samples ``points (N, 2)`` sit on the modes: the fraction within ``within`` standard
        deviations of their nearest centre, and each mode's share of all ``N`` points that way,
        ``(8,)`` float64 (a perfect sampler gives about 1/8 each for ``within=3``)."""
        points = check_points("points", points, 2).double()
        check_float("within", within, gt=0)
        dist, nearest = torch.cdist(points, self.centres()).min(1)
        near = dist < within * self.std
        share = torch.bincount(nearest[near], minlength=8).double() / len(points)
        return near.double().mean().item(), share

    def _log_prob(self, x):
        sq = torch.cdist(x, self.centres()) ** 2  # (B, 8)
        log_n = -sq / (2 * self.std**2) - math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(log_n, dim=1) - math.log(8)


class Checkerboard(Toy2D):
    """Uniform density on the 8 dark squares of a 4x4 board covering [-2, 2]^2.

    A unit square (i, j), i, j in {0..3} with corner (i - 2, j - 2), is dark when i + j
    is even. p(x) = 1/8 on the dark squares and 0 elsewhere, so the entropy is ln 8.
    """

    name = "checkerboard"

    def _sample(self, n, generator):
        cell = _random.randint(0, 8, (n,), generator)
        i = cell // 2
        j = 2 * (cell % 2) + (i % 2)  # i + j even
        corner = torch.stack([i, j], -1).double() - 2
        return corner + _random.rand((n, 2), generator, dtype=torch.float64)

    def _log_prob(self, x):
        # A point counts as inside when it lies in the closed square of a dark cell, so
        # that samples on an edge (e.g. rounded to float32) never get log p = -inf.
        u = x + 2  # board coordinates in [0, 4]
        inside = torch.zeros(x.shape[0], dtype=torch.bool)
        for di in (0, 1):
            for dj in (0, 1):
                i = torch.floor(u[:, 0]) - di
                j = torch.floor(u[:, 1]) - dj
                on_cell = (u[:, 0] <= i + 1) & (u[:, 1] <= j + 1)  # closed on the upper edges
                valid = (i >= 0) & (i <= 3) & (j >= 0) & (j <= 3)
                inside |= on_cell & valid & ((i + j) % 2 == 0)
        out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
        out[inside] = -math.log(8)
        return out

    def entropy(self, n: int = 0, *, generator=None) -> tuple[float, float]:
        """Exactly ln 8 nats (uniform on total area 8); returns ``(ln 8, 0.0)``."""
        return math.log(8), 0.0


TOYS = {cls.name: cls for cls in (TwoMoons, EightGaussians, Checkerboard)}


def toy(name: str, **kwargs) -> Toy2D:
    """A 2-D toy density by name: ``"moons"``, ``"8gaussians"`` or ``"checkerboard"``."""
    check_choice("name", name, list(TOYS))
    return TOYS[name](**kwargs)


# ---------------------------------------------------------------- regression
def sparse_regression(
    n: int,
    d: int,
    *,
    n_informative: int = 3,
    noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear regression problem whose true weights are mostly zero.

    z = x W + b + noise * eps with x ~ N(0, I_d), eps ~ N(0, 1), b = 1 and the first
    ``n_informative`` weights drawn from {-3, -2, 2, 3} (the rest exactly zero).
    Returns ``(X (n, d), z (n,), W_true (d,))`` in float64.
    """
    check_int("n", n)
    check_int("d", d)
    check_int("n_informative", n_informative, min=0, max=d)
    check_float("noise", noise, ge=0)
    w = torch.zeros(d, dtype=torch.float64)
    choices = torch.tensor([-3.0, -2.0, 2.0, 3.0], dtype=torch.float64)
    w[:n_informative] = choices[_random.randint(0, 4, (n_informative,), generator)]
    x = _random.randn((n, d), generator, dtype=torch.float64)
    z = x @ w + 1.0 + noise * _random.randn(n, generator, dtype=torch.float64)
    return x, z, w


# ---------------------------------------------------------------- mixed signals (ICA)
def cocktail(n: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A "cocktail party": three sources heard through three microphones, ``X = S A^T``.

    The sources, each of zero mean and unit variance in theory, over time steps ``t = 0 .. n - 1``:
    a sine ``sqrt(2) sin(2 pi t / 50 + phase)``, a sawtooth of period 37 spanning ``[-sqrt(3), sqrt(3)]``
    (both lighter-tailed than a Gaussian) and Laplace noise of scale ``1 / sqrt(2)`` (heavier-tailed).
    The phases and the mixing matrix are drawn with ``generator``: ``A`` has ones on its diagonal
    (each microphone nearest one speaker) and off-diagonal entries uniform in [0.1, 0.45], so each
    row's off-diagonal sum is below 1 and ``A`` is invertible.
    Returns ``(S (n, 3), A (3, 3), X (n, 3))`` in float64.
    """
    check_int("n", n)
    t = torch.arange(n, dtype=torch.float64)
    phase = _random.rand(2, generator, dtype=torch.float64)
    sine = math.sqrt(2) * torch.sin(2 * math.pi * (t / 50 + phase[0]))
    saw = math.sqrt(3) * (2 * torch.remainder(t / 37 + phase[1], 1.0) - 1)
    u = _random.rand(n, generator, dtype=torch.float64) - 0.5  # inverse CDF of the Laplace distribution
    laplace = -torch.sign(u) * torch.log1p(-2 * u.abs().clamp_max(0.5 - 2**-54)) / math.sqrt(2)
    S = torch.stack([sine, saw, laplace], 1)
    A = 0.1 + 0.35 * _random.rand((3, 3), generator, dtype=torch.float64)
    A.fill_diagonal_(1.0)
    return S, A, S @ A.T
