"""igan_utils: models, attacks, InterpretGAN and per-layer diagnosis for the igan-book."""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("IGAN_DETERMINISTIC", "").lower() in ("1", "true", "yes"):
    from .runtime import set_deterministic as _set_deterministic

    _set_deterministic(True)
