"""The studies of the book. Chapter 4's diagnosis of every model (:func:`diagnosis_table` and the
tables around it). The robustness study of chapters 5 and 6: every model of datasets × poolings × seeds, each one
point of ``notebooks/robustness_point.ipynb`` run by the sweep runner (``igan_utils.sweep``) on Dask.
The verdicts drawn from its table are in ``igan_utils.stats``; chapter 5's pooling verdict is drawn in
rounds of test images that stop when it is decided (:func:`pooling_study`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import pandas as pd

from ..method import interpretgan, layers, masking, planted, randomisation
from ..method.runtime import project_root
from . import configs, sweep, verdicts
from .configs import looks_for
from .profiles import NOTEBOOK_PARAMS
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
    (``masking.masked_from_numbers``), so a changed rule needs no rerun.
    Returns the collected table, with ``data`` naming each dataset and ``masked``, and the sweep's result."""

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
    labels = {ds: configs.splits_for(params, ds).label for ds in params.datasets}
    table = result.table.assign(data_label=lambda t: t["dataset"].map(labels))
    return (table.assign(masked=masking.masked_from_numbers(table)) if len(table) else table), result


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


def pooling_study(params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[sweep.SweepResult]]:
    """Chapter 5's study: average against max pooling (of ``params.pools``), for natural and
    for adversarial training separately: natural models on ``eval_size`` test images at once, the
    adversarial comparison by :func:`verdicts.sequential_comparison` over :func:`looks_for` (the first n
    test images at each look; a later look reuses every image an earlier one attacked,
    ``autoattack.CHUNK``).

    Returns the study's table (both training methods, each at the look where it stopped), the
    comparison (one row per dataset and method, with ``look`` and ``looks``), the history of the looks
    (with ``methods``) and the sweeps' results (for their failures and times)."""

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
            return verdicts.compare_pools(table, ["data_label", "method"], resamples=params.bootstrap, alpha=alpha)

        table, comparison, history = verdicts.sequential_comparison(evaluate, looks, compare)
        tables.append(table)
        comparisons.append(comparison)
        histories.append(history.assign(methods=method))
    return (pd.concat(tables, ignore_index=True), pd.concat(comparisons, ignore_index=True),
            pd.concat(histories, ignore_index=True), runs)


# ---- chapter 4: the diagnosis of every model ------------------------------------------------------
# ``models`` maps (dataset, method, pool) to a trained model, ``interpreters`` the same keys to its
# interpreters, ``judges`` a dataset to its trusted judge, ``splits`` a dataset to its splits.

MIXED_SHARE = 0.5  # the share of adversarial twins in the mixed interpreters chapter 4 tries (rule 7)


