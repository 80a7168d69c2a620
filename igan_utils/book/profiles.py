"""Profiles: one switch (``smoke``, ``quick``, ``paper``) that sets every parameter of a notebook.

``resolve(notebook, profile, **overrides)`` returns the complete, validated parameter set of one
notebook. Every parameter can be overridden; ``None`` for a dataset-dependent setting (ε, steps, step
sizes, ε grid) means the reference value of that dataset (:data:`REFERENCE`). In a notebook,
``from_namespace`` reads the parameters cell (and what papermill injected after it), so a wrong name,
type or value fails right there with a message naming the parameter.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..method.data import DATASETS
from ..method.models import LP_FAMILY, POOLS
from ..method.validation import MIN_RESAMPLES

PROFILE_NAMES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class Param:
    """A parameter: its type, allowed values and meaning."""

    kind: type                      # int, float, str or bool; for lists, the element type
    doc: str
    is_list: bool = False
    optional: bool = False          # None allowed
    choices: tuple = ()
    minimum: float | None = None    # inclusive
    positive: bool = False          # > 0

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to this parameter's type, or a ValueError naming ``name``."""
        if isinstance(value, str) and value.strip().lower() == "none" and self.optional:
            return None
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"parameter {name!r} must not be None ({self.doc})")
        if self.is_list:
            if isinstance(value, str):  # papermill -p passes "0,1,2" as a string
                value = [item.strip() for item in value.split(",") if item.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"parameter {name!r} must be a list of {self.kind.__name__}, "
                                 f"got {value!r}")
            if not value:
                raise ValueError(f"parameter {name!r} must not be an empty list")
            return [self._scalar(name, item) for item in value]
        return self._scalar(name, value)

    def _scalar(self, name: str, value: Any) -> Any:
        value = _convert(name, value, self.kind)
        if self.choices and value not in self.choices:
            raise ValueError(f"parameter {name!r} must be one of {', '.join(map(repr, self.choices))}; "
                             f"got {value!r}")
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"parameter {name!r} must be a finite number, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"parameter {name!r} must be >= {self.minimum}, got {value!r}")
        if self.positive and value <= 0:
            raise ValueError(f"parameter {name!r} must be > 0, got {value!r}")
        return value


def _convert(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    if isinstance(value, str) and kind is bool and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"parameter {name!r} must be of type {kind.__name__}, got {value!r} "
                     f"({type(value).__name__})")


