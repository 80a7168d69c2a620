"""Where things live and how code runs: project root, directories, device, determinism, versions."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

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


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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

    from . import __version__

    return {
        "igan_utils": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
    }
