"""Models whose most vulnerable layer is known by construction: the test bench of the per-layer
diagnosis (validate a measurement where its answer is known before trusting it; rule 12).

Every plant is a chain of image-shaped taps ``stage1`` … ``stageK`` over a classifier ``C`` (any
model of the images, e.g. a naturally trained one, so attacks on it succeed):

- :func:`plant_flip` (``at`` = one stage): every stage passes its input on unchanged, except ``at``,
  which *renders* the class C assigns: its prototype (the mean training image of the class; the
  gradients are those of the prototypes weighted by C's softmax). The head reads the nearest prototype, so the plant predicts what C predicts, an attack
  fools it through C, and the judged class can change at ``at`` only. The planted tap must come out
  as the most vulnerable one, with V > 0.
- :func:`plant_null`: every stage passes the image on unchanged and C is the head: the class
  changes after the last tap, so no tap is vulnerable, V = 0 at every tap, and a diagnosis that
  names a layer there is wrong.

:func:`exact_interpreters` returns each tap's activation as the image (the stages are images), so
a check with them tests the diagnosis itself (R, V, intervals, fidelity, naming), not a GAN; the
book also runs the plants with trained InterpretGAN interpreters. :func:`planted_check` runs the
diagnosis on a series of plants and says, per plant, whether it found the planted answer.

Example:
    >>> plant = plant_flip(natural_model, class_prototypes(train), at="stage2")
    >>> table = planted_check(natural_model, judge, train, test, eps=0.3)  # doctest: +SKIP
    >>> pass_rates(table)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .cache import weights_fingerprint
from .data import ImageSet
from .interpretgan import Interpreter
from .layers import INPUT, Attacked, confident_attacks, vulnerability_table
from .runtime import model_device

__all__ = ["STAGES", "PLANT_PASS_SHARE", "class_prototypes", "plant_flip", "plant_null", "exact_interpreters",
           "planted_check", "pass_rates"]

STAGES = ("stage1", "stage2", "stage3", "stage4")
PLANT_PASS_SHARE = 0.9  # rule 12, fixed on 2026-12-07 before any run: ≥ 9 of 10 plants of each kind found


def class_prototypes(train: ImageSet) -> torch.Tensor:
    """The mean training image of each class: (classes, C, H, W) in [0, 1]."""
    x, y = train.tensors()
    missing = [train.classes[c] for c in range(len(train.classes)) if not (y == c).any()]
    if missing:
        raise ValueError(f"no training image of class(es) {', '.join(missing)}: a prototype needs at least one")
    return torch.stack([x[y == c].mean(0) for c in range(len(train.classes))])


class _Render(nn.Module):
    """Image → the prototype of the class ``classifier`` assigns it: the class, drawn. Gradients are
    those of the softmax-weighted prototypes (straight through), so attacks see C's gradients; the
    forward pass is the prototype itself, so rendering a rendered image changes nothing (wherever C
    labels the prototypes right) and the interpretations at the tap are exactly faithful."""

    def __init__(self, classifier: nn.Module, prototypes: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("prototypes", prototypes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        soft = F.softmax(self.classifier(x), 1)
        hard = F.one_hot(soft.argmax(1), soft.shape[1]).to(soft.dtype)
        return torch.einsum("nk,kchw->nchw", hard + soft - soft.detach(), self.prototypes)


class _NearestPrototype(nn.Module):
    """Image → logits −‖x − prototype_k‖² / (2 · pixels^½): the class whose prototype is nearest."""

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.register_buffer("prototypes", prototypes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distance = (x.flatten(1)[:, None, :] - self.prototypes.flatten(1)[None]).pow(2).sum(-1)
        return -distance / (2 * self.prototypes[0].numel() ** 0.5)


class _Plant(nn.Sequential):
    """Named stages, then a head; ``taps`` are the stages, ``planted`` the tap where the class changes
    (None: after the last tap)."""

    def __init__(self, stages: "OrderedDict[str, nn.Module]", head: nn.Module, planted: str | None):
        super().__init__(OrderedDict([*stages.items(), ("head", head)]))
        self.taps, self.planted = tuple(stages), planted


def _check_stages(stages: Sequence[str]) -> list[str]:
    stages = list(stages)
    if not stages or len(set(stages)) != len(stages) or "head" in stages or INPUT in stages:
        raise ValueError(f"stages must be distinct names other than 'head' and {INPUT!r}, got {stages}")
    return stages


def plant_flip(classifier: nn.Module, prototypes: torch.Tensor, *, at: str, stages: Sequence[str] = STAGES) -> nn.Module:
    """A plant whose only vulnerable tap is ``at`` (one of ``stages``): see the module docstring.
    ``classifier`` takes the images (N, C, H, W) and returns logits (N, classes); ``prototypes`` is
    (classes, C, H, W) (:func:`class_prototypes`). The plant is on ``classifier``'s device."""
    stages = _check_stages(stages)
    if at not in stages:
        raise ValueError(f"at must be one of the stages {stages}, got {at!r}")
    prototypes = prototypes.to(model_device(classifier))
    layers = OrderedDict((name, _Render(classifier, prototypes) if name == at else nn.Identity()) for name in stages)
    return _Plant(layers, _NearestPrototype(prototypes), at)


def plant_null(classifier: nn.Module, *, stages: Sequence[str] = STAGES) -> nn.Module:
    """A plant with no vulnerable tap: the stages pass the image on, ``classifier`` is the head."""
    return _Plant(OrderedDict((name, nn.Identity()) for name in _check_stages(stages)), classifier, None)


