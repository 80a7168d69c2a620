"""The robustness study of chapters 5 and 6: every model of datasets × poolings × seeds, each one
point of ``notebooks/robustness_point.ipynb`` run by the sweep runner (``igan_utils.sweep``) on Dask.
The verdicts drawn from its table are in ``igan_utils.stats``."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from . import sweep
from .store import KEY_VERSIONS, Store, config_key


def robustness_study(params, name: str, pools: Sequence[str]) -> tuple[pd.DataFrame, sweep.SweepResult]:
    """The robust accuracy and information loss of every model of ``params.datasets`` × ``pools`` ×
    ``params.sweep_seeds``: ``notebooks/robustness_point.ipynb`` at each point, every other parameter
    of the point taken from ``params`` (a chapter's), on ``params.sweep_workers`` Dask workers or the
    cluster at ``params.sweep_scheduler``.

    Points are kept in the store under ``sweeps/<name>-<key>``; the key covers the grid, the fixed
    parameters and the artifact versions. Each point stores what its models' masking checks measured,
    not the verdict: ``masked`` is judged here, on every read, with today's thresholds
    (``evaluation.masked_from_numbers``), so a changed rule needs no rerun.
    Returns the collected table, with ``data`` naming each dataset and ``masked``, and the sweep's result."""
    from . import data, evaluation
    from .profiles import NOTEBOOK_PARAMS
    from .runtime import project_root

    point = project_root() / "notebooks" / "robustness_point.ipynb"
    shared = set(NOTEBOOK_PARAMS["robustness_point"]) - {"dataset", "pool", "seed", sweep.RESULTS}
    fixed = {"profile": params.profile, **{key: params[key] for key in shared if params[key] is not None}}
    grid = {"dataset": list(params.datasets), "pool": list(pools), "seed": list(params.sweep_seeds)}
    key = config_key("sweep", {"grid": grid, "fixed": fixed, "versions": KEY_VERSIONS})
    result = sweep.run_sweep(point, grid, Store().root / "sweeps" / f"{name}-{key}", parameters=fixed,
                             scheduler=params.sweep_scheduler, workers=params.sweep_workers)
    labels = {ds: data.splits_for(params, ds).label for ds in params.datasets}
    table = result.table.assign(data_label=lambda t: t["dataset"].map(labels))
    return (table.assign(masked=evaluation.masked_from_numbers(table)) if len(table) else table), result
