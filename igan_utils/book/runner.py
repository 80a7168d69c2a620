"""The book pipeline: execute the chapter notebooks in order with papermill, then build the book.

``python -m igan_utils.book --profile quick`` (or ``make book PROFILE=quick``) executes every
``notebooks/NN_*.ipynb`` into ``book/executed/`` (the source notebooks stay output-free), with the
profile injected as a parameter and the code's commit, the machine's pass time and the chapter's
seconds stamped into each executed notebook; writes a run report that the reproduce page includes,
and builds the Jupyter Book into ``_build/html`` with warnings as errors.

The published run: ``--publish DIR`` copies executed chapters into ``book/published/`` (committed,
with their outputs), writes its run record from the notebooks' stamps and the store's ledger, and
rewrites README's claims table; ``--publish-text`` brings the chapters' text cells there up to date; ``--published`` (``make published``) builds the HTML from
``book/published/`` without executing anything, marking a chapter whose code changed since its run
as stale and a chapter not yet in the run as such.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import torch
from tqdm import tqdm

from ..method import models
from ..method.runtime import absolute_env_dirs, project_root
from . import findings
from .commands import check_out_folder, command
from .profiles import (
    PROFILE_NAMES,
    check_values,
    notebook_parameters,
    parameters_cell,
    profiles_table,
)
from .store import LEDGER_TAG_ENV_VAR, Store

KERNEL = "python3"
KERNEL_START_ATTEMPTS = 3
EXECUTED = Path("book") / "executed"
PUBLISHED = Path("book") / "published"
RECORD = "run_record.md"
STAMP = "igan"  # the executed notebook's metadata key: commit, profile, finished, seconds, pass_ms, machine
PASS_BATCH = 250  # images per pass of the machine's pass-time measurement
CLAIMS_START, CLAIMS_END = "<!-- claims-start -->", "<!-- claims-end -->"
BOOK_LINK = "{{doc}}`executed/{chapter}`"  # where a claims table row points: in the book, the chapter page;
README_LINK = "[{nn}](book/published/{chapter}.ipynb)"  # in README, the published notebook


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
            # IGAN_LOG_OUTPUT=1 streams every cell's output to this process's log as it comes (a run cut
            # short by a time limit, as on a borrowed GPU, still leaves its per-epoch and per-point lines)
            papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                                       cwd=str(notebook.parent), progress_bar=progress,
                                       log_output=os.environ.get("IGAN_LOG_OUTPUT") == "1")
            seconds = time.perf_counter() - start
            stamp(output, {"commit": code_commit(notebook.parent), "profile": parameters.get("profile"),
                           "finished": datetime.datetime.now().isoformat(timespec="seconds"), "seconds": round(seconds)})
            return seconds
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
    machine = {"pass_ms": round(1e3 * pass_seconds()[0], 1), "machine": hardware()}
    records, tag = [], os.environ.get(LEDGER_TAG_ENV_VAR)
    bar = tqdm(notebooks, desc=f"book ({profile})", unit="notebook")
    try:
        for notebook in bar:
            bar.set_postfix_str(notebook.stem)
            given = {k: v for k, v in parameters.items() if k in accepted[notebook]}
            os.environ[LEDGER_TAG_ENV_VAR] = notebook.stem  # the store's ledger names the chapter doing the work
            seconds = execute(notebook, out / notebook.name, {"profile": profile, **given},
                              kernel=kernel)
            stamp(out / notebook.name, machine)
            records.append({"notebook": notebook.stem, "seconds": seconds})
            tqdm.write(f"{notebook.stem}: {seconds:.0f} s")
    finally:
        if tag is None:
            os.environ.pop(LEDGER_TAG_ENV_VAR, None)
        else:
            os.environ[LEDGER_TAG_ENV_VAR] = tag
    return records


def stamp(notebook: Path, values: dict) -> None:
    """Add ``values`` to the executed ``notebook``'s run stamp (its metadata under :data:`STAMP`)."""
    executed = nbformat.read(notebook, as_version=4)
    executed.metadata.setdefault(STAMP, {}).update(values)
    nbformat.write(executed, notebook)


def code_commit(folder: Path | None = None) -> str:
    """The short commit of the code in ``folder``'s git checkout, with ``+changes`` when the package or
    the notebooks differ from it; ``unknown`` outside a checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=folder or project_root(), capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--", "igan_utils", "notebooks").stdout.strip()
    return head.stdout.strip() + ("+changes" if dirty else "")


def mnist_passes() -> tuple:
    """Two functions: one forward+input-gradient pass and one forward pass of the MNIST CNN (max
    pooling, untrained) on :data:`PASS_BATCH` random images, on this process's torch threads."""
    model = models.build("small_cnn", "max").eval()
    x, y = torch.rand(PASS_BATCH, 1, 28, 28), torch.randint(0, 10, (PASS_BATCH,))

    def both():
        xg = x.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(xg), y).backward()

    def forward():
        with torch.no_grad():
            model(x)

    return both, forward


