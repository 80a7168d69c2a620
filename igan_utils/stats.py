"""The statistics behind every verdict of the book, and the verdict rules with their sentences.

- Intervals over seeds (Student t) and over seeds *and* test images together (a two-level bootstrap:
  seeds and images resampled at once, so an interval carries both the seed-to-seed spread and the
  sampling error of a finite test set).
- Rank correlations (Spearman) with **exact** permutation p-values over a handful of taps, and
  seed-resampled intervals over models.
- The pooling verdict from estimates and bounds (pre-registered in ``book/method.md``): a masked
  model's robust accuracy is only an *upper bound* on its robustness, an unmasked one an estimate.

  * both sides unmasked: the paired two-level bootstrap interval of the difference decides;
  * one side masked (any of its models): a one-sided verdict when the upper end of the masked side's
    interval lies strictly below the lower end of the unmasked side's, "more robust by at least d"
    with d the gap between them; otherwise no verdict, and why;
  * both sides masked: no verdict;
  * fewer than :data:`MIN_VERDICT_SEEDS` seeds on a side (pairs, when paired): no verdict.

  A stronger attack can only lower a masked side's numbers, which lowers (never raises) the upper
  end of its interval under the same resampling: a one-sided verdict can only grow more certain.

Everything here takes and returns plain tables and numbers; nothing trains or attacks.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .checks import check_resamples

__all__ = ["MIN_VERDICT_SEEDS", "MIN_CORRELATION_MODELS", "ALPHA", "t_interval", "over_seeds", "two_level_bootstrap",
           "compare_pools", "comparison_sentence", "decided", "sequential_comparison", "spearman", "spearman_test",
           "correlation_over_seeds",
           "correlation_verdict", "tap_correlations", "correlation_sentence", "family_verdict", "family_sentence"]

MIN_VERDICT_SEEDS = 3  # seeds a verdict needs on each side (pairs when paired); DESIGN: at least 3
ALPHA = 0.05           # every interval is 95%, every test two-sided at 5%
MIN_CORRELATION_MODELS = 3  # a rank correlation over fewer models is undefined
EXACT_UP_TO = 9        # taps up to which a rank correlation's p-value enumerates every order (9! = 362,880)
MONTE_CARLO_DRAWS = 20_000


def t_interval(values: pd.Series) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of ``values`` (NaN interval for fewer than two)."""
    from scipy import stats

    values = values.dropna()
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5)
    return mean, mean - half, mean + half


def over_seeds(table: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    """Mean of ``value`` over seeds with a 95% t-interval, per group of ``by`` columns."""
    rows = []
    for key, part in table.groupby(by, sort=False):
        mean, lo, hi = t_interval(part[value])
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "seeds": part["seed"].nunique(),
                     "mean": mean, "ci_lo": lo, "ci_hi": hi})
    return pd.DataFrame(rows)


def two_level_bootstrap(values: np.ndarray, resamples: int = 2000, seed: int = 0,
                        alpha: float = ALPHA) -> tuple[float, float, float]:
    """Mean of ``values`` (seeds × images) with a 1 − ``alpha`` (default 95%) percentile interval that
    resamples seeds and test images together (the same image draw for every seed). ``resamples`` >= 20
    (fewer cannot place a 95% percentile interval between distinct draws)."""
    check_resamples(resamples)
    values = np.asarray(values, dtype=np.float32)
    rng = np.random.default_rng(seed)
    k, n = values.shape
    means = np.empty(resamples)
    for i in range(resamples):
        means[i] = values[rng.integers(0, k, k)][:, rng.integers(0, n, n)].mean()
    return (float(values.mean()), float(np.percentile(means, 100 * alpha / 2)),
            float(np.percentile(means, 100 * (1 - alpha / 2))))


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


_POOL_NAMES = {"avg": "average pooling", "max": "max pooling"}


