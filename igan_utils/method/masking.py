"""Can a model's robust accuracy be trusted? The gradient-masking checks and the indicators of attack failure.

``masking_checks`` asks whether a model's gradients can be trusted at all (DESIGN.md): the black-box
Square attack must not beat the white-box attacks, AutoAttack must not land far below PGD, accuracy
must collapse at a large radius, and AutoAttack's own checks must raise no flag. A model that fails
any check is *masked*: its robust accuracy is shown, marked, and used only as an upper bound (a verdict
may use it one-sided, :mod:`igan_utils.book.verdicts`, never as an estimate). Every
threshold of these rules is here, and only here.

``failure_indicators`` are Pintor et al.'s indicators that an attack's optimisation failed.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import torch

from . import attacks, validation
from .autoattack import (
    BLACK_BOX,
    Ensemble,
    check_ensemble,
    check_trained,
    model_columns,
    passes_per_image,
    robust_share,
    stored_worst_case,
    worst_case,
    worst_case_key,
)
from .cache import ArtifactCache
from .runtime import eval_mode
from .training import TrainedModel

# Thresholds of the masking checks (accuracies are fractions).
# AutoAttack's white-box attacks may land at most this far below our PGD. Calibrated on Croce & Hein's
# published table (the PGD accuracy each defense reported vs AutoAttack's), not on our models: models
# adversarially trained with PGD, as ours are, land 1.1 to 4.6 points below on its MNIST and CIFAR-10
# L-inf tables (Madry et al. 2018: 1.1 on MNIST, 3.0 on CIFAR-10; TRADES: 2.8, 3.4; Engstrom et al.: 4.0;
# Rice et al. 2020: 4.6), defenses that masked their gradients 11.5 to 70 points below. Other schemes
# fall in between (fast FGSM training on MNIST 5.8, MART 8.8, PGD training on CIFAR-100 9.2): strict.
MAX_BELOW_PGD = 0.05



MAX_ACC_AT_LARGE_EPS = 0.10  # accuracy that may remain at the large radius



def masking_checks(trained: TrainedModel, x: torch.Tensor, y: torch.Tensor, *, eps: float, large_eps: float,
                   ensemble: Ensemble, store: ArtifactCache, seed: int = 0, check_size: int | None = None) -> pd.DataFrame:
    """Can the gradients of ``trained`` be trusted? One row per check (thresholds pre-registered in
    ``book/method.md``). The checks read from the ensemble's run on all N images (shared exactly with
    :func:`robust_table` on the same images) use every one of them, at no extra attack; the two that
    need attacks of their own run on the first ``check_size``:

    - **black-box vs white-box** (first ``check_size``): Square alone must not end below the white-box
      attacks (PGD, APGD-CE, APGD-T, FAB-T as far as ``ensemble`` has them; Square must be its last
      attack). It tries only the images they broke, and is not run where Square after them in the chain
      broke none: alone it then cannot end below them, and the row shows the chain's accuracy, a lower
      bound of its own;
    - **AutoAttack vs PGD** (all N): AutoAttack's white-box attacks may land at most :data:`MAX_BELOW_PGD`
      below our PGD (needs the PGD screen in ``ensemble``), else PGD is stalling;
    - **large ε** (first ``check_size``): APGD-CE at ``large_eps`` must leave at most :data:`MAX_ACC_AT_LARGE_EPS`;
    - **AutoAttack's flags** (all N, and the large-ε run): its own checks (zero gradients, randomness,
      probabilities instead of logits, a dynamic model, Square succeeding after the white-box attacks)
      raise no warning.

    Args:
        trained: a :class:`~igan_utils.method.training.TrainedModel` (for your own ``nn.Module``, run
            :func:`worst_case` directly).
        x: images (N, C, H, W) in [0, 1]: those of :func:`robust_table`, whose run the checks share
            exactly (its chunks of :data:`CHUNK` images).
        y: labels (N,).
        eps: the L∞ radius of the threat model, in (0, 1].
        large_eps: the radius at which accuracy must have collapsed (e.g. 0.5 on MNIST).
        ensemble: an :class:`Ensemble` ending with ``"square"``.
        store: the artifact store (what the attacks measured is kept; thresholds apply on every read).
        seed: seed of the attacks (default 0).
        check_size: images of Square alone and of the large-ε run, the first of ``x`` (default: all N).

    Returns:
        a DataFrame: the model's columns, ``check``, ``attack``, ``accuracy``, ``baseline_accuracy``,
        ``criterion``, ``passed``, ``detail``, ``eps``.

    Raises:
        TypeError for a plain module or an ensemble that is not an :class:`Ensemble`; ValueError for an
        ensemble without Square last.

    Example:
        >>> checks = masking_checks(trained, x, y, eps=0.3, large_eps=0.5, ensemble=ensemble_for(P, "mnist"),
        ...                         store=Store())  # doctest: +SKIP
        >>> masked_models(checks)  # doctest: +SKIP
    """
    check_trained(trained)
    check_ensemble(ensemble)
    if ensemble.order[-1] not in BLACK_BOX:
        raise ValueError("the masking checks need the black-box Square attack last in the ensemble")
    if check_size is not None and check_size < 1:
        raise ValueError(f"check_size must be at least 1, got {check_size}")
    k = len(x) if check_size is None else min(check_size, len(x))
    white = ensemble.only(*ensemble.order[:-1])
    work = {"attacked": {}, "passes": passes_per_image(ensemble)}  # Square alone and APGD-CE at large ε

    def compute():
        model, label = trained.model, trained.config.label
        # One run of the ensemble (shared with robust_table) tells what the white-box attacks leave and
        # what Square adds after them; Square alone then only has to try the images they broke. Alone it
        # ends at or above the chain's accuracy, so where Square added nothing after the white-box attacks
        # (every naturally trained model) it cannot end below them: the check is decided without it.
        chain = stored_worst_case(trained, x, y, eps=eps, ensemble=ensemble, store=store, seed=seed)
        white_robust = chain.robust_before(len(ensemble.order) - 1)
        first_white, first_robust = white_robust[:k], chain.robust[:k]
        others = (chain.clean[:k] & ~first_white).nonzero().flatten()
        square_robust = first_robust.clone()
        added = int((first_white & ~first_robust).sum())
        if added and len(others):
            square = worst_case(model, x[others], y[others], eps=eps, ensemble=ensemble.only("square"), seed=seed,
                                progress=f"{label} Square alone")
            square_robust[others] = square.robust
            work["attacked"]["square"] = square.attacked["square"]
        large = worst_case(model, x[:k], y[:k], eps=large_eps, ensemble=ensemble.only("apgd-ce"), seed=seed,
                           progress=f"{label} large eps")
        work["attacked"]["apgd-ce"] = large.attacked["apgd-ce"]
        messages = list(dict.fromkeys(chain.flags + large.flags))
        of = "" if k == len(x) else f" (first {k} of {len(x)} images)"
        alone = ("" if added else "; so Square alone was not run: its accuracy is at least the one shown, "
                 "the chain's")
        rows = [("black-box vs white-box", f"Square-{ensemble.square_queries} alone", robust_share(square_robust),
                 robust_share(first_white), f"white-box: {white.name}; after them Square broke {added} more images{alone}{of}")]
        if "pgd" in chain.after:
            rows.append(("AutoAttack vs PGD", white.name, robust_share(white_robust), chain.after["pgd"],
                         f"PGD alone {chain.after['pgd']:.3f}"))
        rows.append(("large eps", f"APGD-CE at eps={large_eps:.3g}", large.accuracy, large.after["clean"], of.strip()))
        rows.append(("AutoAttack's flags", "pyautoattack.checks", float(len(messages)), 0.0, " | ".join(messages)))
        return rows

    # The store keeps what the attacks measured; the thresholds are applied here, on every read. Checks
    # whose attacks ran on all the images keep the key they always had.
    key = worst_case_key(trained, x, y, eps=eps, large_eps=large_eps, ensemble=dataclasses.asdict(ensemble), seed=seed,
                     **({} if k == len(x) else {"check_size": k}))
    rows = store.get_or_create("masking_checks", key, compute, fmt="json", work=lambda _: work,
                               about={"model": trained.config.label})
    rows = [(check, attack, accuracy, baseline, *_criterion(check, accuracy, baseline), detail)
            for check, attack, accuracy, baseline, detail in rows]
    frame = pd.DataFrame(rows, columns=["check", "attack", "accuracy", "baseline_accuracy", "criterion", "passed",
                                        "detail"])
    for column, value in reversed(model_columns(trained).items()):
        frame.insert(0, column, value)
    frame["eps"] = eps
    return frame



# Indicators of attack failure (Pintor et al., NeurIPS 2022), thresholds fixed in book/method.md before any run.
SILENT_SUCCESS_MAX = 0.01  # share of attacked images: an adversarial iterate was found but not returned



INCOMPLETE_RISE = 0.05     # relative rise of an unbroken image's best loss within the last TAIL of the steps ...



INCOMPLETE_MAX = 0.10      # ... allowed for at most this share of the unbroken images



INDICATOR_TAIL = 0.1



INDICATORS = ("silent success", "incomplete optimisation", "unconstrained attack failure")



def failure_indicators(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                       steps: int = 100, step_size: float | None = None, seed: int = 0) -> pd.DataFrame:
    """Did the attack fail rather than the model resist? Three indicators of Pintor et al. (NeurIPS
    2022) that cost one traced PGD run at ``eps`` (highest-loss iterate kept) and one unbounded run, on
    the correctly classified images of ``x``:

    - **silent success**: some iterate fooled the model but the returned one does not (the loss the
      attack climbs is not the one that decides success); at most :data:`SILENT_SUCCESS_MAX` of them;
    - **incomplete optimisation**: an unbroken image whose best loss still rose by more than
      :data:`INCOMPLETE_RISE` (relative) in the last :data:`INDICATOR_TAIL` of the steps, for at most
      :data:`INCOMPLETE_MAX` of the unbroken images (more steps would have gone further);
    - **unconstrained attack failure**: PGD with ε = 1 (the whole pixel range), no random start, must
      break every image: an attack that cannot even then is blind (zero or useless gradients).

    Args:
        model: an ``nn.Module`` returning logits, deterministic in eval mode (its mode is restored).
        x: images (N, C, H, W) in [0, 1]; y: labels (N,).
        eps: the L∞ radius of the threat model, in (0, 1].
        steps: PGD steps of both runs, >= 10 (default 100).
        step_size: the step at ``eps`` (default 2.5·``eps``/``steps``); the unbounded run steps 2.5/``steps``.
        seed: seed of the random start (default 0).

    Returns:
        one row per indicator: ``indicator``, ``value`` (a share of images), ``threshold``, ``passed``,
        ``detail`` (counts).

    Example:
        >>> failure_indicators(model, x, y, eps=0.3)  # doctest: +SKIP
    """
    eps = validation.check_eps(eps)
    validation.check_module(model)
    validation.check_images(model, x, y)
    validation.check_count(steps, "steps", minimum=10)
    if step_size is not None:
        validation.check_step(step_size, "step_size")
    with eval_mode(model):
        correct = (attacks.predict(model, x) == y).nonzero().flatten()
        x, y = x[correct], y[correct]
        if len(x) == 0:
            raise ValueError("the model classifies none of these images correctly: nothing to attack")
        run = attacks.pgd(model, x, y, eps, steps=steps, step_size=step_size, keep="max_loss", trace=True,
                          generator=torch.Generator(device=x.device).manual_seed(seed))
        ever, returned = run.fooled.any(0).cpu(), run.success.cpu()
        head = max(int(round(steps * (1 - INDICATOR_TAIL))), 1)
        before, last = run.losses[:head].amax(0).cpu(), run.losses[head:].amax(0).cpu()
        unbroken = ~ever
        rising = unbroken & ((last - before) > INCOMPLETE_RISE * before.abs().clamp_min(1e-3))
        free = attacks.pgd(model, x, y, 1.0, steps=steps, step_size=2.5 / steps, random_start=False).success.cpu()
    n, m = len(x), int(unbroken.sum())
    silent = int((ever & ~returned).sum())
    rows = [("silent success", silent / n, SILENT_SUCCESS_MAX, f"{silent} of {n} images"),
            ("incomplete optimisation", int(rising.sum()) / max(m, 1), INCOMPLETE_MAX,
             f"{int(rising.sum())} of {m} unbroken images still rising in the last {INDICATOR_TAIL:.0%} of {steps} steps"),
            ("unconstrained attack failure", int((~free).sum()) / n, 0.0,
             f"{int((~free).sum())} of {n} images survive ε = 1")]
    frame = pd.DataFrame(rows, columns=["indicator", "value", "threshold", "detail"])
    frame.insert(3, "passed", frame["value"] <= frame["threshold"] + 1e-9)
    return frame



def _criterion(check: str, accuracy: float, baseline: float) -> tuple[str, bool]:
    """The criterion of one masking check, and whether ``accuracy`` (against ``baseline``) meets it."""
    tol = 1e-9  # accuracies are exact multiples of 1/n; their difference may still be off in the 17th digit
    if check == "black-box vs white-box":
        return "Square alone >= white-box", accuracy >= baseline - tol
    if check == "AutoAttack vs PGD":
        return f"at most {MAX_BELOW_PGD:.0%} below PGD", baseline - accuracy <= MAX_BELOW_PGD + tol
    if check == "large eps":
        return f"accuracy <= {MAX_ACC_AT_LARGE_EPS:.0%}", accuracy <= MAX_ACC_AT_LARGE_EPS + tol
    if check == "AutoAttack's flags":
        return "no warning", accuracy == 0
    raise ValueError(f"unknown masking check {check!r}")



MASKING_CHECKS = ("black-box vs white-box", "AutoAttack vs PGD", "large eps", "AutoAttack's flags")



def _check_column(check: str) -> str:
    return "check_" + re.sub(r"[^a-z0-9]+", "_", check.lower()).strip("_")



def with_check_numbers(table: pd.DataFrame, checks: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per model) with what each masking check of ``checks`` measured, as columns
    ``check_<name>`` (the accuracy) and ``check_<name>_baseline``: the numbers, not the verdict, so that
    a stored table stays right when a threshold changes (:func:`masked_from_numbers` applies today's
    rule when it is read)."""
    keys = [c for c in ("dataset", "model") if c in table and c in checks]  # a label may recur across datasets
    numbers = checks.assign(column=checks["check"].map(_check_column))
    wide = numbers.pivot_table(index=keys, columns="column", values=["accuracy", "baseline_accuracy"], sort=False)
    wide.columns = [column if kind == "accuracy" else f"{column}_baseline" for kind, column in wide.columns]
    return table.merge(wide.reset_index(), on=keys, how="left")



def masked_from_numbers(table: pd.DataFrame) -> pd.Series:
    """Per row of a table made by :func:`with_check_numbers`: True when a stored check fails today's
    thresholds, False when every stored check passes, NaN when none was stored (not checked)."""
    failed = pd.DataFrame({check: [np.nan if pd.isna(a) else not _criterion(check, a, b)[1]
                                   for a, b in zip(table[column], table[f"{column}_baseline"])]
                           for check in MASKING_CHECKS if (column := _check_column(check)) in table},
                          index=table.index, dtype=object)
    return failed.apply(lambda r: np.nan if r.isna().all() else bool(r.fillna(False).any()), axis=1,
                        result_type="reduce").reindex(table.index).rename("masked")



def masked_models(checks: pd.DataFrame) -> set[str]:
    """Labels of the models that failed at least one masking check."""
    return set(checks.loc[~checks["passed"].astype(bool), "model"])



def mark_masked(table: pd.DataFrame, checks: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``masked`` column: True for models that failed a masking check, False for
    those that passed them all, NaN for models that were not checked (natural training)."""
    status = checks.groupby("model")["passed"].all()
    return table.assign(masked=table["model"].map(lambda m: (not status[m]) if m in status.index else np.nan))
