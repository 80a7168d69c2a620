"""MNIST, Fashion-MNIST and CIFAR-10 through ``torchvision.datasets``, held in memory as uint8 tensors.

Images come out as float tensors in [0, 1] with shape (N, C, H, W); labels as int64 (N,).
The data directory is ``data_dir``, else ``$IGAN_DATA_DIR``, else ``<project root>/data``.
Fashion-MNIST needs no network: when its torchvision layout is missing, it is built from Debian's
package ``dataset-fashion-mnist`` (:func:`prepare_fashion_mnist`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision

from .cache import fingerprint
from .runtime import resolve_dir
from .validation import check_label_tensor, check_layout, check_pixels

DATA_ENV_VAR = "IGAN_DATA_DIR"
DATASETS = ("mnist", "fashion", "cifar10")
_TORCHVISION = {"mnist": torchvision.datasets.MNIST, "fashion": torchvision.datasets.FashionMNIST,
                "cifar10": torchvision.datasets.CIFAR10}
_LAYOUT = {"mnist": "MNIST/raw/train-images-idx3-ubyte (torchvision's MNIST layout)",
           "fashion": "FashionMNIST/raw/train-images-idx3-ubyte (torchvision's FashionMNIST layout)",
           "cifar10": "cifar-10-batches-py/data_batch_1 (the official CIFAR-10 python batches)"}
_IDX_FOLDER = {"mnist": "MNIST", "fashion": "FashionMNIST"}  # datasets stored as idx files, and their folder
# Debian's package dataset-fashion-mnist: the original files, gzipped again by Debian (so their gzip md5s
# differ from torchvision's list); these are the md5s of the uncompressed files, the same bytes as the originals.
FASHION_SOURCE = Path("/usr/share/datasets/fashion-mnist")
FASHION_MD5 = {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
               "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
               "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
               "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"}
_FASHION_FIX = "apt-get install dataset-fashion-mnist (puts the original files in /usr/share/datasets/fashion-mnist)"
_DOWNLOAD_TIMEOUT_S = 20


class DataNotFoundError(FileNotFoundError):
    """A dataset is missing from the data directory and could not be downloaded."""


class DataCorruptError(ValueError):
    """A dataset's files are there but truncated or not what they should be."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (uint8, N×C×H×W) with labels (int64, N) of one dataset split."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def tensors(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as floats in [0, 1] and their labels, on ``device``."""
        return self.images.to(device).float().div_(255), self.labels.to(device)

    def take(self, index: torch.Tensor | slice) -> "ImageSet":
        return ImageSet(self.name, self.images[index], self.labels[index], self.classes)

    def subset(self, size: int | None, seed: int = 0) -> "ImageSet":
        """``size`` images drawn without replacement by ``seed``; all when ``size`` is None.

        The draw is a prefix of one fixed permutation, so a smaller subset is contained in a larger
        one with the same seed.
        """
        if size is None or size >= len(self):
            return self
        if size < 1:
            raise ValueError(f"size must be >= 1 or None, got {size}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(order[:size])

    def split(self, first: int, seed: int = 0) -> tuple["ImageSet", "ImageSet"]:
        """Two disjoint parts: ``first`` images drawn by ``seed``, and the rest."""
        if not 0 <= first <= len(self):
            raise ValueError(f"cannot split {first} images off a set of {len(self)}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(order[:first]), self.take(order[first:])

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                device: torch.device | str | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images in [0,1], labels) batches; a shuffle is fixed by ``seed``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = self.shuffled(seed) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            yield self.images[idx].to(device).float().div_(255), self.labels[idx].to(device)

    def shuffled(self, seed: int) -> torch.Tensor:
        """The order of :meth:`batches` with ``shuffle=True``: a permutation of the indices fixed by ``seed``."""
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))

    def fingerprint(self) -> str:
        """Content hash of images and labels: goes into artifact keys, so data changes retrain."""
        return fingerprint(self.images, self.labels)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()


