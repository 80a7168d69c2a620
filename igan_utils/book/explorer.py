"""The interpretation explorer: pick a model, an example, an attack radius and a tap, see what every
layer makes of a clean image and of its adversarial twin.

Two views of the same precomputed grid (:func:`explorer_grid`):

- :func:`widget`, ipywidgets controls that redraw a figure, live in JupyterLab;
- :func:`static_html`, a self-contained HTML/JS view (images inlined as base64 PNG, no CDN, no kernel)
  that works in the rendered book.
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..method import attacks, interpretgan
from . import plots

ALL_TAPS = "all taps"


@dataclass
class ExplorerGrid:
    """Interpretations on a grid: for model m, example i, radius index e, ``rows[m][i][e]`` is the
    pair (clean, adversarial) of rows [input, x̂_tap1, ...] (tensors (C, H, W) in [0, 1]) and
    ``labels[m][i][e]`` the classifier's labels of those images."""

    models: list[str]
    eps: list[float]
    taps: list[str]
    rows: dict[str, list[list[tuple[list[torch.Tensor], list[torch.Tensor]]]]]
    labels: dict[str, list[list[tuple[list[str], list[str]]]]]

    @property
    def n_examples(self) -> int:
        return min(len(v) for v in self.rows.values())


def explorer_grid(models: dict[str, nn.Module], interpreters: dict[str, dict], examples: dict[str, tuple],
                  eps_grid: list[float], attack_for_eps, classes, *, seed: int = 0) -> ExplorerGrid:
    """Interpret every example of every model at every radius.

    ``models`` and ``interpreters`` are keyed by a model name; ``examples[name]`` is (x, y) with
    x (N, C, H, W) in [0, 1]; ``attack_for_eps(eps)`` gives the PGD settings {"steps", "step_size"}
    (the adversarial twin is PGD's iterate of highest loss; at ε = 0 it is the clean image).
    """
    taps = None
    rows, labels = {}, {}
    for name, model in models.items():
        x, y = examples[name]
        clean_rows, clean_labels = interpretgan.interpretation_rows(model, interpreters[name], x, classes)
        taps = taps or list(interpreters[name])
        rows[name], labels[name] = [[] for _ in x], [[] for _ in x]
        for eps in eps_grid:
            if eps == 0:
                adv = x
            else:
                a = attack_for_eps(eps)
                adv = attacks.pgd(model, x, y, eps, steps=a["steps"], step_size=a["step_size"], keep="max_loss",
                                  generator=torch.Generator(device=x.device).manual_seed(seed)).adv
            adv_rows, adv_labels = interpretgan.interpretation_rows(model, interpreters[name], adv, classes)
            for i in range(len(x)):
                rows[name][i].append((clean_rows[i], adv_rows[i]))
                labels[name][i].append((clean_labels[i], adv_labels[i]))
    return ExplorerGrid(list(models), list(eps_grid), taps, rows, labels)


def _columns(grid: ExplorerGrid, tap: str) -> list[int]:
    return list(range(len(grid.taps) + 1)) if tap == ALL_TAPS else [0, 1 + grid.taps.index(tap)]


def figure(grid: ExplorerGrid, model: str, example: int, eps_index: int, tap: str = ALL_TAPS):
    """The explorer's view as a matplotlib figure: clean and adversarial row at the chosen taps."""
    columns = _columns(grid, tap)
    pair, names = grid.rows[model][example][eps_index], grid.labels[model][example][eps_index]
    images = [[row[c] for c in columns] for row in pair]
    captions = [[row[c] for c in columns] for row in names]
    col_labels = [(["input"] + grid.taps)[c] for c in columns]
    return plots.image_table(images, row_labels=["clean", f"ε = {grid.eps[eps_index]:.3g}"], col_labels=col_labels,
                             captions=captions, title=f"{model}, example {example + 1}")


def _start(grid: ExplorerGrid, eps: float | None) -> int:
    return grid.eps.index(eps) if eps in grid.eps else len(grid.eps) - 1


def widget(grid: ExplorerGrid, eps: float | None = None):
    """ipywidgets controls (model, example, ε, tap) that redraw :func:`figure` (JupyterLab); the
    radius starts at ``eps`` (default: the largest)."""
    import ipywidgets as widgets

    return _figure_widget(
        lambda model, example, eps, tap: figure(grid, model, example, grid.eps.index(eps), tap),
        model=widgets.Dropdown(options=grid.models, description="model"),
        example=widgets.IntSlider(0, 0, grid.n_examples - 1, description="example"),
        eps=widgets.SelectionSlider(options=grid.eps, value=grid.eps[_start(grid, eps)], description="ε"),
        tap=widgets.Dropdown(options=[ALL_TAPS, *grid.taps], description="tap"))


