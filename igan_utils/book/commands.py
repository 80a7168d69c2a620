"""What the three commands (``igan-diagnose``, ``igan-sweep``, ``python -m igan_utils.book``) share:
a mistake the user made ends in one line, ``error: <message>``, and exit status 2, before any work;
an unexpected internal error keeps its traceback."""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path
from typing import Callable

from .store import ArtifactError

# What the package raises for bad input: wrong values and types, missing or unreadable files and
# folders (data, weights, outputs), a corrupt or unsafe checkpoint. (A user's module that does not
# import is a ValueError of the loader; an ImportError here is ours and keeps its traceback.)
USER_ERRORS = (ValueError, TypeError, OSError, ArtifactError)


def check_out_folder(out: str | Path, what: str = "output folder") -> Path:
    """``out`` as a folder a command can write into, checked before any work and leaving nothing
    behind: a ValueError when ``out`` or a parent is a file, or when the folder cannot be made or
    written. The check makes the missing folders and a probe file, then removes what it made (asking
    ``os.access`` is not enough: it says yes to root, and knows nothing of too-long names or full disks)."""
    out = Path(out)
    made, existing = [], None
    try:
        existing = next(p for p in (out, *out.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"the {what} {out} cannot be created: {existing} is a file")
        for folder in reversed([p for p in (out.absolute(), *out.absolute().parents) if not p.exists()]):
            folder.mkdir()
            made.append(folder)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        verb = "written" if existing is not None and out.absolute() == existing.absolute() else "created"
        raise ValueError(f"the {what} {out} cannot be {verb}: {error.strerror or error}") from None
    finally:
        for folder in reversed(made):
            folder.rmdir()
    return out


def command(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main(argv) -> exit status``: a :data:`USER_ERRORS` error prints
    ``error: …`` to stderr and returns 2."""
    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return run