@dataclass(frozen=True, eq=False)
class Splits:
    """Training, validation (held out of training, for monitoring) and test images.

    ``label`` names the data honestly for tables and titles: "MNIST-10k" for the re-split
    official test set, "MNIST" only for the full 60,000/10,000 split.
    """

    train: ImageSet
    val: ImageSet
    test: ImageSet
    label: str


_FULL_SIZES = {("mnist", 60000, 10000): "MNIST", ("mnist", 8000, 2000): "MNIST-10k",
               ("fashion", 60000, 10000): "Fashion-MNIST", ("cifar10", 50000, 10000): "CIFAR-10"}


def as_image_set(data, *, name: str = "data", classes: Sequence[str] | None = None) -> ImageSet:
    """A user's data as an :class:`ImageSet`: an ImageSet (returned as it is), a torch ``Dataset``
    or ``DataLoader`` yielding (image, label), or an ``(images, labels)`` pair of tensors. Images are
    floats in [0, 1] of shape (C, H, W) per sample (or uint8 0–255); they are held as 8-bit, as
    every image file is. ``classes`` name the labels (default: their numbers).

    Raises TypeError for anything else and ValueError for pixels outside [0, 1], non-finite pixels,
    non-integer or negative labels, or mismatched lengths."""
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        images, labels = data
    elif isinstance(data, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        images, labels = _collect(data)
    else:
        raise TypeError(f"data must be a torch Dataset, a DataLoader or an (images, labels) pair of tensors, "
                        f"got {type(data).__name__}")
    labels = torch.as_tensor(labels)
    check_layout(images)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"{len(images)} images but {len(labels)} labels (need the same number, at least one)")
    check_label_tensor(labels, len(images))
    if images.dtype != torch.uint8:
        images = images.float()
        check_pixels(images)
        images = images.mul(255).round().to(torch.uint8)
    n_classes = int(labels.max()) + 1
    classes = tuple(classes) if classes is not None else tuple(str(c) for c in range(n_classes))
    if len(classes) < n_classes:
        raise ValueError(f"{len(classes)} class names for labels up to {n_classes - 1}")
    return ImageSet(name, images.contiguous(), labels.long(), classes)


def _collect(data) -> tuple[torch.Tensor, torch.Tensor]:
    items = data if isinstance(data, torch.utils.data.DataLoader) else (data[i] for i in range(len(data)))
    images, labels = [], []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], torch.Tensor)):
            raise TypeError("each item of the dataset must be an (image tensor, label) pair; add "
                            "transforms.ToTensor() if it yields PIL images")
        image, label = item[0], torch.as_tensor(item[1])
        batched = isinstance(data, torch.utils.data.DataLoader)
        images.append(image if batched else image[None])
        labels.append(label.reshape(-1))
    return torch.cat(images), torch.cat(labels)


def data_label(name: str, n_train: int, n_test: int) -> str:
    """Display name of a dataset from the sizes of its full train and test splits."""
    return _FULL_SIZES.get((name, n_train, n_test), f"{name.upper()} ({n_train}+{n_test} images)")


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory: ``explicit``, else ``$IGAN_DATA_DIR``, else ``<project root>/data``."""
    return resolve_dir(explicit, DATA_ENV_VAR, "data")


def load(name: str, split: str = "train", *, data_dir: str | Path | None = None,
         download: bool = True) -> ImageSet:
    """One split (``"train"`` or ``"test"``) of ``name`` (``"mnist"``, ``"fashion"`` or ``"cifar10"``).

    Reads the torchvision layout under the data directory; downloads into it when the files are
    missing and ``download`` is true. Raises :class:`DataNotFoundError` naming the folder searched
    and how to fix it when neither works.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _load(name, split == "train", resolve_data_dir(data_dir), download)


@functools.lru_cache(maxsize=8)
def _load(name: str, train: bool, root: Path, download: bool) -> ImageSet:
    dataset = _open(name, train, root, download)
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    if len(images) != len(labels):  # each file is whole, but they are not a pair
        raise DataCorruptError(f"{name.upper()} ({'train' if train else 'test'}) in {root} has {len(images):,} images "
                               f"but {len(labels):,} labels: its image and label files are not from the same set. "
                               f"Replace them with the official files.")
    classes = tuple(str(c).split(" - ")[0] for c in dataset.classes)  # MNIST's "7 - seven" → "7"
    return ImageSet(name, images.contiguous(), labels, classes)


