"""Diagnose your own model: one call (:func:`diagnose_model`) and one command (``igan-diagnose``).

Any ``nn.Module`` that returns logits for images in [0, 1], the names of the layers to tap, and
data: the call trains (or loads from the store) one InterpretGAN interpreter and one
information-loss decoder per tap, attacks the model with PGD, lets a judge label the
interpretations of the adversarial examples, and returns a :class:`Diagnosis` with the book's
tables, figures and a self-contained report. Budgets come from a profile (``quick`` by default).

The judge: for MNIST and CIFAR-10 the book's trusted judge (``diagnosis.trusted_judge``, an
adversarially trained model that passed the gradient-masking checks); for any other data the caller
passes a classifier of the same classes, or ``"self"`` (the model judges its own interpretations).
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib
import importlib.util
import io
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import pandas as pd
import torch
from torch import nn

from . import attacks, data, diagnosis, interpretgan, plots, profiles, stats
from .book import parameter_pair
from .runtime import default_device
from .store import Store, load_checkpoint
from .taps import forward_with_taps, tap_candidates, tap_names

DEFAULT_PROFILE = "quick"
_UNKNOWN_DATA_STEPS = 40  # PGD steps when the data has no reference settings; path 2.5 ε (Madry et al.)


@dataclass
class Diagnosis:
    """What :func:`diagnose_model` found for one model.

    Tables (tidy, one row per tap or per judge and tap): ``vulnerability`` (R, V, first flip with
    95% bootstrap intervals, feature change; ``n`` successful attacks), ``information`` (decoder
    error IL and ΔIL), ``correlation`` (Spearman of ΔIL with V per judge), ``quality`` (how faithful
    each tap's interpreter is on clean images). ``judge`` says who labelled the interpretations and
    ``judge_checks`` holds its masking checks when it is the book's judge. ``examples`` holds a few
    clean images, their adversarial twins and the twins' interpretations for the figures.
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
        """The ``k`` taps with the largest V for ``judge`` (default: the first judge)."""
        judge = judge or self.vulnerability["judge"].iloc[0]
        part = self.vulnerability[(self.vulnerability["judge"] == judge) & (self.vulnerability["tap"] != diagnosis.INPUT)]
        return part.dropna(subset=["V"]).sort_values("V", ascending=False)["tap"].head(k).tolist()

    def summary(self) -> str:
        """A few sentences: what was attacked, who judged, where the vulnerability is, and whether
        information loss predicts it."""
        n = int(self.vulnerability["n"].iloc[0])
        s = self.settings
        lines = [f"{self.model_name}: PGD-{s['attack_steps']} at ε = {s['eps']:.4g} broke {n} of the "
                 f"{s['attacked']} test images attacked ({s['clean_correct']} classified correctly before)."]
        lines.append(f"Judge: {self.judge}.")
        if n == 0:
            return " ".join(lines + ["No successful attack: nothing to diagnose (raise eps or attack more images)."])
        for judge in dict.fromkeys(self.vulnerability["judge"]):
            top = self.most_vulnerable(judge)
            row = self.correlation[self.correlation["judge"] == judge].iloc[0]
            lines.append(f"Judge `{judge}`: most vulnerability at {' and '.join(top)}; "
                         f"{stats.correlation_sentence(row)} that layers losing more information are more vulnerable.")
        return " ".join(lines)

    def _repr_markdown_(self) -> str:
        return self.summary()

    def plot_vulnerability(self, value: str = "V") -> matplotlib.figure.Figure:
        """V (or ``first_flip``) per tap with 95% intervals, one panel per judge."""
        return plots.vulnerability(self.vulnerability.assign(model=self.model_name), value=value, hue="model",
                                   title=f"{self.model_name}, ε = {self.settings['eps']:.4g}")

    def plot_information(self) -> matplotlib.figure.Figure:
        """Information loss (decoder MSE and 1 − SSIM) and feature change per tap."""
        frame = self.information.merge(self.vulnerability.drop_duplicates("tap")[["tap", "feature_change"]], on="tap")
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
        found = {"vulnerability": self.plot_vulnerability(), "first_flip": self.plot_vulnerability("first_flip"),
                 "information": self.plot_information()}
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
        if format not in ("html", "md"):
            raise ValueError(f"format must be 'html' or 'md', got {format!r}")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        pngs = {}
        for stem, figure in self.figures().items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            matplotlib.pyplot.close(figure)
            pngs[stem] = buffer.getvalue()
        settings = pd.DataFrame({"setting": list(self.settings), "value": [str(v) for v in self.settings.values()]})
        if format == "md":
            for stem, png in pngs.items():
                (out / f"{stem}.png").write_bytes(png)
            parts = [f"# Diagnosis of {self.model_name}", self.summary(), settings.to_markdown(index=False)]
            parts += [f"![{stem}]({stem}.png)" for stem in pngs]
            parts += [f"## {title}\n\n{table.round(4).to_markdown(index=False)}" for title, table in self.tables().items()]
            path = out / "report.md"
            path.write_text("\n\n".join(parts) + "\n")
            return path
        images = "".join(f'<figure><img alt="{stem}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                         f"<figcaption>{stem.replace('_', ' ')}</figcaption></figure>" for stem, png in pngs.items())
        tables = "".join(f"<h2>{title}</h2>{table.round(4).to_html(index=False, border=0)}"
                         for title, table in self.tables().items())
        path = out / "report.html"
        path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Diagnosis of {self.model_name}"
                        f"</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}"
                        f"table{{border-collapse:collapse;font-size:90%}}td,th{{padding:2px 8px;text-align:right}}"
                        f"img{{max-width:100%}}</style></head><body><h1>Diagnosis of {self.model_name}</h1>"
                        f"<p>{_markdown_inline(self.summary())}</p>{settings.to_html(index=False, border=0)}{images}{tables}</body></html>")
        return path


def _markdown_inline(text: str) -> str:
    """The summary's Markdown (`code`, **bold**) as HTML."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def diagnose_model(model: nn.Module, taps: Sequence[str] | None, train, test, *, eps: float,
                   judge: nn.Module | str | None = None, dataset: str | None = None,
                   classes: Sequence[str] | None = None, profile: str | profiles.Params = DEFAULT_PROFILE, seed: int = 0,
                   store: Store | None = None, name: str | None = None, progress: bool = True,
                   **budget: Any) -> Diagnosis:
    """Which layers of ``model`` make it vulnerable to L∞ attacks of radius ``eps``?

    ``model`` returns logits (N, classes) for images (N, C, H, W) in [0, 1]; ``taps`` are names of its
    submodules in depth order (``taps.tap_candidates`` lists them; None: ``model.taps``). ``train``
    (for the interpreters and decoders) and ``test`` (attacked) are each a torch ``Dataset``, a
    ``DataLoader`` or an ``(images, labels)`` pair, images in [0, 1]. ``judge``: a classifier of the
    same classes, ``"self"``, or None for the book's trusted judge, which needs ``dataset`` to be
    ``"mnist"`` or ``"cifar10"`` (and that data on disk). Budgets (``gan_steps``, ``decoder_steps``,
    ``diag_size``, ``eval_steps``, ``bootstrap``...) come from ``profile`` (a profile's name, or the
    resolved parameters of a chapter) unless given in ``budget``.
    Everything trained is stored (keyed by the model's weights, the tap, the data and the budget),
    so a second call only attacks and judges.

    Raises ValueError or TypeError for a model that does not return a logits tensor, taps that are
    unknown, reused or not tensors, data out of [0, 1], labels beyond the model's classes, or a
    missing judge.
    """
    start = time.perf_counter()
    if isinstance(profile, profiles.Params):  # a chapter's parameters: its budgets, with its overrides
        budget = {**{k: v for k, v in profile.items() if k in profiles.NOTEBOOK_PARAMS["04_diagnosis"]}, **budget}
        profile = profile.profile
    P = profiles.resolve("04_diagnosis", profile, **budget)
    eps = attacks.check_eps(eps)
    if dataset is not None and dataset not in data.DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(data.DATASETS)} or None, got {dataset!r}")
    train = data.as_image_set(train, name=dataset or "train", classes=classes)
    test = data.as_image_set(test, name=dataset or "test", classes=classes or train.classes)
    if train.image_shape != test.image_shape:
        raise ValueError(f"train images are {train.image_shape} but test images {test.image_shape}")
    device = default_device()
    model = model.to(device).eval()
    x, y = test.take(slice(0, P.diag_size)).tensors(device)
    with torch.no_grad():
        n_classes = attacks.logits_of(model, x[:2]).shape[1]
        taps = tap_names(model, taps)
        forward_with_taps(model, x[:2], taps)  # refuses reused modules and non-tensor outputs
    attacks.check_labels(y, n_classes)
    attacks.check_labels(train.labels, n_classes)
    store = store or Store()
    judges, judge_text, checks = _judges(model, judge, dataset, P, store, progress)
    for judge_model in judges.values():
        attacks.logits_of(judge_model, x[:2])

    gan = interpretgan.GanConfig(steps=P.gan_steps, batch_size=P.gan_batch_size, lr=P.gan_lr, width=P.gan_width,
                                 lambda_adv=P.lambda_adv, lambda_cls=P.lambda_cls, lambda_lat=P.lambda_lat,
                                 lambda_rec=P.lambda_rec, seed=seed)
    found = interpretgan.interpreters_for(model, taps, train, gan, store=store, progress=progress)
    attack = _attack_settings(P, dataset, eps)
    table = diagnosis.diagnose(model, found, judges, x, y, taps=taps, bootstrap=P.bootstrap, seed=seed, **attack)
    info = diagnosis.information_loss(model, taps, train, test.take(slice(0, P.eval_size)), steps=P.decoder_steps,
                                      store=store, seed=seed, progress=progress)
    merged = table.merge(info, on="tap")
    correlation = stats.tap_correlations(merged, ["judge"])
    quality = pd.DataFrame(interpretgan.quality(model, found, x[:min(len(x), 256)]))
    examples = _examples(model, found, judges, x, y, attack, seed)
    clean_correct = int((attacks.predict(model, x) == y).sum())
    settings = {"eps": eps, "attack": f"PGD-{attack['steps']}, step {attack['step_size']:.4g}, worst-loss iterate",
                "attack_steps": attack["steps"], "attacked": len(x), "clean_correct": clean_correct,
                "taps": ", ".join(taps), "interpreter": f"InterpretGAN, {P.gan_steps} steps per tap",
                "decoder_steps": P.decoder_steps, "bootstrap": P.bootstrap, "profile": profile,
                "train_images": len(train), "data": dataset or "user data", "device": str(device)}
    return Diagnosis(name or type(model).__name__, taps, table, info, correlation, quality, judge_text, settings,
                     train.classes, examples, checks, time.perf_counter() - start)


def _judges(model, judge, dataset, P, store, progress) -> tuple[dict[str, nn.Module], str, pd.DataFrame | None]:
    if isinstance(judge, nn.Module):
        return ({"independent": judge.to(default_device()).eval(), "self": model},
                f"`independent` = a classifier given by the caller ({type(judge).__name__}), and `self` = the model", None)
    if judge == "self":
        return {"self": model}, "`self` = the diagnosed model labels its own interpretations (not independent)", None
    if judge is not None:
        raise ValueError(f"judge must be a classifier (nn.Module), 'self' or None, got {judge!r}")
    if dataset is None:
        raise ValueError("no judge: for data other than the book's MNIST or CIFAR-10 (dataset='mnist' or "
                         "'cifar10'), pass judge= a classifier of the same classes trained independently "
                         "(ideally adversarially), or judge='self'")
    from .diagnosis import trusted_judge
    from .evaluation import masked_models

    splits = data.splits_for(P, dataset)
    found, checks = trusted_judge(P, dataset, splits, store=store, progress=progress)
    trusted = found.config.label not in masked_models(checks)
    text = (f"`independent` = the book's judge for {splits.label}, {found.config.label} (adversarially trained, "
            + ("passed every gradient-masking check" if trusted else "**failed a gradient-masking check: treat its "
               "verdicts with caution**") + "), and `self` = the model")
    return {"independent": found.model, "self": model}, text, checks


def _attack_settings(P, dataset: str | None, eps: float) -> dict[str, Any]:
    if dataset is not None:
        return profiles.attack_settings(P, dataset, eps=eps)
    steps = P.eval_steps or _UNKNOWN_DATA_STEPS
    return {"eps": eps, "steps": steps, "step_size": 2.5 * eps / steps}


def _examples(model, found, judges, x, y, attack, seed, n: int = 6) -> dict[str, Any]:
    x_ok, x_adv, y_ok = diagnosis.successful_attacks(model, x[:64], y[:64], seed=seed, **attack)
    x_ok, x_adv, y_ok = x_ok[:n], x_adv[:n], y_ok[:n]
    judge_name, judge = next(iter(judges.items()))
    interpretations = interpretgan.interpret(model, found, x_adv) if len(x_adv) else {t: x_adv for t in found}
    columns = [x_ok, x_adv, *interpretations.values()]
    judged = torch.stack([attacks.predict(judge, c) for c in columns], 1).tolist() if len(x_adv) else []
    return {"clean": x_ok.cpu(), "adversarial": x_adv.cpu(), "labels": y_ok.cpu(),
            "interpretations": {t: v.cpu() for t, v in interpretations.items()}, "judged": judged,
            "judge_name": judge_name}


# ---- the command ------------------------------------------------------------------------------

def load_model(spec: str, weights: str | Path | None = None) -> nn.Module:
    """The model ``spec`` names, ``package.module:factory`` or ``path/to/file.py:factory`` (a class or a
    function returning an ``nn.Module``), with the state dict in ``weights`` loaded (safely: tensors only)."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise ValueError(f"--model must be module:factory or file.py:factory, got {spec!r}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} not found")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, attribute):
        raise ValueError(f"{target} has no {attribute!r}")
    model = getattr(module, attribute)()
    if not isinstance(model, nn.Module):
        raise TypeError(f"{spec} returned {type(model).__name__}, not an nn.Module")
    if weights is not None:
        state = load_checkpoint(weights)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"the weights in {weights} do not fit {spec}: {error}") from None
    return model.eval()


