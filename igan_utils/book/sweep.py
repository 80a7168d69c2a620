"""Parameter sweeps: one notebook executed by papermill at every point of a grid, on Dask.

A notebook takes part in sweeps by having a ``results_path`` parameter and writing its tidy results
table there with ``store.record_results`` as its last act. A point is finished when its table exists,
so a rerun skips it; a failed point is reported with its executed notebook and the others go on.
Points run on a Dask ``LocalCluster`` (``workers`` processes), or on an existing cluster given its
scheduler address.

Command line::

    igan-sweep notebooks/robustness_point.ipynb --grid pool=max,avg --grid seed=0,1,2 \\
        -p profile=quick --out sweeps/pooling --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from tqdm import tqdm

from ..method.runtime import absolute_env_dirs, default_device
from .commands import check_out_folder, command
from .profiles import check_values, notebook_parameters
from .runner import NotebookFailed, execute, parameter_pair
from .store import record_results

RESULTS = "results_path"


@dataclass
class SweepResult:
    """The collected table (one block of rows per finished point, with the point's values as
    columns), the points that failed (with their executed notebooks) and how many were skipped."""

    table: pd.DataFrame
    failures: list[dict] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict]:
    """Every combination of the grid's values, in order."""
    if not grid:
        raise ValueError("the grid is empty: give at least one parameter with values")
    empty = [name for name, values in grid.items() if len(values) == 0]
    if empty:
        raise ValueError(f"grid parameter(s) {', '.join(empty)} have no values")
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def point_name(point: Mapping[str, Any]) -> str:
    """A file-name-safe name of a point, e.g. ``pool=max_seed=0``."""
    return re.sub(r"[^A-Za-z0-9._=-]", "-", "_".join(f"{k}={v}" for k, v in point.items()))


def validate(notebook: str | Path, grid: Mapping[str, Sequence[Any]], parameters: Mapping[str, Any] | None = None,
             scheduler: str | None = None, out: str | Path | None = None) -> list[dict]:
    """Check everything that can be checked before any work starts; return the points.

    Raises ValueError for a missing file or one that is not a notebook, an empty grid, a name the
    notebook does not have, a value its rules refuse (``profiles.check_values``), a notebook that does
    not record results, an output folder that cannot be written, or an unreachable scheduler address.
    """
    notebook = Path(notebook)
    if not notebook.is_file():
        raise ValueError(f"notebook {notebook} does not exist")
    points = grid_points(grid)
    accepted = set(notebook_parameters(notebook))
    if RESULTS not in accepted:
        raise ValueError(f"{notebook.name} records no results: it has no {RESULTS!r} parameter")
    if RESULTS in grid or RESULTS in (parameters or {}):
        raise ValueError(f"{RESULTS!r} is set by the sweep for every point; do not give it")
    unknown = sorted((set(grid) | set(parameters or {})) - accepted)
    if unknown:
        raise ValueError(f"{notebook.name} has no parameter(s) {', '.join(unknown)}; it has: "
                         f"{', '.join(sorted(accepted))}")
    overlap = sorted(set(grid) & set(parameters or {}))
    if overlap:
        raise ValueError(f"parameter(s) {', '.join(overlap)} given both in the grid and as fixed parameters")
    check_values(parameters or {})
    for name, values in grid.items():  # every grid value, with the notebooks' own rules, before a kernel starts
        for value in values:
            check_values({name: value})
    if out is not None:
        check_out_folder(out, "sweep folder")
    if scheduler is not None:
        _connect(scheduler).close()
    return points


def _connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout="5s")
    except (OSError, TimeoutError, ValueError) as error:
        raise ValueError(f"cannot reach the Dask scheduler at {address!r} ({type(error).__name__}: {error})") from None


