import math

import pytest
import torch

from genbook import metrics


class StandardNormal:
    """log N(x; 0, I) summed over the last dimension: a model whose NLL is known in closed form."""

    def log_prob(self, x):
        return -0.5 * (x.pow(2).sum(-1) + x.shape[-1] * math.log(2 * math.pi))


class Constant:
    def __init__(self, value):
        self.value = value

    def log_prob(self, x):
        return torch.full((x.shape[0],), self.value)


def test_nll_of_standard_normal_matches_closed_form():
    x = torch.randn(100, 3, dtype=torch.float64)
    expected = 1.5 * math.log(2 * math.pi) + 0.5 * float(x.pow(2).sum(1).mean())
    assert metrics.nll(StandardNormal(), x) == pytest.approx(expected, abs=1e-12)


def test_nll_does_not_depend_on_batch_size():
    x = torch.randn(103, 2, dtype=torch.float64)
    whole = metrics.nll(StandardNormal(), x, batch_size=1024)
    assert metrics.nll(StandardNormal(), x, batch_size=10) == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nll_refuses_nan_or_positive_inf(bad):
    with pytest.raises(FloatingPointError, match="NaN or \\+inf"):
        metrics.nll(Constant(bad), torch.zeros(4, 2))


def test_nll_of_impossible_data_is_infinite():
    assert metrics.nll(Constant(-math.inf), torch.zeros(4, 2)) == math.inf


@pytest.mark.parametrize("bad", [torch.zeros(0, 2), [[0.0, 1.0]], torch.tensor(1.0)])
def test_nll_bad_data_raises(bad):
    with pytest.raises(ValueError, match="non-empty tensor"):
        metrics.nll(StandardNormal(), bad)


def test_bits_per_dim_conversion():
    assert metrics.bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert metrics.bits_per_dim(100.0, 10) == pytest.approx(100 / (10 * math.log(2)))


def test_uniform_nll_of_digits():
    assert metrics.uniform_nll(17, 64) == pytest.approx(64 * math.log(17), abs=1e-12)
    assert metrics.uniform_nll(17, 64) == pytest.approx(181.3, abs=0.05)
    assert metrics.bits_per_dim(metrics.uniform_nll(17, 64), 64) == pytest.approx(math.log2(17))


def test_uniform_nll_of_binary_is_one_bit_per_dim():
    assert metrics.bits_per_dim(metrics.uniform_nll(2, 784), 784) == pytest.approx(1.0)


@pytest.mark.parametrize("dims", [0, -3, 2.5])
def test_bits_per_dim_bad_dims_raise(dims):
    with pytest.raises(ValueError, match="dims"):
        metrics.bits_per_dim(1.0, dims)


@pytest.mark.parametrize(
    "levels, dims, word", [(1, 64, "levels"), (2.5, 64, "levels"), (17, 0, "dims"), (17, 1.0, "dims")]
)
def test_uniform_nll_bad_args_raise(levels, dims, word):
    with pytest.raises(ValueError, match=word):
        metrics.uniform_nll(levels, dims)
