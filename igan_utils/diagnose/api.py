"""Diagnose your own model in one call: :func:`diagnose_model`, and what it returns, :class:`Diagnosis`.

Any ``nn.Module`` that returns logits for images in [0, 1], the names of the layers to tap, and
data: the call trains (or loads from the store) one InterpretGAN interpreter and one
information-loss decoder per tap, attacks the model (each image's first success of a PGD screen,
APGD-CE and APGD-T), lets a judge label the interpretations of the adversarial examples, and
returns a :class:`Diagnosis` with the book's tables, figures and a self-contained report
(``diagnose.report``). Budgets are the call's own set
(:data:`BUDGETS`), taken from a profile (``quick`` by default).

The judge: for MNIST and CIFAR-10 the book's trusted judge (``configs.trusted_judge``, an
adversarially trained model that passed the gradient-masking checks); for any other data the caller
passes a classifier of the same classes, or ``"self"`` (the model judges its own interpretations).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import pandas as pd
import torch
from torch import nn

from ..book import configs, findings, plots, profiles, verdicts
from ..book.store import Store
from ..method import attacks, data, interpretgan, layers, validation
from ..method.masking import masked_models
from ..method.runtime import device_name, eval_mode, to_model
from ..method.taps import forward_with_taps, tap_names
from .report import write_report

DEFAULT_PROFILE = "quick"
BUDGETS = profiles.NOTEBOOK_PARAMS["diagnose_model"]  # the call's own budget set (profiles.py)
_UNKNOWN_DATA_STEPS = 40  # PGD steps when the data has no reference settings; path 2.5 ε (Madry et al.)


@dataclass
class Diagnosis:
    """What :func:`diagnose_model` found for one model: its tables, figures and report.

    Args:
        model_name: the model's name in the report.
        taps: the diagnosed taps, in depth order.
        vulnerability: one row per judge and tap (the input first): R, V, first flip with 95 % bootstrap
            intervals, the feature change, ``n`` successful attacks.
        information: one row per tap: decoder errors, the bound IL and ΔIL, 1 − SSIM.
        correlation: the Spearman rank correlation of ΔIL with V per judge, with its exact p-value.
        quality: how faithful each tap's interpreter is on clean images.
        judge: who labelled the interpretations (a sentence).
        settings: the attack, budgets, device and data of the run.
        classes: the label names.
        examples: a few clean images, their adversarial twins and the twins' interpretations.
        judge_checks: the masking checks of the book's judge (None for a caller's judge).
        seconds: wall time of the call.

    Example:
        >>> found.most_vulnerable(), found.summary()  # doctest: +SKIP
        >>> found.plot_vulnerability(); found.report("diagnosis")  # doctest: +SKIP
    """

    model_name: str
    taps: list[str]
    vulnerability: pd.DataFrame
    information: pd.DataFrame
    correlation: pd.DataFrame
    quality: pd.DataFrame
    judge: str
    settings: dict[str, Any]
    classes: tuple[str, ...]
    examples: dict[str, Any] = field(repr=False)
    judge_checks: pd.DataFrame | None = None
    seconds: float = 0.0

    def most_vulnerable(self, judge: str | None = None, k: int = 2) -> list[str]:
        """The ``k`` faithful taps (``layers.fidelity``) with the largest V for ``judge`` (default:
        the first judge)."""
        if self.vulnerability.empty:
            return []
        judge = judge or self.vulnerability["judge"].iloc[0]
        found = layers.most_vulnerable(self.vulnerability, ["judge"], k).set_index("judge")
        return found.loc[judge, "taps"] if judge in found.index else []

    @property
    def unfaithful(self) -> list[str]:
        """Taps whose interpretations of x′ are not faithful: their V is shown, hatched, but not read."""
        v = self.vulnerability
        return list(dict.fromkeys(v.loc[v["faithful"].eq(False), "tap"]))

    def answer(self) -> str:
        """The answer first: per judge, the most vulnerable faithful tap with its V and 95% interval."""
        if self.vulnerability.empty or int(self.vulnerability["n"].iloc[0]) == 0:
            return "No attack succeeded, so no layer can be diagnosed."
        said = []
        for judge in dict.fromkeys(self.vulnerability["judge"]):
            top = self.most_vulnerable(judge, k=1)
            who = "the model itself" if judge == "self" else f"the {judge} judge"
            if not top:
                said.append(f"judged by {who}, no tap is faithful enough to read")
                continue
            row = self.vulnerability.query("judge == @judge and tap == @top[0]").iloc[0]
            said.append(f"judged by {who}, {top[0]} (V = {row['V']:.2f}, 95% interval [{row['V_lo']:.2f}, "
                        f"{row['V_hi']:.2f}])")
        return f"Most vulnerable layer of {self.model_name}: " + "; ".join(said) + "."

    def summary(self) -> str:
        """A few sentences: what was attacked, who judged, where the vulnerability is, and whether
        information loss predicts it."""
        n = int(self.vulnerability["n"].iloc[0]) if len(self.vulnerability) else 0
        s = self.settings
        lines = [f"{self.model_name}: {s['attack']} at ε = {s['eps']:.4g} broke {n} of the {s['attacked']} test "
                 f"images attacked ({s['clean_correct']} classified correctly before; made by: {s['made_by']})."]
        lines.append(f"Judge: {self.judge}.")
        if n == 0:
            return " ".join(lines + ["No successful attack: nothing to diagnose (raise eps or attack more images)."])
        if self.unfaithful:
            lines.append(f"Left out of what follows: {', '.join(self.unfaithful)}, where the interpretation of x′ is "
                         f"not faithful (its feature error is over {layers.FIDELITY_FACTOR:g}× the clean one).")
        for judge in dict.fromkeys(self.vulnerability["judge"]):
            top = self.most_vulnerable(judge)
            row = self.correlation[self.correlation["judge"] == judge].iloc[0]
            where = f"most vulnerability at {' and '.join(top)}" if top else "no faithful tap to read V at"
            lines.append(f"Judge `{judge}`: {where}; "
                         f"{findings.correlation_sentence(row)} that layers losing more information are more vulnerable.")
        return " ".join(lines)

    def _repr_markdown_(self) -> str:
        return self.summary()

    def plot_vulnerability(self, value: str = "V") -> matplotlib.figure.Figure:
        """V (or ``first_flip``) per tap with 95% intervals, one panel per judge (one that says so when
        no image was broken)."""
        return plots.vulnerability_bars(self.vulnerability.assign(model=self.model_name), value=value, hue="model",
                                   title=f"{self.model_name}, ε = {self.settings['eps']:.4g}")

    def plot_information(self) -> matplotlib.figure.Figure:
        """Information loss (decoder MSE and 1 − SSIM) and feature change per tap."""
        frame = self.information.merge(self.vulnerability.drop_duplicates("tap")[["tap", "feature_change"]], on="tap",
                                       how="left")
        return plots.per_tap(frame.assign(model=self.model_name), ["IL", "one_minus_ssim", "feature_change"],
                             hue="model", kind="line", titles={"IL": "IL (decoder MSE)", "one_minus_ssim": "1 − SSIM",
                                                               "feature_change": "‖E(x′) − E(x)‖ / ‖E(x)‖"})

    def plot_interpretations(self) -> matplotlib.figure.Figure:
        """Rows: adversarial examples; columns: the clean image, x′, and x′'s interpretation at each
        tap, with the judge's label under each."""
        e = self.examples
        columns = [e["clean"], e["adversarial"], *e["interpretations"].values()]
        images = [[c[i] for c in columns] for i in range(len(e["clean"]))]
        captions = [[self.classes[label] for label in row] for row in e["judged"]]
        return plots.image_table(images, row_labels=[f"true {self.classes[y]}" for y in e["labels"].tolist()],
                                 col_labels=["x", "x′", *e["interpretations"]], captions=captions,
                                 title=f"labels: judge {e['judge_name']}")

    def figures(self) -> dict[str, matplotlib.figure.Figure]:
        """Every figure of the report, by file stem."""
        found = {} if self.vulnerability.empty else {"vulnerability": self.plot_vulnerability(),
                                                     "first_flip": self.plot_vulnerability("first_flip")}
        found["information"] = self.plot_information()
        if len(self.examples["clean"]):
            found["interpretations"] = self.plot_interpretations()
        return found

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the report, by title."""
        found = {"Vulnerability per tap": self.vulnerability, "Information loss per tap": self.information,
                 "Does information loss predict vulnerability?": self.correlation,
                 "Interpreter quality on clean images": self.quality}
        if self.judge_checks is not None:
            found["The judge's gradient-masking checks"] = self.judge_checks
        return found

    def report(self, out: str | Path, format: str = "html") -> Path:
        """Write the report into folder ``out``: ``report.html`` (figures embedded, one file to send)
        or ``report.md`` with the figures as PNG files beside it. Returns the report's path."""
        return write_report(self, out, format)


