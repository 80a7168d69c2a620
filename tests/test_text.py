"""The book reads as prose: paragraphs of at most 120 words, and no verdict typed by hand.

Checked here on what the repository holds, the prose pages (``book/*.md``) and the chapters' markdown
cells; the sentences the chapters glue are checked on the smoke book (``test_book``), since they are
made by the run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_WORDS = 120
# Words that state a verdict. Only the rules (``igan_utils.book.verdicts``) may decide one, and only the
# sentences glued from them may say it; the method page, which writes the rules down, uses them to define them.
VERDICT_WORDS = re.compile(r"\b(supported|contradicted|not decided|no difference|borne out|inconclusive|"
                           r"not identifiable|named by rule)\b|^yes\b", re.IGNORECASE | re.MULTILINE)
_SKIPPED = ("|", ":::", "```", "$$", "<!--", "#", "{", "![")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")


def paragraphs(markdown: str) -> list[str]:
    """The prose paragraphs of a Markdown text: blocks between blank lines, each list item on its own,
    without fenced code, directives, tables, display math, headings and comments."""
    text = re.sub(r"(?ms)^(```|:::).*?^\1\s*$", "", markdown)  # fenced code and directives, blank lines and all
    text = re.sub(r"(?ms)^\$\$.*?^\$\$\s*$", "", text)
    found = []
    for block in re.split(r"\n\s*\n", text):
        items, current = [], []
        for line in block.splitlines():
            if _ITEM.match(line) and current:
                items.append(current)
                current = []
            current.append(line)
        items.append(current)
        for item in items:
            paragraph = " ".join(line.strip() for line in item).strip()
            if paragraph and not paragraph.startswith(_SKIPPED):
                found.append(_ITEM.sub("", paragraph))
    return found


def _pages() -> dict[str, str]:
    return {page.name: page.read_text() for page in sorted((ROOT / "book").glob("*.md"))}


def _markdown_cells() -> dict[str, str]:
    cells = {}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                cells[f"{notebook.name}, cell {i}"] = "".join(cell["source"])
    return cells


def long_paragraphs(texts: dict[str, str], limit: int = MAX_WORDS) -> list[str]:
    return [f"{where}: {len(p.split())} words: {p[:70]}…" for where, text in texts.items()
            for p in paragraphs(text) if len(p.split()) > limit]


def test_paragraph_splitting_sees_items_and_skips_code_and_tables():
    text = "One two three.\n\n- first item\n  goes on\n- second\n\n```python\nx = 1\n\ny = 2\n```\n\n| a | b |\n\n$$\nx\n$$"
    assert paragraphs(text) == ["One two three.", "first item goes on", "second"]
    assert long_paragraphs({"t": "word " * 121}) and not long_paragraphs({"t": "word " * 120})


@pytest.mark.parametrize("kind", ["pages", "chapters"])
def test_every_paragraph_is_at_most_120_words(kind):
    texts = _pages() if kind == "pages" else _markdown_cells()
    assert texts
    too_long = long_paragraphs(texts)
    assert not too_long, "split these paragraphs (a table where the text lists cases):\n" + "\n".join(too_long)


def test_no_verdict_is_typed_by_hand():
    texts = {**{k: v for k, v in _pages().items() if k != "method.md"}, **_markdown_cells()}
    typed = [f"{where}: {match.group(0)!r}" for where, text in texts.items()
             for p in paragraphs(text) for match in [VERDICT_WORDS.search(p)] if match]
    assert not typed, "verdicts come from the rules, glued from the run:\n" + "\n".join(typed)


def test_the_published_chapters_carry_the_current_text_and_captions():
    """A text cell or figure caption edited in notebooks/ reaches the published book
    (``--publish-text``) unless the chapter's code changed too (then its run's text stays with its
    run's outputs until it runs again); code and outputs stay the run's."""
    from igan_utils.book import runner

    published = {(nb.name, c.get("id")): c for nb in sorted((ROOT / "book" / "published").glob("[0-9][0-9]_*.ipynb"))
                 for c in nbformat.read(nb, as_version=4).cells}
    assert published
    stale = {nb.name for nb in runner.stale_chapters(ROOT / "book" / "published", ROOT)}
    behind = [f"{nb.name}, cell {c.get('id')}" for nb in runner.chapters(ROOT) if nb.name not in stale
              for c in nbformat.read(nb, as_version=4).cells
              if (nb.name, c.get("id")) in published and published[nb.name, c.get("id")].cell_type == c.cell_type
              and runner._presentation(published[nb.name, c.get("id")]) != runner._presentation(c)]
    assert not behind, "run `python -m igan_utils.book --publish-text`; behind: " + ", ".join(behind)