def pass_seconds(repeats: int = 10) -> tuple[float, float]:
    """The machine's speed: median seconds of one forward+input-gradient pass and of one forward pass
    (:func:`mnist_passes`). Run records quote it beside every time."""
    found = []
    for run in mnist_passes():
        run()  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        found.append(statistics.median(times))
    return found[0], found[1]


def code_cells(notebook: Path) -> list[str]:
    """The sources of a notebook's code cells, its parameters cells aside (papermill injects one)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return ["".join(c["source"]).strip() for c in cells if c["cell_type"] == "code"
            and not {"parameters", "injected-parameters"} & set(c.get("metadata", {}).get("tags", []))]


def stale_chapters(published: Path, root: Path | None = None) -> list[Path]:
    """The published chapters whose code differs from their source notebook in ``notebooks/``."""
    sources = {nb.name: nb for nb in chapters(root)}
    return [nb for nb in sorted(Path(published).glob("[0-9][0-9]_*.ipynb"))
            if nb.name in sources and code_cells(nb) != code_cells(sources[nb.name])]


def _presentation(cell) -> object:
    """What of a cell is the authors' word rather than the run's: a text cell's source, a code cell's
    figure caption (``mystnb`` metadata)."""
    return cell.source if cell.cell_type == "markdown" else cell.metadata.get("mystnb")


def refresh_published_text(root: Path | None = None) -> list[str]:
    """Copy the text cells and figure captions of every source notebook into its published chapter,
    cell by cell id, and return the names of the chapters that changed. Text is the authors' word, not
    an output of the run, so it is current in the published book as the prose pages are; code and
    outputs stay as the run made them. A chapter whose code changed (stale) keeps the text of its
    run, which may be the only text that describes its outputs; so does a cell new in the source."""
    root = root or project_root()
    changed = []
    stale = {nb.name for nb in stale_chapters(root / PUBLISHED, root)}
    for source in chapters(root):
        copy = root / PUBLISHED / source.name
        if not copy.exists() or source.name in stale:
            continue
        current = {c.get("id"): c for c in nbformat.read(source, as_version=4).cells}
        notebook = nbformat.read(copy, as_version=4)
        behind = [(cell, current[cell.get("id")]) for cell in notebook.cells if cell.get("id") in current
                  and current[cell.get("id")].cell_type == cell.cell_type
                  and _presentation(cell) != _presentation(current[cell.get("id")])]
        for cell, new in behind:
            if cell.cell_type == "markdown":
                cell.source = new.source
            elif new.metadata.get("mystnb") is None:
                cell.metadata.pop("mystnb", None)
            else:
                cell.metadata["mystnb"] = new.metadata["mystnb"]
        if behind:
            nbformat.write(notebook, copy)
            changed.append(source.name)
    return changed


def _run_stamp(notebook: Path) -> dict:
    return nbformat.read(notebook, as_version=4).metadata.get(STAMP, {})


def _glue_names(root: Path, chapter: str) -> list[str]:
    """The glued names of ``chapter`` that the book's prose pages paste (``executed/<chapter>.ipynb::name``)."""
    names = []
    for page in sorted((root / "book").glob("*.md")):
        names += re.findall(rf"executed/{chapter}\.ipynb::(\w+)", page.read_text())
    return list(dict.fromkeys(names))


def _not_yet_run(source: Path, root: Path) -> nbformat.NotebookNode:
    """The page of a chapter that the published run does not have yet: its title, a sentence saying
    so, and every name the prose pages paste from it, glued as "not in this run yet"."""
    title = next(c.source.splitlines()[0] for c in nbformat.read(source, as_version=4).cells if c.cell_type == "markdown")
    page = nbformat.v4.new_notebook()
    page.cells.append(nbformat.v4.new_markdown_cell(
        f"{title}\n\nThis chapter is not in the published run yet. `make book PROFILE=quick ARGS=\"--only "
        f"{source.name[:2]}\"` executes it (and reuses every model and attack already in the store)."))
    names = _glue_names(root, source.stem)
    if names:
        cell = nbformat.v4.new_code_cell("", metadata={"tags": ["remove-cell"]})
        cell.outputs = [nbformat.v4.new_output("display_data", data={
            "application/papermill.record/text/plain": "'not in this run yet'"},
            metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}) for name in names]
        page.cells.append(cell)
    return page


