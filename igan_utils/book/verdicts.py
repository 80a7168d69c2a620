"""Every verdict rule of the book: what a table of measurements decides, and when it decides nothing.

- The pooling verdict from estimates and bounds (pre-registered in ``book/method.md``): a masked
  model's robust accuracy is only an *upper bound* on its robustness, an unmasked one an estimate.

  * both sides unmasked: the paired two-level bootstrap interval of the difference decides;
  * one side masked (any of its models): a one-sided verdict when the upper end of the masked side's
    interval lies strictly below the lower end of the unmasked side's, "more robust by at least d"
    with d the gap between them; otherwise no verdict, and why;
  * both sides masked: no verdict;
  * fewer than :data:`~igan_utils.method.stats.MIN_VERDICT_SEEDS` seeds on a side (pairs, when
    paired): no verdict.

  A stronger attack can only lower a masked side's numbers, which lowers (never raises) the upper
  end of its interval under the same resampling: a one-sided verdict can only grow more certain.
- Sequential looks at the pooling verdict (rule 8), the correlation verdicts (rule 9 for the
  pooling family), the mixing verdict of chapter 4, the V comparison at the pooling taps, and the
  recipe summary of chapter 5.

The sentences that word these verdicts are in :mod:`igan_utils.book.runner.findings`; the masking rules,
which decide whether a number is an estimate or a bound, are in :mod:`igan_utils.method.masking`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..method.stats import (
    ALPHA,
    MIN_CORRELATION_MODELS,
    MIN_VERDICT_SEEDS,
    kendalls_w,
    spearman_test,
    two_level_bootstrap,
)


def _flags(strings: pd.Series) -> np.ndarray:
    """``robust_images`` strings (``r`` robust, ``x`` broken) of several seeds as a 0/1 array."""
    return np.array([[c == "r" for c in s] for s in strings])



def compare_pools(table: pd.DataFrame, by: list[str], *, a: str = "avg", b: str = "max", resamples: int = 2000,
                  seed: int = 0, min_seeds: int = MIN_VERDICT_SEEDS, alpha: float = ALPHA) -> pd.DataFrame:
    """Worst-case robust accuracy of pooling ``a`` against pooling ``b``, per group of ``by``, by the
    rule of the module docstring (estimates when both sides are unmasked, bounds when a side is masked).

    Args:
        table: a study's table, one row per model: ``pool``, ``seed``, ``robust_images`` (``r``/``x`` per
            test image) and ``masked`` (NaN for models not checked counts as False), plus the ``by`` columns.
        by: the columns that group the comparisons (e.g. ``["data_label", "method"]``).
        a, b: the poolings compared (default ``"avg"`` and ``"max"``).
        resamples: bootstrap resamples, >= 20 (default 2000).
        seed: the bootstrap's seed (default 0).
        min_seeds: seeds a verdict needs on each side (default :data:`MIN_VERDICT_SEEDS`).
        alpha: 1 − the level of every interval (default :data:`ALPHA`; a sequential study's looks use
            a corrected one, :func:`sequential_comparison`).

    Returns:
        a DataFrame, one row per group: ``by``; per side ``{p}_seeds``, ``{p}_masked`` (models),
        ``{p}_mean``, ``{p}_lo``, ``{p}_hi`` (two-level bootstrap over its own seeds); ``evidence``
        (``estimates``, ``bound on <p>`` or ``bounds``); ``seeds`` (pairs when paired, else the smaller
        side); ``{a}_minus_{b}``, ``ci_lo``, ``ci_hi`` (paired, both sides unmasked only); ``at_least``
        (one-sided margin); ``winner`` (``a``, ``b``, ``none`` for no difference, ``""`` for no verdict);
        ``verdict`` (a short phrase); ``min_seeds``; ``level`` (of the intervals, e.g. 0.95); ``n`` (test
        images per model).

    Example:
        >>> compare_pools(study, ["data_label", "method"]).loc[:, ["evidence", "verdict"]]  # doctest: +SKIP
    """
    rows = []
    for key, part in table.groupby(by, sort=False):
        masked = part.get("masked", pd.Series(False, index=part.index)).astype(object).fillna(False).astype(bool)
        row = {**dict(zip(by, key if isinstance(key, tuple) else (key,))), "a": a, "b": b, "min_seeds": min_seeds,
               "level": 1 - alpha, "n": int(part["robust_images"].str.len().min())}
        sides = {p: part[part["pool"] == p] for p in (a, b)}
        for p, side in sides.items():
            row[f"{p}_seeds"], row[f"{p}_masked"] = side["seed"].nunique(), int(masked[side.index].sum())
            mean, lo, hi = (two_level_bootstrap(_flags(side.sort_values("seed")["robust_images"]), resamples, seed,
                                                alpha) if len(side) else (np.nan,) * 3)
            row.update({f"{p}_mean": mean, f"{p}_lo": lo, f"{p}_hi": hi})
        bounded = [p for p in (a, b) if row[f"{p}_masked"]]
        row.update({"evidence": "estimates" if not bounded else f"bound on {bounded[0]}" if len(bounded) == 1
                    else "bounds", f"{a}_minus_{b}": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "at_least": np.nan,
                    "winner": ""})
        if not bounded:
            wide = part.pivot_table(index="seed", columns="pool", values="robust_images", aggfunc="first")
            wide = wide[[a, b]].dropna() if {a, b} <= set(wide.columns) else wide.iloc[0:0]
            row["seeds"] = len(wide)
            if len(wide) < min_seeds:
                row["verdict"] = f"no verdict: {len(wide)} {a}/{b} seed pair{'s' * (len(wide) != 1)}, a verdict needs {min_seeds}"
            else:
                diff, lo, hi = two_level_bootstrap(_flags(wide[a]).astype(np.float32) - _flags(wide[b]), resamples,
                                                   seed, alpha)
                row.update({f"{a}_minus_{b}": diff, "ci_lo": lo, "ci_hi": hi})
                row["winner"] = a if lo > 0 else b if hi < 0 else "none"
                row["verdict"] = (f"{row['winner']} higher, beyond the interval" if row["winner"] != "none"
                                  else "no difference beyond the interval")
        else:
            row["seeds"] = min(row[f"{a}_seeds"], row[f"{b}_seeds"])
            if len(bounded) == 2:
                row["verdict"] = f"no verdict: both {a} and {b} have masked models, so both numbers are upper bounds"
            elif row["seeds"] < min_seeds:
                row["verdict"] = f"no verdict: {row['seeds']} seeds on one side, a verdict needs {min_seeds}"
            else:
                bound, estimate = bounded[0], b if bounded[0] == a else a
                gap = row[f"{estimate}_lo"] - row[f"{bound}_hi"]
                if gap > 0:
                    row.update({"at_least": gap, "winner": estimate,
                                "verdict": f"{estimate} higher by at least {100 * gap:.1f} points ({bound}: an upper bound)"})
                else:
                    row["verdict"] = (f"no verdict: {bound}'s upper bound reaches into {estimate}'s interval")
        rows.append(row)
    return pd.DataFrame(rows)



def decided(comparison: pd.DataFrame) -> bool:
    """Whether every row of a :func:`compare_pools` table has a winner (a difference, or a one-sided
    verdict from bounds); "no difference" and "no verdict" are not decided."""
    return bool(len(comparison)) and all(w in (a, b) for w, a, b in zip(comparison["winner"], comparison["a"],
                                                                        comparison["b"]))



def sequential_comparison(evaluate: Callable[[int], pd.DataFrame], looks: Sequence[int],
                          compare: Callable[[pd.DataFrame, float], pd.DataFrame]
                          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A comparison decided in rounds of test images, stopping as soon as it is decided (pre-registered
    in ``book/method.md``): at each of the K ``looks`` (increasing image counts, the last one the cap),
    ``evaluate(n)`` gives the study's table on the first n test images and ``compare(table, alpha)`` its
    verdicts at the Bonferroni-corrected level ``alpha`` = :data:`ALPHA` / K; the study stops at the
    first look where :func:`decided` holds, else at the cap. Each look errs with probability at most
    ALPHA / K, so the whole rule errs with probability at most ALPHA, however the looks fall.

    Returns the table and the comparison of the last look taken (with columns ``look`` and ``looks``),
    and the history: one row per look taken and comparison row (``look``, ``n``, ``winner``, ``verdict``).
    Raises ValueError for looks that are empty, not increasing, or below 1.
    """
    looks = [int(n) for n in looks]
    if not looks or looks[0] < 1 or any(b <= a for a, b in zip(looks, looks[1:])):
        raise ValueError(f"looks must be increasing image counts >= 1, got {looks}")
    alpha, history = ALPHA / len(looks), []
    for look, n in enumerate(looks, start=1):
        table = evaluate(n)
        comparison = compare(table, alpha).assign(look=look, looks=len(looks))
        history += [{"look": look, "n": n, **{k: r[k] for k in ("winner", "verdict")}}
                    for r in comparison.to_dict("records")]
        if decided(comparison):
            break
    return table, comparison, pd.DataFrame(history)



