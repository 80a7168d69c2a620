"""Adversarial attacks on plain tensors: FGSM and PGD (L-inf and L2), and robust accuracy.

Conventions: images ``x`` are float tensors in [0, 1] of shape (N, C, H, W); labels ``y`` are int64
(N,). Attacks put the model in eval mode (and restore its mode) and take gradients with respect to the
input only (no parameter gradients are accumulated). They run where the model is
(``runtime.to_model``): inputs are moved to its device and dtype, and results come back on the device
of ``x`` (adversarial images in ``x``'s dtype). The PGD step loop has no host–device
synchronisation, and it works under CUDA autocast.

A PGD run tracks, per sample, the first iterate that fools the model, else the iterate of highest
loss, over all steps and restarts (the logits of every step's forward pass are already at hand, so
this costs no extra pass). With ``early_exit``, samples already fooled are dropped between chunks of
``check_every`` steps and between restarts: the same result for less work.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .runtime import to_model

NORMS = ("linf", "l2")


@dataclass
class AttackResult:
    """Adversarial images (N, C, H, W) in [0, 1] and per-sample success (N,) bool."""

    adv: torch.Tensor
    success: torch.Tensor


@dataclass
class RobustAccuracy:
    """Clean and robust accuracy (fractions in [0, 1]) over ``n`` images."""

    clean: float
    robust: float
    n: int
    seconds: float


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, which must be a logits tensor (N, classes); anything else is a TypeError that
    says how to wrap the model."""
    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a logits tensor of shape (N, classes), but it returned a "
                        f"{type(out).__name__}; wrap it in a module whose forward returns only the logits, "
                        f"e.g. `def forward(self, x): return self.inner(x)[0]` (or `['logits']` for a dict)")
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise TypeError(f"the model must return logits of shape (N, classes) = ({x.shape[0]}, classes), "
                        f"got shape {tuple(out.shape)}")
    return out


def check_labels(y: torch.Tensor, n_classes: int) -> None:
    """Labels must index the model's ``n_classes`` logits: else a ValueError saying which do not."""
    bad = (y < 0) | (y >= n_classes)
    if bool(bad.any()):
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (the model returns {n_classes} logits), but "
                         f"{int(bad.sum())} do not, e.g. {sorted(set(y[bad].tolist()))[:5]}")


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


def check_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Images (N, C, H, W) finite, in [0, 1] and of the model's shape; labels int (N,): else ValueError."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N, C, H, W), got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3, 4):
        raise ValueError(f"x has shape {tuple(x.shape)}, which looks like (N, H, W, C): images go in as "
                         f"(N, C, H, W); use x.permute(0, 3, 1, 2)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x contains {int((~torch.isfinite(x)).sum())} NaN or infinite values")
    expected = getattr(model, "input_shape", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"x has per-image shape {tuple(x.shape[1:])} (C, H, W) but the model "
                         f"expects {tuple(expected)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1] (normalisation belongs inside the model), got values "
                         f"in [{x.min().item():.3g}, {x.max().item():.3g}]")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],) or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},), got "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if y.numel() and int(y.min()) < 0:
        # cross-entropy ignores label -100 (loss 0), which would count every such image as fooled
        raise ValueError(f"labels must be >= 0, got {sorted(set(y[y < 0].tolist()))[:5]}")


def _check_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                  steps: int = 1, step_size: float | None = None, restarts: int = 1) -> None:
    check_eps(eps, radius=norm == "linf")  # an L2 radius may exceed 1
    check_images(model, x, y)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and not check_eps(step_size, "step_size", radius=False) > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _project(xa: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Nearest point to ``xa`` in the ε-ball around ``x`` intersected with [0, 1]."""
    delta = xa - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_sample_norm(delta)).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform noise in the ε-ball (L-inf: per pixel; L2: uniform direction and radius), drawn on the
    generator's device (so a CPU generator gives the same noise whichever device the model is on)."""
    device = generator.device if generator is not None else x.device
    if norm == "linf":
        noise = (torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype) * 2 - 1) * eps
        return noise.to(x.device)
    direction = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    radius = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), generator=generator, device=device,
                        dtype=x.dtype) * eps
    return (direction / _per_sample_norm(direction) * radius).to(x.device)


