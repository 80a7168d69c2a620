"""Cost of `igan-diagnose` with its defaults (not a test): a user's small CNN with 4 taps on MNIST(-10k).

The user's model is the README's example (examples/residual_cnn.py, one epoch of a plain PyTorch
loop; not timed). In a fresh artifact store, three runs of the command, each timed as a whole process:

1. first run on a new machine: trains the book's judge (and runs its masking checks), then one
   interpreter and one decoder per tap, attacks and judges;
2. the same command again: everything is stored, only the report is redrawn;
3. a second user model (another seed) with the judge already stored: what each new model costs.

Usage: IGAN_DATA_DIR=../shared/data python benchmarks/diagnose.py [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from residual_cnn import ResidualCNN, train  # noqa: E402

from igan_utils.book.runner import hardware
from igan_utils.method import data

TAPS = "stage1.0,stage1,stage2.1,head.2"


def run(weights: Path, store: Path, out: Path) -> float:
    command = [str(Path(sys.executable).with_name("igan-diagnose")), "--model",
               f"{ROOT / 'examples' / 'residual_cnn.py'}:ResidualCNN", "--weights", str(weights), "--data", "mnist",
               "--taps", TAPS, "--eps", "0.3", "--out", str(out)]
    start = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "IGAN_STORE_DIR": str(store)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"igan-diagnose failed:\n{result.stderr[-3000:]}")
    print(result.stdout.strip().splitlines()[0][:400])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="artifact store to use (default: a fresh temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="igan-diagnose-bench-"))
    store = args.store or work / "store"
    images, labels = data.load_splits("mnist", download=False).train.tensors()
    weights = []
    for seed in (0, 1):
        path = work / f"user_cnn_seed{seed}.pt"
        torch.save(train(ResidualCNN(), images, labels, epochs=1, seed=seed).state_dict(), path)
        weights.append(path)
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}; igan-diagnose defaults (profile quick), taps {TAPS}")
    rows = [("first run, fresh store (trains the book's judge too)", run(weights[0], store, work / "r1")),
            ("same command again (everything stored)", run(weights[0], store, work / "r2")),
            ("another user model, judge stored", run(weights[1], store, work / "r3"))]
    print("| run | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.0f} |")
    print(f"ratio first / stored: {rows[0][1] / rows[1][1]:.1f}; new model / stored: {rows[2][1] / rows[1][1]:.1f}")


if __name__ == "__main__":
    main()
