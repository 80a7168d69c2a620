"""Robust-accuracy evaluation that can be trusted: tables, ε curves and strength checks.

A robust-accuracy number is only as good as the attack behind it. ``strength_checks`` runs the
checks of DESIGN.md on one model: more steps and more restarts must change little, accuracy must
fall towards 0 as ε grows, a black-box transfer attack must be weaker than the white-box one, and an
independent implementation (torchattacks PGD) must agree within 1 percentage point.
Our attack must also be at least as strong as the published reference settings.
Results are tidy DataFrames, cached in the artifact store.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch

from .attacks import accuracy, pgd, robust_accuracy
from .store import Store, fingerprint
from .training import TrainedModel

# Thresholds of the strength checks, in accuracy points (fractions).
MAX_CHANGE_STRONGER = 0.02   # more steps / restarts may lower accuracy by at most this much
MAX_DISAGREEMENT = 0.01      # |ours - torchattacks|
MAX_ACC_AT_LARGE_EPS = 0.10  # accuracy at the largest ε of the check


def _model_columns(trained: TrainedModel) -> dict:
    c = trained.config
    return {"dataset": c.dataset, "pool": c.pool, "training": c.method, "seed": c.seed, "model": c.label}


def _cache_key(trained: TrainedModel, x: torch.Tensor, y: torch.Tensor, **settings) -> dict:
    return {"model": dataclasses.asdict(trained.config), "images": fingerprint(x, y), **settings}


def robust_table(models: list[TrainedModel], x: torch.Tensor, y: torch.Tensor, *, eps: float,
                 steps: int, step_size: float, restarts: int, store: Store, seed: int = 0) -> pd.DataFrame:
    """Clean and PGD-``steps`` (× ``restarts``) accuracy of each model on ``x``, ``y``: one row each."""
    rows = []
    for trained in models:
        def compute(trained=trained):
            result = robust_accuracy(trained.model, x, y, eps=eps, steps=steps, step_size=step_size,
                                     restarts=restarts, seed=seed, progress=f"{trained.config.label}")
            return {"clean_acc": result.clean, "robust_acc": result.robust, "attack_seconds": result.seconds}
        key = _cache_key(trained, x, y, eps=eps, steps=steps, step_size=step_size, restarts=restarts, seed=seed)
        numbers = store.get_or_create("robust_accuracy", key, compute, fmt="json")
        rows.append({**_model_columns(trained), "eps": eps, "attack": f"PGD-{steps}x{restarts}", **numbers})
    return pd.DataFrame(rows)


def robustness_curve(models: list[TrainedModel], x: torch.Tensor, y: torch.Tensor, *, eps_grid: list[float],
                     attack_for_eps, store: Store, seed: int = 0) -> pd.DataFrame:
    """Robust accuracy of each model at each ε of ``eps_grid``.

    ``attack_for_eps(eps)`` gives ``{"eps", "steps", "step_size"}`` (see ``profiles.attack_settings``).
    """
    frames = []
    for eps in eps_grid:
        attack = attack_for_eps(eps)
        frames.append(robust_table(models, x, y, eps=eps, steps=attack["steps"],
                                   step_size=attack["step_size"], restarts=1, store=store, seed=seed))
    return pd.concat(frames, ignore_index=True)


def torchattacks_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                          steps: int, step_size: float, random_start: bool = True, batch_size: int = 500) -> float:
    """Accuracy under torchattacks' PGD (L-inf): an independent implementation."""
    try:
        import torchattacks
    except ImportError as error:
        raise ImportError("the independent-implementation check needs torchattacks: "
                          "pip install 'igan-book[dev]'") from error
    attack = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=random_start)
    right = 0
    for i in range(0, len(x), batch_size):
        adv = attack(x[i:i + batch_size], y[i:i + batch_size])
        right += accuracy(model, adv, y[i:i + batch_size]) * len(adv)
    return right / len(x)


