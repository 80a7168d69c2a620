"""Sweep-workers benchmark (not a test): how a sweep should split this machine's cores between Dask
workers (one notebook kernel each, ``sweep_workers``) and torch threads per kernel.

1. **Pass throughput by layout.** Forward+input-gradient passes of the MNIST CNN per second (on
   ``BATCH`` images) when the cores run p processes × t torch threads, all at once: 1 × 1 up to c × 1
   (how throughput grows with cores) and 1 × c. A `quick` sweep point spends ≈ all its time in such
   passes (its seconds ÷ floor ≈ 1.0, BENCHMARKS.md), so this is the layout question for `quick` and
   `paper` points without training a model.
2. **Smoke points.** 4 `smoke` points of the pooling study (pool × seed = 2 × 2) on a 1-worker cluster
   (one point at a time, all cores in its kernel) and on a ``--workers``-worker cluster (one core per
   kernel), each from its own empty artifact store, so both do the same work: here the points' cost is
   kernel starts and book-keeping, not passes.

Prints both tables, measured in this one run.

Usage: IGAN_DATA_DIR=... python benchmarks/sweep.py [--workers 2] [--passes 40]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from book import BATCH, mnist_passes  # benchmarks/book.py
from igan_utils.book import sweep
from igan_utils.book.runner import hardware
from igan_utils.method.runtime import project_root


def _passes_in_process(threads: int, passes: int, barrier, seconds) -> None:
    import torch

    torch.set_num_threads(threads)
    run, _ = mnist_passes()
    run()  # warm up before the common start
    barrier.wait()
    start = time.perf_counter()
    for _ in range(passes):
        run()
    seconds.put(time.perf_counter() - start)


def throughput(processes: int, threads: int, passes: int) -> float:
    """Passes per second of ``processes`` processes × ``threads`` torch threads, all started together,
    each doing ``passes`` passes (total passes ÷ the slowest process's seconds)."""
    context = multiprocessing.get_context("spawn")
    barrier, seconds = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_passes_in_process, args=(threads, passes, barrier, seconds))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    walls = [seconds.get() for _ in workers]
    for worker in workers:
        worker.join()
    return processes * passes / max(walls)


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
    parser.add_argument("--passes", type=int, default=40, help="passes per process in the throughput table")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    layouts = [(p, 1) for p in range(1, cores + 1)] + ([(1, cores)] if cores > 1 else [])
    rates = {layout: throughput(*layout, args.passes) for layout in layouts}
    with tempfile.TemporaryDirectory() as tmp:
        serial = timed_sweep(1, Path(tmp) / "serial")
        parallel = timed_sweep(args.workers, Path(tmp) / "parallel")
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}")
    print(f"\n| processes × threads | passes/s ({BATCH} images, fwd+grad) | × one core |")
    print("|---|---|---|")
    for (processes, threads), rate in rates.items():
        print(f"| {processes} × {threads} | {rate:.2f} | {rate / rates[(1, 1)]:.2f} |")
    print("\n| smoke points | 1 worker × all cores s | workers × 1 core s | workers | parallel ÷ serial |")
    print("|---|---|---|---|---|")
    print(f"| 4 | {serial:.1f} | {parallel:.1f} | {args.workers} | {parallel / serial:.2f} |")


if __name__ == "__main__":
    main()