def _figure_widget(draw, **controls):
    """The controls above an image of ``draw(**their values)`` (a matplotlib figure), redrawn when one
    changes.

    Not ``ipywidgets.interactive``: its Output widget makes nbclient (papermill's executor) act as the
    frontend and send comm messages on the shell channel while it waits there for the cell's reply,
    which it then sometimes never reads, and the run hangs (jupyter/nbclient#312; chapter 3 hung in 3
    of 8 runs). An Image widget asks nothing of the frontend.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    image = widgets.Image(format="png")

    def redraw(_change=None):
        fig = draw(**{name: control.value for name, control in controls.items()})
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        plt.close(fig)  # shown through the Image widget only, not again by the inline backend
        image.value = buffer.getvalue()

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*controls.values(), image])


def _png(image: torch.Tensor, scale: int = 3) -> str:
    """A (C, H, W) image in [0, 1] as a base64 PNG, enlarged ``scale`` times (nearest neighbour)."""
    from PIL import Image

    array = (image.detach().float().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    picture = Image.fromarray(array).resize((array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


_SCRIPT = """
(function () {
  const root = document.getElementById("%(id)s");
  const data = JSON.parse(root.querySelector("script[type='application/json']").textContent);
  const controls = {};
  for (const name of ["model", "example", "eps", "tap"]) controls[name] = root.querySelector(`[name=${name}]`);
  const table = root.querySelector("table.explorer-view");
  function draw() {
    const m = controls.model.value, i = +controls.example.value, e = +controls.eps.value, tap = controls.tap.value;
    root.querySelector(".explorer-example").textContent = i + 1;
    root.querySelector(".explorer-eps").textContent = data.eps[e];
    const columns = tap === "all" ? [...Array(data.taps.length + 1).keys()] : [0, +tap + 1];
    const heads = columns.map(c => `<th>${c === 0 ? "input" : data.taps[c - 1]}</th>`).join("");
    const pair = data.cells[m][i][e];
    const body = ["clean", "adversarial"].map((kind, r) => `<tr><th>${r ? "ε = " + data.eps[e] : kind}</th>` +
      columns.map(c => `<td><img alt="${kind} ${c === 0 ? "input" : data.taps[c - 1]}" ` +
        `src="data:image/png;base64,${data.images[pair[r][c][0]]}"><br>${pair[r][c][1]}</td>`).join("") +
      "</tr>").join("");
    table.innerHTML = `<tr><th></th>${heads}</tr>${body}`;
  }
  for (const c of Object.values(controls)) c.addEventListener("input", draw);
  draw();
})();
"""


def static_html(grid: ExplorerGrid, eps: float | None = None) -> str:
    """A self-contained HTML view of ``grid``: controls, a table of images, inline data and script;
    the radius starts at ``eps`` (default: the largest). Identical images are stored once."""
    images, index = [], {}
    def ref(image: torch.Tensor) -> int:
        png = _png(image)
        if png not in index:
            index[png] = len(images)
            images.append(png)
        return index[png]

    cells = {m: [[[[(ref(img), lab) for img, lab in zip(row, caps)]
                   for row, caps in zip(pair, names)]
                  for pair, names in zip(grid.rows[m][i], grid.labels[m][i])]
                 for i in range(grid.n_examples)] for m in grid.models}
    payload = {"eps": [f"{e:.3g}" for e in grid.eps], "taps": grid.taps, "images": images,
               "cells": cells}
    element = f"explorer-{uuid.uuid4().hex[:8]}"
    data = json.dumps(payload).replace("</", "<\\/")  # no "</script>" inside the script element
    options = lambda values: "".join(f'<option value="{html.escape(str(v))}">{html.escape(str(t))}</option>'
                                     for v, t in values)
    return f"""<div id="{element}" class="igan-explorer">
<style>#{element} table.explorer-view td {{text-align:center;font-size:80%;padding:2px}}
#{element} label {{margin-right:1em}} #{element} img {{image-rendering:pixelated}}</style>
<label>model <select name="model">{options((m, m) for m in grid.models)}</select></label>
<label>example <input type="range" name="example" min="0" max="{grid.n_examples - 1}" value="0"> <span class="explorer-example"></span></label>
<label>ε <input type="range" name="eps" min="0" max="{len(grid.eps) - 1}" value="{_start(grid, eps)}"> <span class="explorer-eps"></span></label>
<label>tap <select name="tap"><option value="all">{ALL_TAPS}</option>{options(enumerate(grid.taps))}</select></label>
<table class="explorer-view"></table>
<script type="application/json">{data}</script>
<script>{_SCRIPT % {"id": element}}</script>
</div>"""
