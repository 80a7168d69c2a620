from collections import OrderedDict

import pytest
import torch
from torch import nn

from igan_utils.method import models, taps

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
    with pytest.raises(ValueError, match="unknown pool 'median'; valid: max, avg, strided, blur, lp"):
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


@pytest.mark.parametrize("pool", ["strided", "blur", "lp"])
def test_downsampling_variants_are_drop_in_and_differentiable_at_zero(pool):
    for build, shape in ((models.small_cnn, (1, 28, 28)), (models.cifar_cnn, (3, 32, 32))):
        reference = taps.tap_shapes(build("max"), shape, models.DOWNSAMPLING_TAPS)
        assert taps.tap_shapes(build(pool), shape, models.DOWNSAMPLING_TAPS) == reference
    layer = models.small_cnn(pool).pool1
    x = torch.zeros(2, 32, 24, 24, requires_grad=True)  # all-zero windows, as after a ReLU
    layer(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_blur_pool_keeps_a_constant_map_and_lp_pool_is_the_root_mean_square():
    inside = models.BlurPool()(torch.full((1, 1, 9, 9), 0.5))[..., 1:-1, 1:-1]  # away from the zero padding
    assert torch.allclose(inside, torch.full_like(inside, 0.5))
    window = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]]])
    assert torch.allclose(models.L2Pool()(window), torch.tensor(6.25 + 1e-6).sqrt())  # mean of 9, 16, 0, 0


def test_the_lp_family_runs_from_average_to_max_pooling_in_order_of_p():
    """Power means: avg (p = 1) ≤ L2 ≤ L3 ≤ L4 ≤ L8 ≤ max on non-negative maps, so the family's order
    is known before any model is trained; the gradient stays finite on an all-zero window."""
    from igan_utils.method.models import LP_FAMILY, _pool

    x = torch.rand(4, 8, 6, 6)
    x[0, 0, :2, :2] = 0  # a window a ReLU switched off
    x.requires_grad_(True)
    outputs = [_pool(kind, 8)(x) for kind in LP_FAMILY]
    for low, high in zip(outputs, outputs[1:]):
        assert (low <= high + 1e-3).all()
    grad, = torch.autograd.grad(outputs[4].sum(), x)  # lp8
    assert torch.isfinite(grad).all()