def _run_point(notebook: str, output: str, parameters: dict, kernel: str, threads: int) -> dict:
    """Execute one point (runs on a Dask worker). Returns a status record instead of raising."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # the kernel inherits it: workers do not fight over cores
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers; a PyTorch kernel that inherits
    # it hands memory back to the OS after nearly every large tensor, which made CPU training about
    # twice as slow (measured: one epoch 32 s without, 58 s with).
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        seconds = execute(Path(notebook), Path(output), parameters, kernel=kernel, progress=False)
    except NotebookFailed as error:
        return {"ok": False, "notebook": output, "error": error.where}
    except Exception as error:  # a dead kernel or a papermill failure must not stop the other points
        return {"ok": False, "notebook": output, "error": f"{type(error).__name__}: {error}"}
    if not Path(parameters[RESULTS]).exists():
        return {"ok": False, "notebook": output, "error": f"the notebook finished without writing {RESULTS}"}
    return {"ok": True, "notebook": output, "seconds": seconds}


CPU_WORKERS = 2   # on 2 cores, 2 workers of 1 thread gave 1.12× the pass throughput of 1 × 2 (benchmarks/sweep.py)
CUDA_WORKERS = 8  # on a GPU each point's kernel is host-bound (start-up, Python, launches): overlap many


def default_workers() -> int:
    """Workers of a sweep on this machine: :data:`CPU_WORKERS` on CPU; on CUDA, where one point uses the
    GPU a fraction of its time, up to :data:`CUDA_WORKERS`, one core each."""

    if default_device().type == "cuda":
        return max(1, min(CUDA_WORKERS, os.cpu_count() or 1))
    return CPU_WORKERS


def run_sweep(notebook: str | Path, grid: Mapping[str, Sequence[Any]], out: str | Path, *,
              parameters: Mapping[str, Any] | None = None, scheduler: str | None = None, workers: int | None = None,
              threads_per_worker: int = 1, kernel: str = "python3", progress: bool = True) -> SweepResult:
    """Execute ``notebook`` at every point of ``grid`` (name → values) into ``out``.

    ``parameters`` are passed to every point. Finished points (their results table exists) are
    skipped. Points run on a LocalCluster of ``workers`` processes (default :func:`default_workers`) with ``threads_per_worker``
    concurrent points each, or on the cluster at ``scheduler``; each notebook's torch gets an equal
    share of this machine's cores. Returns the collected table and the failures.
    """
    start = time.perf_counter()
    workers = default_workers() if workers is None else workers
    if workers < 1 or threads_per_worker < 1:
        raise ValueError(f"workers and threads_per_worker must be >= 1, got {workers}, {threads_per_worker}")
    notebook = Path(notebook).resolve()
    points = validate(notebook, grid, parameters, scheduler, out)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    absolute_env_dirs()
    todo = [p for p in points if not (out / f"{point_name(p)}.csv").exists()]
    failures: list[dict] = []
    if todo:
        threads = max(1, (os.cpu_count() or 1) // (workers * threads_per_worker))
        client, cluster = _client(scheduler, workers, threads_per_worker)
        try:
            futures = {client.submit(_run_point, str(notebook), str(out / f"{point_name(p)}.ipynb"),
                                     {**(parameters or {}), **p, RESULTS: str(out / f"{point_name(p)}.csv")},
                                     kernel, threads, pure=False): p for p in todo}
            from distributed import as_completed

            bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {notebook.stem}",
                       unit="point", disable=not progress)
            for future in as_completed(futures):
                status = future.result()
                if not status["ok"]:
                    failures.append({**futures[future], "notebook": status["notebook"], "error": status["error"]})
                    tqdm.write(f"point {point_name(futures[future])} failed: {status['error']} "
                               f"(see {status['notebook']})", file=sys.stderr)
                bar.update(1)
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    table = collect(out, points)
    record_results(table, out / "results.csv")
    return SweepResult(table, failures, skipped=len(points) - len(todo), seconds=time.perf_counter() - start)


def _client(scheduler: str | None, workers: int, threads_per_worker: int):
    if scheduler is not None:
        return _connect(scheduler), None
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=None)
    return Client(cluster), cluster


def collect(out: str | Path, points: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The results tables of the finished ``points`` under ``out``, with each point's values as columns."""
    frames = []
    for point in points:
        path = Path(out) / f"{point_name(point)}.csv"
        if path.exists():
            frame = pd.read_csv(path)
            for name, value in point.items():
                if name not in frame:
                    frame[name] = value
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="igan-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--grid", action="append", type=parameter_pair, default=[], metavar="NAME=V1,V2,...",
                        help="a grid axis (repeat for more)")
    parser.add_argument("-p", "--parameter", action="append", type=parameter_pair, default=[],
                        metavar="NAME=VALUE", help="a parameter given to every point")
    parser.add_argument("--out", type=Path, required=True, help="folder of the executed points and results.csv")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, help="LocalCluster workers (default: 2 on CPU, up to 8 on CUDA)")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
    grid = {name: [v for v in values.split(",") if v] for name, values in args.grid}
    result = run_sweep(args.notebook, grid, args.out, parameters=dict(args.parameter), scheduler=args.scheduler,
                       workers=args.workers, threads_per_worker=args.threads_per_worker, kernel=args.kernel)
    print(f"{len(result.table)} rows from {len(grid_points(grid)) - len(result.failures)} points "
          f"({result.skipped} already finished) in {result.seconds:.0f} s: {args.out / 'results.csv'}")
    for failure in result.failures:
        print(f"failed: {failure['notebook']}: {failure['error']}", file=sys.stderr)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
