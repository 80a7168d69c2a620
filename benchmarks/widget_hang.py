"""Do notebooks with the explorer's widget finish under papermill? (a reliability check, not a test)

Builds two notebooks, each drawing ``--cells`` explorer widgets on a small synthetic grid: one with
``ipywidgets.interactive`` (an Output widget; the explorer before 2026-12-05) and one with
``explorer.widget`` (an Image widget). Executes each ``--runs`` times with papermill, every run in its
own process with a time limit, and prints how many runs hung. An Output widget makes nbclient send on
the shell channel while it waits there for the cell's reply, which it then sometimes never reads
(jupyter/nbclient#312).

Usage: python benchmarks/widget_hang.py [--runs 20] [--cells 30] [--limit 90]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

SETUP = """\
import ipywidgets as widgets
import torch
from igan_utils.book import explorer

pair = ([torch.rand(1, 28, 28) for _ in range(6)], [torch.rand(1, 28, 28) for _ in range(6)])
names = (["1"] * 6, ["7"] * 6)
grid = explorer.ExplorerGrid(["max", "avg"], [0.0, 0.3], ["conv1", "pool1", "pool2", "fc1", "logits"],
                             {m: [[pair, pair]] * 2 for m in ("max", "avg")},
                             {m: [[names] * 2] * 2 for m in ("max", "avg")})
"""
DESIGNS = {
    "Output widget (ipywidgets.interactive)": """\
widgets.interactive(lambda model, example: explorer.figure(grid, model, example, 1),
                    model=widgets.Dropdown(options=grid.models), example=widgets.IntSlider(0, 0, 1))""",
    "Image widget (explorer.widget)": "explorer.widget(grid)",
}


def hangs(notebook: Path, runs: int, limit: float) -> tuple[int, list[float]]:
    """Execute ``notebook`` ``runs`` times; return how many ran past ``limit`` s and the others' seconds."""
    import time

    hung, seconds = 0, []
    executed = notebook.with_suffix(".out.ipynb")
    code = (f"import papermill; papermill.execute_notebook({str(notebook)!r}, {str(executed)!r}, "
            "kernel_name='python3', progress_bar=False)")
    for _ in range(runs):
        start = time.perf_counter()
        run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if run.wait(timeout=limit) != 0:
                raise RuntimeError(f"{notebook.name} failed (not a hang); run it with papermill to see why")
            seconds.append(time.perf_counter() - start)
            print(".", end="", flush=True)
        except subprocess.TimeoutExpired:
            hung += 1
            kernel = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True).stdout.split()
            subprocess.run(["kill", *kernel, str(run.pid)], check=False)  # the kernel is its own session's
            run.wait()
            print("H", end="", flush=True)
    print()
    return hung, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cells", type=int, default=30, help="widget cells per notebook")
    parser.add_argument("--limit", type=float, default=90, help="seconds after which a run counts as hung")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="widget_hang_"))
    for i, (design, cell) in enumerate(DESIGNS.items()):
        notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}})
        widgets = [nbformat.v4.new_code_cell(cell) for _ in range(args.cells)]
        notebook.cells = [nbformat.v4.new_code_cell(SETUP), *widgets]
        path = folder / f"design{i}.ipynb"
        nbformat.write(notebook, path)
        hung, seconds = hangs(path, args.runs, args.limit)
        median = sorted(seconds)[len(seconds) // 2] if seconds else float("nan")
        print(f"{design}: {hung} of {args.runs} runs hung ({args.cells} widget cells each, limit {args.limit:.0f} s); "
              f"median finished run {median:.1f} s")


if __name__ == "__main__":
    main()
