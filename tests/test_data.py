import pytest
import torch

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
    with pytest.raises(ValueError, match="valid: mnist, cifar10"):
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
