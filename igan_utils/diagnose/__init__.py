"""Diagnose your own model: the call (``api``: :func:`diagnose_model`, :class:`Diagnosis`), its
report (``report``) and the command ``igan-diagnose`` (``cli``)."""

from .api import BUDGETS, Diagnosis, diagnose_model

__all__ = ["BUDGETS", "Diagnosis", "diagnose_model"]