def _ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit norm for a gradient."""
    return grad.sign() if norm == "linf" else grad / _per_sample_norm(grad)


def _loss_and_fooled(model: nn.Module, xa: torch.Tensor, label: torch.Tensor, targeted: bool, check: bool = False):
    logits = logits_of(model, xa).float()  # float32 loss also under autocast
    if check:  # once per attack (a host sync): labels must index the logits
        check_labels(label, logits.shape[1])
    loss = F.cross_entropy(logits, label, reduction="none")
    pred = logits.argmax(1)
    fooled = pred == label if targeted else pred != label
    return (-loss if targeted else loss), fooled


class eval_mode:
    """Run a model in eval mode, restoring its previous mode afterwards."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


KEEP = ("first_success", "max_loss")


@dataclass
class _Best:
    """Per-sample best iterate so far: the first that fools the model, else the one of highest loss
    (``first_success``); or the one of highest loss, fooling or not (``max_loss``)."""

    adv: torch.Tensor
    success: torch.Tensor
    loss: torch.Tensor
    keep: str = "first_success"

    def record(self, xa: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor) -> None:
        """Take ``xa`` where it is better by the rule of ``keep`` (no host sync)."""
        if self.keep == "first_success":
            take = ~self.success & (fooled | (loss > self.loss))
            success = self.success | fooled
        else:
            take = loss > self.loss
            success = torch.where(take, fooled, self.success)
        self.adv = torch.where(take.view(-1, *([1] * (xa.ndim - 1))), xa, self.adv)
        self.loss = torch.where(take, loss, self.loss)
        self.success = success

    def __getitem__(self, index: torch.Tensor) -> "_Best":
        return _Best(self.adv[index], self.success[index], self.loss[index], self.keep)

    def write_back(self, idx, adv, success, best_loss) -> None:
        adv[idx], success[idx], best_loss[idx] = self.adv, self.success, self.loss


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, random_start: bool = False,
         alpha: float | None = None, targeted: bool = False,
         generator: torch.Generator | None = None) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al.), optionally from a random start (Wong et al.).

    One L-inf step of size ``alpha`` (default: ε, or 1.25ε with a random start), projected onto the
    ε-ball and [0, 1]. ``y`` holds the true labels, or the target labels when ``targeted``. Runs on
    the model's device; the result is on ``x``'s.
    """
    _check_inputs(model, x, y, eps)
    if alpha is not None and not check_eps(alpha, "alpha", radius=False) > 0:
        raise ValueError(f"alpha must be > 0 (a step up the loss), got {alpha}")
    given = x
    x, y = to_model(model, x, y)
    alpha = alpha if alpha is not None else (1.25 * eps if random_start else eps)
    with eval_mode(model):
        xa = _project(x + _random_start(x, eps, "linf", generator), x, eps, "linf") if random_start else x
        xa = xa.detach().requires_grad_(True)
        loss, _ = _loss_and_fooled(model, xa, y, targeted, check=True)
        grad, = torch.autograd.grad(loss.sum(), xa)
        adv = _project(xa.detach() + alpha * grad.sign(), x, eps, "linf")
        with torch.no_grad():
            _, success = _loss_and_fooled(model, adv, y, targeted)
    return _returned(adv, success, given)


def _returned(adv: torch.Tensor, success: torch.Tensor, given: torch.Tensor) -> AttackResult:
    """The result on the device (and the images in the dtype) of the caller's ``given`` images."""
    return AttackResult(adv.to(device=given.device, dtype=given.dtype), success.to(given.device))


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "linf",
        steps: int = 40, step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        targeted: bool = False, keep: str = "first_success", early_exit: bool = False, check_every: int = 5,
        generator: torch.Generator | None = None) -> AttackResult:
    """Projected gradient descent (Madry et al.) in L-inf or L2.

    ``step_size`` defaults to 2.5·ε/steps. ``restarts`` repeats the attack from new random starts.
    ``keep`` says which iterate a sample ends with, over all steps and restarts: ``first_success``,
    the first that fools the model (all robust accuracy needs; just across the decision boundary),
    or ``max_loss``, the one of highest loss (a confidently misclassified image, for looking at).
    ``y`` holds the true labels, or the target labels when ``targeted``. With ``early_exit``
    (``first_success`` only), fooled samples stop being attacked: the same result for less work.
    Runs on the model's device; the result is on ``x``'s.
    """
    _check_inputs(model, x, y, eps, norm, steps, step_size, restarts)
    given = x
    x, y = to_model(model, x, y)
    if keep not in KEEP:
        raise ValueError(f"unknown keep {keep!r}; valid: {', '.join(KEEP)}")
    if early_exit and keep != "first_success":
        raise ValueError("early_exit stops at the first success, so it needs keep='first_success'")
    step_size = step_size if step_size is not None else 2.5 * eps / steps
    n = x.shape[0]
    adv = x.detach().clone()
    success = torch.zeros(n, dtype=torch.bool, device=x.device)
    best_loss = torch.full((n,), -float("inf"), device=x.device)

    with eval_mode(model):
        for restart in range(restarts):
            # Noise is drawn for the whole batch, so early exit changes which samples are
            # attacked but never the noise a sample gets.
            noise = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
            idx = torch.arange(n, device=x.device)
            if early_exit:
                idx = idx[~success]
                if idx.numel() == 0:
                    break
            # Per-step bookkeeping works on the active samples' own copies; they are written back
            # to the whole batch only when the active set shrinks and after the restart.
            state = _Best(adv[idx], success[idx], best_loss[idx], keep)
            x0, label = x[idx], y[idx]
            xa = _project(x0 + noise[idx], x0, eps, norm)
            for step in range(steps):
                if early_exit and step and step % check_every == 0:
                    active = ~state.success  # one host sync per chunk, not per step
                    if not bool(active.all()):
                        state.write_back(idx, adv, success, best_loss)
                        idx, x0, label, xa, state = idx[active], x0[active], label[active], xa[active], state[active]
                        if idx.numel() == 0:
                            break
                xa = xa.detach().requires_grad_(True)
                loss, fooled = _loss_and_fooled(model, xa, label, targeted, check=not (restart or step))
                grad, = torch.autograd.grad(loss.sum(), xa)
                state.record(xa.detach(), loss.detach(), fooled)
                xa = _project(xa.detach() + step_size * _ascent(grad, norm), x0, eps, norm)
            if idx.numel():
                with torch.no_grad():
                    loss, fooled = _loss_and_fooled(model, xa, label, targeted)
                state.record(xa, loss, fooled)
                state.write_back(idx, adv, success, best_loss)
    return _returned(adv, success, given)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 40,
                    step_size: float | None = None, restarts: int = 1, norm: str = "linf",
                    random_start: bool = True, batch_size: int = 500, early_exit: bool = True, seed: int = 0,
                    progress: bool | str = False) -> RobustAccuracy:
    """Clean and PGD accuracy of ``model`` on images ``x`` (N, C, H, W) in [0, 1] with labels ``y``.

    Only correctly classified images are attacked (the others count as broken already); with
    ``early_exit`` the attack also drops images once fooled (same result, less work). ``seed`` fixes the random starts.
    ``progress`` shows a bar (a string is used as its label). Runs on the model's device.
    """
    _check_inputs(model, x, y, eps, norm, steps, step_size if eps > 0 else None, restarts)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) == 0:
        raise ValueError("no images to evaluate (x is empty)")
    x, y = to_model(model, x, y)
    start = time.perf_counter()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    robust = torch.zeros((), dtype=torch.long, device=x.device)
    bar = tqdm(range(0, len(x), batch_size), disable=not progress, leave=False,
               desc=progress if isinstance(progress, str) else f"PGD-{steps} eps={eps:.3g}")
    with eval_mode(model):
        for i in bar:
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            with torch.no_grad():
                logits = logits_of(model, xb)
            check_labels(yb, logits.shape[1])
            right = logits.argmax(1) == yb
            correct += right.sum()
            if eps == 0:
                robust += right.sum()
                continue
            xb, yb = xb[right], yb[right]  # misclassified images count as broken already
            if len(xb) == 0:
                continue
            result = pgd(model, xb, yb, eps, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
                         random_start=random_start, early_exit=early_exit, generator=generator)
            robust += (~result.success).sum()
    return RobustAccuracy(clean=correct.item() / len(x), robust=robust.item() / len(x), n=len(x),
                          seconds=time.perf_counter() - start)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels (N,) int64 of ``model`` for images ``x``, in eval mode and without gradients;
    computed on the model's device, returned on ``x``'s."""
    with eval_mode(model), torch.no_grad():
        labels = [logits_of(model, to_model(model, x[i:i + batch_size])[0]).argmax(1)
                  for i in range(0, len(x), batch_size)]
    return torch.cat(labels).to(x.device) if labels else torch.zeros(0, dtype=torch.int64, device=x.device)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` that ``model`` labels as ``y``."""
    if len(x) == 0:
        return 0.0
    return (predict(model, x, batch_size) == y.to(x.device)).float().mean().item()
