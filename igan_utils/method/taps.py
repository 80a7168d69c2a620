"""Taps: the outputs of named layers, for any ``nn.Module``.

A tap is the name of a submodule (as in ``model.named_modules()``); its activation is that
submodule's output. Our models list their taps in ``model.taps``; for any other model pass the names.
Each tapped module must run once per forward pass (one module instance per layer).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from .runtime import eval_mode, to_model


def tap_names(model: nn.Module, taps: Sequence[str] | None = None) -> list[str]:
    """Validated tap names: ``taps``, or ``model.taps`` when None.

    Raises ValueError naming any name that is not a submodule of ``model``.
    """
    if taps is None:
        if not hasattr(model, "taps"):
            raise ValueError(f"{type(model).__name__} has no `taps` attribute; pass the tap names "
                             f"(submodule names from model.named_modules())")
        taps = model.taps
    if isinstance(taps, str):
        raise ValueError(f"taps must be a list of layer names, got the string {taps!r}"
                         + (f"; did you mean {taps.split(',')}?" if "," in taps else f"; did you mean [{taps!r}]?"))
    taps = list(taps)
    if not taps:
        raise ValueError("taps must name at least one layer")
    modules = dict(model.named_modules())
    unknown = [t for t in taps if t not in modules or t == ""]
    if unknown:
        valid = getattr(model, "taps", None) or [n for n in modules if n]
        raise ValueError(f"unknown tap(s) {', '.join(map(repr, unknown))} for "
                         f"{type(model).__name__}; valid: {', '.join(valid)}")
    if len(set(taps)) != len(taps):
        raise ValueError(f"taps are repeated: {taps}")
    return taps


@contextmanager
def _hooks(model: nn.Module, taps: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if name in captured:
                raise ValueError(f"tap {name!r} is refused: its module runs more than once in one forward "
                                 f"pass (it is reused), so its output is not one layer's activation; give "
                                 f"each use its own module instance")
            if not isinstance(output, torch.Tensor):
                raise ValueError(f"tap {name!r} is refused: its module returns {type(output).__name__}, "
                                 f"not a tensor")
            captured[name] = output
        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in taps]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def forward_with_taps(model: nn.Module, x: torch.Tensor,
                      taps: Sequence[str] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits of the forward pass of ``x`` and the activations at ``taps``.

    Gradients flow through both unless called under ``no_grad``.

    Args:
        model: any ``nn.Module``.
        x: a batch (N, ...) on any device (moved to the model's device and dtype).
        taps: names of submodules that run once and return a tensor (default None: ``model.taps``).

    Returns:
        ``(logits, activations)``: logits (N, classes) and a dict tap → activation (N, ...), in tap order,
        on ``x``'s device.

    Raises:
        ValueError for an unknown tap, a module that runs more than once, or one that returns no tensor.

    Example:
        >>> logits, acts = forward_with_taps(model, x, ["conv1", "pool1"])  # doctest: +SKIP
    """
    taps = tap_names(model, taps)
    with _hooks(model, taps) as captured:
        logits = model(to_model(model, x)[0])
    return logits.to(x.device), {name: a.to(x.device) for name, a in _in_order(captured, taps).items()}


def activations(model: nn.Module, x: torch.Tensor, taps: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Activations at ``taps`` for the batch ``x``, in tap order."""
    return forward_with_taps(model, x, taps)[1]


def tap_shapes(model: nn.Module, input_shape: Sequence[int], taps: Sequence[str] | None = None) -> dict[str, tuple[int, ...]]:
    """Per-sample activation shape at each tap for inputs of shape ``input_shape`` (C, H, W)."""
    with torch.no_grad():
        acts = activations(model, *to_model(model, torch.zeros(1, *input_shape)), taps)
    return {name: tuple(a.shape[1:]) for name, a in acts.items()}


def tap_candidates(model: nn.Module, input_shape: Sequence[int]) -> list[dict]:
    """Every submodule of ``model``, with what one forward pass of a zero image shows about it.

    A module can be tapped when it runs exactly once and returns a tensor. The model's mode is restored.

    Args:
        model: any ``nn.Module``.
        input_shape: one image's shape (C, H, W), e.g. (1, 28, 28).

    Returns:
        a list of dicts, one per submodule in registration order: ``tap`` (its name), ``module`` (its
        class), ``shape`` (per-sample output shape, or None), ``calls`` (times it ran), ``usable`` and the
        ``reason`` when not.

    Example:
        >>> [row["tap"] for row in tap_candidates(model, (1, 28, 28)) if row["usable"]]  # doctest: +SKIP
    """
    seen: dict[str, list] = {}
    modules = [(name, module) for name, module in model.named_modules() if name]

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            seen.setdefault(name, []).append(output)
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in modules]
    try:
        with torch.no_grad(), eval_mode(model):
            model(*to_model(model, torch.zeros(1, *input_shape)))
    except RuntimeError as error:  # the model's own shape error, in the user's terms
        raise ValueError(f"the model cannot run on one image of shape {tuple(input_shape)} "
                         f"({str(error).splitlines()[0]}); give the shape it takes") from None
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, module in modules:
        outputs = seen.get(name, [])
        tensor = len(outputs) == 1 and isinstance(outputs[0], torch.Tensor)
        reason = ("" if tensor else "does not run in the forward pass" if not outputs
                  else f"runs {len(outputs)} times per forward pass (reused module)" if len(outputs) > 1
                  else f"returns {type(outputs[0]).__name__}, not a tensor")
        rows.append({"tap": name, "module": type(module).__name__,
                     "shape": tuple(outputs[0].shape[1:]) if tensor else None, "calls": len(outputs),
                     "usable": tensor, "reason": reason})
    return rows


def _in_order(captured: dict[str, torch.Tensor], taps: list[str]) -> dict[str, torch.Tensor]:
    missing = [t for t in taps if t not in captured]
    if missing:
        raise ValueError(f"tap(s) {', '.join(map(repr, missing))} did not run in the forward pass")
    return {t: captured[t] for t in taps}
