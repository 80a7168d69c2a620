"""igan_utils: models, attacks, InterpretGAN and per-layer diagnosis for the igan-book.

The names a user needs are here (imported on first use, so ``import igan_utils`` stays light)::

    from igan_utils import diagnose_model, worst_case, masking_checks, Ensemble, pgd

The package has two layers and the diagnosis on top (README, "Where things are"):

- ``igan_utils.method``: the method, usable without the book: data, models, taps, attacks, the
  AutoAttack engine, the masking checks, training, InterpretGAN, the per-layer diagnosis and the
  statistics. Plain arguments (configs, tensors, models); it never imports the book.
- ``igan_utils.book``: the book: the only reader of a chapter's parameters (``profiles``, ``configs``),
  the artifact store, the studies and sweeps, the verdict rules and sentences, plots, the explorer and
  the runner (``python -m igan_utils.book``).
- ``igan_utils.diagnose``: diagnose your own model (``diagnose_model``, ``igan-diagnose``).
"""

import importlib as _importlib
import os as _os

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "diagnose_model": "diagnose", "Diagnosis": "diagnose",
    "pgd": "method.attacks", "fgsm": "method.attacks", "robust_accuracy": "method.attacks",
    "predict": "method.attacks", "accuracy": "method.attacks",
    "worst_case": "method.autoattack", "robust_table": "method.autoattack", "Ensemble": "method.autoattack",
    "masking_checks": "method.masking",
    "interpreters_for": "method.interpretgan", "interpret": "method.interpretgan", "GanConfig": "method.interpretgan",
    "inversion_interpreters": "method.interpretgan",
    "tap_candidates": "method.taps", "forward_with_taps": "method.taps",
    "spearman_test": "method.stats", "compare_pools": "book.verdicts",
    "load_splits": "method.data", "Store": "book.store", "default_device": "method.runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'igan_utils' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if _os.environ.get("IGAN_DETERMINISTIC", "").lower() in ("1", "true", "yes"):
    from .method.runtime import set_deterministic as _set_deterministic

    _set_deterministic(True)
