import gzip
import hashlib
import os

import numpy as np
import pytest
import torch
import torchvision

from igan_utils.method import data


def test_mnist_10k_is_read_unchanged(mnist_dir):
    train = data.load("mnist", "train", data_dir=mnist_dir, download=False)
    test = data.load("mnist", "test", data_dir=mnist_dir, download=False)
    assert (len(train), len(test)) == (8000, 2000)
    assert train.images.dtype == torch.uint8 and train.image_shape == (1, 28, 28)
    # class counts published in shared/data/README.md
    assert train.class_counts() == [773, 905, 834, 803, 788, 723, 756, 813, 787, 818]
    assert test.class_counts() == [207, 230, 198, 207, 194, 169, 202, 215, 187, 191]
    assert train.classes == tuple(str(d) for d in range(10))
    x, y = train.take(slice(0, 8)).tensors()
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and y.dtype == torch.int64


def test_splits_are_deterministic_disjoint_and_labelled(mnist_dir):
    a = data.load_splits("mnist", data_dir=mnist_dir, train_size=500, val_size=100, test_size=50, split_seed=3)
    b = data.load_splits("mnist", data_dir=mnist_dir, train_size=500, val_size=100, test_size=50, split_seed=3)
    c = data.load_splits("mnist", data_dir=mnist_dir, train_size=500, val_size=100, test_size=50, split_seed=4)
    assert a.train.fingerprint() == b.train.fingerprint() and a.test.fingerprint() == b.test.fingerprint()
    assert a.train.fingerprint() != c.train.fingerprint()
    assert (len(a.train), len(a.val), len(a.test)) == (500, 100, 50)
    assert a.label == "MNIST-10k"
    # validation images are held out of training: no image appears in both
    train_rows = {bytes(r) for r in a.train.images.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in a.val.images.flatten(1).numpy())


def test_smaller_subset_is_contained_in_larger(mnist_dir):
    full = data.load("mnist", "test", data_dir=mnist_dir, download=False)
    small, large = full.subset(100, seed=1), full.subset(300, seed=1)
    assert torch.equal(small.images, large.images[:100])


def test_batches_cover_the_set_once_and_shuffle_by_seed(mnist):
    seen = torch.cat([y for _, y in mnist.val.batches(64, shuffle=True, seed=5)])
    assert sorted(seen.tolist()) == sorted(mnist.val.labels.tolist())
    again = torch.cat([y for _, y in mnist.val.batches(64, shuffle=True, seed=5)])
    other = torch.cat([y for _, y in mnist.val.batches(64, shuffle=True, seed=6)])
    assert torch.equal(seen, again) and not torch.equal(seen, other)
    with pytest.raises(ValueError, match="batch_size"):
        next(mnist.val.batches(0))


def test_missing_dataset_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IGAN_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataNotFoundError) as error:
        data.load("mnist", download=False)
    message = str(error.value)
    assert str(tmp_path) in message and "IGAN_DATA_DIR" in message and "Fix:" in message
    assert "Traceback" not in message


def test_env_var_and_explicit_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("IGAN_DATA_DIR", str(tmp_path / "from-env"))
    assert data.resolve_data_dir() == tmp_path / "from-env"
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_cifar10_loader_reads_the_official_layout(cifar_dir):
    train = data.load("cifar10", "train", data_dir=cifar_dir, download=False)
    test = data.load("cifar10", "test", data_dir=cifar_dir, download=False)
    assert (len(train), len(test)) == (100, 20)
    assert train.image_shape == (3, 32, 32) and train.classes[0] == "airplane"
    splits = data.load_splits("cifar10", data_dir=cifar_dir, val_size=10, split_seed=0, download=False)
    assert (len(splits.train), len(splits.val)) == (90, 10)
    assert splits.label.startswith("CIFAR10")  # not the full CIFAR-10, and says so


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="valid: mnist, fashion, cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "validation")


def _mnist_copy(mnist_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (mnist_dir / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    return raw


def test_a_truncated_mnist_file_is_named_with_its_expected_size(mnist_dir, tmp_path):
    raw = _mnist_copy(mnist_dir, tmp_path)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100_000])
    with pytest.raises(data.DataCorruptError, match=r"t10k-images-idx3-ubyte is truncated: 100,000 bytes, "
                                                    r"expected 1,568,016 for 2000 × 28 × 28"):
        data.load("mnist", "test", data_dir=tmp_path, download=False)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"garbage!")
    with pytest.raises(data.DataCorruptError, match="is not an idx file"):
        data.load("mnist", "train", data_dir=tmp_path, download=False)


