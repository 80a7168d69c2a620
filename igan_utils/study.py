"""The robustness study of chapters 5 and 6: every model of datasets × poolings × seeds, each one
point of ``notebooks/robustness_point.ipynb`` run by the sweep runner (``igan_utils.sweep``) on Dask.
The verdicts drawn from its table are in ``igan_utils.stats``; chapter 5's pooling verdict is drawn in
rounds of test images that stop when it is decided (:func:`pooling_study`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from . import sweep
from .store import KEY_VERSIONS, Store, config_key


def robustness_study(params, name: str, pools: Sequence[str], *, seeds: Sequence[int] | None = None,
                     grid: Mapping[str, Sequence[Any]] | None = None,
                     fixed: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, sweep.SweepResult]:
    """The robust accuracy and information loss of every model of ``params.datasets`` × ``pools`` ×
    ``seeds`` (default ``params.sweep_seeds``) × the further axes of ``grid`` (e.g. ``adv_method``):
    ``notebooks/robustness_point.ipynb`` at each point, every other parameter of the point taken from
    ``params`` (a chapter's) or ``fixed``, on ``params.sweep_workers`` Dask workers or the cluster at
    ``params.sweep_scheduler``. The grid's values come back as columns.

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
    grid = {"dataset": list(params.datasets), "pool": list(pools),
            "seed": list(seeds if seeds is not None else params.sweep_seeds),
            **{axis: list(values) for axis, values in (grid or {}).items()}}
    fixed = {"profile": params.profile, **{key: params[key] for key in shared if params.get(key) is not None},
             **(fixed or {})}
    fixed = {key: value for key, value in fixed.items() if key not in grid}  # a grid axis varies it
    key = config_key("sweep", {"grid": grid, "fixed": fixed, "versions": KEY_VERSIONS})
    result = sweep.run_sweep(point, grid, Store().root / "sweeps" / f"{name}-{key}", parameters=fixed,
                             scheduler=params.sweep_scheduler, workers=params.sweep_workers)
    labels = {ds: data.splits_for(params, ds).label for ds in params.datasets}
    table = result.table.assign(data_label=lambda t: t["dataset"].map(labels))
    return (table.assign(masked=evaluation.masked_from_numbers(table)) if len(table) else table), result


def recipes_of(params) -> list[tuple[str, int]]:
    """The training recipes (``adv_method``, ``adv_epochs``) of the recipe study: every pair of
    ``recipe_methods`` × ``recipe_epochs``, and the book's own recipe if that grid lacks it (its models
    are the chapters' own, read from the store, so the study always shows what the book trains)."""
    recipes = [(method, epochs) for method in params.recipe_methods for epochs in params.recipe_epochs]
    if (params.adv_method, params.adv_epochs) not in recipes:
        recipes.append((params.adv_method, params.adv_epochs))
    return recipes


def recipe_study(params) -> tuple[pd.DataFrame, sweep.SweepResult]:
    """Is average pooling's gradient masking the pooling or the training recipe? The adversarially
    trained models of ``pools`` × ``recipe_seeds`` × :func:`recipes_of`, each attacked on
    ``recipe_size`` test images with the chapter's ensemble and checked for masking
    (:func:`robustness_study` with ``adv_method`` and ``adv_epochs`` as grid axes). Returns one row
    per adversarially trained model, with ``gap`` = PGD alone − the worst case, and the sweep's result
    (the book's recipe, when outside the grid, is a second sweep: its failures, skipped points and
    seconds are added in)."""
    book = recipes_of(params)[len(params.recipe_methods) * len(params.recipe_epochs):]  # [] or the book's
    grids = [{"adv_method": params.recipe_methods, "adv_epochs": params.recipe_epochs},
             *({"adv_method": [method], "adv_epochs": [epochs]} for method, epochs in book)]
    tables, results = [], []
    for grid in grids:
        table, result = robustness_study(params, "recipes", params.pools, seeds=params.recipe_seeds, grid=grid,
                                         fixed={"eval_size": params.recipe_size, "methods": ["adversarial"],
                                                "information_loss": False})
        tables.append(table)
        results.append(result)
    table = pd.concat(tables, ignore_index=True)
    result = sweep.SweepResult(table=table, failures=[f for r in results for f in r.failures],
                               skipped=sum(r.skipped for r in results), seconds=sum(r.seconds for r in results))
    if len(table):  # adversarial points only: one row per adversarially trained model
        table = table.assign(gap=table["acc_after_pgd"] - table["robust_acc"])
    return table, result


def looks_for(params) -> list[int]:
    """The image counts at which the pooling verdict is looked at: ``interim_looks`` below ``eval_size``,
    then ``eval_size`` (the cap)."""
    return sorted({n for n in params.interim_looks if n < params.eval_size}) + [params.eval_size]


def pooling_study(params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[sweep.SweepResult]]:
    """Chapter 5's study: average against max pooling (of ``params.pools``), for natural and
    for adversarial training separately: natural models on ``eval_size`` test images at once, the
    adversarial comparison by :func:`stats.sequential_comparison` over :func:`looks_for` (the first n
    test images at each look; a later look reuses every image an earlier one attacked,
    ``evaluation.CHUNK``).

    Returns the study's table (both training methods, each at the look where it stopped), the
    comparison (one row per dataset and method, with ``look`` and ``looks``), the history of the looks
    (with ``methods``) and the sweeps' results (for their failures and times)."""
    from . import stats

    runs, tables, comparisons, histories = [], [], [], []
    # Natural models fall to the PGD screen within a few steps: attacking all their images at once costs
    # little, so only the adversarial comparison, where the attacks' cost lies, is looked at in rounds.
    for method, looks in (("natural", [params.eval_size]), ("adversarial", looks_for(params))):
        def evaluate(n, method=method):
            table, result = robustness_study(params, "pooling", params.pools,  # robustness only: chapter 6
                                             fixed={"eval_size": n, "methods": [method],  # measures the loss
                                                    "information_loss": False})
            runs.append(result)
            return table

        def compare(table, alpha):
            return stats.compare_pools(table, ["data_label", "method"], resamples=params.bootstrap, alpha=alpha)

        table, comparison, history = stats.sequential_comparison(evaluate, looks, compare)
        tables.append(table)
        comparisons.append(comparison)
        histories.append(history.assign(methods=method))
    return (pd.concat(tables, ignore_index=True), pd.concat(comparisons, ignore_index=True),
            pd.concat(histories, ignore_index=True), runs)
