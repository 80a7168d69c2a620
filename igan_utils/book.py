"""The book pipeline: execute the chapter notebooks in order with papermill, then build the book.

``python -m igan_utils.book --profile quick`` (or ``make book PROFILE=quick``) executes every
``notebooks/NN_*.ipynb`` into ``book/executed/`` (the source notebooks stay output-free), with the
profile injected as a parameter, writes a run report (times, hardware) that the reproduce page
includes, and builds the Jupyter Book into ``_build/html`` with warnings as errors.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .commands import check_out_folder, command
from .profiles import PROFILE_NAMES, check_values, notebook_parameters, parameters_cell, profiles_table
from .runtime import absolute_env_dirs, project_root
from .store import LEDGER_TAG_ENV_VAR

KERNEL = "python3"
KERNEL_START_ATTEMPTS = 3
EXECUTED = Path("book") / "executed"


class NotebookFailed(RuntimeError):
    """A notebook raised an error; the message names the notebook and the cell.

    ``where`` is the cell and the error alone; ``output`` the executed copy with the traceback.
    """

    def __init__(self, notebook: Path, output: Path, where: str):
        self.where, self.output = where, output
        super().__init__(f"{notebook.name} failed in {where}\nThe executed copy with the full traceback is {output}")


def chapters(root: Path | None = None) -> list[Path]:
    """The chapter notebooks ``notebooks/NN_*.ipynb`` in order."""
    return sorted((root or project_root()).joinpath("notebooks").glob("[0-9][0-9]_*.ipynb"))


def execute(notebook: Path, output: Path, parameters: dict, *, kernel: str = KERNEL,
            progress: bool = True) -> float:
    """Execute ``notebook`` into ``output`` with papermill; return seconds taken.

    Raises :class:`NotebookFailed` naming the notebook, the cell and the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    absolute_env_dirs()
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        try:
            papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                                       cwd=str(notebook.parent), progress_bar=progress)
            return time.perf_counter() - start
        except PapermillExecutionError as error:
            raise NotebookFailed(notebook, output, f"cell {error.cell_index} (execution count {error.exec_count}): "
                                                   f"{error.ename}: {error.evalue}") from None
        except RuntimeError as error:
            # jupyter_client finds free TCP ports by binding and releasing them, so two kernels started
            # at the same moment (a sweep's workers) can pick the same port and one dies before running
            # any cell. Nothing ran, so starting it again is safe.
            if "before replying to kernel_info" not in str(error) or attempt == KERNEL_START_ATTEMPTS:
                raise