def comparison_sentence(row, *, data_label: str, method: str, attack: str) -> str:
    """The verdict of one row of :func:`compare_pools` (or :func:`sequential_comparison`) as plain text
    that names its evidence (estimates or bounds, seeds, images, the level of its intervals and, for a
    sequential study, the look it stopped at); ``data_label`` names the data, ``method`` the training
    method as the reader should read it (e.g. "adversarial (PGD)")."""
    a, b = row["a"], row["b"]
    name = {p: _POOL_NAMES.get(p, f"{p} pooling") for p in (a, b)}
    level = f"{100 * row['level']:.4g}%"
    stopped = (f", look {row['look']} of {row['looks']} of the sequential rule" if "looks" in row else "")
    head = f"On {data_label}, {method} training ({attack}, {row['n']} test images per model{stopped})"

    def side(p):
        masked = f", {row[f'{p}_masked']} masked" if row[f"{p}_masked"] else ""
        return (f"{name[p]} {100 * row[f'{p}_mean']:.1f}% [{100 * row[f'{p}_lo']:.1f}, {100 * row[f'{p}_hi']:.1f}] "
                f"over {row[f'{p}_seeds']} seeds{masked}")

    measured = f"{side(a)}; {side(b)} ({level} intervals over seeds and test images)"
    if row["evidence"] == "estimates":
        if not row["winner"]:
            return f"{head}: {row['verdict']}. Measured: {measured}."
        verdict = ("no difference beyond the interval" if row["winner"] == "none"
                   else f"{name[row['winner']]} is more robust")
        return (f"{head}: {verdict}. {name[a].capitalize()} minus {name[b]}: {100 * row[f'{a}_minus_{b}']:+.1f} points, "
                f"{level} interval [{100 * row['ci_lo']:+.1f}, {100 * row['ci_hi']:+.1f}] over {row['seeds']} paired seeds "
                f"and the test images. Evidence: estimates (every model passed the masking checks).")
    if row["evidence"] == "bounds":
        return (f"{head}: no verdict. Both poolings have models that failed a masking check, so both numbers are "
                f"only upper bounds on robustness. Measured: {measured}.")
    bound = row["evidence"].removeprefix("bound on ")
    estimate = b if bound == a else a
    why = (f"{name[bound].capitalize()}'s number is an upper bound, because {row[f'{bound}_masked']} of its "
           f"{row[f'{bound}_seeds']} models failed a masking check: its true robustness can only be lower")
    if row["winner"]:
        return (f"{head}: {name[estimate]} is more robust than {name[bound]} by at least {100 * row['at_least']:.1f} "
                f"points. {why}, and even the upper end of its interval ({100 * row[f'{bound}_hi']:.1f}%) lies below "
                f"the lower end of {name[estimate]}'s ({100 * row[f'{estimate}_lo']:.1f}%, an estimate from unmasked "
                f"models). A stronger attack could only widen the gap. Measured: {measured}.")
    if row["seeds"] < row["min_seeds"]:
        return f"{head}: {row['verdict']}. Measured: {measured}."
    return (f"{head}: no verdict. {why}, but its interval reaches into {name[estimate]}'s, so it may be as robust "
            f"as {name[estimate]} or far less; an attack that breaks the masked models further, or a training "
            f"recipe that leaves them unmasked, would decide it. Measured: {measured}.")


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


def _rho_of_ranks(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of rank vectors ``rx`` (n,) with each row of ``ry`` (m, n)."""
    cx = rx - rx.mean()
    cy = ry - ry.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((cx ** 2).sum() * (cy ** 2).sum(axis=-1))
    return (cy @ cx) / np.where(denominator == 0, np.nan, denominator)


def spearman_test(x, y, *, seed: int = 0) -> dict:
    """Spearman's rho of ``x`` and ``y`` with a two-sided permutation p-value: exact over every order of
    ``y`` up to :data:`EXACT_UP_TO` values, else from :data:`MONTE_CARLO_DRAWS` random orders.

    Args:
        x, y: paired numbers (sequences or Series of the same length).
        seed: seed of the Monte Carlo orders (default 0).

    Returns:
        a dict: ``rho`` (NaN with fewer than 3 values or a constant column), ``p_value``, ``n``, ``min_p``
        (the p of a perfect ordering: above :data:`ALPHA`, no correlation of these n values could be
        significant) and ``method`` (how the p-value was found, e.g. "exact over all 24 orders").

    Example:
        >>> round(spearman_test([1, 2, 3, 4], [1, 2, 3, 4])["p_value"], 3)
        0.083
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    out = {"rho": float("nan"), "p_value": float("nan"), "n": n, "min_p": float("nan"), "method": ""}
    if n < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return out
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)  # average ranks for ties
    rho = float(_rho_of_ranks(rx, ry[None])[0])
    if n <= EXACT_UP_TO:
        orders = np.array(list(itertools.permutations(range(n))))
        null = _rho_of_ranks(rx, ry[orders])
        method = f"exact over all {math.factorial(n):,} orders"
    else:
        rng = np.random.default_rng(seed)
        null = _rho_of_ranks(rx, np.array([rng.permutation(ry) for _ in range(MONTE_CARLO_DRAWS)]))
        method = f"Monte Carlo, {MONTE_CARLO_DRAWS:,} random orders"
    tol = 1e-12
    extreme = np.abs(null) >= abs(rho) - tol
    # Monte Carlo: the observed order counts as one of the draws, so p is never 0
    p = extreme.mean() if n <= EXACT_UP_TO else (extreme.sum() + 1) / (len(null) + 1)
    best = np.abs(null).max()
    min_p = (np.abs(null) >= best - tol).mean() if n <= EXACT_UP_TO else 1 / (len(null) + 1)
    out.update({"rho": rho, "p_value": float(p), "min_p": float(min_p), "method": method})
    return out


