"""Helpers of the GPU check (benchmarks/gpu.sh); not a test.

``same-weights STORE_A STORE_B``: whether two artifact stores hold bit-identical classifier weights
for every model they share (the determinism check: two runs of a chapter with IGAN_DETERMINISTIC=1).
``per-model CHAPTER1_CSV CHAPTER2_CSV``: seconds per model for training (chapter 1's results) and for
the AutoAttack evaluation (chapter 2's), as a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from igan_utils.book.store import load_checkpoint


def same_weights(a: Path, b: Path) -> int:
    names = sorted(p.name for p in (a / "classifier").glob("*.pt") if not p.name.endswith(".partial.pt"))
    if not names:
        print(f"no classifiers in {a}")
        return 1
    differ = 0
    for name in names:
        first = load_checkpoint(a / "classifier" / name)["state_dict"]
        other = b / "classifier" / name
        if not other.exists():
            print(f"{name}: only in {a}")
            differ += 1
            continue
        second = load_checkpoint(other)["state_dict"]
        gap = max((first[k].double() - second[k].double()).abs().max().item() for k in first)
        differ += gap != 0
        print(f"{name}: {'identical' if gap == 0 else f'differs (max |difference| {gap:.3g})'}")
    print(f"{len(names) - differ} of {len(names)} classifiers bit-identical")
    return 1 if differ else 0


def per_model(chapter1: Path, chapter2: Path) -> int:
    trained = pd.read_csv(chapter1)[["pool", "method", "seed", "device", "train_seconds"]]
    evaluated = pd.read_csv(chapter2)
    seconds = [c for c in evaluated if c.startswith("seconds_")]
    evaluated = evaluated.assign(evaluation_seconds=evaluated[seconds].sum(axis=1))
    table = trained.merge(evaluated[["pool", "method", "seed", "attack", "n", "robust_acc", "evaluation_seconds",
                                     *seconds]], on=["pool", "method", "seed"], how="left")
    print(table.round(3).to_markdown(index=False))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    weights = sub.add_parser("same-weights")
    weights.add_argument("a", type=Path)
    weights.add_argument("b", type=Path)
    models = sub.add_parser("per-model")
    models.add_argument("chapter1", type=Path)
    models.add_argument("chapter2", type=Path)
    args = parser.parse_args()
    if args.command == "same-weights":
        return same_weights(args.a, args.b)
    return per_model(args.chapter1, args.chapter2)


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