PARAMS: dict[str, Param] = {
    # data
    "datasets": Param(str, "datasets the chapter covers", is_list=True, choices=DATASETS),
    "dataset": Param(str, "dataset of this run", choices=DATASETS),
    "data_dir": Param(str, "data folder (None: $IGAN_DATA_DIR, else ./data)", optional=True),
    "train_size": Param(int, "training images used (None: all)", optional=True, minimum=1),
    "val_size": Param(int, "images held out of training to monitor it", minimum=1),
    "test_size": Param(int, "test images loaded (None: all)", optional=True, minimum=1),
    "split_seed": Param(int, "seed of the train/val/test draws", minimum=0),
    # classifiers and training
    "pools": Param(str, "pooling variants compared", is_list=True, choices=POOLS),
    "pool": Param(str, "pooling of this run", choices=POOLS),
    "seeds": Param(int, "training seeds", is_list=True, minimum=0),
    "seed": Param(int, "training seed of this run", minimum=0),
    "epochs": Param(int, "epochs of natural training", minimum=1),
    "adv_epochs": Param(int, "epochs of adversarial training", minimum=1),
    "adv_method": Param(str, "adversarial training: Madry PGD, fast FGSM with random start, or TRADES",
                        choices=("pgd", "fgsm", "trades")),
    "trades_beta": Param(float, "TRADES: weight of the robustness (KL) term, for adv_method trades", positive=True),
    "train_steps": Param(int, "PGD steps in adversarial training (None: reference)", optional=True, minimum=1),
    "batch_size": Param(int, "training batch size", minimum=1),
    "lr": Param(float, "peak learning rate (Adam, one-cycle schedule)", positive=True),
    # attacks and evaluation
    "eps": Param(float, "L-inf radius of attacks and adversarial training (None: reference)",
                 optional=True, minimum=0),
    "eval_steps": Param(int, "PGD steps in evaluation (None: reference)", optional=True, minimum=1),
    "restarts": Param(int, "PGD random restarts in evaluation", minimum=1),
    "eval_size": Param(int, "test images attacked in evaluation", minimum=1),
    "interim_looks": Param(int, "test images at which the pooling verdict is looked at before eval_size (sequential)",
                           is_list=True, minimum=1),
    "aa_attacks": Param(str, "AutoAttack attacks of the evaluation, run in order after the PGD screen",
                        is_list=True, choices=("apgd-ce", "apgd-t", "fab-t", "square")),
    "aa_iters": Param(int, "iterations of APGD-CE and APGD-T", minimum=1),
    "aa_targets": Param(int, "target classes of APGD-T and FAB-T", minimum=1),
    "aa_queries": Param(int, "queries of the black-box Square attack", minimum=1),
    "large_eps": Param(float, "radius at which accuracy must have collapsed (None: reference)",
                       optional=True, positive=True),
    "check_size": Param(int, "test images of the ε curves and of the masking checks' own attacks "
                        "(the first of those attacked)", minimum=1),
    "eps_grid": Param(float, "radii of the robust-accuracy curves (None: reference)", is_list=True,
                      optional=True, minimum=0),
    # InterpretGAN
    "taps": Param(str, "taps to interpret (None: all taps of the model)", is_list=True, optional=True),
    "gan_steps": Param(int, "generator updates per tap", minimum=1),
    "gan_batch_size": Param(int, "GAN batch size", minimum=1),
    "gan_lr": Param(float, "GAN learning rate (Adam)", positive=True),
    "gan_width": Param(int, "channels of the generator and discriminator", minimum=2),
    "lambda_adv": Param(float, "weight of the GAN realism loss", minimum=0),
    "lambda_cls": Param(float, "weight of the classification-consistency loss", minimum=0),
    "lambda_lat": Param(float, "weight of the feature-consistency loss", minimum=0),
    "lambda_rec": Param(float, "weight of the pixel (L1) loss", minimum=0),
    "n_examples": Param(int, "images shown in interpretation figures", minimum=1),
    "inversion_steps": Param(int, "gradient steps of the feature-inversion baseline", minimum=1),
    # diagnosis
    "judges": Param(str, "who labels interpretations", is_list=True, choices=("independent", "self")),
    "decoder_steps": Param(int, "training steps of each information-loss decoder", minimum=1),
    "diag_size": Param(int, "test images attacked for the diagnosis", minimum=1),
    "bootstrap": Param(int, "bootstrap resamples for 95% intervals", minimum=MIN_RESAMPLES),
    # sweeps
    "sweep_seeds": Param(int, "seeds of the pooling-study sweep", is_list=True, minimum=0),
    "family_pools": Param(str, "downsampling variants of the pooling-family study", is_list=True, choices=POOLS),
    "methods": Param(str, "which of a point's models it trains and evaluates", is_list=True,
                     choices=("natural", "adversarial")),
    "information_loss": Param(bool, "measure the information each model loses at its downsampling layers "
                              "(chapter 6 reads it; chapter 5 does not)"),
    "recipe_methods": Param(str, "adversarial-training methods of the recipe study", is_list=True,
                            choices=("pgd", "fgsm", "trades")),
    "recipe_epochs": Param(int, "adversarial-training epochs of the recipe study", is_list=True, minimum=1),
    "recipe_seeds": Param(int, "seeds of the recipe study", is_list=True, minimum=0),
    "recipe_size": Param(int, "test images attacked per model in the recipe study", minimum=1),
    "sweep_workers": Param(int, "Dask workers of the sweep (LocalCluster; None: sweep.default_workers, per device)",
                           optional=True, minimum=1),
    "sweep_scheduler": Param(str, "address of an existing Dask scheduler (None: LocalCluster)", optional=True),
    # output
    "results_path": Param(str, "CSV file this run writes its results table to (None: none)", optional=True),
}

