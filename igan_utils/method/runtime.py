"""Where things live and how code runs: project root, directories, device, determinism, versions."""

from __future__ import annotations

import itertools
import os
import platform
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

_PROJECT_MARKERS = ("_toc.yml", "igan_utils")


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding the book; cwd if none.

    Notebooks run from ``notebooks/`` in JupyterLab and from the root under papermill; resolving
    defaults against the project root makes ``./data`` and ``./artifacts`` mean the same in both.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
    return here


def resolve_dir(explicit: str | Path | None, env_var: str, default_name: str) -> Path:
    """Absolute folder from an explicit value, else ``$env_var``, else ``<project root>/default_name``."""
    value = explicit if explicit not in (None, "") else os.environ.get(env_var) or None
    if value is None:
        return project_root() / default_name
    return Path(value).expanduser().resolve()


def absolute_env_dirs() -> None:
    """Make relative ``$IGAN_DATA_DIR``/``$IGAN_STORE_DIR`` absolute before starting kernels, which
    run in other folders (``notebooks/``) than the caller."""
    for var in ("IGAN_DATA_DIR", "IGAN_STORE_DIR"):
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())


DEVICE_ENV_VAR = "IGAN_DEVICE"
DEVICES = ("cpu", "cuda")


def default_device() -> torch.device:
    """Where models are trained and loaded when nothing else says so.

    Returns:
        ``$IGAN_DEVICE`` (``cpu`` or ``cuda``, any case) when set, else CUDA when present, else the CPU.

    Raises:
        RuntimeError for ``cuda`` on a machine without it (naming the torch build); ValueError for any
        other value.

    Example:
        >>> default_device().type in ("cpu", "cuda")
        True
    """
    wanted = os.environ.get(DEVICE_ENV_VAR, "").strip().lower()
    if wanted and wanted not in DEVICES:
        raise ValueError(f"{DEVICE_ENV_VAR}={os.environ[DEVICE_ENV_VAR]!r} is not a device; use one of "
                         f"{', '.join(DEVICES)} (or leave it unset: CUDA when present, else CPU)")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{DEVICE_ENV_VAR}=cuda, but PyTorch sees no CUDA device here "
                           f"(torch {torch.__version__}); unset it or use {DEVICE_ENV_VAR}=cpu")
    return torch.device(wanted or ("cuda" if torch.cuda.is_available() else "cpu"))


def _first_tensor(model: torch.nn.Module, floating: bool = False) -> torch.Tensor | None:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if not floating or tensor.is_floating_point():
            return tensor
    return None


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); CPU for a model that has neither."""
    first = _first_tensor(model)
    return first.device if first is not None else torch.device("cpu")


def device_name(model: torch.nn.Module) -> str:
    """Where ``model`` runs, for tables: ``cpu``, or e.g. ``cuda:0 (NVIDIA H200)``."""
    device = model_device(model)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def to_model(model: torch.nn.Module, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` moved to where ``model`` is: onto its device, floating ones in its floating dtype,
    integer ones (labels) as int64; tensors already there are returned as they are (no copy).

    The one rule of the package for devices: every function that takes a model and tensors calls
    this first, so a chapter never moves tensors itself; results come back on the device (and, for
    images, in the dtype) of the tensors it was given."""
    device = model_device(model)
    first_float = _first_tensor(model, floating=True)
    dtype = first_float.dtype if first_float is not None else None
    moved = []
    for tensor in tensors:
        if tensor.is_floating_point():
            tensor = tensor.to(device=device, dtype=dtype or tensor.dtype)
        elif tensor.dtype != torch.bool:
            tensor = tensor.to(device=device, dtype=torch.int64)
        else:
            tensor = tensor.to(device)
        moved.append(tensor)
    return tuple(moved)


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` in eval mode; afterwards every submodule is back in the mode it came in (a
    caller's model with, say, a frozen BatchNorm inside a training network keeps that mix)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``eval_mode`` with no parameter gradients (the model is a fixed function, e.g. while a GAN
    learns to invert it); each parameter's ``requires_grad`` comes back as it was."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        model.requires_grad_(False)
        try:
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


def set_deterministic(enabled: bool = True) -> None:
    """Ask PyTorch for deterministic kernels.

    On CPU our training and attacks are already bit-for-bit repeatable for a fixed seed and thread
    count. On CUDA, cuDNN picks convolution algorithms by benchmark and some backward kernels use
    atomics, so results vary in the last bits unless this switch is on (it costs some speed).
    """
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
    if enabled:
        # cuBLAS needs a fixed workspace for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def library_versions() -> dict[str, str]:
    """Versions recorded next to every artifact, so a result can be traced to its software."""
    import torchvision

    from .. import __version__

    return {
        "igan_utils": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
    }
