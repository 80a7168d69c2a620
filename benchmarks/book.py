"""Book budget benchmark (not a test): executes every chapter of a profile twice, first with an
empty artifact store (everything trained), then again with everything cached, and prints the
per-notebook and total wall times of both runs. The book build itself is timed once.

Usage: IGAN_DATA_DIR=... python benchmarks/book.py --profile smoke
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from igan_utils import book


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IGAN_STORE_DIR"] = str(Path(tmp) / "store")
        cold = book.run_chapters(args.profile)
        start = time.perf_counter()
        book.write_report(cold, args.profile)
        book.build_html()
        build = time.perf_counter() - start
        cached = book.run_chapters(args.profile)
    print(f"# {time.strftime('%Y-%m-%d')}, profile {args.profile}, {book.hardware()}")
    print("| notebook | cold s | cached s |")
    print("|---|---|---|")
    for a, b in zip(cold, cached):
        print(f"| {a['notebook']} | {a['seconds']:.0f} | {b['seconds']:.0f} |")
    total_cold, total_cached = (sum(r["seconds"] for r in run) for run in (cold, cached))
    print(f"| all notebooks | {total_cold:.0f} | {total_cached:.0f} |")
    print(f"| + book build | {build:.0f} | |")
    print(f"| **whole book** | **{total_cold + build:.0f}** | **{total_cached + build:.0f}** |")


if __name__ == "__main__":
    main()