_COMMON = ["data_dir", "train_size", "val_size", "test_size", "split_seed", "pools", "seeds",
           "epochs", "adv_epochs", "adv_method", "trades_beta", "train_steps", "batch_size", "lr", "eps"]
_ATTACK = ["eval_steps", "restarts", "eval_size", "aa_attacks", "aa_iters", "aa_targets", "aa_queries",
           "large_eps", "check_size"]
_GAN = ["taps", "gan_steps", "gan_batch_size", "gan_lr", "gan_width", "lambda_adv", "lambda_cls",
        "lambda_lat", "lambda_rec"]

NOTEBOOK_PARAMS: dict[str, list[str]] = {
    "01_classification": ["datasets", *_COMMON, "results_path"],
    "02_adversarial": ["datasets", *_COMMON, *_ATTACK, "eps_grid", "n_examples",
                       "results_path"],
    "03_interpretation": ["datasets", *_COMMON, *_ATTACK, *_GAN, "eps_grid", "n_examples",
                          "inversion_steps", "results_path"],
    "04_diagnosis": ["datasets", *_COMMON, *_ATTACK, *_GAN, "judges", "decoder_steps", "diag_size",
                     "bootstrap", "results_path"],
    "05_sweeps": ["datasets", *[p for p in _COMMON if p != "seeds"], *_ATTACK, "interim_looks", "decoder_steps",
                  "bootstrap", "sweep_seeds",
                  "recipe_methods", "recipe_epochs", "recipe_seeds", "recipe_size", "sweep_workers",
                  "sweep_scheduler", "results_path"],
    "06_pooling_family": ["datasets", *[p for p in _COMMON if p not in ("seeds", "pools")], *_ATTACK, "decoder_steps",
                          "bootstrap", "family_pools", "sweep_seeds", "sweep_workers", "sweep_scheduler", "results_path"],
    "robustness_point": ["dataset", "pool", "seed", "methods", "information_loss",
                         *[p for p in _COMMON if p not in ("pools", "seeds")], *_ATTACK, "decoder_steps", "results_path"],
    # Not a notebook: the budgets of the one-call diagnosis of a user's model (diagnose.diagnose_model).
    # _COMMON and _ATTACK train and check the book's judge; the taps and ε are the call's own arguments.
    "diagnose_model": [*_COMMON, *_ATTACK, *[p for p in _GAN if p != "taps"], "decoder_steps", "diag_size",
                       "bootstrap"],
}

_BASE = {
    "datasets": ["mnist"], "dataset": "mnist", "data_dir": None, "split_seed": 0,
    "pools": ["max", "avg"], "pool": "max", "seeds": [0], "seed": 0, "family_pools": list(POOLS),
    "adv_method": "pgd", "trades_beta": 6.0, "train_steps": None, "batch_size": 100, "lr": 5e-3, "eps": None,
    "eval_steps": None, "eps_grid": None, "large_eps": None,
    "aa_attacks": ["apgd-ce", "apgd-t", "square"], "aa_iters": 100, "taps": None, "gan_lr": 2e-4, "gan_width": 32,
    "lambda_adv": 1.0, "lambda_cls": 1.0, "lambda_lat": 1.0, "lambda_rec": 0.0,
    "judges": ["independent", "self"], "sweep_workers": None, "sweep_scheduler": None,
    "recipe_methods": ["pgd", "trades"], "methods": ["natural", "adversarial"], "information_loss": True,
    "results_path": None,
}

