"""The report of a :class:`~igan_utils.diagnose.api.Diagnosis`: one self-contained HTML file, or
Markdown with the figures as PNG files beside it."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..book.commands import check_out_folder

FORMATS = ("html", "md")


def check_report_folder(out: str | Path, format: str = "html") -> Path:
    """``out`` as a folder the report can be written into and ``format`` one of :data:`FORMATS`,
    checked before any work (``commands.check_out_folder``); nothing is created."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, got {format!r}")
    return check_out_folder(out, "report folder")


def write_report(found, out: str | Path, format: str = "html") -> Path:
    """Write the report of the diagnosis ``found`` into folder ``out`` (``report.html`` with the figures
    embedded, or ``report.md`` and one PNG per figure). Returns the report's path."""
    out = check_report_folder(out, format)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for stem, figure in found.figures().items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        pngs[stem] = buffer.getvalue()
    settings = pd.DataFrame({"setting": list(found.settings), "value": [str(v) for v in found.settings.values()]})
    if format == "md":
        for stem, png in pngs.items():
            (out / f"{stem}.png").write_bytes(png)
        parts = [f"# Diagnosis of {found.model_name}", f"**{found.answer()}**", "## Details", found.summary(),
                 settings.to_markdown(index=False)]
        parts += [f"![{stem}]({stem}.png)" for stem in pngs]
        parts += [f"## {title}\n\n{table.round(4).to_markdown(index=False)}" for title, table in found.tables().items()]
        path = out / "report.md"
        path.write_text("\n\n".join(parts) + "\n")
        return path
    images = "".join(f'<figure><img alt="{stem}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                     f"<figcaption>{stem.replace('_', ' ')}</figcaption></figure>" for stem, png in pngs.items())
    tables = "".join(f"<h2>{title}</h2>{table.round(4).to_html(index=False, border=0)}"
                     for title, table in found.tables().items())
    path = out / "report.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Diagnosis of {found.model_name}"
                    f"</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}"
                    f"table{{border-collapse:collapse;font-size:90%}}td,th{{padding:2px 8px;text-align:right}}"
                    f"img{{max-width:100%}}</style></head><body><h1>Diagnosis of {found.model_name}</h1>"
                    f"<p class='answer'><b>{markdown_inline(found.answer())}</b></p><h2>Details</h2>"
                    f"<p>{markdown_inline(found.summary())}</p>{settings.to_html(index=False, border=0)}{images}{tables}"
                    f"</body></html>")
    return path


def markdown_inline(text: str) -> str:
    """Inline Markdown (`code`, **bold**) as HTML, the rest escaped."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