class _Exact(nn.Module):
    """The exact inverse of an image-shaped tap: the activation itself, as an image in [0, 1]."""

    def __init__(self, shape: Sequence[int], device: torch.device):
        super().__init__()
        self.z_shape = self.image_shape = tuple(shape)
        self.register_buffer("_where", torch.zeros((), device=device))  # so inputs are moved to this device

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(0, 1)


def exact_interpreters(plant: nn.Module, image_shape: Sequence[int]) -> dict[str, Interpreter]:
    """Interpreters of every tap of ``plant`` that invert it exactly (each tap is an image of
    ``image_shape``, (C, H, W))."""
    model_id, device = weights_fingerprint(plant), model_device(plant)
    return {tap: Interpreter(tap, _Exact(image_shape, device), model_id, []) for tap in plant.taps}


def planted_check(classifier: nn.Module, judge: nn.Module, train: ImageSet, test: ImageSet, *, eps: float,
                  plants: int = 10, per_plant: int = 100, stages: Sequence[str] = STAGES,
                  interpreters: Callable[[nn.Module], Mapping[str, Interpreter]] | None = None,
                  attack: Callable[[nn.Module, torch.Tensor, torch.Tensor, int], Attacked] | None = None,
                  bootstrap: int = 200, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """The diagnosis run on ``plants`` flip plants (planted tap ``stages[i % len(stages)]``) and as many
    null plants, plant i on its own ``per_plant`` test images (drawn by ``seed + i``).

    Args:
        classifier: the model C inside every plant (an accurate, non-robust one); judge: the judge.
        train: prototypes come from it; test: the attacked images.
        eps: the L∞ radius of the attack.
        interpreters: plant → tap → :class:`Interpreter` (default: :func:`exact_interpreters`).
        attack: (plant, x, y, seed) → :class:`Attacked` (default: PGD-20 at step eps/8, highest loss).
        bootstrap: resamples of V's intervals.
        progress: show a bar over the plants.

    Returns one row per plant: ``plant``, ``kind`` (``flip`` or ``null``), ``planted`` (tap or None),
    ``n`` (adversarial examples), ``top`` (the faithful tap of largest V), ``V_top``, ``V_top_lo``,
    ``V_planted``, ``vulnerable`` (the taps whose V interval lies above 0) and ``found``: a flip plant
    is found when its planted tap is the top tap with an interval above 0, a null plant when no tap's
    interval lies above 0; a plant with no adversarial example is not found.
    """
    if plants < 1 or per_plant < 1:
        raise ValueError(f"plants and per_plant must be >= 1, got {plants} and {per_plant}")
    stages = _check_stages(stages)
    prototypes = class_prototypes(train)
    interpreters = interpreters or (lambda plant: exact_interpreters(plant, train.image_shape))
    attack = attack or (lambda plant, x, y, s: confident_attacks(plant, x, y, eps=eps, steps=20, step_size=eps / 8, seed=s))
    rows = []
    for kind, i in tqdm([(kind, i) for kind in ("flip", "null") for i in range(plants)], desc="plants",
                        disable=not progress, leave=False):
        planted = stages[i % len(stages)] if kind == "flip" else None
        plant = plant_flip(classifier, prototypes, at=planted, stages=stages) if planted else plant_null(classifier, stages=stages)
        x, y = test.subset(per_plant, seed=seed + i).tensors(model_device(classifier))
        found = attack(plant, x, y, seed + i)
        table = vulnerability_table(plant, interpreters(plant), {"judge": judge}, found, bootstrap=bootstrap, seed=seed + i)
        rows.append({"plant": i, "kind": kind, "planted": planted, **_outcome(table, planted)})
    return pd.DataFrame(rows)


def _outcome(table: pd.DataFrame, planted: str | None) -> dict:
    taps = table[table["tap"] != INPUT] if len(table) else table
    if taps.empty or taps["V"].isna().all():
        return {"n": 0, "top": None, "V_top": np.nan, "V_top_lo": np.nan, "V_planted": np.nan, "vulnerable": [],
                "found": False}
    faithful = taps[taps["faithful"].eq(True)].sort_values("V", ascending=False, kind="stable")
    top = faithful.iloc[0] if len(faithful) else None
    vulnerable = taps.loc[taps["V_lo"] > 0, "tap"].tolist()
    at = taps.loc[taps["tap"] == planted, "V"]
    found = (top is not None and top["tap"] == planted and top["V_lo"] > 0) if planted else not vulnerable
    return {"n": int(taps["n"].iloc[0]), "top": None if top is None else top["tap"],
            "V_top": np.nan if top is None else float(top["V"]), "V_top_lo": np.nan if top is None else float(top["V_lo"]),
            "V_planted": float(at.iloc[0]) if len(at) else np.nan, "vulnerable": vulnerable, "found": bool(found)}


def pass_rates(table: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Rule 12's verdict from :func:`planted_check` tables (several may be stacked, told apart by
    ``by``): per group and kind, ``found`` of ``plants``, the ``share`` and ``passed``: the share is at
    least :data:`PLANT_PASS_SHARE`."""
    keys = [*by, "kind"]
    summary = table.groupby(keys, sort=False)["found"].agg(found="sum", plants="size").reset_index()
    summary["share"] = summary["found"] / summary["plants"]
    summary["passed"] = summary["share"] >= PLANT_PASS_SHARE
    return summary