PROFILES: dict[str, dict[str, Any]] = {
    # CI and nbval: a few hundred images, every code path, seconds per chapter.
    "smoke": {**_BASE, "datasets": ["mnist", "fashion"], "train_size": 1000, "val_size": 100, "test_size": 200, "epochs": 2,
              "adv_epochs": 1, "train_steps": 2, "eval_steps": 5, "restarts": 1, "eval_size": 64, "check_size": 32,
              "interim_looks": [32],
              "aa_iters": 5, "aa_targets": 2, "aa_queries": 20,
              "taps": ["conv2", "fc1"], "gan_steps": 20, "gan_batch_size": 16, "n_examples": 4,
              "inversion_steps": 20, "decoder_steps": 20, "diag_size": 64, "bootstrap": 50,
              "sweep_seeds": [0, 1, 2], "family_pools": ["lp", "lp4", "lp8"],  # three Lp levels: rule 11 runs;
              "recipe_epochs": [1], "recipe_seeds": [0], "recipe_size": 64},
              # 3 seeds: the fewest with which chapter 5 gives a verdict (stats.MIN_VERDICT_SEEDS)
    # A laptop: MNIST(-10k offline), 8 epochs of 10-step PGD adversarial training (chosen by AutoAttack:
    # 4 epochs left average pooling masked, 8 leave all ten models of chapter 5 unmasked; BENCHMARKS.md).
    # natural training: 5 epochs, the fewest within 0.2 points of the best clean accuracy over 2-20
    # (benchmarks/natural_epochs.py, 2026-12-07: 97.7, 98.8, 98.8, 98.9 % at 2, 5, 10, 20 epochs)
    "quick": {**_BASE, "train_size": None, "val_size": 500, "test_size": None, "epochs": 5,
              "adv_epochs": 8, "train_steps": 10, "restarts": 2, "eval_size": 1000, "check_size": 200,
              "interim_looks": [200],
              "aa_targets": 3, "aa_queries": 1000, "gan_steps": 150,
              "gan_batch_size": 32, "n_examples": 6, "inversion_steps": 200, "decoder_steps": 100,
              "diag_size": 300, "bootstrap": 1000, "sweep_seeds": [0, 1, 2, 3, 4],
              # the recipe study's pilot: each method at the former 4 epochs, beside the book's PGD × 8 (always
              # in the study, read from chapter 5's store), 2 seeds, 200 images
              "recipe_epochs": [4], "recipe_seeds": [0, 1], "recipe_size": 200},
    # A GPU: full MNIST and CIFAR-10 with the reference (Madry) settings.
    "paper": {**_BASE, "datasets": ["mnist", "cifar10"], "train_size": None, "val_size": 1000,
              "test_size": None, "seeds": [0, 1, 2], "epochs": 20, "adv_epochs": 40, "adv_method": "pgd",
              "batch_size": 128, "lr": 1e-3, "restarts": 5, "eval_size": 10000, "check_size": 1000,
              "interim_looks": [1000],
              "aa_attacks": ["apgd-ce", "apgd-t", "fab-t", "square"], "aa_targets": 9, "aa_queries": 5000,
              "gan_steps": 5000,
              "gan_batch_size": 128, "n_examples": 8, "inversion_steps": 1000, "decoder_steps": 3000,
              "diag_size": 2000, "bootstrap": 2000, "sweep_seeds": [0, 1, 2, 3, 4],
              "recipe_epochs": [10, 20, 40], "recipe_seeds": [0, 1, 2], "recipe_size": 1000},
}

