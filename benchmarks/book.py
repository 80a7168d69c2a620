"""Book budget benchmark (not a test): executes every chapter of a profile from an empty artifact
store, builds the book, and prints the per-chapter wall times and the **workload ledger** read from
the store (``Store.ledger``): models trained anew or reused from an earlier chapter, worst-case
chunks attacked anew or reused, images × nominal passes per attack, and each chapter's seconds ÷ its
compute floor (forward+gradient equivalents × the pass time measured in this run). With ``--cached``
the chapters run a second time on the filled store (everything reused).

The floor counts attacks and classifier training only (interpreters, decoders and kernel starts are
not in it), so a chapter whose time goes elsewhere shows a ratio far above 1. Its passes are nominal:
Square's queries × images, though Square stops at an image's first success, so a floor with much Square
in it overstates the work (a ratio below 1). The column "seconds made, by kind" is exact: the time spent
inside each kind of artifact the chapter made.

Usage: IGAN_DATA_DIR=... python benchmarks/book.py --profile quick [--store DIR] [--cached]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from igan_utils.book import runner
from igan_utils.book.store import STORE_ENV_VAR, Store

BATCH = runner.PASS_BATCH  # images per pass of the pass-time measurement
mnist_passes = runner.mnist_passes  # benchmarks/sweep.py times the same pass


def pass_seconds(repeats: int = 30) -> tuple[float, float]:
    """Median seconds of one forward+input-gradient pass and of one forward pass (``runner.pass_seconds``)."""
    return runner.pass_seconds(repeats)


def ledger_table(ledger: pd.DataFrame, seconds: dict[str, float], pass_time: float, forward_time: float) -> pd.DataFrame:
    """One row per chapter: models trained (new / reused), worst-case chunks (new / reused), images ×
    passes per attack, the seconds spent making each kind of artifact, forward+gradient equivalents,
    seconds, and seconds ÷ floor."""
    rows = []
    for tag, wall in seconds.items():
        part = ledger[ledger["tag"] == tag]
        made = part[part["made"].astype(bool)]
        row = {"chapter": tag, "seconds": round(wall)}
        for kind, name in (("classifier", "models"), ("worst_case", "chunks")):
            keys = part.loc[part["kind"] == kind, "key"]
            new = set(made.loc[made["kind"] == kind, "key"])
            row[f"{name} new"] = len(new)
            row[f"{name} reused"] = len(set(keys) - new)
        equivalents = 0.0
        work: dict[str, float] = {}
        for record in made.to_dict("records"):
            if isinstance(record.get("attacked"), dict):
                for attack, images in record["attacked"].items():
                    passes = images * record["passes"][attack]
                    work[attack] = work.get(attack, 0) + passes
                    equivalents += passes * (forward_time / pass_time if attack == "square" else 1.0)
            if record.get("kind") == "classifier" and record.get("passes_per_image"):
                passes = record["epochs"] * record["images"] * record["passes_per_image"]
                work["training"] = work.get("training", 0) + passes
                equivalents += passes
        row["image-passes"] = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in work.items()) or "-"
        # where the seconds went: inside each kind of artifact made, summed over the processes (a sweep's
        # workers overlap, so the sum can exceed the wall time; the rest is kernels, imports, plots)
        made_seconds = made.groupby("kind")["seconds"].sum().sort_values(ascending=False)
        row["seconds made, by kind"] = ", ".join(f"{k} {v:.0f}" for k, v in made_seconds.items()) or "-"
        row["fwd+grad equivalents (M images)"] = round(equivalents / 1e6, 2)
        floor = equivalents / BATCH * pass_time
        row["floor s"] = round(floor)
        row["seconds / floor"] = round(wall / floor, 2) if floor else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def chunks_per_model(ledger: pd.DataFrame, tag: str) -> pd.Series:
    """Distinct worst-case chunks each model of chapter ``tag`` was attacked on (new or reused; with
    request sizes that are multiples of ``evaluation.CHUNK``, as in ``quick``, × CHUNK = its images)."""
    part = ledger[(ledger["tag"] == tag) & (ledger["kind"] == "worst_case")]
    return part.groupby("model")["key"].nunique().rename("chunks")


def main() -> None:
    from igan_utils.method.autoattack import CHUNK

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--store", type=Path, help="an empty folder for the store (default: a temporary one)")
    parser.add_argument("--cached", action="store_true", help="run the chapters a second time, all reused")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp) / "store"
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"{root} is not empty: the ledger needs an empty store")
        os.environ[STORE_ENV_VAR] = str(root)
        before = pass_seconds()
        print(f"pass time before: {1e3 * before[0]:.1f} ms (forward only {1e3 * before[1]:.1f} ms)", flush=True)
        start = time.perf_counter()
        cold = []
        for notebook in runner.chapters():  # one at a time: a run cut short still prints its chapters' rows
            cold += runner.run_chapters(args.profile, only=[notebook.stem])
            row = ledger_table(Store(root).ledger(), {cold[-1]["notebook"]: cold[-1]["seconds"]}, *before)
            print(row.to_markdown(index=False), flush=True)
        chapters = time.perf_counter() - start
        start = time.perf_counter()
        runner.write_run_report(cold, args.profile)
        runner.build_html()
        build = time.perf_counter() - start
        after = pass_seconds()
        cached = runner.run_chapters(args.profile) if args.cached else []
        ledger = Store(root).ledger()
    pass_time, forward_time = statistics.median([before[0], after[0]]), statistics.median([before[1], after[1]])
    print(f"# {time.strftime('%Y-%m-%d')}, profile {args.profile}, {runner.hardware()}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"pass time ({BATCH} images, forward+input gradient): {1e3 * before[0]:.1f} ms before, "
          f"{1e3 * after[0]:.1f} ms after; forward only {1e3 * before[1]:.1f} / {1e3 * after[1]:.1f} ms")
    table = ledger_table(ledger, {r["notebook"]: r["seconds"] for r in cold}, pass_time, forward_time)
    print(table.to_markdown(index=False))
    for tag in ("05_sweeps", "06_pooling_family"):
        if tag in set(ledger["tag"]):
            print(f"\nworst-case chunks of {CHUNK} images per model in {tag}:", chunks_per_model(ledger, tag).to_dict())
    print(f"\nall chapters {chapters:.0f} s, book build {build:.0f} s, **whole book {chapters + build:.0f} s** "
          f"({(chapters + build) / 60:.1f} min)")
    if cached:
        print("cached rerun:", ", ".join(f"{r['notebook']} {r['seconds']:.0f} s" for r in cached),
              f"= {sum(r['seconds'] for r in cached):.0f} s")


if __name__ == "__main__":
    main()
