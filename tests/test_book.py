"""The book pipeline end to end, as a user runs it: ``python -m igan_utils.book --profile smoke``."""

import html as html_module
import json
import os
import re
import subprocess
import sys
from pathlib import Path


from igan_utils import book

ROOT = Path(__file__).resolve().parents[1]


def _run_book(*args, env=None):
    return subprocess.run([sys.executable, "-m", "igan_utils.book", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_empty_data_dir_fails_with_the_clear_data_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run_book("--profile", "smoke", "--only", "01", "--no-build", "--out", str(tmp_path / "executed"),
                       env={"IGAN_DATA_DIR": str(empty), "IGAN_STORE_DIR": str(tmp_path / "store")})
    assert result.returncode == 1
    assert "01_classification.ipynb failed in cell" in result.stderr
    assert "DataNotFoundError" in result.stderr and str(empty) in result.stderr
    assert "IGAN_DATA_DIR" in result.stderr and "Fix:" in result.stderr


def test_unknown_parameter_fails_before_any_notebook_runs(tmp_path):
    result = _run_book("--profile", "smoke", "-p", "epsilon=0.1", "--out", str(tmp_path))
    assert result.returncode == 1 and "no chapter has the parameter(s) epsilon" in result.stderr
    assert not list(tmp_path.iterdir())


def test_smoke_book_builds_and_links_every_chapter_with_its_figures(mnist_dir):
    result = _run_book("--profile", "smoke", env={"IGAN_DATA_DIR": str(mnist_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    html = ROOT / "_build" / "html"
    assert (html / "index.html").exists()
    intro = (html / "book" / "intro.html").read_text()
    for notebook in book.chapters(ROOT):
        page = html / "book" / "executed" / f"{notebook.stem}.html"
        assert f"executed/{notebook.stem}.html" in intro, f"{notebook.stem} not linked from the book's front page"
        text = page.read_text()
        images = re.findall(r'<img[^>]+src="([^"]+\.png)"', text)
        assert images, f"{page.name} shows no figure"
        assert all((page.parent / src).resolve().exists() for src in images)
        assert "Traceback" not in text
    # the results page pastes sentences glued by this run's chapters, not by an earlier build's
    executed = json.loads((ROOT / "book" / "executed" / "01_classification.ipynb").read_text())
    glued = next(value for c in executed["cells"] for o in c.get("outputs", [])
                 if o.get("metadata", {}).get("scrapbook", {}).get("name") == "accuracy_text"
                 for mime, value in o["data"].items() if mime.endswith("text/plain"))
    sentence = html_module.escape("".join(glued).strip("'\""), quote=False)
    assert sentence in (html / "book" / "results.html").read_text()
    report = (ROOT / "book" / "executed" / "run_report.md").read_text()
    assert "Profile `smoke`" in report and all(nb.stem in report for nb in book.chapters(ROOT))
