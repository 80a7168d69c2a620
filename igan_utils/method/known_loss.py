"""Layers whose information loss is known by construction: the test bench of an information-loss
estimator (validate a measurement where its answer is known before trusting it).

Each builder returns a *chain*: an ``nn.Module`` whose taps (``.taps``, in depth order) are each a
function of the one before, so by the data-processing inequality no tap can keep more information
about the image than the one before it; and each step is built to lose some. An estimator that is
worth trusting must rank the taps of every chain in their order, strictly.

- :func:`pooling_chain`: average (or max) pooling over ever larger windows (1, 2, 4 and 28 pixels:
  the image, two 2×2 poolings, then one number per image); max pooling makes the chain non-linear.
- :func:`projection_chain`: projection onto nested principal subspaces of decreasing rank.
- :func:`noise_chain`: Gaussian noise added on top of noise, of growing total standard deviation
  (drawn anew at every forward pass: the loss is real, not a fixed code).

:func:`check_estimator` runs an estimator over a chain and says whether it ranked the taps right.

Example:
    >>> chain = pooling_chain()
    >>> table = check_estimator(lambda taps: linear_information_loss(chain, taps, train, test),
    ...                         chain, column="linear_mse")  # doctest: +SKIP
    >>> table["monotone"].all()  # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from .data import ImageSet

__all__ = ["pooling_chain", "projection_chain", "noise_chain", "check_estimator"]


class _Chain(nn.Sequential):
    """Named steps applied in order; every step is a tap. Returns its last tap's output, flattened."""

    def __init__(self, steps: dict[str, nn.Module], kind: str):
        super().__init__()
        for name, step in steps.items():
            self.add_module(name, step)
        self.taps, self.kind = list(steps), kind

    def forward(self, x):
        return super().forward(x).flatten(1)


class _Project(nn.Module):
    """x ↦ its projection onto the span of ``basis`` (orthonormal rows), around ``mean``, kept in
    the basis's coordinates (N, rank)."""

    def __init__(self, basis: torch.Tensor, mean: torch.Tensor, previous: torch.Tensor | None):
        super().__init__()
        # coordinates in the previous basis → coordinates in this one (nested subspaces: a sub-block)
        self.register_buffer("map", basis @ (previous.T if previous is not None else torch.eye(basis.shape[1])))
        self.register_buffer("mean", mean if previous is None else torch.zeros(0))
        self.first = previous is None

    def forward(self, z):
        if self.first:
            z = z.flatten(1) - self.mean
        return z @ self.map.T


class _Noise(nn.Module):
    """z ↦ z + σ·N(0, 1), fresh noise at every call."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, z):
        return z + self.sigma * torch.randn_like(z)


def pooling_chain(kind: str = "avg") -> nn.Module:
    """``kind`` (``"avg"`` or ``"max"``) pooling of 28 × 28 images over windows of 1, 2, 4 and 28
    pixels, as a chain (``k1`` → ``k2`` → ``k4`` → ``k28``)."""
    pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}.get(kind)
    if pool is None:
        raise ValueError(f"kind must be 'avg' or 'max', got {kind!r}")
    return _Chain({"k1": nn.Identity(), "k2": pool(2), "k4": pool(2), "k28": pool(7)}, f"{kind} pooling window")


def projection_chain(train: ImageSet, ranks: Sequence[int] = (784, 100, 20, 4)) -> nn.Module:
    """Projections onto the top ``ranks`` principal components of ``train``'s images (decreasing,
    nested subspaces), as a chain ``r784`` → ``r100`` → …; the first rank may be the full dimension
    (nothing lost)."""
    ranks = list(ranks)
    if ranks != sorted(ranks, reverse=True) or len(set(ranks)) != len(ranks) or ranks[-1] < 1:
        raise ValueError(f"ranks must decrease strictly and stay >= 1, got {ranks}")
    x = train.images.flatten(1).double() / 255
    mean = x.mean(0)
    if ranks[0] > x.shape[1]:
        raise ValueError(f"rank {ranks[0]} exceeds the image's {x.shape[1]} pixels")
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=True)  # a full basis even from fewer images
    steps, previous = {}, None
    for rank in ranks:
        basis = vh[:rank].float()
        steps[f"r{rank}"] = _Project(basis, mean.float(), previous)
        previous = basis
    return _Chain(steps, "rank of the projection")


def noise_chain(sigmas: Sequence[float] = (0.0, 0.2, 0.5, 1.0)) -> nn.Module:
    """Gaussian noise of total standard deviation ``sigmas`` (increasing), as a chain ``s0`` → ``s0_2`` → …:
    each step adds the noise that brings the variance from the previous total to the next."""
    sigmas = list(sigmas)
    if sigmas != sorted(sigmas) or len(set(sigmas)) != len(sigmas) or sigmas[0] < 0:
        raise ValueError(f"sigmas must increase strictly from >= 0, got {sigmas}")
    steps, before = {}, 0.0
    for sigma in sigmas:
        steps[f"s{sigma:g}".replace(".", "_")] = _Noise((sigma ** 2 - before ** 2) ** 0.5)
        before = sigma
    return _Chain(steps, "noise standard deviation")


def check_estimator(estimate: Callable[[list[str]], pd.DataFrame], chain: nn.Module, *, column: str) -> pd.DataFrame:
    """Run ``estimate`` (taps → a table with ``tap`` and ``column``) on ``chain`` and say, per tap,
    whether the loss it found is larger than at the tap before (``rises``); ``monotone`` is whether
    every tap rose, i.e. the estimator ranked the chain in its known order."""
    found = estimate(list(chain.taps)).set_index("tap").reindex(chain.taps)[column]
    rises = found.diff().gt(0)
    rises.iloc[0] = True
    return pd.DataFrame({"chain": chain.kind, "tap": chain.taps, "position": range(len(chain.taps)),
                         column: found.to_numpy(), "rises": rises.to_numpy(), "monotone": bool(rises.all())})