def diagnose_model(model: nn.Module, taps: Sequence[str] | None, train, test, *, eps: float,
                   judge: nn.Module | str | None = None, dataset: str | None = None,
                   classes: Sequence[str] | None = None, profile: str | profiles.Params = DEFAULT_PROFILE, seed: int = 0,
                   store: Store | None = None, name: str | None = None, progress: bool = True,
                   **budget: Any) -> Diagnosis:
    """Which layers of ``model`` make it vulnerable to L∞ attacks of radius ``eps``?

    Args:
        model: an ``nn.Module`` returning logits (N, classes) for images (N, C, H, W) in [0, 1]. It runs
            where it is (put it on a GPU to diagnose there) and comes back in the mode it came in.
        taps: names of its submodules in depth order (``taps.tap_candidates`` lists them); None:
            ``model.taps``.
        train, test: each a torch ``Dataset``, a ``DataLoader`` or an ``(images, labels)`` pair, images in
            [0, 1]; ``train`` trains the interpreters and decoders, ``test`` is attacked.
        eps: the L∞ radius in pixel units of [0, 1] (0.3 for MNIST, 0.1 for Fashion-MNIST, 8/255 for CIFAR-10).
        judge: a classifier of the same classes and images, ``"self"``, or None (default) for the book's
            trusted judge, which needs ``dataset``.
        dataset: ``"mnist"``, ``"fashion"`` or ``"cifar10"`` for the book's judge and reference attack settings; None
            (default) for other data.
        classes: names of the labels (default: their numbers).
        profile: a profile's name (default ``"quick"``) or resolved parameters (a chapter's), whose
            budgets in :data:`BUDGETS` apply; ``budget`` overrides any of them (``gan_steps=300``).
        seed: seed of the interpreters, decoders, attack and bootstrap (default 0).
        store: the artifact store (default: ``Store()``); everything trained is kept there, keyed by
            the model's weights, the tap, the data and the budget, so a second call only attacks and judges.
        name: the model's name in the report (default: its class name).
        progress: progress bars (default True).

    Returns:
        a :class:`Diagnosis`: tables, figures, ``summary()`` and ``report(folder)``.

    Raises:
        ValueError or TypeError, before any training, for a model that does not return a logits tensor
        or does not take the images, taps that are unknown, reused or not tensors, data out of [0, 1] or
        in (N, H, W, C) order, labels beyond the model's classes, a judge of other classes or images,
        no judge for other data, an unknown budget or one out of range (``bootstrap`` < 20).

    Example:
        >>> found = diagnose_model(model, ["conv1", "conv2", "fc1"], (train_x, train_y), (test_x, test_y),
        ...                        eps=0.3, dataset="mnist", gan_steps=300)  # doctest: +SKIP
        >>> found.most_vulnerable(), found.report("diagnosis")  # doctest: +SKIP
    """
    start = time.perf_counter()
    if isinstance(profile, profiles.Params):  # resolved parameters (a chapter's): their budgets, with overrides
        budget = {**{k: v for k, v in profile.items() if k in BUDGETS}, **budget}
        profile = profile.profile
    P = profiles.resolve("diagnose_model", profile, **budget)
    validation.check_module(model)
    eps = validation.check_eps(eps)
    if dataset is not None and dataset not in data.DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(data.DATASETS)} or None, got {dataset!r}")
    train = data.as_image_set(train, name=dataset or "train", classes=classes)
    test = data.as_image_set(test, name=dataset or "test", classes=classes or train.classes)
    if train.image_shape != test.image_shape:
        raise ValueError(f"train images are {train.image_shape} but test images {test.image_shape}")
    x, y = test.take(slice(0, P.diag_size)).tensors()
    with ExitStack() as modes:  # the caller's models come back in the mode they came in
        modes.enter_context(eval_mode(model))
        if isinstance(judge, nn.Module):
            modes.enter_context(eval_mode(judge))
        with torch.no_grad():
            n_classes = validation.logits_of(model, to_model(model, x[:2])[0]).shape[1]
            taps = tap_names(model, taps)
            forward_with_taps(model, x[:2], taps)  # refuses reused modules and non-tensor outputs
        validation.check_labels(y, n_classes)
        validation.check_labels(train.labels, n_classes)
        store = store or Store()
        judges, judge_text, judge_checks = _judges(model, judge, dataset, P, store, progress)
        for judge_model in judges.values():
            validation.check_judge(judge_model, model, x[:2])

        found = interpretgan.interpreters_for(model, taps, train, configs.gan_config_for(P, seed), store=store,
                                              progress=progress)
        attack = _attack_settings(P, dataset, eps)
        ensemble = configs.diagnosis_ensemble(P, attack["steps"], attack["step_size"])
        attacked = layers.successful_attacks(model, x, y, eps=eps, ensemble=ensemble, seed=seed)
        table = layers.vulnerability_table(model, found, judges, attacked, taps=taps, bootstrap=P.bootstrap, seed=seed)
        info = layers.information_loss(model, taps, train, test.take(slice(0, P.eval_size)), steps=P.decoder_steps,
                                          store=store, seed=seed, progress=progress)
        merged = table.merge(info, on="tap")
        correlation = verdicts.tap_correlations(merged, ["judge"])
        quality = pd.DataFrame(interpretgan.quality(model, found, x[:min(len(x), 256)]))
        examples = _examples(model, found, judges, attacked)
        clean_correct = int((attacks.predict(model, x) == y).sum())
    settings = {"eps": eps, "attack": f"{ensemble.name} (PGD step {attack['step_size']:.4g}), first success per image",
                "made_by": table["made_by"].iloc[0] if len(table) else "none", "attacked": len(x), "clean_correct": clean_correct,
                "taps": ", ".join(taps), "interpreter": f"InterpretGAN, {P.gan_steps} steps per tap",
                "decoder_steps": P.decoder_steps, "bootstrap": P.bootstrap, "profile": profile,
                "train_images": len(train), "data": dataset or "user data", "device": device_name(model)}
    return Diagnosis(name or type(model).__name__, taps, table, info, correlation, quality, judge_text, settings,
                     train.classes, examples, judge_checks, time.perf_counter() - start)


