import random

import numpy as np
import pytest
import torch

import genbook


def test_env_cpu_returns_cpu(monkeypatch):
    monkeypatch.setenv("GENBOOK_DEVICE", "cpu")
    assert genbook.device() == torch.device("cpu")


def test_env_value_is_stripped(monkeypatch):
    monkeypatch.setenv("GENBOOK_DEVICE", "  cpu \n")
    assert genbook.device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["tpu", "gpu", "CPU", "xla:0"])
def test_invalid_env_raises_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("GENBOOK_DEVICE", value)
    with pytest.raises(ValueError, match="GENBOOK_DEVICE") as err:
        genbook.device()
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", ["cuda", "cuda:1"])
def test_env_cuda_without_cuda_raises(monkeypatch, value):
    monkeypatch.setenv("GENBOOK_DEVICE", value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA"):
        genbook.device()


def test_env_mps_without_mps_raises(monkeypatch):
    monkeypatch.setenv("GENBOOK_DEVICE", "mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS"):
        genbook.device()


def test_env_cuda_index_is_kept(monkeypatch):
    monkeypatch.setenv("GENBOOK_DEVICE", "cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert genbook.device() == torch.device("cuda", 1)


def test_auto_falls_back_to_cpu(monkeypatch):
    monkeypatch.delenv("GENBOOK_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert genbook.device() == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("GENBOOK_DEVICE", raising=False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert genbook.device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert genbook.device().type == "mps"


def _draws():
    return torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)]


def test_seed_repeats_torch_numpy_and_python_draws():
    genbook.seed(123)
    t1, n1, p1 = _draws()
    genbook.seed(123)
    t2, n2, p2 = _draws()
    assert torch.equal(t1, t2)
    np.testing.assert_array_equal(n1, n2)
    assert p1 == p2


def test_different_seeds_give_different_draws():
    genbook.seed(1)
    t1, n1, p1 = _draws()
    genbook.seed(2)
    t2, n2, p2 = _draws()
    assert not torch.equal(t1, t2)
    assert not np.array_equal(n1, n2)
    assert p1 != p2


def test_seed_returns_generator_seeded_like_global_state():
    g = genbook.seed(7)
    from_generator = torch.rand(4, generator=g)
    torch.manual_seed(7)
    assert torch.equal(from_generator, torch.rand(4))


def test_large_seed_is_accepted_by_numpy():
    genbook.seed(2**40 + 5)  # numpy only takes 32 bits; genbook reduces modulo 2**32
    a = np.random.rand(3)
    genbook.seed(2**40 + 5)
    np.testing.assert_array_equal(a, np.random.rand(3))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_bad_seed_raises(bad):
    # genbook._checks.check_int names seed's argument, n
    with pytest.raises(ValueError, match=r"^n must be an int >= 0, got"):
        genbook.seed(bad)