def run_chapters(profile: str, *, only: list[str] | None = None, parameters: dict | None = None,
                 kernel: str = KERNEL, root: Path | None = None, out: Path | None = None) -> list[dict]:
    """Execute the chapters (all, or those whose names start with one of ``only``) in order; each
    of ``parameters`` goes to the chapters that have it.

    Returns one record per notebook with its run time; stops at the first failure.
    """
    root = root or project_root()
    out = out or root / EXECUTED
    notebooks = [nb for nb in chapters(root) if not only or any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise ValueError(f"no chapter notebooks match {only} in {root / 'notebooks'}")
    parameters = parameters or {}
    accepted = {nb: set(notebook_parameters(nb)) for nb in notebooks}
    unused = sorted(set(parameters) - set().union(*accepted.values()))
    if unused:
        raise ValueError(f"no chapter has the parameter(s) {', '.join(unused)}")
    check_values(parameters)  # a bad value fails here, not in a kernel after the first chapters ran
    check_out_folder(out, "folder of executed notebooks")
    records, tag = [], os.environ.get(LEDGER_TAG_ENV_VAR)
    bar = tqdm(notebooks, desc=f"book ({profile})", unit="notebook")
    try:
        for notebook in bar:
            bar.set_postfix_str(notebook.stem)
            given = {k: v for k, v in parameters.items() if k in accepted[notebook]}
            os.environ[LEDGER_TAG_ENV_VAR] = notebook.stem  # the store's ledger names the chapter doing the work
            seconds = execute(notebook, out / notebook.name, {"profile": profile, **given},
                              kernel=kernel)
            records.append({"notebook": notebook.stem, "seconds": seconds})
            tqdm.write(f"{notebook.stem}: {seconds:.0f} s")
    finally:
        if tag is None:
            os.environ.pop(LEDGER_TAG_ENV_VAR, None)
        else:
            os.environ[LEDGER_TAG_ENV_VAR] = tag
    return records


def hardware() -> str:
    """One line naming the machine, for run reports."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def write_report(records: list[dict], profile: str, root: Path | None = None) -> Path:
    """Markdown table of this run's notebook times and machine, included by the reproduce page."""
    root = root or project_root()
    total = sum(r["seconds"] for r in records)
    lines = [f"Profile `{profile}`, run on {datetime.date.today().isoformat()} on {hardware()}.", "",
             "| notebook | seconds |", "| --- | ---: |"]
    lines += [f"| {r['notebook']} | {r['seconds']:.0f} |" for r in records]
    lines += [f"| **all notebooks** | **{total:.0f}** |", "",
              "The main parameters of each profile (`None`: all images, or the dataset's reference value):", "",
              profiles_table(), ""]
    path = root / EXECUTED / "run_report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def build_html(root: Path | None = None, *, strict: bool = True) -> Path:
    """Build the Jupyter Book (notebooks are not executed again) into ``_build/html``."""
    root = root or project_root()
    exe = Path(sys.executable).with_name("jupyter-book")
    # --all: Sphinx's incremental build would leave pages that only paste glued numbers from the
    # chapters (results.md) showing the numbers of an earlier run.
    command = [str(exe) if exe.exists() else shutil.which("jupyter-book") or "jupyter-book",
               "build", str(root), "--builder", "html", "--all"]
    if strict:
        command += ["--warningiserror", "--keep-going"]
    result = subprocess.run(command, cwd=root)
    if result.returncode != 0:
        raise RuntimeError(f"the book build failed (exit {result.returncode}); see the warnings above")
    return root / "_build" / "html" / "index.html"


def write_parameters_cells(root: Path | None = None) -> list[Path]:
    """Rewrite the parameters cell of every notebook in ``notebooks/`` from ``profiles.PARAMS``
    (:func:`profiles.parameters_cell`); returns the notebooks that changed."""
    import nbformat

    changed = []
    for path in sorted(((root or project_root()) / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        source = parameters_cell(path.stem)
        if cell.source != source:
            cell.source = source
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


def parameter_pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` from the command line as (name, value); argparse reports a malformed one."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="igan-book", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these chapters (e.g. 01 02)")
    parser.add_argument("-p", "--parameter", action="append", type=parameter_pair, default=[],
                        metavar="NAME=VALUE", help="override a parameter in every chapter that has it")
    parser.add_argument("--kernel", default=KERNEL, help="Jupyter kernel name (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="folder for the executed notebooks (default: book/executed)")
    parser.add_argument("--no-build", action="store_true", help="execute the notebooks, do not build")
    parser.add_argument("--no-strict", action="store_true", help="do not treat build warnings as errors")
    parser.add_argument("--write-parameters", action="store_true",
                        help="rewrite every notebook's parameters cell from profiles.PARAMS, and stop")
    args = parser.parse_args(argv)
    if args.write_parameters:
        changed = write_parameters_cells()
        print(f"parameters cells rewritten: {', '.join(p.name for p in changed) or 'none (all up to date)'}")
        return 0
    try:
        records = run_chapters(args.profile, only=args.only, parameters=dict(args.parameter),
                               kernel=args.kernel, out=args.out)
        if not args.no_build:
            write_report(records, args.profile)
            index = build_html(strict=not args.no_strict)
            print(f"book: {index}")
    except (NotebookFailed, RuntimeError) as error:  # the run failed (not the user's options): exit 1
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
