"""igan_utils: models, attacks, InterpretGAN and per-layer diagnosis for the igan-book.

The names a user needs are here (imported on first use, so ``import igan_utils`` stays light)::

    from igan_utils import diagnose_model, worst_case, masking_checks, Ensemble, pgd

Everything else lives in the module of its concept (README, "Layout").
"""

import importlib as _importlib
import os as _os

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "diagnose_model": "checkup", "Diagnosis": "checkup",
    "pgd": "attacks", "fgsm": "attacks", "robust_accuracy": "attacks", "predict": "attacks", "accuracy": "attacks",
    "worst_case": "evaluation", "masking_checks": "evaluation", "robust_table": "evaluation",
    "Ensemble": "evaluation",
    "interpreters_for": "interpretgan", "interpret": "interpretgan", "GanConfig": "interpretgan",
    "tap_candidates": "taps", "forward_with_taps": "taps",
    "compare_pools": "stats", "spearman_test": "stats",
    "load_splits": "data", "Store": "store", "default_device": "runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'igan_utils' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if _os.environ.get("IGAN_DETERMINISTIC", "").lower() in ("1", "true", "yes"):
    from .runtime import set_deterministic as _set_deterministic

    _set_deterministic(True)
