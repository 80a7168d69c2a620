"""igan_utils: models, attacks, InterpretGAN and per-layer diagnosis for the igan-book."""

__version__ = "0.1.0"
