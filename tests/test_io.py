import pickle

import pytest
import torch
from torch import nn

import genbook
from genbook.mixture import GaussianMixture, GridLatentModel


def _fitted_mixture(gen):
    x = torch.cat([torch.randn(40, 2, generator=gen) - 2, torch.randn(40, 2, generator=gen) + 2]).double()
    return GaussianMixture(n_components=3, n_features=2, tol=1e-6).fit(x, generator=gen), x


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


def test_gaussian_mixture_round_trip(tmp_path, gen):
    model, x = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt")
    loaded = genbook.load(tmp_path / "gm.pt")
    assert type(loaded) is GaussianMixture
    assert loaded.config() == model.config()
    _assert_same_state(model, loaded)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert not torch.equal(loaded.means_, GaussianMixture(n_components=3).means_)  # the fit travelled


def test_grid_latent_model_round_trip(tmp_path):
    model = GridLatentModel(n_features=2, n_latent=16, hidden=8)
    with torch.no_grad():
        model.log_sigma.fill_(-0.5)
    genbook.save(model, str(tmp_path / "glm.pt"))  # str paths work too
    loaded = genbook.load(str(tmp_path / "glm.pt"))
    assert type(loaded) is GridLatentModel
    assert loaded.config() == dict(n_features=2, n_latent=16, hidden=8)
    _assert_same_state(model, loaded)
    x = torch.randn(10, 2)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert not loaded.training  # returned ready for evaluation


def test_load_map_location(tmp_path, gen):
    model, x = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt")
    loaded = genbook.load(tmp_path / "gm.pt", map_location="cpu")
    assert loaded.means_.device.type == "cpu"
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_saving_a_non_genbook_module_raises(tmp_path):
    with pytest.raises(TypeError, match="torch.nn.modules.linear.Linear"):
        genbook.save(nn.Linear(2, 2), tmp_path / "lin.pt")
    assert not (tmp_path / "lin.pt").exists()


@pytest.mark.parametrize("payload", [{"weights": torch.zeros(3)}, torch.zeros(3), {"format": 99}])
def test_loading_a_torch_file_that_is_not_genbook_raises(tmp_path, payload):
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a genbook model file"):
        genbook.load(tmp_path / "other.pt")


def test_loading_a_text_file_raises(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(ValueError, match="notes.pt: not a genbook model file"):
        genbook.load(tmp_path / "notes.pt")


def test_class_outside_genbook_is_refused(tmp_path):
    lin = nn.Linear(2, 2)
    payload = {
        "format": 1,
        "module": "torch.nn",
        "class": "Linear",
        "config": {"in_features": 2, "out_features": 2},
        "state_dict": lin.state_dict(),
    }
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="outside genbook"):
        genbook.load(tmp_path / "evil.pt")


def test_pickled_module_is_refused_by_weights_only(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")  # a whole pickled module
    with pytest.raises(ValueError, match="not a genbook model file") as info:
        genbook.load(tmp_path / "pickled.pt")
    # the refusal comes from torch's weights_only unpickler, not from our own checks
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert "eights only" in str(info.value.__cause__)


def test_saved_file_holds_only_plain_data(tmp_path, gen):
    model, _ = _fitted_mixture(gen)
    genbook.save(model, tmp_path / "gm.pt")
    payload = torch.load(tmp_path / "gm.pt", weights_only=True)
    assert payload["module"] == "genbook.mixture" and payload["class"] == "GaussianMixture"
    assert payload["config"] == model.config()
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())
