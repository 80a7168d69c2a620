"""Wheels for the GPU check (benchmarks/gpu.sh): what the accelerator's image lacks, for its Python.

The device machine reaches no registry, and its image (Python 3.12, PyTorch, numpy, pandas, scipy,
matplotlib, seaborn, tqdm, filelock, tabulate, pytest, ...) has no Jupyter stack, papermill, Dask or
AutoAttack. This walks the requirements of the packages the check needs, as this machine's `.venv`
resolved them, leaves out what that image already holds and what only the book's HTML build needs
(Sphinx; the check executes the chapters and builds nothing), and downloads the rest as binary
wheels for CPython 3.12 on manylinux x86-64 into ``.whl/``. AutoAttack is pure Python and its wheel
is 44 MB of example model weights, so its package folder is copied instead, without the examples.
The device tool carries ``.whl/`` (at most 64 MB).

Usage (here, with the project's .venv): .venv/bin/python benchmarks/gpu_wheels.py [--dest .whl]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

NEEDED = ["papermill", "ipykernel", "myst-nb", "docutils", "ipywidgets", "pyautoattack", "torchattacks", "dask",
          "distributed", "nbformat", "nbclient"]
# Already in the accelerator's image (the device tool's package list of 2026-11-17), or not wanted.
ON_THE_IMAGE = {
    "torch", "torchvision", "triton", "numpy", "pandas", "scipy", "matplotlib", "seaborn", "pillow", "tqdm",
    "filelock", "tabulate", "pyyaml", "requests", "urllib3", "certifi", "idna", "charset-normalizer",
    "packaging", "psutil", "pygments", "python-dateutil", "six", "typing-extensions", "attrs", "click",
    "cloudpickle", "toolz", "msgpack", "sortedcontainers", "pyarrow", "contourpy", "cycler", "fonttools",
    "kiwisolver", "pyparsing", "setuptools", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec",
    "zipp", "pytest", "pluggy", "iniconfig", "markdown-it-py", "mdurl", "rich", "lazy-loader", "cuda-bindings",
    "cuda-pathfinder", "anyio", "h11", "httpx", "httpcore", "wrapt", "yarl", "multidict", "propcache",
    "aiohttp", "aiosignal", "frozenlist", "aiohappyeyeballs", "regex", "narwhals", "typer", "shellingham",
}
# Needed only to build the book's HTML, which the GPU check does not do.
BOOK_BUILD_ONLY = {"sphinx", "babel", "alabaster", "imagesize", "snowballstemmer", "myst-parser", "jupyter-cache",
                   "sqlalchemy", "sphinxcontrib-applehelp", "sphinxcontrib-devhelp", "sphinxcontrib-htmlhelp",
                   "sphinxcontrib-jsmath", "sphinxcontrib-qthelp", "sphinxcontrib-serializinghtml", "greenlet"}
COPIED = "pyautoattack"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: list[str]) -> dict[str, str]:
    """name -> installed version for ``names`` and everything they require (extras ignored)."""
    found, todo = {}, [_canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found or name in ON_THE_IMAGE | BOOK_BUILD_ONLY or name.startswith("nvidia-"):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        found[name] = dist.version
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            todo.append(_canonical(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".whl"))
    args = parser.parse_args()
    wanted = closure(NEEDED)
    args.dest.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", str(args.dest),
               *[arg for p in PLATFORMS for arg in ("--platform", p)], "--platform", "any"]
    import shutil

    source = Path(metadata.distribution(COPIED).locate_file(COPIED))
    shutil.copytree(source, args.dest / COPIED, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("examples", "__pycache__"))
    wanted.pop(COPIED)
    failed = []
    for name, version in sorted(wanted.items()):
        if subprocess.run([*command, f"{name}=={version}"], capture_output=True).returncode:
            failed.append(f"{name}=={version}")
    size = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file()) / 2 ** 20
    print(f"{len(wanted) - len(failed)} wheels and {COPIED}/ in {args.dest} ({size:.1f} MiB)")
    for item in failed:
        print(f"no wheel for CPython 3.12 manylinux x86-64: {item}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