def spearman(frame: pd.DataFrame, x: str = "dIL", y: str = "V") -> tuple[float, float]:
    """Spearman rho of two columns over the rows of ``frame`` (rows with NaN dropped) and its
    permutation p-value (:func:`spearman_test`): (rho, p)."""
    data = frame[[x, y]].dropna()
    found = spearman_test(data[x], data[y])
    return found["rho"], found["p_value"]


def correlation_over_seeds(table: pd.DataFrame, x: str, y: str, *, resamples: int = 1000, seed: int = 0,
                           group: str | None = None) -> dict:
    """Spearman rank correlation of columns ``x`` and ``y`` over the rows of ``table`` (one row per
    model; column ``seed`` its training seed), with a 95% bootstrap interval that resamples seeds:
    every model of a drawn seed comes in together, so variants stay paired as they were trained.
    With ``group`` (e.g. ``"pool"``), also the test of rule 9 (``book/method.md``): Spearman's rho of
    the groups' means of ``x`` and ``y`` over the groups, with its exact permutation p-value
    (:func:`spearman_test`), as ``group_rho``, ``group_p``, ``group_min_p`` and ``groups``.
    Returns rho, p_value, ci_lo, ci_hi, models, seeds (rho NaN with fewer than 3 models)."""
    from scipy.stats import spearmanr

    data = table[[x, y, "seed", *([group] if group else [])]].dropna()
    out = {"models": len(data), "seeds": data["seed"].nunique()}
    if group:
        means = data.groupby(group, sort=False)[[x, y]].mean()
        found = spearman_test(means[x], means[y])
        out.update({"group_rho": found["rho"], "group_p": found["p_value"], "group_min_p": found["min_p"],
                    "groups": len(means)})
    rho, p = spearman(data, x, y)
    groups = [part for _, part in data.groupby("seed")]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples if len(groups) > 1 else 0):
        sample = pd.concat([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        if sample[x].nunique() > 1 and sample[y].nunique() > 1:
            draws.append(spearmanr(sample[x], sample[y])[0])
    lo, hi = np.percentile(draws, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)]) if draws else (np.nan, np.nan)
    return {"rho": rho, "p_value": p, "ci_lo": float(lo), "ci_hi": float(hi), **out}


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


def tap_correlations(table: pd.DataFrame, by: list[str], x: str = "dIL", y: str = "V") -> pd.DataFrame:
    """Per group of ``by`` (e.g. model and judge), the rank correlation of ``x`` with ``y`` over its
    rows (taps) by :func:`spearman_test`, and its :func:`correlation_verdict`. Taps whose
    interpretations of x′ are not faithful (column ``faithful`` False, ``diagnosis.fidelity``) are left
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


def correlation_sentence(row, what: str = "ΔIL with V") -> str:
    """One row of :func:`tap_correlations` as plain text: rho, the permutation p-value and how it was
    found, the number of taps, and what it says about the hypothesis."""
    left_out = row.get("left_out") or ""
    left = f"; taps whose interpretations of x′ are unfaithful, left out: {left_out}" if left_out else ""
    taps = f"{int(row['taps'])} {'faithful ' if left_out else ''}taps"
    if np.isnan(row["spearman_rho"]):
        return f"the rank correlation of {what} is undefined over {taps}{left}, which cannot test the hypothesis"
    text = (f"Spearman ρ of {what} = {row['spearman_rho']:.2f} over {taps} (permutation p = "
            f"{row['p_value']:.2g}, {row['p_method']}")
    if row["min_p"] > ALPHA:
        text += f"; with {int(row['taps'])} taps even a perfect ordering gives p = {row['min_p']:.2g} > {ALPHA:g}"
    return text + f"){left}, which {row['verdict']} the hypothesis"


def family_sentence(row, *, variants: Sequence[str]) -> str:
    """The verdict of rule 9 (:func:`family_verdict`) on one row of :func:`correlation_over_seeds` (with
    ``group``, plus ``data_label``) on "downsampling that loses more information gives less robust
    models", with the correlation over all models and its interval over seeds as the description."""
    row = row._asdict() if hasattr(row, "_asdict") else dict(row)
    if row["models"] < MIN_CORRELATION_MODELS or pd.isna(row["rho"]):
        return (f"On {row['data_label']}, only {row['models']} adversarially trained models passed the masking checks: "
                f"too few to test the hypothesis.")
    verdict = family_verdict(row)
    test = (f"over the {row['groups']} variants' means, Spearman ρ = {row['group_rho']:+.2f} (exact permutation "
            f"p = {row['group_p']:.2g}; with {row['groups']} variants only a perfect ordering can reach p < {ALPHA:g})"
            if not pd.isna(row.get("group_rho")) else "the variants' means have no defined rank correlation")
    return (f"On {row['data_label']}, across {row['models']} unmasked adversarially trained models "
            f"({', '.join(variants)}; {row['seeds']} seed{'s' if row['seeds'] > 1 else ''}), {test}, which "
            f"{'cannot test' if verdict == 'cannot test' else verdict} the hypothesis (rule 9). Over all models the "
            f"rank correlation of information loss at the downsampling layers (decoder MSE) with AutoAttack robust "
            f"accuracy is {row['rho']:+.2f}, 95% interval over seeds [{row['ci_lo']:+.2f}, {row['ci_hi']:+.2f}].")


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