def transfer_accuracy(target: torch.nn.Module, surrogate: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                      *, eps: float, steps: int, step_size: float, seed: int = 0, batch_size: int = 500) -> float:
    """Accuracy of ``target`` on PGD examples crafted against ``surrogate`` (black-box transfer)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    right = 0
    for i in range(0, len(x), batch_size):
        adv = pgd(surrogate, x[i:i + batch_size], y[i:i + batch_size], eps, steps=steps,
                  step_size=step_size, generator=generator).adv
        right += accuracy(target, adv, y[i:i + batch_size]) * len(adv)
    return right / len(x)


def strength_checks(trained: TrainedModel, surrogate: TrainedModel, x: torch.Tensor, y: torch.Tensor, *,
                    eps: float, steps: int, step_size: float, restarts: int, large_eps: float,
                    published_step_size: float, store: Store, seed: int = 0) -> pd.DataFrame:
    """Is the PGD attack on ``trained`` strong enough to trust its robust accuracy?

    One row per check with the accuracy it measured, the baseline it is compared with, the criterion
    and whether it passed. ``surrogate`` crafts the transfer attack; ``large_eps`` is the radius at
    which accuracy must have collapsed; ``published_step_size`` is the reference's step, which our
    attack must match or beat.
    """
    def compute():
        def pgd_acc(e=eps, k=steps, a=step_size, r=restarts, random_start=True):
            return robust_accuracy(trained.model, x, y, eps=e, steps=k, step_size=a, restarts=r,
                                   random_start=random_start, seed=seed,
                                   progress=f"{trained.config.label} PGD-{k}x{r}").robust
        base = pgd_acc()
        more_steps = pgd_acc(k=int(2.5 * steps))  # same step size, longer path
        more_restarts = pgd_acc(r=restarts * 4)
        large = pgd_acc(e=large_eps, a=step_size * large_eps / eps)
        published = pgd_acc(a=published_step_size)
        # Without random starts both implementations follow the same path from x: any difference
        # is the implementation's, not the luck of the draw.
        ours_fixed = pgd_acc(r=1, random_start=False)
        independent = torchattacks_accuracy(trained.model, x, y, eps=eps, steps=steps, step_size=step_size,
                                            random_start=False)
        transfer = transfer_accuracy(trained.model, surrogate.model, x, y, eps=eps, steps=steps,
                                     step_size=step_size, seed=seed)
        base_name = f"PGD-{steps}x{restarts}"
        tol = 1e-9  # accuracies are multiples of 1/n: compare without rounding noise
        return [
            ("more steps", f"PGD-{int(2.5 * steps)}x{restarts}", more_steps, base,
             f"drop <= {MAX_CHANGE_STRONGER:.0%}", base - more_steps <= MAX_CHANGE_STRONGER + tol),
            ("more restarts", f"PGD-{steps}x{restarts * 4}", more_restarts, base,
             f"drop <= {MAX_CHANGE_STRONGER:.0%}", base - more_restarts <= MAX_CHANGE_STRONGER + tol),
            ("large eps", f"{base_name} at eps={large_eps:.3g}", large, base,
             f"accuracy <= {MAX_ACC_AT_LARGE_EPS:.0%}", large <= MAX_ACC_AT_LARGE_EPS + tol),
            ("transfer (black-box)", f"PGD-{steps} on {surrogate.config.label}", transfer, base,
             "black-box accuracy >= white-box", transfer >= base - tol),
            ("independent (torchattacks)", f"torchattacks PGD-{steps}, no random start", independent, ours_fixed,
             f"|difference| <= {MAX_DISAGREEMENT:.0%}", abs(independent - ours_fixed) <= MAX_DISAGREEMENT + tol),
            ("published step size", f"{base_name}, step {published_step_size:.3g}", published, base,
             "ours at least as strong", published >= base - tol),
        ]

    key = {**_cache_key(trained, x, y, eps=eps, steps=steps, step_size=step_size, restarts=restarts,
                        large_eps=large_eps, published_step_size=published_step_size, seed=seed),
           "surrogate": dataclasses.asdict(surrogate.config)}
    rows = store.get_or_create("strength_checks", key, compute, fmt="json")
    frame = pd.DataFrame(rows, columns=["check", "attack", "accuracy", "baseline_accuracy", "criterion", "passed"])
    for column, value in _model_columns(trained).items():
        frame.insert(0, column, value)
    frame["eps"] = eps
    return frame


def _t_interval(values: pd.Series) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of ``values`` (NaN interval for fewer than two)."""
    from scipy import stats

    values = values.dropna()
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5)
    return mean, mean - half, mean + half


def over_seeds(table: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    """Mean of ``value`` over seeds with a 95% t-interval, per group of ``by`` columns."""
    rows = []
    for key, part in table.groupby(by, sort=False):
        mean, lo, hi = _t_interval(part[value])
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "seeds": part["seed"].nunique(),
                     "mean": mean, "ci_lo": lo, "ci_hi": hi})
    return pd.DataFrame(rows)


def paired_difference(table: pd.DataFrame, value: str, by: list[str], *, a: str = "avg", b: str = "max") -> pd.DataFrame:
    """Difference of ``value`` between pooling ``a`` and ``b``, paired by seed, with a 95% t-interval,
    per group of ``by``; ``verdict`` says whether it is larger than the spread over seeds."""
    rows = []
    for key, part in table.groupby(by, sort=False):
        wide = part.pivot_table(index="seed", columns="pool", values=value)
        if not {a, b} <= set(wide.columns):
            continue
        mean, lo, hi = _t_interval(wide[a] - wide[b])
        if lo > 0:
            verdict = f"{a} higher, beyond the spread over seeds"
        elif hi < 0:
            verdict = f"{b} higher, beyond the spread over seeds"
        else:
            verdict = "no difference beyond the spread over seeds"
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "seeds": len(wide.dropna()),
                     f"{a}_minus_{b}": mean, "ci_lo": lo, "ci_hi": hi, "verdict": verdict})
    return pd.DataFrame(rows)
