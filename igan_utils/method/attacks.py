"""Adversarial attacks on plain tensors: FGSM and PGD (L-inf and L2), and robust accuracy.

Conventions: images ``x`` are float tensors in [0, 1] of shape (N, C, H, W); labels ``y`` are int64
(N,). Attacks put the model in eval mode (and restore its mode) and take gradients with respect to the
input only (no parameter gradients are accumulated). They run where the model is
(``runtime.to_model``): inputs are moved to its device and dtype, and results come back on the device
of ``x`` (adversarial images in ``x``'s dtype). The PGD step loop has no host–device
synchronisation (on CUDA each one stalls the GPU until the host catches up), and it works under
CUDA autocast.

A PGD run tracks, per sample, the first iterate that fools the model, else the iterate of highest
loss, over all steps and restarts (the logits of every step's forward pass are already at hand, so
this costs no extra pass). With ``early_exit``, samples already fooled are dropped at the fixed
fractions :data:`EARLY_EXIT_AT` of the steps and between restarts: the same result for less work,
with a number of host syncs that does not grow with the steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .runtime import eval_mode, to_model
from .validation import (
    check_count,
    check_deterministic,
    check_eps,
    check_images,
    check_labels,
    check_step,
    logits_of,
)

NORMS = ("linf", "l2")
# Where early exit looks for fooled samples, as fractions of the steps: most images a PGD run breaks
# fall in its first steps, so the looks come early; each is one host sync, and there are never more.
EARLY_EXIT_AT = (1 / 8, 1 / 4, 1 / 2, 3 / 4)


def early_exit_steps(steps: int) -> set[int]:
    """The steps (in 1..steps-1) before which early exit drops fooled samples (:data:`EARLY_EXIT_AT`)."""
    return {s for f in EARLY_EXIT_AT if 0 < (s := round(f * steps)) < steps}


@dataclass
class AttackResult:
    """Adversarial images (N, C, H, W) in [0, 1] and per-sample success (N,) bool; with ``trace``,
    ``losses`` (iterates, N) float and ``fooled`` (iterates, N) bool of every iterate, in order."""

    adv: torch.Tensor
    success: torch.Tensor
    losses: torch.Tensor | None = None
    fooled: torch.Tensor | None = None


@dataclass
class RobustAccuracy:
    """Clean and robust accuracy (fractions in [0, 1]) over ``n`` images."""

    clean: float
    robust: float
    n: int
    seconds: float


def _check_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                  steps: int = 1, step_size: float | None = None, restarts: int = 1) -> None:
    check_eps(eps, radius=norm == "linf")  # an L2 radius may exceed 1
    check_images(model, x, y)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    check_count(steps, "steps")
    if step_size is not None:
        check_step(step_size, "step_size")
    check_count(restarts, "restarts")


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


def _step(xa: torch.Tensor, grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    """``xa`` moved ``step_size`` along the steepest ascent. In L∞ one fused add: step_size · sign(grad)
    is exact, so the result is bit for bit that of a multiply and an add."""
    if norm == "linf":
        return torch.add(xa, grad.sign(), alpha=step_size)
    return xa + step_size * _ascent(grad, norm)


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
        first_success = self.keep == "first_success"
        if first_success:
            # A fooling iterate ranks above every loss, and the one a sample keeps ranks +inf, so that
            # nothing replaces it: one comparison decides (two kernels fewer per step than the rule spelt out).
            loss = torch.where(fooled, float("inf"), loss)
        take = loss > self.loss
        success = self.success | fooled if first_success else torch.where(take, fooled, self.success)
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

    One L∞ step up the loss, projected onto the ε-ball around ``x`` and onto [0, 1].

    Args:
        model: an ``nn.Module`` returning logits (N, classes); run in eval mode, its mode restored.
        x: images (N, C, H, W), floats in [0, 1], on any device (moved to the model's).
        y: labels (N,), integers in 0..classes-1: the true labels, or the targets when ``targeted``.
        eps: the L∞ radius, in [0, 1] (e.g. 0.3 for MNIST, 8/255 for CIFAR-10).
        random_start: start from a uniform point of the ε-ball (default False).
        alpha: the step, > 0 (default: ``eps``, or 1.25·``eps`` with a random start).
        targeted: step towards ``y`` instead of away from it (default False).
        generator: a ``torch.Generator`` for the random start (default: the global one).

    Returns:
        an :class:`AttackResult`: ``adv`` (N, C, H, W) on ``x``'s device and dtype, ``success`` (N,) bool.

    Raises:
        ValueError or TypeError, before any work, for images not (N, C, H, W) in [0, 1], labels out of
        range, ``eps`` above 1 or not finite, ``alpha`` not > 0.

    Example:
        >>> result = fgsm(model, x, y, eps=0.3, random_start=True)  # doctest: +SKIP
        >>> result.success.float().mean()  # doctest: +SKIP
    """
    _check_inputs(model, x, y, eps)
    if alpha is not None:
        check_step(alpha, "alpha")
    given = x
    x, y = to_model(model, x, y)
    alpha = alpha if alpha is not None else (1.25 * eps if random_start else eps)
    with eval_mode(model):
        xa = _project(x + _random_start(x, eps, "linf", generator), x, eps, "linf") if random_start else x
        xa = xa.detach().requires_grad_(True)
        loss, _ = _loss_and_fooled(model, xa, y, targeted, check=True)
        grad, = torch.autograd.grad(loss.sum(), xa)
        adv = _project(_step(xa.detach(), grad, alpha, "linf"), x, eps, "linf")
        with torch.no_grad():
            _, success = _loss_and_fooled(model, adv, y, targeted)
    return _returned(adv, success, given)


