from collections import OrderedDict

import pytest
import torch
from torch import nn

from igan_utils import models, taps

SMALL_SHAPES = {"conv1": (32, 26, 26), "conv2": (32, 24, 24), "pool1": (32, 12, 12), "conv3": (64, 10, 10),
                "conv4": (64, 8, 8), "pool2": (64, 4, 4), "fc1": (200,), "fc2": (200,), "logits": (10,)}


@pytest.mark.parametrize("pool", models.POOLS)
def test_small_cnn_taps_and_shapes(pool):
    model = models.small_cnn(pool)
    assert model.taps == models.TAPS
    assert taps.tap_shapes(model, (1, 28, 28)) == SMALL_SHAPES
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_cifar_cnn_taps_and_shapes():
    model = models.cifar_cnn("avg")
    shapes = taps.tap_shapes(model, (3, 32, 32))
    assert list(shapes) == list(models.TAPS)
    assert shapes["pool2"] == (128, 8, 8) and shapes["fc1"] == (256,) and shapes["logits"] == (10,)


@pytest.mark.parametrize("build", [models.small_cnn, models.cifar_cnn])
def test_max_and_avg_differ_only_in_pooling(build):
    a, b = build("max"), build("avg")
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    differing = [name for (name, m1), (_, m2) in zip(a.named_modules(), b.named_modules()) if type(m1) != type(m2)]
    assert differing == ["pool1", "pool2"]


@pytest.mark.parametrize("build", [models.small_cnn, models.cifar_cnn])
def test_one_module_instance_per_layer(build):
    model = build("max")
    leaves = [m for m in model.modules() if not list(m.children())]
    assert len(leaves) == len({id(m) for m in leaves})


def test_unknown_arch_and_pool():
    with pytest.raises(ValueError, match="unknown arch 'resnet'; valid: small_cnn, cifar_cnn"):
        models.build("resnet")
    with pytest.raises(ValueError, match="unknown pool 'median'; valid: max, avg"):
        models.small_cnn("median")


def test_load_state_names_the_mismatching_tensor():
    state = models.small_cnn().state_dict()
    state["fc1.1.weight"] = torch.zeros(200, 999)
    with pytest.raises(ValueError, match=r"tensor 'fc1.1.weight' has shape \(200, 999\) but the model expects \(200, 1024\)"):
        models.load_state(models.small_cnn(), state, "my.pt")
    with pytest.raises(ValueError, match="missing tensor 'conv1.0.weight'"):
        models.load_state(models.small_cnn(), {}, "my.pt")


class UserModel(nn.Module):
    """A model defined elsewhere, without a `taps` attribute."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(c1=nn.Conv2d(1, 4, 3), r1=nn.ReLU(), p=nn.MaxPool2d(2)))
        self.head = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def test_tap_api_works_on_any_module_given_names():
    model = UserModel()
    x = torch.rand(2, 1, 28, 28)
    acts = taps.activations(model, x, ["features.r1", "head"])
    assert list(acts) == ["features.r1", "head"] and acts["features.r1"].shape == (2, 4, 26, 26)
    logits, acts = taps.forward_with_taps(model, x, ["features.p"])
    assert torch.allclose(logits, model(x)) and acts["features.p"].shape == (2, 4, 13, 13)


def test_unknown_tap_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown tap.*'conv9'.*valid: conv1, conv2, pool1"):
        taps.activations(models.small_cnn(), torch.rand(1, 1, 28, 28), ["conv9"])
    with pytest.raises(ValueError, match="no `taps` attribute"):
        taps.tap_names(UserModel())


def test_a_module_reused_in_one_pass_is_rejected():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
    with pytest.raises(ValueError, match="refused: its module runs more than once"):
        taps.activations(model, torch.rand(1, 4), ["1"])