def stage_published(root: Path | None = None) -> list[str]:
    """Lay ``book/published/`` out in ``book/executed/`` for the build: every published chapter, with a
    visible note naming its run's commit when its code differs from its source notebook; a page saying
    so for a chapter not in the run; the run record as the reproduce page's report and the claims
    table. Returns the names of the stale chapters."""
    root = root or project_root()
    published, executed = root / PUBLISHED, root / EXECUTED
    if not published.is_dir():
        raise ValueError(f"there is no published run in {published}: `--publish DIR` makes one from executed chapters")
    shutil.rmtree(executed, ignore_errors=True)
    executed.mkdir(parents=True)
    stale = {nb.name for nb in stale_chapters(published, root)}
    for source in chapters(root):
        copy = published / source.name
        if not copy.exists():
            nbformat.write(_not_yet_run(source, root), executed / source.name)
            continue
        notebook = nbformat.read(copy, as_version=4)
        if source.name in stale:
            run = notebook.metadata.get(STAMP, {})
            notebook.cells.insert(1, nbformat.v4.new_markdown_cell(
                f":::{{warning}} Stale: this chapter's code changed after the published run\n"
                f"The outputs below come from the code of commit `{run.get('commit', 'unknown')}` "
                f"({run.get('finished', 'date unknown')}); the chapter's source has changed since. "
                f"`make book PROFILE=quick ARGS=\"--only {source.name[:2]}\"` re-executes it from the store.\n:::"))
        nbformat.write(notebook, executed / source.name)
    shutil.copy(published / RECORD, executed / "run_report.md")
    (executed / "claims.md").write_text(findings.claims_table(executed, link=BOOK_LINK) + "\n")
    return sorted(stale)


# The record's columns from the ledger, in their order (a notebook's stamp keeps them sorted by name).
LEDGER_COLUMNS = ("models new", "models reused", "chunks new", "chunks reused", "images attacked (attack × image)",
                  "work s")


def _ledger_rows(store: Store, chapter: str) -> dict:
    """What the store's ledger says ``chapter`` did, over every sitting that ran it: models trained and
    reused, worst-case chunks attacked and reused, the images its new attacks ran on, and the seconds its
    new artifacts took to make (summed over parallel workers)."""
    ledger = store.ledger()
    if ledger.empty or "tag" not in ledger:
        return {}
    part = ledger[ledger["tag"] == chapter]
    made = part[part["made"].astype(bool)]
    row = {}
    for kind, name in (("classifier", "models"), ("worst_case", "chunks")):
        keys = set(part.loc[part["kind"] == kind, "key"]) if "key" in part else set()
        new = set(made.loc[made["kind"] == kind, "key"]) if "key" in made else set()
        row[f"{name} new"], row[f"{name} reused"] = len(new), len(keys - new)
    attacked = [r.get("attacked") for r in made.to_dict("records") if isinstance(r.get("attacked"), dict)]
    row["images attacked (attack × image)"] = int(sum(sum(a.values()) for a in attacked))
    row["work s"] = round(float(made["seconds"].sum())) if "seconds" in made else 0
    return row


def publish(executed: Path, root: Path | None = None, store: Store | None = None) -> Path:
    """Copy the executed chapters of folder ``executed`` (stamped by :func:`execute`) into
    ``book/published/``, write its run record (per chapter: commit, finished, seconds, the machine's
    pass time, models and attacks new and reused from the store's ledger, kept in each published copy's
    stamp) and rewrite README's
    claims table from it. Returns the record's path."""
    root, store = root or project_root(), store or Store()
    chapters_run = sorted(Path(executed).glob("[0-9][0-9]_*.ipynb"))
    if not chapters_run:
        raise ValueError(f"no executed chapters in {executed}")
    published = root / PUBLISHED
    published.mkdir(parents=True, exist_ok=True)
    rows = []
    for notebook in chapters_run:
        run = _run_stamp(notebook)
        if not run.get("commit"):
            raise ValueError(f"{notebook} carries no run stamp: execute it with `python -m igan_utils.book`")
        shutil.copy(notebook, published / notebook.name)
        # The ledger's figures go into the published copy: a chapter published earlier keeps its own
        # even when a later publication reads another store.
        stamp(published / notebook.name, {"ledger": _ledger_rows(store, notebook.stem)})
    for notebook in sorted(published.glob("[0-9][0-9]_*.ipynb")):
        run = _run_stamp(notebook)
        ledger = run.get("ledger", {})
        rows.append({"chapter": notebook.stem, "profile": run.get("profile"), "commit": run.get("commit"),
                     "finished": run.get("finished"), "seconds": run.get("seconds"), "pass ms": run.get("pass_ms"),
                     **{name: ledger[name] for name in LEDGER_COLUMNS if name in ledger}})
    table = pd.DataFrame(rows)
    machines = sorted({str(_run_stamp(nb).get("machine")) for nb in published.glob("[0-9][0-9]_*.ipynb")})
    lines = ["The published run: each chapter as executed, with the commit of its code, when it finished, its "
             "seconds, the machine's pass time (forward + input gradient of the MNIST CNN on 250 images; times "
             "scale with it) and, from the store's ledger over every sitting that ran it, the models it trained or "
             "reused, the worst-case chunks (100 test images of one model) it attacked or reused, and the "
             "seconds its new work took (work s, summed over parallel sweep workers). A resumed chapter's "
             "seconds are those of its last, warm sitting; work s is what the whole chapter cost. A chapter that "
             "reused another's work did not pay for it here: its cost lies with the chapter that made it.", "",
             table.to_markdown(index=False), "", f"Machine: {'; '.join(machines)}.", ""]
    path = published / RECORD
    path.write_text("\n".join(lines))
    write_claims(root / "README.md", findings.claims_table(published, link=README_LINK))
    return path


