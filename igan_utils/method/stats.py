"""The statistics behind every verdict of the book: plain tables and numbers in, intervals and tests out.

- Intervals over seeds (Student t) and over seeds *and* test images together (a two-level bootstrap:
  seeds and images resampled at once, so an interval carries both the seed-to-seed spread and the
  sampling error of a finite test set).
- Rank correlations (Spearman) with **exact** permutation p-values over a handful of taps, and
  seed-resampled intervals over models.

The rules that turn these numbers into verdicts are in :mod:`igan_utils.book.verdicts`. Nothing
here trains or attacks.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .validation import check_resamples

__all__ = ["MIN_VERDICT_SEEDS", "MIN_CORRELATION_MODELS", "ALPHA", "t_interval", "over_seeds", "two_level_bootstrap",
           "image_bootstrap", "percentile_interval", "detectable_difference", "trend_power", "detectable_trend", "spearman", "spearman_test",
           "correlation_over_seeds", "kendalls_w"]

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


def image_bootstrap(values: np.ndarray, statistic: Callable[[np.ndarray], Any], resamples: int = 1000,
                    seed: int = 0) -> Any:
    """``statistic`` of ``resamples`` bootstrap samples of the rows (images) of ``values`` (N, ...), drawn
    at once: ``statistic`` gets an array (resamples, N, ...) and reduces its axis -2 (e.g.
    ``sample.mean(-2)``); what it returns comes back, one value per resample along axis 0 (tuples of
    arrays too). :func:`percentile_interval` turns them into an interval."""
    check_resamples(resamples)
    n = len(values)
    return statistic(values[np.random.default_rng(seed).integers(0, n, size=(resamples, n))])


def percentile_interval(draws: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The 1 − ``alpha`` (default 95%) percentile interval of bootstrap ``draws`` (resamples along axis
    0): an array (2, ...) of lower and upper ends."""
    return np.percentile(draws, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)


def detectable_difference(lo: float, hi: float, level: float = 1 - ALPHA, power: float = 0.8) -> float:
    """The smallest true difference that a study whose ``level`` interval of a difference is
    [``lo``, ``hi``] would find beyond its interval with probability ``power``: (z of the interval +
    z of the power) standard errors, the standard error read off the interval's width as if it were
    normal. A power statement for a "no difference": differences well below it could not be seen.

    Example:
        >>> round(detectable_difference(-0.0031, 0.0244, level=0.975), 4)  # chapter 5's interval
        0.0189
    """
    if not (0 < level < 1 and 0 < power < 1) or not hi >= lo:
        raise ValueError(f"need 0 < level, power < 1 and lo <= hi, got level {level}, power {power}, [{lo}, {hi}]")
    z_level = scipy_stats.norm.ppf(1 - (1 - level) / 2)
    return float((z_level + scipy_stats.norm.ppf(power)) * (hi - lo) / (2 * z_level))


def trend_power(levels: int, seeds: int, r: float, *, studies: int = 400, seed: int = 0) -> float:
    """How often a trend test over every model (rank correlation of the knob level with robust
    accuracy, permutation p < :data:`ALPHA`, ``verdicts.knob_trend``) finds a latent correlation ``r``
    with its sign, in ``studies`` synthetic studies of ``levels`` × ``seeds`` models (accuracy =
    r·z + √(1 − r²)·noise, z the standardised level). The permutation null depends only on the
    design's ranks, so it is drawn once (:data:`MONTE_CARLO_DRAWS` orders).

    Example:
        >>> trend_power(6, 3, 0.0) < 0.08  # the false-verdict rate  # doctest: +SKIP
        True
    """
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    level = np.repeat(np.arange(levels, dtype=float), seeds)
    rx, z = rankdata(level), (level - level.mean()) / level.std()
    null = np.abs(_rho_of_ranks(rx, np.argsort(rng.random((MONTE_CARLO_DRAWS, len(rx))), axis=1) + 1.0))
    accuracy = r * z + np.sqrt(1 - r ** 2) * rng.standard_normal((studies, len(z)))
    rho = _rho_of_ranks(rx, np.apply_along_axis(rankdata, 1, accuracy))
    p = ((null[None] >= np.abs(rho)[:, None] - 1e-12).sum(1) + 1) / (len(null) + 1)
    return float(((p < ALPHA) & (np.sign(rho) == np.sign(r))).mean()) if r else float((p < ALPHA).mean())


def detectable_trend(levels: int, seeds: int, power: float = 0.8, *, studies: int = 400) -> float:
    """The smallest latent |correlation| on a 0.05 grid that :func:`trend_power` finds with at least
    ``power``; NaN when even 0.95 is missed."""
    for r in np.arange(0.05, 0.951, 0.05):
        if trend_power(levels, seeds, -float(r), studies=studies) >= power:
            return round(float(r), 2)
    return float("nan")


def kendalls_w(scores) -> float:
    """Kendall's coefficient of concordance W of ``scores`` (raters, items), e.g. seeds × taps of V:
    1 when every rater ranks the items alike, near 0 when their rankings are unrelated. Ties get
    average ranks (no tie correction). NaN with fewer than 2 raters or 2 items.

    Example:
        >>> kendalls_w([[0.1, 0.5, 0.3], [0.2, 0.6, 0.4]])
        1.0
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 2 or np.isnan(scores).any():
        return float("nan")
    raters, items = scores.shape
    ranks = np.apply_along_axis(scipy_stats.rankdata, 1, scores).sum(0)
    spread = ((ranks - ranks.mean()) ** 2).sum()
    return float(12 * spread / (raters ** 2 * (items ** 3 - items)))


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


