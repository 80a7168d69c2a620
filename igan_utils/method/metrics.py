"""Image similarity measures on batches of images in [0, 1] (N, C, H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) of each pair of images: (N,) in [-1, 1], 1 = equal.

    Gaussian window (default 7×7, σ = 1.5, small enough for 28×28 digits), data range 1,
    constants (0.01)² and (0.03)²; the mean over pixels and channels of the SSIM map.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two batches of the same shape (N, C, H, W), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    w = _gaussian_window(window, sigma, a.shape[1], a.device, a.dtype)

    def blur(t):
        return F.conv2d(t, w, groups=a.shape[1])

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return score.flatten(1).mean(1)


def relative_sq_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖estimate − target‖² / ‖target‖² per sample (N,): a scale-free feature distance."""
    num = (estimate - target).flatten(1).pow(2).sum(1)
    return num / target.flatten(1).pow(2).sum(1).clamp_min(1e-12)