def test_a_cifar_folder_of_garbage_is_reported_as_corrupt_not_missing(cifar_dir):
    (cifar_dir / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(data.DataCorruptError, match="could not be read.*corrupt or not CIFAR10"):
        data.load("cifar10", "train", data_dir=cifar_dir, download=False)


def test_cifar_files_that_fail_the_official_checksum_are_named(tmp_path):
    from conftest import write_cifar10

    folder = write_cifar10(tmp_path / "cifar")  # generated files cannot match the official md5
    with pytest.raises(data.DataCorruptError, match="data_batch_1 does not match the official CIFAR-10 file"):
        data.load("cifar10", "train", data_dir=folder, download=False)


def test_a_data_path_that_is_a_file_says_so(tmp_path):
    file = tmp_path / "data.txt"
    file.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        data.load("mnist", "train", data_dir=file, download=False)


def test_fashion_mnist_is_laid_out_from_debian_and_read_by_torchvision(fashion_dir):
    raw = fashion_dir / "FashionMNIST" / "raw"
    assert sorted(f.name for f in raw.iterdir()) == sorted(data.FASHION_MD5)  # no temporary file left
    train = data.load("fashion", "train", data_dir=fashion_dir, download=False)
    test = data.load("fashion", "test", data_dir=fashion_dir, download=False)
    assert (len(train), len(test)) == (60000, 10000) and train.image_shape == (1, 28, 28)
    assert train.class_counts() == [6000] * 10 and test.class_counts() == [1000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    splits = data.load_splits("fashion", data_dir=fashion_dir, train_size=300, val_size=50, test_size=40,
                              download=False)
    assert splits.label == "Fashion-MNIST" and (len(splits.train), len(splits.val), len(splits.test)) == (300, 50, 40)
    x, y = splits.test.tensors()
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.mean() > 0.1  # clothes, not blank


def _idx_gz(path, magic: int, values: np.ndarray) -> bytes:
    payload = bytes([0, 0, 8, magic]) + b"".join(int(d).to_bytes(4, "big") for d in values.shape) + values.tobytes()
    path.write_bytes(gzip.compress(payload))
    return payload


def _fake_fashion_source(folder):
    """Four small gzipped idx files in Debian's layout, and their md5s (the real ones cannot match)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    md5 = {}
    for stem, n in (("train", 30), ("t10k", 10)):
        images = _idx_gz(folder / f"{stem}-images-idx3-ubyte.gz", 3, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        labels = _idx_gz(folder / f"{stem}-labels-idx1-ubyte.gz", 1, (np.arange(n) % 10).astype(np.uint8))
        md5[f"{stem}-images-idx3-ubyte"] = hashlib.md5(images).hexdigest()
        md5[f"{stem}-labels-idx1-ubyte"] = hashlib.md5(labels).hexdigest()
    return folder, md5


def test_fashion_layout_checks_every_file_and_says_how_to_fix_it(tmp_path, monkeypatch):
    source, md5 = _fake_fashion_source(tmp_path / "debian")
    with pytest.raises(data.DataCorruptError, match=r"does not hold the original train-images-idx3-ubyte.*"
                                                    r"apt-get install dataset-fashion-mnist"):
        data.prepare_fashion_mnist(tmp_path / "a", source=source)  # not the original bytes
    assert not list((tmp_path / "a").rglob("*-ubyte"))  # nothing half-made is left to be read later
    monkeypatch.setattr(data, "FASHION_MD5", md5)
    raw = data.prepare_fashion_mnist(tmp_path / "b", source=source)
    assert raw == tmp_path / "b" / "FashionMNIST" / "raw"
    assert len(torchvision.datasets.FashionMNIST(str(tmp_path / "b"), train=True, download=False)) == 30
    (source / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(data.DataCorruptError, match="t10k-labels-idx1-ubyte.gz is not a whole gzip file"):
        data.prepare_fashion_mnist(tmp_path / "c", source=source)
    with pytest.raises(data.DataNotFoundError, match=r"(?s)does not exist.*Fix: apt-get install dataset-fashion-mnist"):
        data.prepare_fashion_mnist(tmp_path / "d", source=tmp_path / "nowhere")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write Fashion-MNIST into .*IGAN_DATA_DIR"):
        data.prepare_fashion_mnist(blocked, source=source)


def test_fashion_without_debian_package_or_files_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_SOURCE", tmp_path / "not-installed")
    with pytest.raises(data.DataNotFoundError) as error:
        data.load("fashion", data_dir=tmp_path / "empty", download=False)
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "IGAN_DATA_DIR" in message
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in message