def family_verdict(row) -> str:
    """Rule 9 on one row of :func:`correlation_over_seeds` (with ``group``): ``supports`` "more
    information loss, less robust" when the rank correlation of the variants' means is negative at
    p < :data:`ALPHA` (exact permutation over the variants), ``contradicts`` it when positive at
    p < ALPHA, else ``is inconclusive about``; ``cannot test`` with fewer than
    :data:`MIN_CORRELATION_MODELS` variants or when even a perfect ordering could not reach ALPHA."""
    if pd.isna(row.get("group_rho")) or row["groups"] < MIN_CORRELATION_MODELS or row["group_min_p"] > ALPHA:
        return "cannot test"
    if row["group_p"] < ALPHA:
        return "supports" if row["group_rho"] < 0 else "contradicts"
    return "is inconclusive about"



# Rule 10 (claim 3), fixed on 2026-12-07 before any run that uses it: see ``layer_verdict``.
LAYER_AGREEMENT = 2 / 3  # share of seeds whose top faithful tap must be the named one
Z_POWER = 1.96 + 0.8416  # two-sided 5 % test with power 0.8: the separation a study must reach, in standard errors


def layer_verdict(table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Rule 10, claim 3: which tap is the most vulnerable, per group of ``by`` (e.g. dataset, method,
    pool, judge and the attack that made x′), from a diagnosis table with one row per tap (and per
    ``seed``, if the column is there) holding ``V``, its bootstrap interval ``V_lo``/``V_hi`` over
    the ``n`` adversarial examples, and ``faithful``.

    A tap is *named* only when the group has at least :data:`MIN_VERDICT_SEEDS` seeds, it has the
    largest mean V over seeds among the faithful taps, strictly and above 0, and it is the top
    faithful tap in at least :data:`LAYER_AGREEMENT` of the seeds. Otherwise the verdict is ``not identifiable``, with
    ``examples_needed``: the adversarial examples per seed at which the observed gap between the two
    largest mean V would be :data:`Z_POWER` standard errors (a 5 % test with power 0.8), the standard
    error being the one of the bootstrap intervals, scaled as 1/√n.

    Returns one row per group: ``seeds``, ``n`` (adversarial examples per seed, the smallest),
    ``top`` (top faithful tap per seed, in seed order), ``agreement`` (share of seeds naming the most
    common top tap), ``kendall_w`` (Kendall's W of the seeds' orderings of the faithful taps by V), ``first``/``second`` (the two largest mean V), ``gap``, ``verdict``
    (``named`` or ``not identifiable``), ``named`` (the tap or None) and ``examples_needed``."""
    rows = []
    seeded = "seed" in table
    for key, part in table[table["tap"] != "input"].groupby(list(by), sort=False):
        part = part[part["faithful"].eq(True)] if "faithful" in part else part
        part = part.dropna(subset=["V"])
        seeds = sorted(part["seed"].unique()) if seeded else [None]
        tops = [(part[part["seed"] == s] if seeded else part).sort_values("V", ascending=False, kind="stable")["tap"]
                .iloc[0] for s in seeds if len(part)]
        means = part.groupby("tap", sort=False)["V"].mean().sort_values(ascending=False, kind="stable")
        first, second = (means.index[0] if len(means) else None), (means.index[1] if len(means) > 1 else None)
        common = max(set(tops), key=tops.count) if tops else None
        agreement = tops.count(common) / len(tops) if tops else 0.0
        gap = float(means.iloc[0] - means.iloc[1]) if second is not None else float("nan")
        # amended 2026-12-07 (the null plant, before any run used rule 10): a tie or a V ≤ 0 names nothing
        separated = second is None or gap > 0
        named = (first if len(seeds) >= MIN_VERDICT_SEEDS and common == first and agreement >= LAYER_AGREEMENT
                 and separated and means.iloc[0] > 0 else None)
        n = int(part["n"].min()) if "n" in part and len(part) else 0
        needed = None
        if named is None and second is not None and n:
            half = part[part["tap"].isin([first, second])]
            se = float(np.sqrt((((half["V_hi"] - half["V_lo"]) / (2 * 1.96)) ** 2).groupby(half["tap"]).mean().sum()))
            needed = int(np.ceil(n * (Z_POWER * se / gap) ** 2)) if gap > 0 and np.isfinite(se) else None
        by_seed = part.pivot_table(index="seed", columns="tap", values="V").dropna(axis=1) if seeded else None
        concordance = kendalls_w(by_seed.to_numpy()) if by_seed is not None else float("nan")
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "seeds": len(seeds), "n": n,
                     "top": tops, "agreement": agreement, "kendall_w": concordance, "first": first, "second": second, "gap": gap,
                     "verdict": "named" if named else "not identifiable", "named": named,
                     "examples_needed": needed})
    return pd.DataFrame(rows)


FEATURE_INVERSION = "feature inversion"  # rule 13's untrained candidate (interpretgan.inversion_interpreters)
# rule 13's order of preference: the trained InterpretGAN settings, then feature inversion
INTERPRETER_CANDIDATES = ("InterpretGAN", "InterpretGAN + twins", "InterpretGAN + twins, λ_cls 0", FEATURE_INVERSION)
UNVALIDATED = "interpreters failed the plants"  # rule 13's verdict where no candidate passed


def interpreter_choice(rates: pd.DataFrame) -> pd.DataFrame:
    """Rule 13: per dataset, the interpreters the diagnosis reads, from rule 12's pass rates
    (``planted.pass_rates`` by ``dataset`` and ``interpreters``): the first of
    :data:`INTERPRETER_CANDIDATES` that passes (both plant kinds), or none.

    Returns one row per dataset: ``dataset``, ``interpreters`` (the name, or None), ``reads`` (the
    name the chapter's tables read: the chosen one, or clean-only InterpretGAN where none passed) and
    ``validated``."""
    rows = []
    for ds, part in rates.groupby("dataset", sort=False):
        passed = part.groupby("interpreters", sort=False)["passed"].all()
        chosen = next((name for name in INTERPRETER_CANDIDATES if passed.get(name, False)), None)
        rows.append({"dataset": ds, "interpreters": chosen, "reads": chosen or INTERPRETER_CANDIDATES[0],
                     "validated": chosen is not None})
    return pd.DataFrame(rows, columns=["dataset", "interpreters", "reads", "validated"])


def withhold_unvalidated(verdict: pd.DataFrame, choice: pd.DataFrame) -> pd.DataFrame:
    """Rule 13 on rule 10's table (:func:`layer_verdict`, with ``dataset``): where the dataset's
    interpreters were not validated (:func:`interpreter_choice`), no layer is named and the verdict
    is :data:`UNVALIDATED`; the other columns stay."""
    failed = verdict["dataset"].isin(choice.loc[~choice["validated"].astype(bool), "dataset"])
    verdict = verdict.copy()
    verdict.loc[failed, "verdict"] = UNVALIDATED
    verdict.loc[failed, "named"] = None
    verdict.loc[failed, "examples_needed"] = None
    return verdict


def knob_trend(table: pd.DataFrame, levels: Sequence[str], by: Sequence[str], *,
               measures: Sequence[str] = ("robust_acc",)) -> pd.DataFrame:
    """Rule 11 (claim 4 over a graded family; fixed on 2026-12-07, before any run that uses it): per
    group of ``by``, the rank correlation over *every* model of ``table`` (one row per model, column
    ``pool``) between its level on the knob (its position in ``levels``, the order fixed before
    training: more information lost further along) and each of ``measures``, with a permutation p
    (``stats.spearman_test``). ``verdict`` reads the first measure (robust accuracy): ``supports``
    "more information lost, less robust" when ρ < 0 at p < :data:`ALPHA`, ``contradicts`` when ρ > 0
    at p < ALPHA, ``not decided`` otherwise, ``cannot test`` with fewer than
    :data:`MIN_CORRELATION_MODELS` levels. Columns: *by*, ``measure``, ``rho``, ``p_value``, ``models``,
    ``levels``, ``verdict``."""
    position = {level: i for i, level in enumerate(levels)}
    rows = []
    for key, part in table[table["pool"].isin(position)].groupby(list(by), sort=False):
        knob = part["pool"].map(position)
        for i, measure in enumerate(measures):
            found = spearman_test(knob, part[measure])
            if knob.nunique() < MIN_CORRELATION_MODELS or pd.isna(found["rho"]):
                verdict = "cannot test"
            elif found["p_value"] < ALPHA:
                verdict = "supports" if found["rho"] < 0 else "contradicts"
            else:
                verdict = "not decided"
            rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "measure": measure,
                         "rho": found["rho"], "p_value": found["p_value"], "models": len(part),
                         "levels": int(knob.nunique()), "verdict": verdict if i == 0 else ""})
    return pd.DataFrame(rows, columns=[*by, "measure", "rho", "p_value", "models", "levels", "verdict"])


def correlation_verdict(rho: float, p: float, *, min_p: float = 0.0, alpha: float = ALPHA) -> str:
    """How a Spearman (rho, p) of ΔIL with V bears on "layers that lose more information are more
    vulnerable": ``supports`` (positive, significant), ``leans towards`` (positive, not significant),
    ``does not support``, ``contradicts`` (negative, significant); ``cannot test`` when undefined
    or when even a perfect ordering of these taps could not be significant (``min_p`` > ``alpha``)."""
    if np.isnan(rho) or min_p > alpha:
        return "cannot test"  # reads "which cannot test the hypothesis"
    if rho > 0:
        return "supports" if p < alpha else "leans towards"
    return "contradicts" if p < alpha else "does not support"



def recipe_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per training recipe (``adv_method``, ``adv_epochs``) and pooling of the recipe study's table:
    ``seeds``, ``masked`` (how many of them failed a masking check), the mean and range of the worst
    case and of ``gap`` (PGD − worst case). Rows in the table's order."""
    rows = []
    for (method, epochs, pool), part in table.groupby(["adv_method", "adv_epochs", "pool"], sort=False):
        masked = part["masked"].fillna(False).astype(bool)
        rows.append({"adv_method": method, "adv_epochs": int(epochs), "pool": pool, "seeds": len(part),
                     "masked": int(masked.sum()), "robust_acc": part["robust_acc"].mean(),
                     "robust_min": part["robust_acc"].min(), "robust_max": part["robust_acc"].max(),
                     "gap": part["gap"].mean(), "gap_max": part["gap"].max()})
    return pd.DataFrame(rows)


MAX_AGREEMENT_DROP = 0.02  # rule 7 of book/method.md, fixed before the first run that uses it



MAX_SSIM_DROP = 0.02



def mixing_verdict(clean: pd.DataFrame, mixed: pd.DataFrame) -> tuple[bool, str]:
    """Rule 7: should interpreters trained on clean and adversarial activations replace clean-only ones?

    ``clean`` and ``mixed`` have one row per tap with ``faithful`` (on the same x′, :func:`fidelity`)
    and, on clean images, ``label_agreement`` and ``ssim`` (``interpretgan.quality``). Yes only when
    every tap unfaithful under ``clean`` is faithful under ``mixed`` and no tap's label agreement drops
    by more than :data:`MAX_AGREEMENT_DROP` nor its SSIM by more than :data:`MAX_SSIM_DROP`.
    Returns (adopt, the reason as a sentence)."""
    c = clean.set_index("tap")
    m = mixed.set_index("tap").reindex(c.index)
    unfaithful = c.index[c["faithful"].eq(False)].tolist()
    if not unfaithful:
        return False, ("every tap is faithful with clean-only interpreters, so there is nothing to fix and "
                       "they stay (rule 7)")
    still = [t for t in unfaithful if not m["faithful"].eq(True).loc[t]]
    hurt = [t for t in c.index if c.loc[t, "label_agreement"] - m.loc[t, "label_agreement"] > MAX_AGREEMENT_DROP + 1e-9
            or c.loc[t, "ssim"] - m.loc[t, "ssim"] > MAX_SSIM_DROP + 1e-9]
    fixed = f"{', '.join(unfaithful)} {'is' if len(unfaithful) == 1 else 'are'} unfaithful with clean-only interpreters"
    if still:
        return False, f"{fixed}, and mixing leaves {', '.join(still)} unfaithful: clean-only interpreters stay (rule 7)"
    if hurt:
        return False, (f"{fixed} and mixing makes them faithful, but it costs the clean interpretations more than "
                       f"rule 7 allows at {', '.join(hurt)}: clean-only interpreters stay")
    return True, f"{fixed}; mixing makes them faithful at no cost to the clean interpretations: adopt it (rule 7)"



def pool_comparison(table: pd.DataFrame, taps: Sequence[str] = ("pool1", "pool2"), *,
                    low: str = "avg", high: str = "max") -> pd.DataFrame:
    """V at the pooling taps for the ``low`` and ``high`` pooling models (per judge), and whether the
    claim "``low`` is less vulnerable there" holds: ``supports`` when the intervals are disjoint the
    claimed way round, ``contradicts`` when disjoint the other way, else ``is inconclusive about``;
    ``cannot decide`` when either model's interpretation of x′ is unfaithful at the tap."""
    rows = []
    for (judge, tap), part in table[table["tap"].isin(taps)].groupby(["judge", "tap"], sort=False):
        by_pool = part.set_index("pool")
        if not {low, high} <= set(by_pool.index):
            continue
        a, b = by_pool.loc[low], by_pool.loc[high]
        if by_pool.loc[[low, high]].get("faithful", pd.Series(dtype=object)).eq(False).any():  # V shows the generator
            verdict = "cannot decide (an interpretation of x′ is unfaithful there)"
        elif a["V_hi"] < b["V_lo"]:
            verdict = "supports"
        elif a["V_lo"] > b["V_hi"]:
            verdict = "contradicts"
        else:
            verdict = "is inconclusive about"
        rows.append({"judge": judge, "tap": tap, f"V_{low}": a["V"], f"V_{low}_ci": f"[{a['V_lo']:.3f}, {a['V_hi']:.3f}]",
                     f"V_{high}": b["V"], f"V_{high}_ci": f"[{b['V_lo']:.3f}, {b['V_hi']:.3f}]", "verdict": verdict})
    return pd.DataFrame(rows)


def tap_correlations(table: pd.DataFrame, by: list[str], x: str = "dIL", y: str = "V") -> pd.DataFrame:
    """Per group of ``by`` (e.g. model and judge), the rank correlation of ``x`` with ``y`` over its
    rows (taps) by :func:`spearman_test`, and its :func:`correlation_verdict`. Taps whose
    interpretations of x′ are not faithful (column ``faithful`` False, ``layers.fidelity``) are left
    out and named. Columns: ``by``, ``taps``, ``left_out``, ``spearman_rho``, ``p_value``, ``min_p``,
    ``p_method``, ``verdict``."""
    rows = []
    for key, part in table.groupby(by, sort=False):
        unfaithful = part["faithful"].eq(False) if "faithful" in part else pd.Series(False, index=part.index)
        data = part.loc[~unfaithful, [x, y]].dropna()
        found = spearman_test(data[x], data[y])
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "taps": len(data),
                     "left_out": ", ".join(part.loc[unfaithful, "tap"]) if "tap" in part else "",
                     "spearman_rho": found["rho"], "p_value": found["p_value"], "min_p": found["min_p"],
                     "p_method": found["method"],
                     "verdict": correlation_verdict(found["rho"], found["p_value"], min_p=found["min_p"])})
    return pd.DataFrame(rows, columns=[*by, "taps", "left_out", "spearman_rho", "p_value", "min_p", "p_method",
                                       "verdict"])