def _returned(adv: torch.Tensor, success: torch.Tensor, given: torch.Tensor) -> AttackResult:
    """The result on the device (and the images in the dtype) of the caller's ``given`` images."""
    return AttackResult(adv.to(device=given.device, dtype=given.dtype), success.to(given.device))


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "linf",
        steps: int = 40, step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        targeted: bool = False, keep: str = "first_success", early_exit: bool = False,
        generator: torch.Generator | None = None, trace: bool = False) -> AttackResult:
    """Projected gradient descent (Madry et al.) in L∞ or L2.

    A sample ends with one iterate over all steps and restarts, chosen by ``keep``. With
    ``early_exit`` (``first_success`` only) fooled samples stop being attacked at the fixed fractions
    :data:`EARLY_EXIT_AT` of the steps and between restarts: the same result for less work.

    Args:
        model: an ``nn.Module`` returning logits (N, classes); run in eval mode, its mode restored.
        x: images (N, C, H, W), floats in [0, 1], on any device (moved to the model's).
        y: labels (N,), integers in 0..classes-1: the true labels, or the targets when ``targeted``.
        eps: the radius, in [0, 1] for L∞ (an L2 radius may exceed 1).
        norm: ``"linf"`` (default) or ``"l2"``.
        steps: gradient steps per restart, >= 1 (default 40).
        step_size: > 0 (default: 2.5·``eps``/``steps``, Madry et al.'s path length).
        random_start: start each restart from a random point of the ball (default True).
        restarts: random restarts, >= 1 (default 1).
        targeted: step towards ``y`` (default False).
        keep: ``"first_success"`` (default; the first iterate that fools the model: all robust accuracy
            needs) or ``"max_loss"`` (the iterate of highest loss, a confidently misclassified image).
        early_exit: drop fooled samples (default False; at most 4 host syncs per restart).
        generator: a ``torch.Generator`` for the random starts (default: the global one).
        trace: also return every iterate's loss and success, (restarts · (steps + 1), N), for the
            attack-failure indicators (default False; needs ``early_exit`` off).

    Returns:
        an :class:`AttackResult`: ``adv`` (N, C, H, W) on ``x``'s device and dtype, ``success`` (N,) bool.

    Raises:
        ValueError or TypeError, before any work, for images not (N, C, H, W) in [0, 1] (with a hint for
        (N, H, W, C)), labels out of range or negative, ``eps`` above 1 (with the /255 hint) or not
        finite, a non-positive step, an unknown ``norm`` or ``keep``.

    Example:
        >>> result = pgd(model, x, y, eps=0.3, steps=40, restarts=2)  # doctest: +SKIP
        >>> robust = (~result.success).float().mean()  # doctest: +SKIP
    """
    _check_inputs(model, x, y, eps, norm, steps, step_size, restarts)
    given = x
    x, y = to_model(model, x, y)
    if keep not in KEEP:
        raise ValueError(f"unknown keep {keep!r}; valid: {', '.join(KEEP)}")
    if early_exit and keep != "first_success":
        raise ValueError("early_exit stops at the first success, so it needs keep='first_success'")
    if early_exit and trace:
        raise ValueError("trace records every iterate of every sample, so it needs early_exit=False")
    losses, fooled_at = [], []
    step_size = step_size if step_size is not None else 2.5 * eps / steps
    looks = early_exit_steps(steps) if early_exit else set()
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
                idx = (~success).nonzero().squeeze(1)  # one host sync per restart
                if idx.numel() == 0:
                    break
            # Per-step bookkeeping works on the active samples' own copies; they are written back
            # to the whole batch only when the active set shrinks and after the restart.
            state = _Best(adv[idx], success[idx], best_loss[idx], keep)
            x0, label = x[idx], y[idx]
            xa = _project(x0 + noise[idx], x0, eps, norm)
            for step in range(steps):
                if step in looks:
                    active = (~state.success).nonzero().squeeze(1)  # one host sync per look, a fixed few per restart
                    if active.numel() < idx.numel():
                        state.write_back(idx, adv, success, best_loss)
                        idx, x0, label, xa, state = idx[active], x0[active], label[active], xa[active], state[active]
                        if idx.numel() == 0:
                            break
                xa = xa.detach().requires_grad_(True)
                loss, fooled = _loss_and_fooled(model, xa, label, targeted, check=not (restart or step))
                grad, = torch.autograd.grad(loss.sum(), xa)
                state.record(xa.detach(), loss.detach(), fooled)
                if trace:
                    losses.append(loss.detach())
                    fooled_at.append(fooled)
                xa = _project(_step(xa.detach(), grad, step_size, norm), x0, eps, norm)
            if idx.numel():
                with torch.no_grad():
                    loss, fooled = _loss_and_fooled(model, xa, label, targeted)
                state.record(xa, loss, fooled)
                if trace:
                    losses.append(loss)
                    fooled_at.append(fooled)
                state.write_back(idx, adv, success, best_loss)
    result = _returned(adv, success, given)
    if trace:
        result.losses = torch.stack(losses).to(given.device)
        result.fooled = torch.stack(fooled_at).to(given.device)
    return result


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 40,
                    step_size: float | None = None, restarts: int = 1, norm: str = "linf",
                    random_start: bool = True, batch_size: int = 500, early_exit: bool = True, seed: int = 0,
                    progress: bool | str = False) -> RobustAccuracy:
    """Clean and PGD accuracy of ``model``: the fraction of images it labels right before and after
    the attack. Only correctly classified images are attacked (the others count as broken already).

    Args:
        model: an ``nn.Module`` returning logits (N, classes), deterministic in eval mode (a randomised
            model is refused: its robust accuracy needs other attacks); its mode is restored.
        x: images (N, C, H, W), floats in [0, 1], N >= 1.
        y: labels (N,), integers in 0..classes-1.
        eps: the radius, in [0, 1] for L∞; 0 gives the clean accuracy twice.
        steps: PGD steps, >= 1 (default 40).
        step_size: > 0 (default: 2.5·``eps``/``steps``).
        restarts: random restarts, >= 1 (default 1).
        norm: ``"linf"`` (default) or ``"l2"``.
        random_start: default True.
        batch_size: images per batch, >= 1 (default 500).
        early_exit: drop images once fooled (default True; the same result, less work).
        seed: seed of the random starts (default 0).
        progress: show a bar (default False; a string is used as its label).

    Returns:
        a :class:`RobustAccuracy`: ``clean`` and ``robust`` in [0, 1], ``n`` images, ``seconds``.

    Raises:
        ValueError or TypeError, before any work, for the input mistakes :func:`pgd` refuses, an empty
        batch, or a model whose logits differ between two passes over the same images.

    Example:
        >>> robust_accuracy(model, x, y, eps=0.3, steps=40, restarts=2).robust  # doctest: +SKIP
    """
    _check_inputs(model, x, y, eps, norm, steps, step_size if eps > 0 else None, restarts)
    check_count(batch_size, "batch_size")
    if len(x) == 0:
        raise ValueError("no images to evaluate (x is empty)")
    x, y = to_model(model, x, y)
    with eval_mode(model):
        check_deterministic(model, x[:8])
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
    """Predicted labels of ``model`` for images ``x``, in eval mode (restored after) and without gradients.

    Args:
        model: an ``nn.Module`` returning logits (N, classes).
        x: images (N, C, H, W) in [0, 1], on any device (computed on the model's).
        batch_size: images per forward pass (default 1000).

    Returns:
        labels (N,) int64 on ``x``'s device.

    Example:
        >>> predict(model, x)[:5]  # doctest: +SKIP
    """
    with eval_mode(model), torch.no_grad():
        labels = [logits_of(model, to_model(model, x[i:i + batch_size])[0]).argmax(1)
                  for i in range(0, len(x), batch_size)]
    return torch.cat(labels).to(x.device) if labels else torch.zeros(0, dtype=torch.int64, device=x.device)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of images ``x`` that ``model`` labels as ``y``.

    Args:
        model: an ``nn.Module`` returning logits (N, classes).
        x: images (N, C, H, W) in [0, 1].
        y: labels (N,), integers.
        batch_size: images per forward pass (default 1000).

    Returns:
        the accuracy, a float in [0, 1].

    Example:
        >>> accuracy(model, x, y)  # doctest: +SKIP
    """
    if len(x) == 0:
        return 0.0
    return (predict(model, x, batch_size) == y.to(x.device)).float().mean().item()