README_FIGURE = Path("assets") / "what_each_layer_sees.png"
README_FIGURE_CELL = "what each layer sees"  # the chapter-3 cell that draws it


def figure_of(notebook: Path, marker: str = README_FIGURE_CELL) -> bytes:
    """The first PNG that the code cell of executed ``notebook`` whose source contains ``marker`` drew."""
    import base64

    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code" and marker in cell.source:
            for output in cell.get("outputs", []):
                if "image/png" in output.get("data", {}):
                    return base64.b64decode(output["data"]["image/png"])
    raise ValueError(f"{notebook} has no figure drawn by a cell containing {marker!r}")


def write_claims(readme: Path, table: str) -> None:
    """Replace the claims table between README's markers with ``table``."""
    text = readme.read_text()
    if CLAIMS_START not in text or CLAIMS_END not in text:
        raise ValueError(f"{readme} has no {CLAIMS_START} … {CLAIMS_END} block for the claims table")
    head, rest = text.split(CLAIMS_START, 1)
    readme.write_text(f"{head}{CLAIMS_START}\n{table}\n{CLAIMS_END}{rest.split(CLAIMS_END, 1)[1]}")


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


def write_run_report(records: list[dict], profile: str, root: Path | None = None) -> Path:
    """Markdown table of this run's notebook times and machine, included by the reproduce page, and
    the claims table (:func:`findings.claims_table`) that the front page includes."""
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
    (root / EXECUTED / "claims.md").write_text(findings.claims_table(root / EXECUTED, link=BOOK_LINK) + "\n")
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
    parser.add_argument("--publish", type=Path, metavar="DIR",
                        help="copy the executed chapters of DIR into book/published with the run record, and stop")
    parser.add_argument("--publish-text", action="store_true",
                        help="copy the chapters' text cells into book/published (outputs untouched), and stop")
    parser.add_argument("--published", action="store_true",
                        help="build the HTML from book/published without executing any chapter")
    parser.add_argument("--readme-figure", type=Path, metavar="NOTEBOOK",
                        help=f"copy chapter 3's figure from an executed NOTEBOOK to {README_FIGURE}, and stop")
    parser.add_argument("--write-parameters", action="store_true",
                        help="rewrite every notebook's parameters cell from profiles.PARAMS, and stop")
    args = parser.parse_args(argv)
    if args.write_parameters:
        changed = write_parameters_cells()
        print(f"parameters cells rewritten: {', '.join(p.name for p in changed) or 'none (all up to date)'}")
        return 0
    if args.readme_figure:
        (project_root() / README_FIGURE).write_bytes(figure_of(args.readme_figure))
        print(f"README's figure: {README_FIGURE} from {args.readme_figure}")
        return 0
    if args.publish:
        print(f"run record: {publish(args.publish)}")
        return 0
    if args.publish_text:
        print(f"text refreshed in: {', '.join(refresh_published_text()) or 'none (all current)'}")
        return 0
    if args.published:
        stale = stage_published()
        print(f"stale chapters (marked in the book): {', '.join(stale) or 'none'}")
        print(f"book: {build_html(strict=not args.no_strict)}")
        return 0
    try:
        records = run_chapters(args.profile, only=args.only, parameters=dict(args.parameter),
                               kernel=args.kernel, out=args.out)
        if not args.no_build:
            write_run_report(records, args.profile)
            index = build_html(strict=not args.no_strict)
            print(f"book: {index}")
    except (NotebookFailed, RuntimeError) as error:  # the run failed (not the user's options): exit 1
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
