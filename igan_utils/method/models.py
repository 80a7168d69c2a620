"""Classifiers of the study: ``small_cnn`` (MNIST) and ``cifar_cnn`` (CIFAR-10).

Both take images in [0, 1] (N, C, H, W) and return logits (N, 10). ``pool`` chooses the kind of
both downsampling layers (``POOLS``: max, average, 3×3 stride-2 convolution, anti-aliased max,
L2 pooling and Lp pooling with p = 3, 4, 8), each halving the map with the same output shape; nothing else differs. Each named child is one layer with its
own modules (no shared ReLU or pooling instance) and each name is a *tap*, listed in order in
``model.taps``: ``conv1, conv2, pool1, conv3, conv4, pool2, fc1, fc2, logits``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

POOLS = ("max", "avg", "strided", "blur", "lp", "lp3", "lp4", "lp8")
# Lp pooling as one knob: p = 1 is average pooling on the non-negative maps after a ReLU, p = 2 ``lp``,
# p → ∞ max pooling; the order in which the family is trained and tested (chapter 6).
LP_FAMILY = ("avg", "lp", "lp3", "lp4", "lp8", "max")
ARCHS = ("small_cnn", "cifar_cnn")
TAPS = ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "fc1", "fc2", "logits")
DOWNSAMPLING_TAPS = ("pool1", "pool2")  # the layers ``pool`` chooses

# Per-channel statistics of the CIFAR-10 training set; normalisation lives inside the model.
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """(x - mean) / std per channel, so the model itself takes images in [0, 1]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TappedCNN(nn.Sequential):
    """A sequential CNN whose named layers are the taps.

    Attributes: ``taps`` (ordered tap names), ``input_shape`` (C, H, W), ``arch``, ``pool``.
    """

    def __init__(self, layers: "OrderedDict[str, nn.Module]", *, input_shape: tuple[int, int, int],
                 arch: str, pool: str):
        super().__init__(layers)
        self.taps = tuple(name for name in layers if name in TAPS)
        self.input_shape = input_shape
        self.arch, self.pool = arch, pool


class BlurPool(nn.Module):
    """Anti-aliased max pooling (Zhang 2019): max over 2×2 windows with stride 1, then a fixed
    3×3 binomial blur ([1, 2, 1] ⊗ [1, 2, 1] / 16) with stride 2, per channel. Halves H and W."""

    def __init__(self):
        super().__init__()
        tap = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (tap[:, None] * tap[None, :] / 16).view(1, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(x, 2, stride=1)
        kernel = self.kernel.expand(x.shape[1], 1, 3, 3)
        return nn.functional.conv2d(x, kernel, stride=2, padding=1, groups=x.shape[1])


class L2Pool(nn.Module):
    """L2 pooling: the root mean square over 2×2 windows, sqrt(mean(x²) + 1e-6) (the small
    constant keeps the gradient finite where a window is all zeros, as after a ReLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (nn.functional.avg_pool2d(x * x, 2) + 1e-6).sqrt()


class PowerPool(nn.Module):
    """Lp pooling over 2×2 windows, (mean(x^p) + 10^(−3p))^(1/p), for the non-negative maps after a
    ReLU: p = 1 is average pooling, p → ∞ max pooling. The small constant, 10^(−3p), keeps the
    gradient finite where a window is all zeros and adds at most 0.001 to any output."""

    def __init__(self, p: float):
        super().__init__()
        if not p >= 1:
            raise ValueError(f"Lp pooling needs p >= 1, got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (nn.functional.avg_pool2d(x.clamp_min(0) ** self.p, 2) + 1e-3 ** self.p) ** (1 / self.p)


def _pool(kind: str, channels: int) -> nn.Module:
    """A downsampling layer of ``kind`` (one of ``POOLS``) for maps of ``channels`` channels."""
    if kind == "max":
        return nn.MaxPool2d(2)
    if kind == "avg":
        return nn.AvgPool2d(2)
    if kind == "strided":  # learned downsampling: a 3×3 convolution with stride 2, then ReLU as every conv
        return nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
    if kind == "blur":
        return BlurPool()
    if kind == "lp":
        return L2Pool()
    if kind in ("lp3", "lp4", "lp8"):
        return PowerPool(int(kind[2:]))
    raise ValueError(f"unknown pool {kind!r}; valid: {', '.join(POOLS)}")


def _conv(c_in: int, c_out: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=padding), nn.ReLU())


def small_cnn(pool: str = "max") -> TappedCNN:
    """MNIST CNN (Carlini–Wagner / Madry layout): 1×28×28 → logits (10).

    conv3×3(32), conv3×3(32), pool 2, conv3×3(64), conv3×3(64), pool 2, fc(1024→200), fc(200), fc(10);
    ReLU after every conv and hidden fc, no padding.
    """
    layers = OrderedDict(
        conv1=_conv(1, 32, 0), conv2=_conv(32, 32, 0), pool1=_pool(pool, 32),
        conv3=_conv(32, 64, 0), conv4=_conv(64, 64, 0), pool2=_pool(pool, 64),
        fc1=nn.Sequential(nn.Flatten(), nn.Linear(1024, 200), nn.ReLU()),
        fc2=nn.Sequential(nn.Linear(200, 200), nn.ReLU()),
        logits=nn.Linear(200, 10))
    return TappedCNN(layers, input_shape=(1, 28, 28), arch="small_cnn", pool=pool)


def cifar_cnn(pool: str = "max") -> TappedCNN:
    """CIFAR-10 CNN: 3×32×32 → logits (10).

    conv3×3(64)×2, pool, conv3×3(128)×2, pool, fc(8192→256), fc(256), fc(10); padding 1, ReLU,
    per-channel normalisation as the first (untapped) layer.
    """
    layers = OrderedDict(
        normalize=Normalize(_CIFAR_MEAN, _CIFAR_STD),
        conv1=_conv(3, 64, 1), conv2=_conv(64, 64, 1), pool1=_pool(pool, 64),
        conv3=_conv(64, 128, 1), conv4=_conv(128, 128, 1), pool2=_pool(pool, 128),
        fc1=nn.Sequential(nn.Flatten(), nn.Linear(128 * 8 * 8, 256), nn.ReLU()),
        fc2=nn.Sequential(nn.Linear(256, 256), nn.ReLU()),
        logits=nn.Linear(256, 10))
    return TappedCNN(layers, input_shape=(3, 32, 32), arch="cifar_cnn", pool=pool)


def build(arch: str, pool: str = "max") -> TappedCNN:
    """A fresh model by name: ``arch`` in ``ARCHS``, ``pool`` in ``POOLS``."""
    builders = {"small_cnn": small_cnn, "cifar_cnn": cifar_cnn}
    if arch not in builders:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")
    return builders[arch](pool)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """``model.load_state_dict(state)`` with an error that names each mismatching tensor."""
    expected = model.state_dict()
    problems = [f"missing tensor {k!r}" for k in expected if k not in state]
    problems += [f"unexpected tensor {k!r}" for k in state if k not in expected]
    problems += [f"tensor {k!r} has shape {tuple(state[k].shape)} but the model expects "
                 f"{tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    if problems:
        raise ValueError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model
