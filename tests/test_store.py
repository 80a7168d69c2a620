import hashlib
import io
import json
import os

import pandas as pd
import pytest
import torch

from igan_utils.book import store as store_module
from igan_utils.book.store import (
    CorruptArtifactError,
    Store,
    UnsafeCheckpointError,
    config_key,
    load_checkpoint,
)

CONFIG = {"arch": "small_cnn", "pool": "max", "seed": 0, "lr": 0.005}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "artifacts")


def test_key_depends_on_kind_and_every_config_value_not_on_order():
    assert config_key("m", {"a": 1, "b": 2}) == config_key("m", {"b": 2, "a": 1})
    assert config_key("m", {"a": 1}) != config_key("m", {"a": 2})
    assert config_key("m", {"a": 1}) != config_key("n", {"a": 1})


@pytest.mark.parametrize("fmt, obj", [
    ("torch", {"w": torch.arange(6.0).view(2, 3), "history": [{"epoch": 1, "loss": 0.5}]}),
    ("json", {"acc": 0.97, "rows": [1, 2]}),
    ("table", pd.DataFrame({"tap": ["conv1", "fc1"], "value": [0.1, 0.2], "n": [3, 4]})),
])
def test_roundtrip_and_sidecar(store, fmt, obj):
    calls = []

    def create():
        calls.append(1)
        return obj

    first = store.get_or_create("thing", CONFIG, create, fmt=fmt)
    second = store.get_or_create("thing", CONFIG, create, fmt=fmt)
    assert len(calls) == 1  # the second call reused the stored artifact
    if fmt == "table":
        pd.testing.assert_frame_equal(first, obj)
        pd.testing.assert_frame_equal(second, obj)
    elif fmt == "torch":
        assert torch.equal(second["w"], obj["w"]) and second["history"] == obj["history"]
    else:
        assert second == obj
    meta = store.metadata("thing", CONFIG, fmt=fmt)
    assert meta["config"] == CONFIG and meta["seconds"] >= 0 and "torch" in meta["versions"]


def _artifact(store, fmt="torch"):
    return next(p for p in (store.root / "thing").iterdir() if p.name.endswith(store_module.FORMATS[fmt])
                and not p.name.endswith(".meta.json") and ".partial" not in p.name)


def test_truncated_artifact_is_detected_and_rebuilt(store):
    store.get_or_create("thing", CONFIG, lambda: {"w": torch.ones(1000)})
    path = _artifact(store)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptArtifactError, match=str(path)):
        store.load("thing", CONFIG)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = store.get_or_create("thing", CONFIG, lambda: {"w": torch.full((1000,), 2.0)})
    assert torch.equal(rebuilt["w"], torch.full((1000,), 2.0))


def test_altered_artifact_fails_its_checksum(store):
    store.get_or_create("thing", CONFIG, lambda: {"acc": 0.5}, fmt="json")
    path = _artifact(store, "json")
    path.write_text(json.dumps({"acc": 0.99}))  # same format, different content
    with pytest.raises(CorruptArtifactError, match="checksum"):
        store.load("thing", CONFIG, fmt="json")


def test_corrupt_sidecar_is_reported(store):
    store.get_or_create("thing", CONFIG, lambda: {"acc": 0.5}, fmt="json")
    sidecar = next((store.root / "thing").glob("*.meta.json"))
    sidecar.write_text("{not json")
    with pytest.raises(CorruptArtifactError, match=str(sidecar)):
        store.load("thing", CONFIG, fmt="json")


def test_artifact_without_sidecar_counts_as_unfinished(store):
    store.get_or_create("thing", CONFIG, lambda: {"w": torch.ones(3)})
    next((store.root / "thing").glob("*.meta.json")).unlink()  # as if killed before the sidecar
    with pytest.raises(KeyError):
        store.load("thing", CONFIG)
    again = store.get_or_create("thing", CONFIG, lambda: {"w": torch.zeros(3)})
    assert torch.equal(again["w"], torch.zeros(3))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unsafe_artifact_in_store_is_refused(store):
    store.get_or_create("thing", CONFIG, lambda: {"w": torch.ones(1)})
    path = _artifact(store)
    buffer = io.BytesIO()
    torch.save({"w": _Payload()}, buffer)
    data = buffer.getvalue()
    path.write_bytes(data)
    sidecar = next((store.root / "thing").glob("*.meta.json"))
    meta = json.loads(sidecar.read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()  # an attacker can fix the checksum too
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        store.load("thing", CONFIG)


def test_garbage_file_is_corrupt_not_a_crash(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(CorruptArtifactError, match=str(path)):
        load_checkpoint(path)


def test_env_var_sets_the_store_root(tmp_path, monkeypatch):
    monkeypatch.setenv("IGAN_STORE_DIR", str(tmp_path / "elsewhere"))
    assert Store().root == tmp_path / "elsewhere"
