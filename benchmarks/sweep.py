"""Sweep benchmark (not a test): 4 smoke points of the pooling study on a 2-worker LocalCluster
against the same 4 points one after another (a 1-worker cluster). Each run starts from its own
empty artifact store, so both do the same work. Prints wall times and their ratio.

Usage: IGAN_DATA_DIR=... python benchmarks/sweep.py [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from igan_utils import sweep
from igan_utils.book import hardware
from igan_utils.runtime import project_root


def timed_sweep(workers: int, folder: Path) -> float:
    os.environ["IGAN_STORE_DIR"] = str(folder / "store")
    start = time.perf_counter()
    result = sweep.run_sweep(project_root() / "notebooks" / "robustness_point.ipynb",
                             {"pool": ["max", "avg"], "seed": [0, 1]}, folder / "out",
                             parameters={"profile": "smoke"}, workers=workers, progress=False)
    if result.failures:
        raise RuntimeError(f"sweep failed: {result.failures}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        serial = timed_sweep(1, Path(tmp) / "serial")
        parallel = timed_sweep(args.workers, Path(tmp) / "parallel")
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}")
    print("| points | serial (1 worker) s | parallel s | workers | parallel / serial |")
    print("|---|---|---|---|---|")
    print(f"| 4 | {serial:.1f} | {parallel:.1f} | {args.workers} | {parallel / serial:.2f} |")


if __name__ == "__main__":
    main()
