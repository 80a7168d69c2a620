"""Parameter sweeps: one notebook executed by papermill at every point of a grid, on Dask.

A notebook takes part in sweeps by having a ``results_path`` parameter and writing its tidy results
table there with :func:`record_results`; the sweep collects those tables into one.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .store import atomic_write_bytes


def record_results(table: pd.DataFrame, path: str | Path | None) -> None:
    """Write a run's results ``table`` as CSV to ``path`` (atomically); nothing when ``path`` is None."""
    if path is not None:
        atomic_write_bytes(path, table.to_csv(index=False).encode())
