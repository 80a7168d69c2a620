"""``igan-diagnose``: the command line of :func:`~igan_utils.diagnose.api.diagnose_model`.

Loads a user's model (``module:factory`` or ``file.py:factory``, weights as a state dict) and data,
checks every option before any work, runs the diagnosis and writes its report.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..book import configs, profiles
from ..book.commands import command
from ..book.runner import parameter_pair
from ..book.store import load_checkpoint
from ..method import data
from ..method.runtime import default_device
from ..method.taps import tap_candidates
from .api import BUDGETS, DEFAULT_PROFILE, diagnose_model
from .report import FORMATS, check_report_folder


def load_model(spec: str, weights: str | Path | None = None) -> nn.Module:
    """The model ``spec`` names, ``package.module:factory`` or ``path/to/file.py:factory`` (a class or a
    function returning an ``nn.Module``), with the state dict in ``weights`` loaded (safely: tensors
    only), in eval mode. Raises ValueError, TypeError or FileNotFoundError naming what is wrong."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise ValueError(f"a model must be given as module:factory or file.py:factory, got {spec!r}")
    try:  # the user's module: whatever fails while it imports is theirs to fix, in one line
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
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(f"cannot import {target} ({type(error).__name__}: {error})") from None
    if not hasattr(module, attribute):
        raise ValueError(f"{target} has no {attribute!r}")
    try:
        model = getattr(module, attribute)()
    except Exception as error:  # the user's factory: its failure is theirs to fix, in one line
        raise ValueError(f"{spec}() raised {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"{spec} returned {type(model).__name__}, not an nn.Module")
    if weights is not None:
        state = load_checkpoint(weights)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as error:
            raise ValueError(f"the weights in {weights} do not fit {spec}: {error}") from None
    return model.eval()


def load_data(source: str, P) -> tuple[data.ImageSet, data.ImageSet, str | None]:
    """``mnist``, ``fashion`` or ``cifar10`` (the book's splits, from the data folder), or a torch file holding
    ``{"train": (images, labels), "test": (images, labels)}`` (optionally ``"classes"``)."""
    if source in data.DATASETS:
        splits = configs.splits_for(P, source)
        return splits.train, splits.test, source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"--data must be {' or '.join(data.DATASETS)} or a .pt file with train and test "
                                f"(images, labels); {path} is not a file")
    stored = load_checkpoint(path)
    if not (isinstance(stored, dict) and {"train", "test"} <= set(stored)):
        raise ValueError(f"{path} must hold a dict with keys 'train' and 'test', each (images, labels); "
                         f"it holds {_described(stored)}")
    for split in ("train", "test"):
        pair = stored[split]
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(isinstance(t, torch.Tensor) for t in pair)):
            raise ValueError(f"{path}: {split!r} must be a pair (images, labels) of tensors, images (N, C, H, W) "
                             f"in [0, 1] and labels (N,); it is {_described(pair)}")
    classes = stored.get("classes")
    train = data.as_image_set(tuple(stored["train"]), name=path.stem, classes=classes)
    return train, data.as_image_set(tuple(stored["test"]), name=path.stem, classes=classes or train.classes), None


def _described(value) -> str:
    """What a loaded value is, in a few words: a tensor's shape, a container's length and contents."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}: {', '.join(_described(v) for v in value[:3])}"
    return f"a {type(value).__name__}"


def _input_shape(args, P) -> tuple[int, ...]:
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"--input-shape must be one image's C,H,W (three positive integers, e.g. 1,28,28), "
                             f"got {args.input_shape!r}")
        return shape
    if args.data in data.DATASETS:
        return {"mnist": (1, 28, 28), "fashion": (1, 28, 28), "cifar10": (3, 32, 32)}[args.data]
    if args.data:
        return load_data(args.data, P)[0].image_shape
    raise ValueError("--list-taps needs --data or --input-shape C,H,W to run one forward pass")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igan-diagnose", description="Which layers of your model make it "
                                     "vulnerable to adversarial examples? Writes a report with the book's tables and figures.")
    parser.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                        help="package.module:factory or path/file.py:factory returning an nn.Module that outputs logits")
    parser.add_argument("--weights", help="state dict to load into the model (torch file)")
    parser.add_argument("--taps", help="comma-separated layer names in depth order (see --list-taps)")
    parser.add_argument("--list-taps", action="store_true", help="print the layers that can be tapped, and stop")
    parser.add_argument("--data", help=f"{' | '.join(data.DATASETS)} | PATH of a .pt file with train and test "
                        f"(images in [0, 1], labels)")
    parser.add_argument("--data-dir", help="folder of MNIST/Fashion-MNIST/CIFAR-10 (default: $IGAN_DATA_DIR, else ./data)")
    parser.add_argument("--input-shape", metavar="C,H,W", help="input shape for --list-taps without --data")
    parser.add_argument("--eps", type=float, help="L∞ radius of the attack, in pixel units of [0, 1] (e.g. 0.3 for MNIST)")
    parser.add_argument("--judge", help="'self', or MODULE:FACTORY of an independent classifier (default for "
                        "the book's datasets: the book's trusted judge)")
    parser.add_argument("--judge-weights", help="state dict of the --judge classifier")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=profiles.PROFILE_NAMES,
                        help="budgets (default: %(default)s)")
    parser.add_argument("-p", "--parameter", action="append", type=parameter_pair, default=[], metavar="NAME=VALUE",
                        help=f"override a budget, e.g. -p gan_steps=300 -p diag_size=500 ({', '.join(BUDGETS)})")
    parser.add_argument("--format", choices=FORMATS, default="html", help="report format (default: html)")
    parser.add_argument("--out", default="diagnosis", help="report folder (default: %(default)s)")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = dict(args.parameter)
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    P = profiles.resolve("diagnose_model", args.profile, **overrides)  # every -p value checked here
    if args.judge_weights is not None and args.judge in (None, "self"):
        raise ValueError("--judge-weights needs --judge MODULE:FACTORY (the classifier the weights are for)")
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
    check_report_folder(args.out, args.format)  # before the work, which takes minutes
    train, test, dataset = load_data(args.data, P)
    model = model.to(default_device())  # the call runs where the model is: on the GPU when there is one
    judge = args.judge
    if judge is not None and judge != "self":
        judge = load_model(judge, args.judge_weights).to(default_device())
    found = diagnose_model(model, [t.strip() for t in args.taps.split(",") if t.strip()], train, test,
                           eps=args.eps, judge=judge, dataset=dataset, profile=P,
                           name=args.model.rpartition(":")[2])
    path = found.report(args.out, args.format)
    print(found.summary())
    print(f"report: {path.resolve()} ({found.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