# Where one chapter cannot afford the book-wide budget of a profile, it gets its own, listed here and
# stated by the chapter itself (Params.cuts): a smaller study that is labelled as one, not a hidden change.
CHAPTER_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # Chapter 6 in smoke tests the pipeline, not the claim: 2 seeds keep every code path (the seed
    # bootstrap needs 2) at two thirds of the training, the largest step of the test suite's book build.
    "smoke": {"06_pooling_family": {"sweep_seeds": [0, 1]},
              # chapter 4 diagnoses a second seed: the per-seed path of rule 10 runs (too few seeds to name)
              "04_diagnosis": {"seeds": [0, 1]}},
    # Chapter 6 trains 2 models per point. Its quick study answers claim 4 by rule 11 (method page) over
    # the Lp knob, avg (p = 1) to max (p = ∞): 6 levels × 5 seeds, the smallest design that finds a latent
    # correlation of 0.5 with power 0.8 (0.81; 3 seeds: 0.60; benchmarks/family_power.py --trend). Average
    # and max pooling share chapter 5's models and attacks; 500 test images.
    "quick": {"06_pooling_family": {"family_pools": list(LP_FAMILY), "sweep_seeds": [0, 1, 2, 3, 4],
                                    "eval_size": 500},
              # Chapter 4 (claim 3, rule 10): three seeds, the fewest that can name a layer, and all 2,000
              # MNIST-10k test images attacked: ≈ 200 x′ per adversarially trained model at ≈ 90 % robust
              # accuracy (the published run's 300 images gave 30).
              "04_diagnosis": {"seeds": [0, 1, 2], "diag_size": 2000}},
}


class Params(Mapping):
    """Read-only parameter set with attribute access (``P.eps``)."""

    def __init__(self, notebook: str, profile: str, values: dict[str, Any], changed: tuple[str, ...] = ()):
        self._notebook, self._profile, self._values = notebook, profile, dict(values)
        self._changed = tuple(changed)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self._notebook} has no parameter {name!r}; it has: "
                                 f"{', '.join(sorted(self._values))}") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def profile(self) -> str:
        return self._profile

    @property
    def changed(self) -> dict[str, Any]:
        """The parameters whose value differs from the profile's."""
        return {name: self._values[name] for name in self._changed}

    @property
    def cuts(self) -> dict[str, tuple[Any, Any]]:
        """This chapter's own budget in its profile (:data:`CHAPTER_BUDGETS`): name → (the chapter's
        value, the rest of the book's value), for the values that differ."""
        own = CHAPTER_BUDGETS.get(self._profile, {}).get(self._notebook, {})
        return {name: (value, PROFILES[self._profile][name]) for name, value in own.items()
                if value != PROFILES[self._profile][name]}

    def summary(self) -> str:
        """One line: the profile, this chapter's own budget in it, and the parameters that differ."""
        changed = ", ".join(f"{k} = {v!r}" for k, v in self.changed.items()) or "none"
        cuts = ", ".join(f"{k} = {own!r} (book: {book!r})" for k, (own, book) in self.cuts.items())
        cuts = f" with this chapter's own budget ({cuts})" if cuts else ""
        return f"Profile {self._profile!r}{cuts}; parameters that differ from it: {changed}."

    def _repr_markdown_(self) -> str:
        """In a notebook: the one-line summary, with the full set folded below it."""
        rows = "\n".join(f"| `{k}` | `{v!r}` |" for k, v in self._values.items())
        return (f"{self.summary()}\n\n<details><summary>All {len(self)} parameters</summary>\n\n"
                f"| parameter | value |\n| --- | --- |\n{rows}\n\n</details>")

    def __repr__(self) -> str:
        rows = "\n".join(f"  {k} = {v!r}" for k, v in self._values.items())
        return f"Params({self._notebook}, profile={self._profile!r}):\n{rows}"


def check_values(values: Mapping[str, Any]) -> None:
    """Check parameter values given by name (as on a command line: ``"0,1"``, ``"none"``) with the
    same rules the notebooks apply, before a kernel starts: a ValueError naming the first bad one.
    ``profile`` must name a profile; names that are not book parameters are left to the notebook."""
    for name, value in values.items():
        if name == "profile" and value not in PROFILE_NAMES:
            raise ValueError(f"parameter 'profile' must be one of {', '.join(PROFILE_NAMES)}, got {value!r}")
        if name in PARAMS:
            PARAMS[name].check(name, value)