def _labelled(table: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """``table`` with the model's ``dataset``, ``method``, ``pool`` (and ``seed``, for a key of four)
    as its first columns."""
    for column, value in reversed(list(zip(("dataset", "method", "pool", "seed"), key))):
        table.insert(0, column, value)
    return table


def seed_spread(diagnosis: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by`` and tap of a diagnosis over seeds (column ``seed``): the mean V over seeds,
    its standard deviation across seeds (``V_sd_seeds``) and the mean half-width of the within-seed
    95 % intervals (``V_halfwidth``): is the seed-to-seed spread larger than what one seed's
    examples already leave open?"""
    taps = diagnosis[diagnosis["tap"] != layers.INPUT].assign(halfwidth=lambda d: (d["V_hi"] - d["V_lo"]) / 2)
    return (taps.groupby([*by, "tap"], sort=False)
            .agg(seeds=("seed", "nunique"), V=("V", "mean"), V_sd_seeds=("V", "std"), V_halfwidth=("halfwidth", "mean"))
            .reset_index())


def diagnosis_attacks(params, dataset: str, model, x, y, *, store: Store, strongest: bool = True) -> layers.Attacked:
    """The successful attacks the diagnosis reads, made once and kept in ``store``: x′ from the
    strongest attack (rule 6, ``configs.diagnosis_ensemble``), or with ``strongest=False`` from PGD
    alone, keeping its highest-loss iterate (``layers.confident_attacks``)."""
    settings = configs.attack_settings(params, dataset)
    if not strongest:
        return layers.confident_attacks(model, x, y, **settings, store=store)
    ensemble = configs.diagnosis_ensemble(params, settings["steps"], settings["step_size"])
    return layers.successful_attacks(model, x, y, eps=settings["eps"], ensemble=ensemble, store=store)


def diagnosis_table(params, models: Mapping, interpreters: Mapping, judges: Mapping, splits: Mapping, *,
                    store: Store, strongest: bool = True) -> pd.DataFrame:
    """``layers.vulnerability_table`` of every model on the first ``diag_size`` test images, judged by
    its dataset's trusted judge (``independent``) and by itself (``self``), x′ from
    :func:`diagnosis_attacks`; one table, with the model's columns first."""
    frames = []
    for key, trained in models.items():
        x, y = splits[key[0]].test.take(slice(0, params.diag_size)).tensors()
        attacked = diagnosis_attacks(params, key[0], trained.model, x, y, store=store, strongest=strongest)
        judging = {"independent": judges[key[0]].model, "self": trained.model}
        frames.append(_labelled(layers.vulnerability_table(trained.model, interpreters[key], judging, attacked,
                                                           bootstrap=params.bootstrap), key))
    return pd.concat(frames, ignore_index=True)


PLANTS = 10  # plants of each kind per dataset and interpreter (rule 12: ≥ 9 of 10 found)
PLANT_IMAGES = 100  # test images attacked per plant (at most diag_size)


# What each of rule 13's InterpretGAN candidates changes in the chapter's settings: the share of
# each batch replaced by PGD twins at the chapter's ε, and the classification term's weight (None: the chapter's).
INTERPRETER_CHANGES = dict(zip(verdicts.INTERPRETER_CANDIDATES[:3], ((0.0, None), (MIXED_SHARE, None), (MIXED_SHARE, 0.0))))


def diagnosis_gan(params, dataset: str, seed: int, interpreters: str = verdicts.INTERPRETER_CANDIDATES[0]):
    """The InterpretGAN settings of the diagnosis for ``dataset`` and ``seed``, for one of rule 13's
    trained candidates (:data:`INTERPRETER_CHANGES` says how each differs from the chapter's
    settings). Raises ValueError for another name."""
    if interpreters not in INTERPRETER_CHANGES:
        raise ValueError(f"interpreters must be one of {tuple(INTERPRETER_CHANGES)}, got {interpreters!r}")
    share, lambda_cls = INTERPRETER_CHANGES[interpreters]
    gan = configs.gan_config_for(params, seed=seed, adv_share=share, eps=configs.attack_settings(params, dataset)["eps"])
    return gan if lambda_cls is None else dataclasses.replace(gan, lambda_cls=lambda_cls)


def diagnosis_interpreters(params, dataset: str, seed: int, interpreters: str, model, taps, train, *,
                           store: Store, progress: bool = True) -> dict:
    """Tap → interpreter of ``model`` for one of rule 13's
    :data:`~igan_utils.book.verdicts.INTERPRETER_CANDIDATES`: InterpretGAN's, trained on ``train``
    with :func:`diagnosis_gan`'s settings (kept in ``store``), or feature inversion (nothing trained;
    seeded by ``seed``; the images it finds kept in ``store``). ``taps``: None for all of the model's."""
    if interpreters == verdicts.FEATURE_INVERSION:
        return interpretgan.inversion_interpreters(model, taps, train.image_shape, seed=seed, store=store)
    return interpretgan.interpreters_for(model, taps, train, diagnosis_gan(params, dataset, seed, interpreters),
                                         store=store, progress=progress)


def planted_checks(params, models: Mapping, judges: Mapping, splits: Mapping, *, store: Store,
                   interpreters: Sequence[str] | None = None) -> pd.DataFrame:
    """Rule 12's plants (``method.planted``) for each dataset: inside every plant the dataset's
    naturally trained model of the first pool, judged by the dataset's judge, x′ from highest-loss
    PGD at the chapter's ε; with exact interpreters (the diagnosis alone) and with each of rule 13's
    candidates (:func:`diagnosis_interpreters`: InterpretGAN's three settings, trained for each plant
    and kept in ``store``, and feature inversion); ``interpreters`` names a subset (default: all).
    Columns: those of ``planted.planted_check``, ``dataset`` and ``interpreters``."""
    frames = []
    for ds, split in splits.items():
        settings = configs.attack_settings(params, ds)
        attack = lambda plant, x, y, seed, settings=settings: layers.confident_attacks(plant, x, y, **settings, seed=seed)
        for name in ("exact", *verdicts.INTERPRETER_CANDIDATES):
            if interpreters is not None and name not in interpreters:
                continue
            made_for = None if name == "exact" else (
                lambda plant, name=name, ds=ds, split=split: diagnosis_interpreters(
                    params, ds, params.seeds[0], name, plant, None, split.train, store=store, progress=False))
            table = planted.planted_check(models[(ds, "natural", params.pools[0])].model, judges[ds].model, split.train,
                                          split.test, eps=settings["eps"], plants=PLANTS,
                                          per_plant=min(PLANT_IMAGES, params.diag_size), interpreters=made_for,
                                          attack=attack, bootstrap=params.bootstrap, progress=True)
            frames.append(table.assign(dataset=ds, interpreters=name))
    return pd.concat(frames, ignore_index=True)


RANDOMISATION_IMAGES = 500  # test images attacked per randomisation level (at most diag_size)


def randomisation_checks(params, models: Mapping, judges: Mapping, splits: Mapping, *, store: Store,
                         interpreters: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rule 12's cascading randomisation (``method.randomisation``) of each dataset's adversarially
    trained model of the first pool, every layer from the head down to the first: at every level new x′ (the
    diagnosis's attack), new interpreters (clean-only InterpretGAN, or rule 13's candidate named by
    ``interpreters[dataset]``, :func:`diagnosis_interpreters`), the dataset's judge. Columns: those of
    ``randomisation.randomisation_check`` and ``dataset``."""
    frames = []
    for ds, split in splits.items():
        name = (interpreters or {}).get(ds, verdicts.INTERPRETER_CANDIDATES[0])
        model = next(m.model for (d, method, pool), m in models.items()
                     if d == ds and method != "natural" and pool == params.pools[0])
        taps = list(params.taps or model.taps)
        x, y = split.test.take(slice(0, min(RANDOMISATION_IMAGES, params.diag_size))).tensors()
        attack = lambda m, x, y, ds=ds: diagnosis_attacks(params, ds, m, x, y, store=store)
        trained = lambda m, ds=ds, name=name, split=split: diagnosis_interpreters(
            params, ds, params.seeds[0], name, m, taps, split.train, store=store, progress=False)
        table = randomisation.randomisation_check(model, judges[ds].model, x, y, taps=taps, attack=attack,
                                                  interpreters=trained, bootstrap=params.bootstrap, progress=True)
        frames.append(table.assign(dataset=ds))
    return pd.concat(frames, ignore_index=True)


def judge_accuracy(params, models: Mapping, interpreters: Mapping, judges: Mapping, splits: Mapping) -> pd.DataFrame:
    """How well each dataset's judge recognises the interpretations of clean images, per model and tap
    (``input``: the images themselves), on the first ``diag_size`` test images."""
    rows = []
    for key, trained in models.items():
        x, y = splits[key[0]].test.take(slice(0, params.diag_size)).tensors()
        taps = list(interpreters[key])
        errors = layers.judged_errors(trained.model, interpreters[key], judges[key[0]].model, x, y, taps)
        rows += [{"dataset": key[0], "method": key[1], "pool": key[2], "tap": tap, "judge_accuracy": accuracy}
                 for tap, accuracy in zip([layers.INPUT, *taps], (1 - errors.float().mean(0)).tolist())]
    return pd.DataFrame(rows)


def least_faithful(diagnosis: pd.DataFrame) -> pd.Series:
    """The row of the independent judge's diagnosis whose interpretation of x′ is least faithful
    (largest ``fidelity_ratio``): the model the mixing comparison tries mixed interpreters on."""
    ratios = diagnosis[(diagnosis["judge"] == "independent") & (diagnosis["tap"] != layers.INPUT)]
    ratios = ratios.dropna(subset=["fidelity_ratio"])
    return ratios.sort_values("fidelity_ratio", ascending=False, kind="stable").iloc[0]


def mixing_comparison(params, key: tuple[str, str, str], models: Mapping, judges: Mapping, splits: Mapping, *,
                      store: Store) -> pd.DataFrame:
    """Rule 7's comparison on the model ``key``: its clean-only interpreters against interpreters
    trained with :data:`MIXED_SHARE` adversarial twins, on the same x′: per tap, R, the fidelity of
    x′'s interpretation, and the clean interpretations' label agreement and SSIM."""
    dataset, trained = key[0], models[key]
    versions = {name: interpretgan.interpreters_for(trained.model, params.taps, splits[dataset].train,
                                                    diagnosis_gan(params, dataset, params.seeds[0], settings),
                                                    store=store)
                for name, settings in (("clean only", verdicts.INTERPRETER_CANDIDATES[0]),
                                       ("clean + adversarial", verdicts.INTERPRETER_CANDIDATES[1]))}
    x, y = splits[dataset].test.take(slice(0, params.diag_size)).tensors()
    attacked = diagnosis_attacks(params, dataset, trained.model, x, y, store=store)  # one x′ for both sets
    rows = []
    for name, found in versions.items():
        table = layers.vulnerability_table(trained.model, found, {"independent": judges[dataset].model}, attacked,
                                           bootstrap=params.bootstrap)
        quality = pd.DataFrame(interpretgan.quality(trained.model, found, x))[["tap", "label_agreement", "ssim"]]
        rows.append(table[table["tap"] != layers.INPUT][["tap", "R", "fidelity_ratio", "faithful"]]
                    .merge(quality, on="tap").assign(interpreters=name))
    return pd.concat(rows, ignore_index=True)


def attack_comparison(diagnosis: pd.DataFrame, pgd_diagnosis: pd.DataFrame, by: list[str]):
    """Does the attack x′ comes from change the answer? The most vulnerable taps under each
    (``compare``, with the rows where they differ in ``differs``), R at the first tap under each
    (``at_first``, for ``first_tap``) and R at every tap under each (``by_source``, independent judge)."""
    compare = layers.most_vulnerable(diagnosis, by).merge(layers.most_vulnerable(pgd_diagnosis, by), on=by,
                                                          suffixes=(" (ensemble)", " (PGD)"))
    differs = compare[compare["taps (ensemble)"].map(set) != compare["taps (PGD)"].map(set)]
    by_source = pd.concat([diagnosis.assign(source="ensemble"),
                           pgd_diagnosis.assign(source="PGD")]).query("judge == 'independent'")
    first_tap = by_source.loc[by_source["tap"] != layers.INPUT, "tap"].iloc[0]
    at_first = by_source[by_source["tap"] == first_tap].pivot_table(index=["dataset", "method", "pool"],
                                                                    columns="source", values="R", sort=False)
    return compare, differs, at_first, first_tap, by_source


def information_losses(params, models: Mapping, interpreters: Mapping, splits: Mapping, *,
                       store: Store) -> pd.DataFrame:
    """``layers.information_loss`` of every model at its interpreted taps, on the first ``eval_size``
    test images; one table, with the model's columns first."""
    return pd.concat([_labelled(layers.information_loss(trained.model, list(interpreters[key]), splits[key[0]].train,
                                                        splits[key[0]].test.take(slice(0, params.eval_size)),
                                                        steps=params.decoder_steps, store=store,
                                                        config=trained.config.key()), key)
                      for key, trained in models.items()], ignore_index=True)


def pooling_at_taps(params, diagnosis: pd.DataFrame, models: Mapping, splits: Mapping, *,
                    store: Store) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Is V lower at the pooling taps with average pooling? ``verdicts.pool_comparison`` per training
    method, with the masking checks of every model on the first ``eval_size`` test images deciding
    which are masked. Returns the comparison and the masked models per method."""
    checks = pd.concat([masking.masking_checks(m, *splits[ds].test.take(slice(0, params.eval_size)).tensors(),
                                               eps=configs.attack_settings(params, ds)["eps"],
                                               large_eps=configs.large_eps(params, ds),
                                               ensemble=configs.ensemble_for(params, ds), store=store,
                                               check_size=params.check_size)
                        for (ds, _, _), m in models.items()], ignore_index=True)
    flagged = masking.masked_models(checks)
    masked = {method: sorted(m.config.label for (_, mth, _), m in models.items()
                             if mth == method and m.config.label in flagged)
              for method in dict.fromkeys(key[1] for key in models)}
    pooling = pd.concat([verdicts.pool_comparison(part).assign(method=method, masked=", ".join(masked[method]))
                         for method, part in diagnosis.groupby("method", sort=False)], ignore_index=True)
    return pooling, masked
