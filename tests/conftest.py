"""Shared fixtures: the offline MNIST-10k, Fashion-MNIST from Debian's package, a generated CIFAR-10-format folder, small trained models; and a
kernel counter for tests of how much work a step launches."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from igan_utils.method import data, training

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


class KernelCounter(TorchDispatchMode):
    """Counts the operations that launch a kernel (on CUDA), leaving out views and other metadata ops and
    the wrapping of a Python number as a CPU scalar, which a CUDA kernel takes as an argument."""

    METADATA = {"detach", "view", "t", "expand", "_unsafe_view", "alias", "unsqueeze", "squeeze", "transpose",
                "scalar_tensor"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in self.METADATA:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """MNIST-10k: ``$IGAN_DATA_DIR`` if set, else ../shared/data beside the checkout."""
    folder = Path(os.environ.get("IGAN_DATA_DIR") or SHARED_DATA)
    if not (folder / "MNIST" / "raw").exists():
        pytest.skip(f"MNIST not found in {folder}; set IGAN_DATA_DIR")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> data.Splits:
    return data.load_splits("mnist", data_dir=mnist_dir, train_size=2000, val_size=200,
                            test_size=500, split_seed=0, download=False)


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory) -> Path:
    """Full Fashion-MNIST, laid out by the real loader from Debian's ``dataset-fashion-mnist`` into a
    fresh folder. Without the package the tests that need it skip, except in CI (which installs it)."""
    if not data.FASHION_SOURCE.is_dir():
        message = f"no {data.FASHION_SOURCE}: apt-get install dataset-fashion-mnist (.ci/run installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    folder = tmp_path_factory.mktemp("fashion-data")
    data.prepare_fashion_mnist(folder)
    return folder


@pytest.fixture(scope="session")
def book_data_dir(mnist_dir, fashion_dir, tmp_path_factory) -> Path:
    """One data folder holding both datasets of the smoke book (links, nothing copied)."""
    folder = tmp_path_factory.mktemp("book-data")
    (folder / "MNIST").symlink_to((mnist_dir / "MNIST").resolve())
    (folder / "FashionMNIST").symlink_to(fashion_dir / "FashionMNIST")
    return folder


def write_cifar10(folder: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """A tiny CIFAR-10 in the official python layout (random pixels, brightness by class):
    cifar-10-batches-py/."""
    rng = np.random.default_rng(seed)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        # Random pixels, brighter by class so that a model can learn something and be attacked.
        # The official batches were pickled by Python 2: str keys, read back with latin1.
        labels = rng.integers(0, 10, per_batch)
        pixels = (rng.integers(0, 128, (per_batch, 3072)) + 12 * labels[:, None]).astype(np.uint8)
        payload = {"batch_label": name, "labels": labels.tolist(), "data": pixels,
                   "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        with open(batches / name, "wb") as handle:
            pickle.dump(payload, handle)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(batches / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": classes, "num_cases_per_batch": per_batch, "num_vis": 3072}, handle)
    return folder


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch) -> Path:
    """A generated CIFAR-10 folder. torchvision checks each file against the official md5, which
    generated files cannot match, so that check becomes "the file exists"; the rest of the real
    ``torchvision.datasets.CIFAR10`` loading path runs unchanged."""
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    return write_cifar10(tmp_path / "cifar")


@pytest.fixture(scope="session")
def natural_model(mnist):
    """small_cnn (max pooling) trained naturally for one epoch on 2,000 MNIST-10k images."""
    config = training.TrainConfig(dataset="mnist", arch="small_cnn", pool="max", seed=0, method="natural",
                                  epochs=1, batch_size=50, lr=5e-3)
    model, _ = training.train_classifier(config, mnist.train, progress=False, device=torch.device("cpu"))
    return model


@pytest.fixture(scope="session")
def test_batch(mnist):
    x, y = mnist.test.take(slice(0, 200)).tensors()
    return x, y


def _sweepable_notebook(folder: Path, *, results: bool = True, seconds: float = 0.0) -> Path:
    """A tiny sweepable notebook (no torch): parameters a, b; fails when a == 'bad'; sleeps ``seconds``;
    records a one-row table. Without ``results`` it has no results_path and records nothing."""
    import nbformat

    params = 'a = "1"\nb = "x"\n' + ("results_path = None\n" if results else "")
    body = (f"import time\ntime.sleep({seconds})\nimport pandas as pd\n"
            "if a == 'bad':\n    raise RuntimeError('bad point')\n"
            "table = pd.DataFrame({'value': [f'{a}-{b}']})\n"
            "from igan_utils.book.store import record_results\nrecord_results(table, results_path)\n" if results else "")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(body)],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    path = folder / ("point.ipynb" if results else "silent.ipynb")
    nbformat.write(nb, path)
    return path


@pytest.fixture
def sweepable():
    """Factory of tiny sweepable notebooks: ``sweepable(folder, results=True, seconds=0.0)``."""
    return _sweepable_notebook