def load_data(source: str, P) -> tuple[data.ImageSet, data.ImageSet, str | None]:
    """``mnist`` or ``cifar10`` (the book's splits, from the data folder), or a torch file holding
    ``{"train": (images, labels), "test": (images, labels)}`` (optionally ``"classes"``)."""
    if source in data.DATASETS:
        splits = data.splits_for(P, source)
        return splits.train, splits.test, source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"--data must be {' or '.join(data.DATASETS)} or a .pt file with train and test "
                                f"(images, labels); {path} is not a file")
    stored = load_checkpoint(path)
    if not (isinstance(stored, dict) and {"train", "test"} <= set(stored)):
        raise ValueError(f"{path} must hold a dict with keys 'train' and 'test', each (images, labels)")
    classes = stored.get("classes")
    train = data.as_image_set(tuple(stored["train"]), name=path.stem, classes=classes)
    return train, data.as_image_set(tuple(stored["test"]), name=path.stem, classes=classes or train.classes), None


def _input_shape(args, P) -> tuple[int, ...]:
    if args.input_shape:
        return tuple(int(v) for v in args.input_shape.split(","))
    if args.data in data.DATASETS:
        return {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[args.data]
    if args.data:
        return load_data(args.data, P)[0].image_shape
    raise ValueError("--list-taps needs --data or --input-shape C,H,W to run one forward pass")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="igan-diagnose", description="Which layers of your model make it "
                                     "vulnerable to adversarial examples? Writes a report with the book's tables and figures.")
    parser.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                        help="package.module:factory or path/file.py:factory returning an nn.Module that outputs logits")
    parser.add_argument("--weights", help="state dict to load into the model (torch file)")
    parser.add_argument("--taps", help="comma-separated layer names in depth order (see --list-taps)")
    parser.add_argument("--list-taps", action="store_true", help="print the layers that can be tapped, and stop")
    parser.add_argument("--data", help=f"{' | '.join(data.DATASETS)} | PATH of a .pt file with train and test "
                        f"(images in [0, 1], labels)")
    parser.add_argument("--data-dir", help="folder of MNIST/CIFAR-10 (default: $IGAN_DATA_DIR, else ./data)")
    parser.add_argument("--input-shape", metavar="C,H,W", help="input shape for --list-taps without --data")
    parser.add_argument("--eps", type=float, help="L∞ radius of the attack, in pixel units of [0, 1] (e.g. 0.3 for MNIST)")
    parser.add_argument("--judge", help="'self', or MODULE:FACTORY of an independent classifier (default for "
                        "mnist/cifar10: the book's trusted judge)")
    parser.add_argument("--judge-weights", help="state dict of the --judge classifier")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=profiles.PROFILE_NAMES,
                        help="budgets (default: %(default)s)")
    parser.add_argument("-p", "--parameter", action="append", type=parameter_pair, default=[], metavar="NAME=VALUE",
                        help="override a budget, e.g. -p gan_steps=300 -p diag_size=500")
    parser.add_argument("--format", choices=("html", "md"), default="html", help="report format (default: html)")
    parser.add_argument("--out", default="diagnosis", help="report folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        overrides = dict(args.parameter)
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
        P = profiles.resolve("04_diagnosis", args.profile, **overrides)
        model = load_model(args.model, args.weights)
        if args.list_taps:
            shape = _input_shape(args, P)
            rows = pd.DataFrame(tap_candidates(model, shape))
            print(f"Layers of {args.model} for inputs {'×'.join(map(str, shape))}: pass the usable ones you want, "
                  f"in depth order, to --taps")
            rows["shape"] = rows["shape"].map(lambda s: "×".join(map(str, s)) if s else "")
            print(rows.to_string(index=False))
            return 0
        missing = [flag for flag, value in (("--taps", args.taps), ("--data", args.data), ("--eps", args.eps))
                   if value is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (use --list-taps to see the layers)")
        train, test, dataset = load_data(args.data, P)
        judge = args.judge
        if judge is not None and judge != "self":
            judge = load_model(judge, args.judge_weights)
        found = diagnose_model(model, [t.strip() for t in args.taps.split(",") if t.strip()], train, test,
                               eps=args.eps, judge=judge, dataset=dataset, profile=args.profile,
                               name=args.model.rpartition(":")[2], **overrides)
        path = found.report(args.out, args.format)
    except (ValueError, TypeError, ImportError, FileNotFoundError, data.DataCorruptError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(found.summary())
    print(f"report: {path.resolve()} ({found.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