def _idx_problem(path: Path) -> str | None:
    """Why an MNIST idx file is unusable (truncated, or not idx at all), or None if it is whole."""
    data = path.read_bytes()
    if len(data) < 8 or data[:2] != b"\x00\x00" or data[2] != 0x08 or not 1 <= data[3] <= 3:
        return f"{path} is not an idx file (its first bytes are {data[:4].hex() or 'missing'})"
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    expected = 4 + 4 * len(dims) + int(np.prod(dims))
    if len(data) != expected:
        return (f"{path} is {'truncated' if len(data) < expected else 'longer than its header says'}: "
                f"{len(data):,} bytes, expected {expected:,} for {' × '.join(map(str, dims))} values")
    return None


def _check_files(name: str, train: bool, root: Path, cls) -> None:
    """Raise DataCorruptError (naming the file) when the dataset's files are there but unusable."""
    if name in _IDX_FOLDER:
        raw = root / _IDX_FOLDER[name] / "raw"
        stem = "train" if train else "t10k"
        for path in (raw / f"{stem}-images-idx3-ubyte", raw / f"{stem}-labels-idx1-ubyte"):
            problem = path.exists() and _idx_problem(path)
            if problem:
                raise DataCorruptError(f"{problem}. Replace it with the official file (or delete it to "
                                       f"download again); nothing was trained on it.")
    else:
        from torchvision.datasets import (
            cifar,  # the check torchvision's loader itself makes
        )

        folder = root / cls.base_folder
        for file, md5 in (cls.train_list if train else cls.test_list) + [[cls.meta["filename"], cls.meta["md5"]]]:
            path = folder / file
            if path.exists() and not cifar.check_integrity(str(path), md5):
                raise DataCorruptError(f"{path} does not match the official CIFAR-10 file (md5 {md5}): it is "
                                       f"corrupt or not CIFAR-10. Replace {folder} with the official "
                                       f"cifar-10-batches-py folder (or delete it to download again).")


def _open(name: str, train: bool, root: Path, download: bool):
    cls = _TORCHVISION[name]
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"the data directory {root} is a file, not a folder: set {DATA_ENV_VAR} "
                                 f"(or data_dir=...) to the folder that holds {_LAYOUT[name]}")
    _check_files(name, train, root, cls)
    if name == "fashion" and FASHION_SOURCE.is_dir() and not _fashion_in_place(root):
        prepare_fashion_mnist(root)  # offline, from Debian's copy
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError as missing:
        reason = f"the files are missing ({missing})"
    except Exception as unreadable:  # present, but not what torchvision can read
        raise DataCorruptError(f"{name.upper()} in {root} could not be read "
                               f"({type(unreadable).__name__}: {unreadable}); its files are corrupt or "
                               f"not {name.upper()}. Replace them with the official files.") from None
    if download:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        try:
            return cls(str(root), train=train, download=True)
        except Exception as failure:  # network errors come in many types; all mean "not here"
            detail = " ".join(str(failure).split())  # torchvision's message spans many lines
            reason = f"downloading failed ({type(failure).__name__}: {detail[:300]})"
        finally:
            socket.setdefaulttimeout(previous)
    offline = f"{_FASHION_FIX}, or " if name == "fashion" else ""
    raise DataNotFoundError(
        f"{name.upper()} was not found in the data directory {root} "
        f"(looked for {root / _LAYOUT[name]}), and {reason if download else 'downloading is off'}.\n"
        f"Fix: {offline}set {DATA_ENV_VAR}=/path/to/data (or pass data_dir=...) to a folder that holds it, "
        f"or run once with network access so torchvision can download it into {root}."
    ) from None


def _fashion_in_place(root: Path) -> bool:
    return all((root / "FashionMNIST" / "raw" / name).exists() for name in FASHION_MD5)


