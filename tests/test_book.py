"""The book pipeline end to end, as a user runs it: ``python -m igan_utils.book --profile smoke``."""

import html as html_module
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from igan_utils.book import runner

ROOT = Path(__file__).resolve().parents[1]


def _run_book(*args, env=None):
    return subprocess.run([sys.executable, "-m", "igan_utils.book", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_a_kernel_that_dies_while_starting_is_started_again(tmp_path, monkeypatch):
    import papermill

    started = []

    def flaky_start(notebook, output, **kwargs):  # what jupyter_client raises when two kernels race for one port
        started.append(1)
        if len(started) < runner.KERNEL_START_ATTEMPTS:
            raise RuntimeError("Kernel died before replying to kernel_info")
        nbformat.write(nbformat.v4.new_notebook(), output)  # what papermill writes when the kernel ran

    monkeypatch.setattr(papermill, "execute_notebook", flaky_start)
    runner.execute(tmp_path / "a.ipynb", tmp_path / "out" / "a.ipynb", {}, progress=False)
    assert len(started) == runner.KERNEL_START_ATTEMPTS
    assert "commit" in nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4).metadata[runner.STAMP]  # stamped

    def other_failure(*args, **kwargs):
        started.append(1)
        raise RuntimeError("something else")

    started.clear()
    monkeypatch.setattr(papermill, "execute_notebook", other_failure)
    with pytest.raises(RuntimeError, match="something else"):
        runner.execute(tmp_path / "a.ipynb", tmp_path / "out" / "a.ipynb", {}, progress=False)
    assert len(started) == 1  # only a kernel that never started is retried


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
    assert result.returncode == 2 and "no chapter has the parameter(s) epsilon" in result.stderr  # a usage error
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def smoke_book(book_data_dir) -> Path:
    """The smoke book, executed and built as a user does it; its HTML folder."""
    result = _run_book("--profile", "smoke", env={"IGAN_DATA_DIR": str(book_data_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    return ROOT / "_build" / "html"


def test_smoke_book_builds_and_links_every_chapter_with_its_figures(smoke_book):
    html = smoke_book
    assert (html / "index.html").exists()
    intro = (html / "book" / "intro.html").read_text()
    for notebook in runner.chapters(ROOT):
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
    results = (html / "book" / "results.html").read_text()
    assert sentence in results
    assert "**" not in results, "a glued sentence carries Markdown, which the results page shows raw"
    report = (ROOT / "book" / "executed" / "run_report.md").read_text()
    assert "Profile `smoke`" in report and all(nb.stem in report for nb in runner.chapters(ROOT))


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


def test_the_book_renders_in_a_real_browser_with_no_network(smoke_book):
    """Headless Chromium, networking off: every page loads, every image has loaded, the method page's
    math is typeset (no raw TeX left), and the static explorer redraws when a control changes."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        context = browser.new_context(offline=True)
        requested = []
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        for name in _toc_pages():
            response = page.goto((smoke_book / f"{name}.html").as_uri(), wait_until="load")
            assert response is not None and response.ok, name
            broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                                   ".map(i => i.src.slice(0, 80))")
            assert not broken, f"{name}: images that did not load: {broken}"
            assert "Traceback" not in page.inner_text("main"), name

        page.goto((smoke_book / "book" / "method.html").as_uri(), wait_until="load")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
        page.evaluate("MathJax.startup.promise")
        assert page.locator("mjx-container").count() >= 5, "MathJax typeset no equation"
        text = page.inner_text("main")
        assert "\\[" not in text and "\\(" not in text and "\\varepsilon" not in text, "raw TeX left on the method page"

        page.goto((smoke_book / "book" / "executed" / "03_interpretation.html").as_uri(), wait_until="load")
        explorer = page.locator(".igan-explorer").first
        sources = lambda: [img.get_attribute("src") for img in explorer.locator("img").all()]
        everything = sources()
        explorer.locator("select[name=tap]").select_option(index=1)  # one tap: input and that tap, twice
        one_tap = sources()
        assert len(one_tap) == 4 < len(everything)
        explorer.locator("input[name=eps]").evaluate("e => { e.value = 0; e.dispatchEvent(new Event('input')); }")
        assert explorer.locator(".explorer-eps").inner_text() == "0"
        assert sources() != one_tap and sources()[:2] == sources()[2:], "at ε = 0 the twin is the clean image"
        before = sources()
        explorer.locator("select[name=model]").select_option(index=1)
        assert sources() != before, "the explorer did not redraw for the other model"
        browser.close()
    outside = [url for url in requested if not url.startswith(("file:", "data:"))]
    assert not outside, f"the book asked the network for {outside[:5]}"


# What a page must not do at 1280 px: a table, display equation or image wider than the text column,
# or wider than the scroller around it (content hidden behind a scroll bar), and a plotted figure of a
# chapter without a caption. Returns one line per problem.
_LAYOUT_PROBLEMS = """() => {
  const main = document.querySelector('main');
  const column = (document.querySelector('article.bd-article') || main).getBoundingClientRect();
  const problems = [];
  for (const el of main.querySelectorAll('table, mjx-container[display="true"], img')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    let hidden = box.right > column.right + 1 || (el.tagName === 'MJX-CONTAINER' && el.scrollWidth > el.clientWidth + 1);
    for (let up = el.parentElement; up && up !== main && !hidden; up = up.parentElement) {
      const style = getComputedStyle(up);
      hidden = ['auto', 'scroll', 'hidden'].includes(style.overflowX) && up.scrollWidth > up.clientWidth + 1;
    }
    if (hidden) problems.push(`${el.tagName.toLowerCase()} of ${Math.round(box.width)} px overflows: ` +
                              (el.innerText || el.getAttribute('src') || '').replace(/\\s+/g, ' ').slice(0, 60));
  }
  for (const img of main.querySelectorAll('div.cell_output img')) {
    const caption = img.closest('figure') && img.closest('figure').querySelector('figcaption');
    if (!caption || !caption.innerText.trim()) problems.push('figure without a caption: ' + (img.getAttribute('src') || '').slice(-40));
  }
  return problems;
}"""


def test_every_page_fits_a_1280_px_window_and_every_figure_has_a_caption(smoke_book):
    """Wide tables, equations cut off and uncaptioned figures, as a reader meets them in Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    problems = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(offline=True, viewport={"width": 1280, "height": 900}).new_page()
        for name in _toc_pages():
            page.goto((smoke_book / f"{name}.html").as_uri(), wait_until="load")
            if page.locator("mjx-container, script[src*=mathjax], script[src*=MathJax]").count():
                page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
                page.evaluate("MathJax.startup.promise")
            problems += [f"{name}: {problem}" for problem in page.evaluate(_LAYOUT_PROBLEMS)]
        browser.close()
    assert not problems, "\n".join(problems)
