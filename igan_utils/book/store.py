"""Artifact store: trained models and results, keyed by the configuration that produced them.

Layout under the store root (``root``, else ``$IGAN_STORE_DIR``, else ``<project root>/artifacts``)::

    <kind>/<key>.pt | .json | .table.json   the artifact
    <kind>/<key>.meta.json                  sidecar: config, versions, seconds, sha256 of the artifact
    <kind>/<key>.partial.pt                 periodic state of an unfinished job (resumable)
    <kind>/<key>.lock                       held while the artifact is being made
    ledger.jsonl                            one line per request: kind, made or reused, seconds, work

The ledger is the workload record of ``benchmarks/book.py``: every :meth:`Store.get_or_create` appends
whether it made the artifact or reused a stored one, with the chapter named by ``$IGAN_LEDGER_TAG``.

Every file is written to a temporary name and renamed, and the sidecar is written last, so an
artifact counts as finished only when its sidecar exists and its checksum matches. A truncated,
corrupt or unfinished artifact is never used. Checkpoints load with ``weights_only=True``, so a file
carrying pickled code is refused instead of run.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pandas as pd
import torch
from filelock import FileLock

from ..method.runtime import library_versions, resolve_dir

STORE_ENV_VAR = "IGAN_STORE_DIR"
LEDGER_TAG_ENV_VAR = "IGAN_LEDGER_TAG"  # names the work in the ledger (benchmarks/book.py sets the chapter)
LEDGER = "ledger.jsonl"
FORMATS = {"torch": ".pt", "json": ".json", "table": ".table.json"}
# The one table of artifact versions: bump a kind's number when the meaning of what it stores changes,
# so that its old artifacts are rebuilt, and only those. Kinds not listed are at version 1.
# worst_case 3, masking_checks 5: PGD's restarts after an early exit had kept max-loss iterates.
# worst_case 4: one artifact per chunk of autoattack.CHUNK images, with the images each attack ran on.
# masking_checks 6: Square alone is not run where Square after the white-box attacks broke no image.
# sweep 2: a study's points store the masking checks' numbers, not their verdict.
# sweep 3: a point's checks read from the ensemble's run use all its images, not the first check_size.
# information_loss 2: the stored decoder errors are named decoder_mse / decoder_1_minus_ssim (IL is the
# running-minimum bound computed from them, never stored).
KEY_VERSIONS = {"worst_case": 4, "masking_checks": 6, "sweep": 3, "information_loss": 2}
T = TypeVar("T")


class ArtifactError(RuntimeError):
    """Base class of the store's errors."""


class CorruptArtifactError(ArtifactError):
    """A stored file is truncated, altered or unreadable."""


class UnsafeCheckpointError(ArtifactError):
    """A checkpoint holds pickled objects beyond tensors and plain containers."""


class StoreNotWritableError(ArtifactError):
    """The store's folder cannot be written or its disk is (nearly) full."""