def recipe_sentence(summary: pd.DataFrame, *, low: str = "avg", images: int) -> str:
    """The recipe study's answer from :func:`recipe_summary`: which recipes, if any, train
    ``low``-pooling models that pass every masking check in every seed (at least two seeds), and, for a
    method tried at several lengths, whether its masking shrinks with training or persists."""
    name = _POOL_NAMES.get(low, low)
    part = summary[summary["pool"] == low]
    if part.empty:
        return f"The recipe study has no {name} models."
    recipe = lambda r: f"{r['adv_method'].upper()} × {r['adv_epochs']} epoch{'s' * (r['adv_epochs'] != 1)}"  # noqa: E731
    # a recipe with a masked model has a mean of upper bounds: said as "at most"
    counts = "; ".join(f"{recipe(r)}: {r['masked']} of {r['seeds']} masked, worst case "
                       f"{'at most ' if r['masked'] else ''}{100 * r['robust_acc']:.1f} % "
                       f"(PGD − worst case {100 * r['gap']:.1f} points)" for _, r in part.iterrows())
    clean = part[(part["masked"] == 0) & (part["seeds"] >= 2)]
    evidence = f" ({counts}; {images} test images per model)"
    if not clean.empty:
        answer = (f"Under {', '.join(recipe(r) for _, r in clean.iterrows())} every {name} model passes the masking "
                  f"checks{evidence}: there the masking is the recipe's, not the pooling's, and the pooling verdict "
                  f"should be drawn from that recipe.")
    elif (part["masked"] == part["seeds"]).all():
        answer = (f"Every {name} model is masked under every recipe tried{evidence}: the masking persists, so the "
                  f"pooling verdict stays one-sided; a recipe that trained unmasked {name} models would turn its "
                  f"upper bounds into estimates.")
    else:
        answer = (f"Some {name} models pass the masking checks, but no recipe makes all of them pass over at least "
                  f"two seeds{evidence}: none removes the masking reliably, so the pooling verdict stays one-sided.")
    return " ".join([answer, *_length_clauses(part, name)])


def _length_clauses(part: pd.DataFrame, name: str) -> list[str]:
    """For each training method of ``part`` (one pooling's rows of :func:`recipe_summary`) tried at two or
    more lengths: how its masking changes from the shortest to the longest, judged by the count of masked
    models alone (the gap is told, not judged: with few seeds a point or two of it is noise)."""
    clauses = []
    for method, rows in part.groupby("adv_method", sort=False):
        if rows["adv_epochs"].nunique() < 2:
            continue
        rows = rows.sort_values("adv_epochs")
        short, long = rows.iloc[0], rows.iloc[-1]
        if long["masked"] == long["seeds"]:
            trend = f"the masking persists with {method.upper()} training up to {long['adv_epochs']} epochs"
        elif long["masked"] / long["seeds"] < short["masked"] / short["seeds"]:
            trend = f"the masking shrinks with {method.upper()} training"
        else:
            trend = f"longer {method.upper()} training does not reduce the masking"
        # a masked model's worst case is an upper bound, so its gap is a lower bound
        steps = ", ".join(f"{r['masked']} of {r['seeds']} masked and a gap of {'at least ' if r['masked'] else ''}"
                          f"{100 * r['gap']:.1f} points at {r['adv_epochs']} epochs" for _, r in rows.iterrows())
        clauses.append(f"{name.capitalize()} under {method.upper()}: {steps}; {trend}.")
    return clauses
