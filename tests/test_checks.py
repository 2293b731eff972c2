"""genbook._checks: the argument checks every module uses, and their one form of error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbook._checks import (
    check_bool,
    check_choice,
    check_finite,
    check_float,
    check_int,
    check_points,
    check_sequences,
    check_spins,
    check_tensor,
    describe,
)


# ---------------------------------------------------------------- check_int
@pytest.mark.parametrize(
    "value, kw", [(1, {}), (7, {}), (0, dict(min=0)), (5, dict(min=2, max=5)), (None, dict(optional=True))]
)
def test_check_int_returns_what_passes(value, kw):
    assert check_int("n", value, **kw) is value


@pytest.mark.parametrize(
    "value, kw, message",
    [
        (True, {}, "steps must be an int >= 1, got True (bool)"),
        (False, dict(min=0), "steps must be an int >= 0, got False (bool)"),
        (0, {}, "steps must be an int >= 1, got 0 (int)"),
        (2.0, {}, "steps must be an int >= 1, got 2.0 (float)"),
        ("3", {}, "steps must be an int >= 1, got '3' (str)"),
        (None, {}, "steps must be an int >= 1, got None (NoneType)"),
        (6, dict(min=2, max=5), "steps must be an int in 2..5, got 6 (int)"),
        (1, dict(min=2, max=5), "steps must be an int in 2..5, got 1 (int)"),
        (0, dict(optional=True), "steps must be an int >= 1 or None, got 0 (int)"),
    ],
)
def test_check_int_refuses_with_name_expectation_and_what_came(value, kw, message):
    with pytest.raises(ValueError) as err:
        check_int("steps", value, **kw)
    assert str(err.value) == message


def test_check_int_refuses_numpy_integers():
    # only Python ints: a numpy integer would end up in a model's saved config()
    with pytest.raises(ValueError, match=r"^steps must be an int >= 1, got .*3.* \(int64\)$"):
        check_int("steps", np.int64(3))


# ---------------------------------------------------------------- check_float
@pytest.mark.parametrize("value", [1, 0.5, np.float64(0.25)])
def test_check_float_accepts_ints_and_numpy_floats_and_returns_a_float(value):
    out = check_float("x", value, gt=0)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value", [True, False, math.nan, math.inf, -math.inf, "0.1", None, torch.tensor(0.5), [0.5]])
def test_check_float_refuses_bool_nan_inf_and_non_numbers(value):
    with pytest.raises(ValueError, match=r"^x must be a finite number, got "):
        check_float("x", value)


@pytest.mark.parametrize(
    "kw, inside, outside, text",
    [
        (dict(ge=0, lt=1), [0, 0.0, 0.999], [1, 1.0, -1e-12], "in [0, 1)"),
        (dict(gt=0, le=1), [1e-12, 1], [0, 1.0000001], "in (0, 1]"),
        (dict(gt=0, lt=0.5), [0.25], [0, 0.5], "in (0, 0.5)"),
        (dict(ge=0, le=1), [0, 1], [-0.1, 1.1], "in [0, 1]"),
        (dict(gt=0), [1e-300, 1e300], [0, -1], "> 0"),
        (dict(ge=1), [1, 2.5], [0.999], ">= 1"),
        (dict(lt=2), [-5, 1.999], [2], "< 2"),
        (dict(le=2), [2], [2.001], "<= 2"),
    ],
)
def test_check_float_interval_ends_open_and_closed(kw, inside, outside, text):
    for v in inside:
        assert check_float("lr", v, **kw) == v
    for v in outside:
        with pytest.raises(ValueError) as err:
            check_float("lr", v, **kw)
        assert str(err.value) == f"lr must be a finite number {text}, got {v!r} ({type(v).__name__})"


def test_check_float_optional_accepts_none_and_says_so():
    assert check_float("grad_clip", None, gt=0, optional=True) is None
    with pytest.raises(ValueError, match=r"^grad_clip must be a finite number > 0 or None, got 0 \(int\)$"):
        check_float("grad_clip", 0, gt=0, optional=True)


# ---------------------------------------------------------------- check_bool and check_choice
def test_check_bool():
    assert check_bool("flag", True) is True and check_bool("flag", False) is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(ValueError, match=rf"^flag must be True or False, got {bad!r} "):
            check_bool("flag", bad)


@pytest.mark.parametrize(
    "choices, listed",
    [
        (("adamw",), "'adamw'"),
        (("adamw", "sgd"), "'adamw' or 'sgd'"),
        (("train", "val", "test"), "one of 'train', 'val' or 'test'"),
        (["a", "b", "c", "d"], "one of 'a', 'b', 'c' or 'd'"),
    ],
)
def test_check_choice_lists_the_allowed_names(choices, listed):
    assert check_choice("opt", choices[-1], choices) == choices[-1]
    for bad in ("ADAMW", "", None, 3):
        with pytest.raises(ValueError) as err:
            check_choice("opt", bad, choices)
        assert str(err.value) == f"opt must be {listed}, got {bad!r} ({type(bad).__name__})"


def test_check_choice_accepts_dict_keys_and_refuses_unhashable():
    table = {"relu": 1, "tanh": 2}
    assert check_choice("activation", "tanh", list(table)) == "tanh"
    with pytest.raises(ValueError, match=r"^activation must be 'relu' or 'tanh', got \['relu'\] \(list\)$"):
        check_choice("activation", ["relu"], list(table))


# ---------------------------------------------------------------- tensors
def test_describe_tensors_and_long_values():
    assert describe(torch.zeros(2, 3)) == "a tensor of shape (2, 3) and dtype torch.float32"
    long = describe(list(range(100)))
    assert long.endswith("... (list)") and len(long) < 80


@pytest.mark.parametrize(
    "x, kw, message",
    [
        (torch.zeros(3), dict(shape=("B", 2)), r"^x must be a tensor of shape \(B, 2\), got a tensor of shape \(3,\)"),
        (torch.zeros(3, 3), dict(shape=("B", 2)), r"^x must be a tensor of shape \(B, 2\), got .*\(3, 3\)"),
        ([[0.0, 1.0]], dict(shape=("B", 2)), r"^x must be a tensor of shape \(B, 2\), got \[\[0\.0, 1\.0\]\] \(list\)"),
        (
            torch.zeros(4, dtype=torch.long),
            dict(shape=("N",), dtype="float"),
            r"^x must be a floating-point tensor of shape \(N,\)",
        ),
        (torch.zeros(4), dict(shape=("N",), dtype="int"), r"^x must be an integer tensor of shape \(N,\).*float32"),
        (torch.zeros(4, dtype=torch.bool), dict(shape=("N",), dtype="int"), r"^x must be an integer tensor.*bool"),
        (torch.zeros(2, 2), dict(shape=(3, 3)), r"^x must be a tensor of shape \(3, 3\)"),
    ],
)
def test_check_tensor_refuses_shape_and_dtype(x, kw, message):
    with pytest.raises(ValueError, match=message):
        check_tensor("x", x, **kw)


def test_check_tensor_passes_matching_tensors_through():
    x = torch.zeros(5, 2, dtype=torch.int32)
    assert check_tensor("x", x, shape=("B", 2), dtype="int") is x
    assert check_tensor("x", torch.zeros(0, 2), shape=("B", 2), dtype="float").shape == (0, 2)


def test_check_finite_and_check_points():
    with pytest.raises(ValueError, match=r"^x contains NaN or infinite values$"):
        check_finite("x", torch.tensor([0.0, math.nan]))
    assert check_points("X", torch.tensor([[1, 2]]), 2).dtype == torch.float64  # integers become float64
    with pytest.raises(ValueError, match=r"^X must be a tensor of shape \(B, 2\) with B >= 1"):
        check_points("X", torch.zeros(0, 2), 2)


def test_check_sequences_range_and_dtype():
    assert check_sequences(torch.tensor([[0, 2]], dtype=torch.uint8), 3).dtype == torch.long
    with pytest.raises(ValueError, match=r"^s must hold levels 0\.\.2, found 3$"):
        check_sequences(torch.tensor([[0, 3]]), 3, name="s")
    with pytest.raises(ValueError, match=r"^s must hold integer levels 0\.\.2, got dtype torch\.float32$"):
        check_sequences(torch.zeros(1, 2), 3, name="s")


def test_check_spins():
    s = torch.tensor([[1.0, -1.0], [-1.0, -1.0]])
    assert check_spins("S", s, ("B", 2)) is s
    with pytest.raises(ValueError, match=r"^S must contain only \+1 and -1, found 0\.0 \(0/1 data\?"):
        check_spins("S", torch.tensor([[1.0, 0.0]]), ("B", 2))
    with pytest.raises(ValueError, match=r"^S must contain only \+1 and -1, found 2\.0$"):
        check_spins("S", torch.tensor([[1.0, 2.0]]), ("B", 2))
    with pytest.raises(ValueError, match=r"^S must be a tensor of shape \(B, 3\) of \+-1 spins"):
        check_spins("S", s, ("B", 3))