def config_key(kind: str, config: dict) -> str:
    """Stable 20-hex-digit key of ``kind`` plus ``config`` (canonical JSON, sorted keys)."""
    text = json.dumps({"kind": kind, "config": config, "v": KEY_VERSIONS.get(kind, 1)},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def record_results(table: pd.DataFrame, path: str | Path | None) -> None:
    """Write a run's results ``table`` as CSV to ``path`` (atomically); nothing when ``path`` is None.
    Every chapter ends with it, so that a sweep (``igan_utils.sweep``) can collect the table."""
    if path is not None:
        atomic_write_bytes(path, table.to_csv(index=False).encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            raise StoreNotWritableError(f"cannot write {path}: {error.strerror} "
                                        f"(folder {path.parent})") from error
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """``torch.save`` ``obj`` (tensors in plain containers) atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file.

    Raises FileNotFoundError when there is no such file, :class:`UnsafeCheckpointError` when it
    carries pickled objects (possibly code) and :class:`CorruptArtifactError` when it is truncated or
    not a checkpoint at all.
    """
    if isinstance(path, (str, os.PathLike)) and not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # a class or function reference: the way pickles run code
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it contains pickled objects other than tensors and "
                f"plain containers, which could run code. Only load checkpoints you trust, and "
                f"save state_dicts, not whole modules.") from None
        raise CorruptArtifactError(f"{path} is not a readable checkpoint ({error})") from None
    except Exception as error:  # garbage makes the unpickler fail in any way (IndexError, KeyError...)
        raise CorruptArtifactError(f"{path} is truncated or not a checkpoint "
                                   f"({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class Checkpoint:
    """Periodic state of a long job, so that a killed run resumes instead of starting over."""

    path: Path

    def load(self) -> dict | None:
        """The last saved state, or None if there is none or it is unreadable."""
        if not self.path.exists():
            return None
        try:
            return load_checkpoint(self.path)
        except CorruptArtifactError as error:
            warnings.warn(f"ignoring unreadable partial checkpoint: {error}", stacklevel=2)
            return None

    def save(self, state: dict) -> None:
        save_checkpoint(state, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class Store:
    """Folder of artifacts (models, interpreters, attack results, tables) keyed by (kind, config); see
    the module docstring for the layout and the guarantees (atomic writes, checksums, locks).

    Args:
        root: the folder (default None: ``$IGAN_STORE_DIR``, else ``./artifacts``); created if missing.
        min_free_mb: free disk space it must have (default 100).

    Raises:
        StoreNotWritableError, before any work, when the folder cannot be written or the disk is full.

    Example:
        >>> store = Store("/tmp/artifacts")  # doctest: +SKIP
        >>> store.get_or_create("table", {"n": 1}, lambda: compute(), fmt="json")  # doctest: +SKIP
    """

    def __init__(self, root: str | Path | None = None, *, min_free_mb: int = 100):
        self.root = resolve_dir(root, STORE_ENV_VAR, "artifacts")
        _check_writable(self.root, min_free_mb)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def _paths(self, kind: str, config: dict, fmt: str) -> tuple[Path, Path, Path, Path]:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
        base = self.root / kind / config_key(kind, config)
        return (base.with_name(base.name + FORMATS[fmt]), base.with_name(base.name + ".meta.json"),
                base.with_name(base.name + ".lock"), base.with_name(base.name + ".partial.pt"))

    def exists(self, kind: str, config: dict, fmt: str = "torch") -> bool:
        """Whether a finished artifact (sidecar written) exists; does not verify it."""
        return self._paths(kind, config, fmt)[1].exists()

    def metadata(self, kind: str, config: dict, fmt: str = "torch") -> dict:
        """The sidecar of a finished artifact (config, versions, seconds, checksum)."""
        sidecar = self._paths(kind, config, fmt)[1]
        try:
            return json.loads(sidecar.read_text())
        except FileNotFoundError:
            raise KeyError(f"no {kind} artifact for this config in {self.root}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptArtifactError(f"sidecar {sidecar} is unreadable ({error})") from None

    def load(self, kind: str, config: dict, fmt: str = "torch") -> Any:
        """The finished artifact; KeyError if there is none, CorruptArtifactError naming the file
        if it fails its checksum or cannot be read."""
        artifact, _, _, _ = self._paths(kind, config, fmt)
        meta = self.metadata(kind, config, fmt)
        try:
            data = artifact.read_bytes()
        except FileNotFoundError:
            raise CorruptArtifactError(f"{artifact} is missing although its sidecar exists") from None
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise CorruptArtifactError(
                f"{artifact} does not match the checksum in its sidecar (truncated or altered)")
        return _decode(data, fmt, artifact)

    def save(self, kind: str, config: dict, obj: Any, fmt: str = "torch", *, seconds: float = 0.0) -> None:
        """Write ``obj`` and then its sidecar, each atomically."""
        artifact, sidecar, _, _ = self._paths(kind, config, fmt)
        data = _encode(obj, fmt)
        atomic_write_bytes(artifact, data)
        meta = {"kind": kind, "key": artifact.name.split(".")[0], "format": fmt, "config": config,
                "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": library_versions()}
        atomic_write_bytes(sidecar, json.dumps(meta, indent=1, default=str).encode())

    def get_or_create(self, kind: str, config: dict, create: Callable[..., T], fmt: str = "torch",
                      *, resumable: bool = False, work: Callable[[T], dict] | None = None,
                      about: dict | None = None) -> T:
        """The stored artifact for (kind, config), made by ``create`` and stored if needed.

        ``create()`` takes no argument, or a :class:`Checkpoint` when ``resumable`` is true, so that
        long jobs can save their state periodically and resume after a crash. A file lock makes a
        second process wait and then reuse the first one's result. A corrupt artifact is reported
        as a warning and rebuilt. Each call appends a line to the ledger (:meth:`note`) with the fields
        of ``about`` (e.g. the model); ``work`` turns a made artifact into the fields that describe its
        work (e.g. images attacked).
        """
        artifact, _, lock, partial = self._paths(kind, config, fmt)
        about = {"kind": kind, "key": artifact.name.split(".")[0], **(about or {})}
        found = self._try_load(kind, config, fmt)
        if found is not _MISSING:
            self.note(**about, made=False)
            return found
        with FileLock(str(lock)):
            found = self._try_load(kind, config, fmt)  # another process may have made it meanwhile
            if found is not _MISSING:
                self.note(**about, made=False)
                return found
            start = time.perf_counter()
            obj = create(Checkpoint(partial)) if resumable else create()
            seconds = time.perf_counter() - start
            self.save(kind, config, obj, fmt, seconds=seconds)
            partial.unlink(missing_ok=True)
            # Return what a later run will load, so both see identical objects.
            made = _decode(artifact.read_bytes(), fmt, artifact)
            self.note(**about, made=True, seconds=round(seconds, 3), **(work(made) if work else {}))
            return made

    def note(self, **fields: Any) -> None:
        """Append one line to the ledger (``ledger.jsonl`` in the root): ``fields`` with the time, the
        process and ``$IGAN_LEDGER_TAG``. Lines are single ``write`` calls in append mode, so processes
        that share the store do not interleave them."""
        line = json.dumps({"time": round(time.time(), 3), "tag": os.environ.get(LEDGER_TAG_ENV_VAR, ""),
                           "pid": os.getpid(), **fields}, default=str) + "\n"
        try:
            with open(self.root / LEDGER, "a") as handle:
                handle.write(line)
        except OSError as error:  # a full disk must not stop the work the ledger only records
            warnings.warn(f"cannot write the store's ledger ({error})", stacklevel=3)

    def ledger(self) -> pd.DataFrame:
        """The ledger as a table, one row per request (empty when nothing was requested yet)."""
        path = self.root / LEDGER
        if not path.exists():
            return pd.DataFrame(columns=["time", "tag", "pid", "kind", "made"])
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a process killed while writing it
                continue
        return pd.DataFrame(rows)

    def _try_load(self, kind: str, config: dict, fmt: str) -> Any:
        try:
            return self.load(kind, config, fmt)
        except KeyError:
            return _MISSING
        except CorruptArtifactError as error:
            warnings.warn(f"{error}; rebuilding it", stacklevel=3)
            for path in self._paths(kind, config, fmt)[:2]:
                path.unlink(missing_ok=True)
            return _MISSING


_MISSING = object()


def _encode(obj: Any, fmt: str) -> bytes:
    if fmt == "torch":
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()
    if fmt == "json":
        return json.dumps(obj, indent=1).encode()
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"format 'table' stores a pandas DataFrame, got {type(obj).__name__}")
    return obj.reset_index(drop=True).to_json(orient="table", index=False).encode()


def _decode(data: bytes, fmt: str, path: Path) -> Any:
    try:
        if fmt == "torch":
            return load_checkpoint(io.BytesIO(data))
        if fmt == "json":
            return json.loads(data)
        return pd.read_json(io.StringIO(data.decode()), orient="table")
    except CorruptArtifactError as error:
        raise CorruptArtifactError(f"{path}: {error}") from None
    except UnsafeCheckpointError:
        raise UnsafeCheckpointError(f"refusing to load {path}: it contains pickled objects other "
                                    f"than tensors and plain containers") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptArtifactError(f"{path} is unreadable ({error})") from None


def _check_writable(root: Path, min_free_mb: int) -> None:
    """Fail before any work if ``root`` cannot take artifacts."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise StoreNotWritableError(
            f"the artifact folder {root} is not writable ({error.strerror}). Point "
            f"{STORE_ENV_VAR} (or store_dir=...) at a writable folder.") from None
    free_mb = shutil.disk_usage(root).free / 2**20
    if free_mb < min_free_mb:
        raise StoreNotWritableError(
            f"the artifact folder {root} has only {free_mb:.0f} MiB free (need at least "
            f"{min_free_mb} MiB). Free some space or point {STORE_ENV_VAR} elsewhere.")