def _judges(model, judge, dataset, P, store, progress) -> tuple[dict[str, nn.Module], str, pd.DataFrame | None]:
    if isinstance(judge, nn.Module):
        return ({"independent": judge, "self": model},
                f"`independent` = a classifier given by the caller ({type(judge).__name__}), and `self` = the model", None)
    if judge == "self":
        return {"self": model}, "`self` = the diagnosed model labels its own interpretations (not independent)", None
    if judge is not None:
        raise ValueError(f"judge must be a classifier (nn.Module), 'self' or None, got {judge!r}")
    if dataset is None:
        raise ValueError("no judge: for data other than the book's MNIST, Fashion-MNIST or CIFAR-10 (dataset="
                         "'mnist', 'fashion' or 'cifar10'), pass judge= a classifier of the same classes trained independently "
                         "(ideally adversarially), or judge='self'")

    splits = configs.splits_for(P, dataset)
    found, judge_checks = configs.trusted_judge(P, dataset, splits, store=store, progress=progress)
    trusted = found.config.label not in masked_models(judge_checks)
    text = (f"`independent` = the book's judge for {splits.label}, {found.config.label} (adversarially trained, "
            + ("passed every gradient-masking check" if trusted else "**failed a gradient-masking check: treat its "
               "verdicts with caution**") + "), and `self` = the model")
    return {"independent": found.model, "self": model}, text, judge_checks


def _attack_settings(P, dataset: str | None, eps: float) -> dict[str, Any]:
    if dataset is not None:
        return configs.attack_settings(P, dataset, eps=eps)
    steps = P.eval_steps or _UNKNOWN_DATA_STEPS
    return {"eps": eps, "steps": steps, "step_size": 2.5 * eps / steps}


def _examples(model, found, judges, attacked: layers.Attacked, n: int = 6) -> dict[str, Any]:
    x_ok, x_adv, y_ok = attacked.x[:n], attacked.x_adv[:n], attacked.y[:n]  # the table's first n x′
    judge_name, judge = next(iter(judges.items()))
    interpretations = interpretgan.interpret(model, found, x_adv) if len(x_adv) else {t: x_adv for t in found}
    columns = [x_ok, x_adv, *interpretations.values()]
    judged = torch.stack([attacks.predict(judge, c) for c in columns], 1).tolist() if len(x_adv) else []
    return {"clean": x_ok.cpu(), "adversarial": x_adv.cpu(), "labels": y_ok.cpu(),
            "interpretations": {t: v.cpu() for t, v in interpretations.items()}, "judged": judged,
            "judge_name": judge_name}