def resolve(notebook: str, profile: str = "smoke", **overrides: Any) -> Params:
    """The complete parameter set of ``notebook`` in ``profile``, with ``overrides`` applied.

    Raises ValueError naming the profile, notebook or parameter that is unknown or invalid.
    """
    if notebook not in NOTEBOOK_PARAMS:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {', '.join(NOTEBOOK_PARAMS)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_NAMES)}")
    names = NOTEBOOK_PARAMS[notebook]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {notebook}; "
                         f"valid: {', '.join(sorted(names))}")
    defaults = {**PROFILES[profile], **CHAPTER_BUDGETS.get(profile, {}).get(notebook, {})}
    values = {name: PARAMS[name].check(name, overrides.get(name, defaults[name])) for name in names}
    changed = tuple(name for name in names if name in overrides
                    and values[name] != PARAMS[name].check(name, defaults[name]))
    return Params(notebook, profile, values, changed)


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_SEEN_NAME = "_igan_names_at_first_read"


def from_namespace(notebook: str, namespace: Mapping[str, Any]) -> Params:
    """Parameters of a notebook run, read from its global namespace.

    Call it right after the parameters cell. Every public, non-module, non-callable global at that
    point is a parameter (from the parameters cell, or injected by ``papermill -p``); a value of
    None in the parameters cell means "the profile's value". The first call notes which globals
    exist (in ``namespace``, which must be writable, e.g. ``globals()``), so that when the notebook
    runs again in the same kernel ("Run All" twice in JupyterLab) the names its own cells defined
    after the parameters are not taken for parameters.
    """
    seen = namespace.get(_SEEN_NAME)
    given = {name: value for name, value in namespace.items()
             if not name.startswith("_") and name not in _IPYTHON_NAMES
             and not isinstance(value, types.ModuleType) and not callable(value)
             and (seen is None or name in seen)}
    if seen is None and isinstance(namespace, dict):
        namespace[_SEEN_NAME] = frozenset(namespace)
    profile = given.pop("profile", "smoke")
    overrides = {name: value for name, value in given.items() if value is not None}
    if not isinstance(profile, str):
        raise ValueError(f"parameter 'profile' must be one of {', '.join(PROFILE_NAMES)}, got {profile!r}")
    return resolve(notebook, profile, **overrides)


def profiles_table(names: tuple[str, ...] = ("datasets", "train_size", "epochs", "adv_epochs", "adv_method",
                                             "train_steps", "eval_steps", "restarts", "eval_size", "gan_steps",
                                             "decoder_steps", "sweep_seeds")) -> str:
    """Markdown table of the main parameters of every profile (None: all images / the reference)."""
    lines = ["| parameter | " + " | ".join(PROFILE_NAMES) + " |", "| --- |" + " --- |" * len(PROFILE_NAMES)]
    for name in names:
        cells = [", ".join(map(str, v)) if isinstance(v, list) else str(v)
                 for v in (PROFILES[p][name] for p in PROFILE_NAMES)]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parameters_cell(notebook: str) -> str:
    """The source of ``notebook``'s cell tagged ``parameters``, generated from :data:`PARAMS` so that a
    parameter is documented once: ``profile``, then one ``name = None  # doc`` line per parameter.
    ``python -m igan_utils.book --write-parameters`` writes it into every notebook; a test checks it."""
    lines = [f'profile = "smoke"  # {" | ".join(PROFILE_NAMES)}: every parameter left at None takes its value']
    lines += [f"{name} = None  # {PARAMS[name].doc}" for name in NOTEBOOK_PARAMS[notebook]]
    return "\n".join(lines)


def notebook_parameters(path) -> list[str]:
    """Names assigned in the cell tagged ``parameters`` of the notebook at ``path`` (in order)."""
    import ast
    import json
    from pathlib import Path

    try:
        cells = json.loads(Path(path).read_text())["cells"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a Jupyter notebook ({type(error).__name__}: {error})") from None
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return [target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)]
    raise ValueError(f"{path} has no cell tagged 'parameters'")