def prepare_fashion_mnist(data_dir: str | Path | None = None, *, source: str | Path = FASHION_SOURCE) -> Path:
    """Lay Fashion-MNIST out in torchvision's ``FashionMNIST/raw`` under the data directory, from the
    gzipped original files in ``source`` (default: where Debian's ``dataset-fashion-mnist`` puts them),
    without network. Each file is decompressed, checked against the original's md5
    (:data:`FASHION_MD5`) and renamed into place, so an interrupted copy leaves no half file; files
    already in place are kept.

    Returns the ``raw`` folder. Raises :class:`DataNotFoundError` (naming the folder and the package to
    install) when ``source`` lacks a file, :class:`DataCorruptError` when a file is not the original,
    and OSError naming ``$IGAN_DATA_DIR`` when the data directory cannot be written.

    Example:
        >>> prepare_fashion_mnist("data")  # doctest: +SKIP
        PosixPath('data/FashionMNIST/raw')
    """
    source, raw = Path(source), resolve_data_dir(data_dir) / "FashionMNIST" / "raw"
    for name, md5 in FASHION_MD5.items():
        target = raw / name
        if target.exists():
            continue
        packed = source / f"{name}.gz"
        if not packed.exists():
            raise DataNotFoundError(f"Fashion-MNIST was not found: {raw} has no {name}, and {packed} does not "
                                    f"exist.\nFix: {_FASHION_FIX}, or set {DATA_ENV_VAR} to a folder that "
                                    f"holds {_LAYOUT['fashion']}.")
        try:
            payload = gzip.decompress(packed.read_bytes())
        except (OSError, EOFError) as broken:
            raise DataCorruptError(f"{packed} is not a whole gzip file ({broken}). Reinstall it: "
                                   f"{_FASHION_FIX}") from None
        if hashlib.md5(payload).hexdigest() != md5:
            raise DataCorruptError(f"{packed} does not hold the original {name} (md5 of its content "
                                   f"{hashlib.md5(payload).hexdigest()}, expected {md5}). Reinstall it: "
                                   f"{_FASHION_FIX}")
        try:
            raw.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.{os.getpid()}.tmp")
            partial.write_bytes(payload)
            partial.replace(target)
        except OSError as denied:
            raise OSError(f"cannot write Fashion-MNIST into {raw} ({denied.strerror}): set {DATA_ENV_VAR} "
                                  f"(or data_dir=...) to a writable folder; it is laid out there from {source}.") from None
    return raw


def load_splits(name: str, *, data_dir: str | Path | None = None, train_size: int | None = None,
                val_size: int = 0, test_size: int | None = None, split_seed: int = 0,
                download: bool = True) -> Splits:
    """Deterministic train/val/test splits of MNIST, Fashion-MNIST or CIFAR-10 from torchvision's files.

    ``val_size`` images are held out of the training split, then ``train_size`` and ``test_size``
    images are drawn; the same arguments give the same images everywhere.

    Args:
        name: ``"mnist"``, ``"fashion"`` or ``"cifar10"``.
        data_dir: the data folder (default None: ``$IGAN_DATA_DIR``, else ``./data``).
        train_size: training images, >= 1 (default None: all left after ``val_size``).
        val_size: images held out of training, >= 0 (default 0).
        test_size: test images, >= 1 (default None: all).
        split_seed: seed of the draws (default 0).
        download: let torchvision download missing files (default True).

    Returns:
        :class:`Splits`: ``train``, ``val``, ``test`` (:class:`ImageSet`, uint8 images) and ``label``
        (e.g. "MNIST-10k" for the offline re-split).

    Raises:
        DataNotFoundError naming the folder searched and the fix; DataCorruptError naming a file that is
        truncated, not the official one, or does not pair with its labels.

    Example:
        >>> splits = load_splits("mnist", train_size=2000, val_size=200, test_size=500)  # doctest: +SKIP
        >>> x, y = splits.test.tensors()  # doctest: +SKIP
    """
    train = load(name, "train", data_dir=data_dir, download=download)
    test = load(name, "test", data_dir=data_dir, download=download)
    label = data_label(name, len(train), len(test))
    val, train = train.split(val_size, seed=split_seed)
    return Splits(train=train.subset(train_size, split_seed), val=val,
                  test=test.subset(test_size, split_seed), label=label)


