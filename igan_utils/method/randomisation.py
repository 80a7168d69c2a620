"""Cascading weight randomisation (Adebayo et al. 2018), for the per-layer diagnosis (rule 12).

If the vulnerability profile V barely changes when a model's weights are replaced by random ones,
it measures the interpreters or the judge, not the model. The check re-initialises the model's
layers from the top down, one more at each level (the head first, then each layer below it), and
runs the whole diagnosis again on each randomised model: new successful attacks, new interpreters
(trained for the randomised weights), the same judge. Level 0 is the trained model.

A level *differs* when at least one tap's V interval is disjoint from that tap's interval on the
trained model. Levels that leave every diagnosed tap's own layer trained (only layers above the taps
re-initialised) are shown but not judged: there the activations at the taps are the trained ones. The
check passes when every judged level with at least :data:`MIN_RANDOMISED_EXAMPLES` adversarial
examples differs (fixed on 2026-12-07, after one trial on a one-epoch test model and before any run
on the book's models).

Example:
    >>> table = randomisation_check(model, judge, x, y, taps=["conv2", "fc1"], attack=attack,
    ...                             interpreters=lambda m: decoder_interpreters(m, taps, train, steps=100))  # doctest: +SKIP
    >>> levels, passed = randomisation_verdict(table)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .interpretgan import Interpreter
from .layers import INPUT, Attacked, vulnerability_table

__all__ = ["MIN_RANDOMISED_EXAMPLES", "cascade", "randomised", "randomisation_check", "randomisation_verdict"]

MIN_RANDOMISED_EXAMPLES = 10  # adversarial examples a level needs to be tested


def cascade(model: nn.Module, *, down_to: str | None = None) -> list[list[str]]:
    """The layers re-initialised at each level: the top-level children of ``model`` that have
    parameters, cumulatively from the last one down (``[["logits"], ["logits", "fc2"], …]``), ending
    with ``down_to`` when given."""
    layers = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    if down_to is not None:
        if down_to not in layers:
            raise ValueError(f"down_to must be a layer with parameters, one of {layers}, got {down_to!r}")
        layers = layers[layers.index(down_to):]
    return [layers[len(layers) - k:] for k in range(1, len(layers) + 1)]


def randomised(model: nn.Module, layers: Sequence[str], *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose top-level children ``layers`` are re-initialised (each submodule's
    own ``reset_parameters``, drawn by ``seed``); the other layers keep their trained weights."""
    children = dict(model.named_children())
    unknown = [name for name in layers if name not in children]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(map(repr, unknown))}; layers: {', '.join(children)}")
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layers:
            for module in dict(fresh.named_children())[name].modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return fresh


def randomisation_check(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                        taps: Sequence[str], attack: Callable[[nn.Module, torch.Tensor, torch.Tensor], Attacked],
                        interpreters: Callable[[nn.Module], Mapping[str, Interpreter]],
                        levels: Sequence[Sequence[str]] | None = None, bootstrap: int = 200,
                        seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """V per tap of ``model`` and of each randomised copy (:func:`cascade` unless ``levels`` given).

    Args:
        model, judge: the diagnosed model and the judge of its interpretations.
        x, y: the images attacked (N, C, H, W) in [0, 1] and their labels (N,).
        taps: the taps diagnosed.
        attack: (model, x, y) → :class:`~igan_utils.method.layers.Attacked`, e.g. ``successful_attacks``.
        interpreters: model → tap → :class:`Interpreter`, trained for that model (e.g. GANs, or
            ``layers.decoder_interpreters``).
        bootstrap: resamples of V's intervals.
        progress: show a bar over the levels.

    Returns one row per level and tap: ``level`` (0: trained), ``randomised`` (the lowest layer
    re-initialised, ``none`` at level 0), ``taps_randomised`` (how many of ``taps`` lie in a
    re-initialised layer), ``tap``, ``n``, ``V``, ``V_lo``, ``V_hi`` and ``disjoint`` (the interval
    shares no point with the trained model's at that tap).
    """
    levels = cascade(model) if levels is None else [list(level) for level in levels]
    frames = []
    for level, layers in enumerate(tqdm([[], *levels], desc="randomisation levels", disable=not progress, leave=False)):
        candidate = randomised(model, layers, seed=seed + level) if layers else model
        found = attack(candidate, x, y)
        table = vulnerability_table(candidate, interpreters(candidate), {"judge": judge}, found, taps=taps,
                                    bootstrap=bootstrap, seed=seed)
        if table.empty:
            table = pd.DataFrame({"tap": list(taps), "n": 0, "V": float("nan"), "V_lo": float("nan"), "V_hi": float("nan")})
        table = table[table["tap"] != INPUT][["tap", "n", "V", "V_lo", "V_hi"]]
        hit = sum(tap.split(".")[0] in layers for tap in taps)
        frames.append(table.assign(level=level, randomised=layers[0] if layers else "none", taps_randomised=hit))
    result = pd.concat(frames, ignore_index=True)
    trained = result[result["level"] == 0].set_index("tap")
    lo, hi = result["tap"].map(trained["V_lo"]), result["tap"].map(trained["V_hi"])
    result["disjoint"] = (result["V_lo"] > hi) | (result["V_hi"] < lo)
    return result[["level", "randomised", "taps_randomised", "tap", "n", "V", "V_lo", "V_hi", "disjoint"]]


def randomisation_verdict(table: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The levels of :func:`randomisation_check` — ``n``, ``differs`` (some tap's interval disjoint
    from the trained model's), ``tested`` (a diagnosed tap's layer is re-initialised and there are at
    least :data:`MIN_RANDOMISED_EXAMPLES` examples) — and whether the check passed: at least one level
    was tested and every tested level differs."""
    levels = table[table["level"] > 0].groupby(["level", "randomised", "taps_randomised"], sort=False).agg(
        n=("n", "min"), differs=("disjoint", "any")).reset_index()
    levels["tested"] = (levels["taps_randomised"] > 0) & (levels["n"] >= MIN_RANDOMISED_EXAMPLES)
    tested = levels[levels["tested"]]
    return levels, bool(len(tested)) and bool(tested["differs"].all())
