"""Figures of the book. Each function takes plain tensors or tidy DataFrames and returns a Figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from ..method.masking import MAX_BELOW_PGD

sns.set_theme(context="notebook", style="whitegrid")
POOL_COLORS = {"max": "#c44e52", "avg": "#4c72b0", "strided": "#55a868", "blur": "#8172b2", "lp": "#ccb974"}


def _as_image(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] → array for imshow (H, W) or (H, W, 3)."""
    t = t.detach().float().cpu().clamp(0, 1)
    return t[0].numpy() if t.shape[0] == 1 else t.permute(1, 2, 0).numpy()


def _show(ax, image: torch.Tensor, title: str | None = None) -> None:
    ax.imshow(_as_image(image), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title is not None:
        ax.set_title(title, fontsize=9)


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, *, ncols: int = 10,
               size: float = 1.1, suptitle: str | None = None) -> plt.Figure:
    """Images (N, C, H, W) in [0, 1] on a grid, each with an optional title."""
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, images[i], titles[i] if titles is not None else None)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_counts(counts: pd.DataFrame) -> plt.Figure:
    """Bar chart of images per class; ``counts`` has columns split, class, images."""
    grid = sns.catplot(counts, kind="bar", x="class", y="images", hue="split", height=3, aspect=2.4)
    grid.set_axis_labels("class", "images")
    return grid.figure


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Per-epoch metrics, two panels a row (so that the figure fits the text column at its own size);
    ``history`` has columns model, method, pool, epoch, metric, value."""
    grid = sns.relplot(history, kind="line", x="epoch", y="value", hue="pool", style="method",
                       col="metric", col_wrap=min(2, history["metric"].nunique()), marker="o",
                       palette=POOL_COLORS, height=2.6, aspect=1.2, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    return grid.figure


def adversarial_examples(clean: torch.Tensor, adv: torch.Tensor, pred_clean: Sequence[str],
                         pred_adv: Sequence[str], *, title: str = "") -> plt.Figure:
    """Rows: clean images, adversarial twins, and the perturbation (adv − clean) as a heat map,
    with the predicted label under each image."""
    n = len(clean)
    fig, axes = plt.subplots(3, n, figsize=(1.35 * n, 4.6), squeeze=False)
    delta = (adv - clean).mean(1)  # signed, averaged over channels
    bound = float(delta.abs().max()) or 1.0
    for i in range(n):
        _show(axes[0, i], clean[i], f"pred {pred_clean[i]}")
        _show(axes[1, i], adv[i], f"pred {pred_adv[i]}")
        axes[2, i].imshow(delta[i].cpu(), cmap="RdBu_r", vmin=-bound, vmax=bound)
        axes[2, i].set_xticks([])
        axes[2, i].set_yticks([])
        axes[2, i].grid(False)
    for row, name in enumerate(("clean", "adversarial", "perturbation")):
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def masked_label(table: pd.DataFrame, column: str = "method") -> pd.Series:
    """``column`` with " (masked)" appended for the rows of models flagged by the masking checks."""
    masked = table["masked"].fillna(False).astype(bool) if "masked" in table else False
    return table[column].astype(str).where(~masked, table[column].astype(str) + " (masked)")


def robustness_curves(curves: pd.DataFrame, *, attack: str = "") -> plt.Figure:
    """Robust accuracy against ε; columns dataset, eps, robust_acc, pool, method and optionally
    masked (mean and 95% interval over seeds when there are several). ``attack`` names the attack."""
    curves = curves.assign(method=masked_label(curves))
    grid = sns.relplot(curves, kind="line", x="eps", y="robust_acc", hue="pool", style="method",
                       col="dataset", marker="o", palette=POOL_COLORS, errorbar=("ci", 95),
                       height=3.2, aspect=1.3, facet_kws={"sharex": False})
    grid.set_axis_labels("ε (L∞)", "robust accuracy")
    grid.set(ylim=(-0.02, 1.02))
    if attack:
        grid.figure.suptitle(f"attack: {attack}", fontsize=10, y=1.03)
    return grid.figure


def robust_points(table: pd.DataFrame, *, value: str = "robust_acc", attack: str = "") -> plt.Figure:
    """One point per model (seed) of ``value`` by training method and pooling, one panel per dataset
    (column ``data_label``); models flagged ``masked`` are drawn hollow. Bars: mean over unmasked seeds."""
    datasets = list(dict.fromkeys(table["data_label"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        part = table[table["data_label"] == ds]
        methods = list(dict.fromkeys(part["method"]))
        pools = list(dict.fromkeys(part["pool"]))
        labelled = set()  # one legend entry per kind of marker, from whichever method shows it first

        def label(name: str, shown: bool) -> str | None:
            if not shown or name in labelled:
                return None
            labelled.add(name)
            return name

        for i, method in enumerate(methods):
            for j, pool in enumerate(pools):
                rows = part[(part["method"] == method) & (part["pool"] == pool)]
                masked = rows["masked"].fillna(False).astype(bool) if "masked" in rows else pd.Series(False, index=rows.index)
                x = i + (j - (len(pools) - 1) / 2) * 0.3
                jitter = np.linspace(-0.05, 0.05, len(rows)) if len(rows) > 1 else np.zeros(1)
                color = POOL_COLORS.get(pool)
                ax.scatter(x + jitter[~masked.values], rows[value][~masked.values], color=color, s=22,
                           label=label(pool, (~masked).any()), zorder=3)
                ax.scatter(x + jitter[masked.values], rows[value][masked.values], facecolors="none",
                           edgecolors=color, s=22, label=label(f"{pool} (masked)", masked.any()), zorder=3)
                if (~masked).any():
                    ax.hlines(rows[value][~masked.values].mean(), x - 0.12, x + 0.12, color=color, lw=2)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylabel(value.replace("_", " "))
        ax.set_title(ds, fontsize=10)
        ax.legend(fontsize=8)
    if attack:
        fig.suptitle(f"attack: {attack}", fontsize=10)
    fig.tight_layout()
    return fig


def gap_by_epochs(recipes: pd.DataFrame, *, attack: str = "") -> plt.Figure:
    """The recipe study's question as a picture: PGD alone − worst case (``gap``, in points) against
    adversarial-training epochs (``adv_epochs``, log₂ axis), one panel per training method
    (``adv_method``) and dataset (``data_label``, when there), one colour per ``pool``; each model a
    point, hollow when ``masked`` (its gap is then a lower bound: its worst case is an upper bound), a
    line through each pooling's mean per length, and a dashed line at the masking check's limit
    (``masking.MAX_BELOW_PGD``)."""
    datasets = list(dict.fromkeys(recipes["data_label"])) if "data_label" in recipes else [None]
    methods = list(dict.fromkeys(recipes["adv_method"]))
    lengths = sorted(set(recipes["adv_epochs"].astype(int)))
    masked = recipes["masked"].fillna(False).astype(bool) if "masked" in recipes else pd.Series(False, index=recipes.index)
    fig, axes = plt.subplots(len(datasets), len(methods), figsize=(4.4 * len(methods), 3.3 * len(datasets)),
                             squeeze=False, sharey=True)
    for row, ds in enumerate(datasets):
        for ax, method in zip(axes[row], methods):
            part = recipes[(recipes["adv_method"] == method) & ((recipes["data_label"] == ds) if ds else True)]
            pools = list(dict.fromkeys(part["pool"]))
            for j, pool in enumerate(pools):
                rows = part[part["pool"] == pool]
                hollow = masked.loc[rows.index].values
                # pools side by side at each length, so that equal gaps of two poolings stay visible
                x = rows["adv_epochs"].astype(float).values * 2 ** ((j - (len(pools) - 1) / 2) * 0.08)
                gap = 100 * rows["gap"].values
                color = POOL_COLORS.get(pool)
                ax.scatter(x[~hollow], gap[~hollow], color=color, s=24, zorder=3,
                           label=pool if (~hollow).any() else None)
                ax.scatter(x[hollow], gap[hollow], facecolors="none", edgecolors=color, s=24, zorder=3,
                           label=f"{pool} (masked)" if hollow.any() else None)
                means = rows.assign(gap=100 * rows["gap"]).groupby("adv_epochs")["gap"].mean()
                ax.plot(means.index.astype(float), means.values, color=color, lw=1.5, zorder=2)
            ax.axhline(100 * MAX_BELOW_PGD, color="0.4", ls="--", lw=1, zorder=1)
            ax.set_xscale("log", base=2)
            ax.set_xlim(min(lengths) / 1.5, max(lengths) * 1.5)
            ax.set_xticks(lengths, [str(e) for e in lengths])
            ax.minorticks_off()
            ax.set_ylim(bottom=0)  # the worst case includes the PGD screen, so the gap is never negative
            ax.set_xlabel("adversarial-training epochs")
            ax.set_title(f"{ds}: {method.upper()}" if ds else method.upper(), fontsize=10)
            if pools:
                ax.legend(fontsize=8)
        axes[row, 0].set_ylabel("PGD alone − worst case (points)")
    if attack:
        fig.suptitle(f"worst case: {attack}", fontsize=10)
    fig.tight_layout()
    return fig


def information_vs_robustness(table: pd.DataFrame, measures: Sequence[str], *, value: str = "robust_acc",
                              labels: dict | None = None, attack: str = "") -> plt.Figure:
    """One point per model: each information-loss column of ``measures`` (one panel each) against
    ``value``, coloured by ``pool``; models flagged ``masked`` are drawn hollow."""
    labels = labels or {}
    masked = table["masked"].fillna(False).astype(bool) if "masked" in table else pd.Series(False, index=table.index)
    fig, axes = plt.subplots(1, len(measures), figsize=(4.6 * len(measures), 3.4), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        for pool, rows in table.groupby("pool", sort=False):
            hollow = masked[rows.index].values
            color = POOL_COLORS.get(pool)
            ax.scatter(rows[measure][~hollow], rows[value][~hollow], color=color, s=26, label=pool, zorder=3)
            if hollow.any():
                ax.scatter(rows[measure][hollow], rows[value][hollow], facecolors="none", edgecolors=color, s=26,
                           label=f"{pool} (masked)", zorder=3)
        ax.set_xlabel(labels.get(measure, measure))
        ax.set_ylabel(value.replace("_", " "))
    axes[0, -1].legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    if attack:
        fig.suptitle(f"attack: {attack}", fontsize=10)
    fig.tight_layout()
    return fig


def image_table(images: Sequence[Sequence[torch.Tensor]], *, row_labels: Sequence[str],
                col_labels: Sequence[str], captions: Sequence[Sequence[str]] | None = None,
                size: float = 1.05, title: str = "") -> plt.Figure:
    """A table of images (rows × columns, each (C, H, W) in [0, 1]) with row and column labels and
    an optional caption under each image (e.g. the label a classifier gives it). Its labels are large
    for their figure: a table of ten columns is shown at about 60 % of its size in the book's column."""
    nrows, ncols = len(images), len(images[0])
    label = 12 if ncols > 6 else 9
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1.2, size * nrows * 1.25), squeeze=False)
    for r in range(nrows):
        for c in range(ncols):
            ax = axes[r, c]
            _show(ax, images[r][c])
            if captions is not None:
                ax.set_xlabel(captions[r][c], fontsize=label, labelpad=1)
            if r == 0:
                ax.set_title(col_labels[c], fontsize=label)
        axes[r, 0].set_ylabel(row_labels[r], fontsize=label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_tap(frame: pd.DataFrame, metrics: Sequence[str], *, hue: str = "pool", titles: dict | None = None,
            kind: str = "bar") -> plt.Figure:
    """One panel per metric against the tap (in depth order); ``frame`` has columns tap, ``hue`` and
    the metrics. ``kind`` is ``bar`` or ``line`` (points with 95% intervals where rows repeat)."""
    order = list(dict.fromkeys(frame["tap"]))
    long = frame.melt(id_vars=["tap", hue], value_vars=list(metrics), var_name="metric")
    palette = POOL_COLORS if hue == "pool" else None
    if kind == "bar":
        grid = sns.catplot(long, kind="bar", x="tap", y="value", hue=hue, col="metric", order=order,
                           palette=palette, height=2.8, aspect=1.5, sharey=False, errorbar=("ci", 95))
    else:
        grid = sns.catplot(long, kind="point", x="tap", y="value", hue=hue, col="metric", order=order,
                           palette=palette, height=2.8, aspect=1.5, sharey=False, errorbar=("ci", 95))
    for ax, metric in zip(grid.axes.flat, metrics):
        ax.set_title((titles or {}).get(metric, metric), fontsize=10)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
    return grid.figure


def _legend_with_unfaithful(ax, table: pd.DataFrame, marker, title: str | None = None) -> None:
    """The axis's legend, plus ``marker`` for "unfaithful on x′" when the table has such taps."""
    handles, labels = ax.get_legend_handles_labels()
    if "faithful" in table and table["faithful"].eq(False).any():
        handles.append(marker)
        labels.append("unfaithful on x′ (not read)")
    ax.legend(handles, labels, title=title, fontsize=8)


def judged_error(table: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """R per tap (the judge's error on x′ and on its interpretations), one line per model (columns
    ``pool`` and ``method``), one panel per judge; taps whose interpretations of x′ are unfaithful
    (``faithful`` False) are drawn hollow: a jump of R there is the generator failing, not the layer."""
    judges = list(dict.fromkeys(table["judge"]))
    fig, axes = plt.subplots(1, len(judges), figsize=(5.5 * len(judges), 3.4), squeeze=False, sharey=True)
    for ax, judge in zip(axes[0], judges):
        part = table[table["judge"] == judge]
        order = list(dict.fromkeys(part["tap"]))
        for (pool, method), rows in part.groupby(["pool", "method"], sort=False):
            rows = rows.set_index("tap").reindex(order)
            color = POOL_COLORS.get(pool)
            style = "-" if method == "natural" else "--"
            ax.plot(range(len(order)), rows["R"], style, color=color, label=f"{pool}/{method}")
            hollow = rows["faithful"].eq(False).values if "faithful" in rows else np.zeros(len(order), bool)
            ax.scatter(np.arange(len(order))[~hollow], rows["R"].values[~hollow], color=color, s=18, zorder=3)
            ax.scatter(np.arange(len(order))[hollow], rows["R"].values[hollow], facecolors="white",
                       edgecolors=color, s=36, zorder=3)
        ax.set_xticks(range(len(order)), order, rotation=45)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"judge: {judge}", fontsize=10)
    axes[0, 0].set_ylabel("R (judged error)")
    _legend_with_unfaithful(axes[0, -1], table, plt.Line2D([], [], ls="", marker="o", markerfacecolor="white",
                                                           markeredgecolor="grey"))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def randomisation_profiles(table: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """V per tap (with 95 % intervals) at each level of a cascading randomisation
    (``randomisation.randomisation_check``): level 0 (trained) in black, each re-initialised level in
    its own colour, labelled by the lowest layer re-initialised; levels that re-initialise no
    diagnosed tap's layer dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    taps = list(dict.fromkeys(table["tap"]))
    for level, part in table.groupby("level", sort=True):
        part = part.set_index("tap").reindex(taps)
        trained = level == 0
        err = np.vstack([part["V"] - part["V_lo"], part["V_hi"] - part["V"]])
        ax.errorbar(np.arange(len(taps)) + 0.04 * level, part["V"], yerr=np.nan_to_num(err), capsize=2,
                    color="black" if trained else None, linestyle="-" if trained or part["taps_randomised"].max() else "--",
                    marker="o", label="trained" if trained else f"from {part['randomised'].iloc[0]} up")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(taps)), taps)
    ax.set_xlabel("tap")
    ax.set_ylabel("V")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def vulnerability_bars(table: pd.DataFrame, *, value: str = "V", hue: str = "pool", title: str = "") -> plt.Figure:
    """Bars of ``value`` (V or first_flip) per tap with their 95% intervals (``value``_lo/_hi), one
    panel per judge; ``table`` is the tidy diagnosis table (columns judge, tap, ``hue``, ...). Bars of
    taps whose interpretations of x′ are unfaithful (column ``faithful`` False) are hatched and pale.
    An empty table (no image was broken) gives one panel that says so."""
    if table.empty:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        ax.text(0.5, 0.5, f"{title}\nno adversarial examples, so there is no {value} to show".strip(),
                ha="center", va="center")
        ax.set_axis_off()
        return fig
    judges = list(dict.fromkeys(table["judge"]))
    # A judge whose values are all zero has nothing to draw (the self-judge's first flips: x′ fools it
    # at the input already, so no label can first leave y at a tap); the title says so instead.
    empty = [j for j in judges if len(judges) > 1 and table.loc[table["judge"] == j, value].fillna(0).eq(0).all()]
    judges = [j for j in judges if j not in empty]
    groups = list(dict.fromkeys(table[hue]))
    fig, axes = plt.subplots(1, len(judges), figsize=(5.5 * len(judges), 3.4), squeeze=False, sharey=True)
    width = 0.8 / len(groups)
    for ax, judge in zip(axes[0], judges):
        part = table[table["judge"] == judge]
        order = list(dict.fromkeys(part["tap"]))
        for i, group in enumerate(groups):
            rows = part[part[hue] == group].set_index("tap").reindex(order)
            pos = np.arange(len(order)) + (i - (len(groups) - 1) / 2) * width
            err = np.vstack([rows[value] - rows[f"{value}_lo"], rows[f"{value}_hi"] - rows[value]])
            bars = ax.bar(pos, rows[value], width, yerr=np.nan_to_num(err), capsize=2, label=str(group),
                          color=POOL_COLORS.get(group) if hue == "pool" else None)
            unfaithful = rows["faithful"].eq(False) if "faithful" in rows else pd.Series(False, index=rows.index)
            for bar, flagged in zip(bars, unfaithful):
                if flagged:
                    bar.set_hatch("///")
                    bar.set_alpha(0.4)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(np.arange(len(order)), order, rotation=45)
        # the self-judge is the attacked model: x′ fools it by construction, so R at the input is 1 and
        # the first tap's V is that tap's R minus 1, a drop that says nothing about the tap
        ax.set_title(f"judge: {judge}" + ("\n(x′ fools it by construction: R at input = 1,\nso the first tap's V = R − 1)"
                                         if judge == "self" else ""), fontsize=10)
    axes[0, 0].set_ylabel({"V": "V (vulnerability)", "first_flip": "first flip"}.get(value, value))
    _legend_with_unfaithful(axes[0, -1], table, plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="grey",
                                                             hatch="///"), title=hue)
    if empty:
        title = f"{title}\n(judge {', '.join(empty)}: {value} is 0 at every tap, not drawn)".strip()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
