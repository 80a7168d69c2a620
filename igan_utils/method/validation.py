"""The input checks of every public entry point, each rule in one place.

Attacks, evaluation, diagnosis, data conversion and the commands call these before any work, so a
mistake gets one sentence that names it (and, where one is likely, the fix) instead of a wrong
number or an error from deep inside PyTorch. Conventions checked: images are float tensors in
[0, 1] of shape (N, C, H, W); labels are integer class indices (N,) of the model's logits; radii
and step sizes are finite numbers, an L∞ radius at most 1; a model returns a logits tensor (N,
classes) and gives the same logits for the same images.
"""

from __future__ import annotations

import math
import numbers
import re

import torch
from torch import nn

from .runtime import to_model

MIN_RESAMPLES = 20  # bootstrap resamples: fewer cannot place the 2.5 % and 97.5 % percentiles apart

# RuntimeErrors that mean "these images do not fit the model's layers" (conv, linear, reshape)
_SHAPE_ERROR = re.compile(r"shape|size|mat1 and mat2|Expected .*input|must match", re.IGNORECASE)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, which must be a logits tensor (N, classes): anything else is a TypeError that
    says how to wrap the model, and a shape error inside the model a ValueError naming the image size."""
    try:
        out = model(x)
    except RuntimeError as error:
        if not _SHAPE_ERROR.search(str(error)):
            raise
        raise ValueError(f"the model cannot take images of shape {tuple(x.shape[1:])} (C, H, W): {error}. Pass "
                         f"images of the size it was built for") from None
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a logits tensor of shape (N, classes), but it returned a "
                        f"{type(out).__name__}; wrap it in a module whose forward returns only the logits, "
                        f"e.g. `def forward(self, x): return self.inner(x)[0]` (or `['logits']` for a dict)")
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise TypeError(f"the model must return logits of shape (N, classes) = ({x.shape[0]}, classes), "
                        f"got shape {tuple(out.shape)}")
    return out


def check_eps(eps, name: str = "eps", *, radius: bool = True) -> float:
    """``eps`` (a radius, or with ``radius=False`` a step size) as a float: finite, >= 0 and, for a
    radius, at most 1 (images lie in [0, 1]); else a TypeError/ValueError naming ``name``."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name} must be a number, got {eps!r} ({type(eps).__name__})")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps}")
    if radius and eps > 1:
        raise ValueError(f"{name} = {eps:g} is larger than the whole range [0, 1] of an image; for a radius "
                         f"in pixel levels divide by 255 (e.g. 8/255 = {8 / 255:.4f})")
    return float(eps)


def check_step(step, name: str) -> float:
    """A step size (``step_size``, FGSM's ``alpha``) as a float > 0: a step up the loss."""
    if not check_eps(step, name, radius=False) > 0:
        raise ValueError(f"{name} must be > 0 (a step up the loss), got {step}")
    return float(step)


def check_count(value, name: str, minimum: int = 1) -> int:
    """An integer count (steps, restarts, batch size) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_resamples(resamples) -> int:
    """Bootstrap resamples: at least :data:`MIN_RESAMPLES`, else a 95 % interval is no interval."""
    return check_count(resamples, "bootstrap resamples", MIN_RESAMPLES)


def check_layout(x, name: str = "images") -> None:
    """A 4-d tensor (N, C, H, W): else a ValueError, with the permute to use when the last axis looks
    like colour channels (N, H, W, C)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"{name} must be a tensor of shape (N, C, H, W), got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3, 4):
        raise ValueError(f"{name} have shape {tuple(x.shape)}, which looks like (N, H, W, C): images go in as "
                         f"(N, C, H, W); use .permute(0, 3, 1, 2)")


def check_pixels(x: torch.Tensor, name: str = "images") -> None:
    """Float pixels, finite and in [0, 1]: normalisation belongs inside the model."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"there are {int((~torch.isfinite(x)).sum())} NaN or infinite values in {name}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] (ε is in those units), got values in "
                         f"[{x.min().item():.3g}, {x.max().item():.3g}]; undo any normalisation and put it "
                         f"inside the model instead")


def check_label_tensor(y, n: int) -> None:
    """``y`` integer class indices of shape (n,), none negative (cross-entropy ignores label -100,
    which would count every such image as fooled)."""
    if not isinstance(y, torch.Tensor) or y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0, got {sorted(set(y[y < 0].tolist()))[:5]}")


def check_labels(y: torch.Tensor, n_classes: int) -> None:
    """Labels must index the model's ``n_classes`` logits: else a ValueError saying which do not."""
    bad = (y < 0) | (y >= n_classes)
    if bool(bad.any()):
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (the model returns {n_classes} logits), but "
                         f"{int(bad.sum())} do not, e.g. {sorted(set(y[bad].tolist()))[:5]}")


def check_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Images (N, C, H, W) float, finite, in [0, 1] and of the model's shape (when it declares
    ``input_shape``); labels integer (N,) and >= 0. Else ValueError."""
    check_layout(x, "x")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor in [0, 1], got {x.dtype} (divide uint8 images by 255)")
    check_pixels(x, "x")
    expected = getattr(model, "input_shape", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"x has per-image shape {tuple(x.shape[1:])} (C, H, W) but the model "
                         f"expects {tuple(expected)}")
    check_label_tensor(y, x.shape[0])


def check_deterministic(model: nn.Module, x: torch.Tensor) -> None:
    """Refuse a model whose logits differ between two passes over the same images ``x`` (a few, on
    the model's device, in eval mode): a robust accuracy of a randomised model needs
    expectation-over-transformation attacks, which this package does not run (AutoAttack refuses
    such models for the same reason)."""
    with torch.no_grad():
        first, second = logits_of(model, x), logits_of(model, x)
    if not torch.allclose(first, second, rtol=1e-4, atol=1e-5):
        raise ValueError("the model gives different logits for the same images on two passes (a dropout or "
                         "other random layer active in eval mode?); its robust accuracy cannot be measured "
                         "with these attacks. Make its forward pass deterministic in eval mode")


def check_judge(judge: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    """A judge of ``model``'s interpretations must take the same images ``x`` (a couple suffice) and
    return logits of as many classes as the model."""
    with torch.no_grad():
        classes = logits_of(model, *to_model(model, x)).shape[1]
        try:
            judged = logits_of(judge, *to_model(judge, x)).shape[1]
        except ValueError as error:
            raise ValueError(f"the judge does not take the diagnosed model's images: {error}") from None
    if judged != classes:
        raise ValueError(f"the judge returns {judged} logits but the model {classes}: a judge must know the "
                         f"same classes (pass a classifier of the same data, or judge='self')")


def check_module(model, name: str = "model") -> nn.Module:
    """``model`` must be an ``nn.Module`` (a TypeError naming what it is, and, for the book's
    ``TrainedModel``, to pass ``.model``)."""
    if isinstance(model, nn.Module):
        return model
    hint = " (for a trained model of the book, pass its .model)" if hasattr(model, "model") else ""
    raise TypeError(f"{name} must be a torch nn.Module, got {type(model).__name__}{hint}")
