"""Reliability and reproducibility: each fault is injected for real and must be survived or reported.

1. determinism  2. interruption (SIGKILL)  3. concurrency  4. untrusted checkpoints
5. bad parameters through papermill  6. unwritable or full artifact folder
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from igan_utils.book import store as store_module
from igan_utils.book.store import (
    Store,
    StoreNotWritableError,
    UnsafeCheckpointError,
    load_checkpoint,
)
from igan_utils.method import models, training

ROOT = Path(__file__).resolve().parents[1]

# A classifier job run in a child process: prints its final history and a weight checksum as JSON.
TRAIN_JOB = textwrap.dedent("""
    import json, sys
    from igan_utils.method import data, training
    from igan_utils.book.store import Store
    from igan_utils.method.cache import fingerprint
    splits = data.load_splits("mnist", train_size=1500, val_size=100, test_size=100, split_seed=0, download=False)
    config = training.TrainConfig(dataset="mnist", arch="small_cnn", pool="avg", seed=3, method="pgd",
                                  epochs=int(sys.argv[1]), batch_size=50, lr=5e-3, eps=0.3, steps=2, step_size=0.2)
    trained = training.get_or_train(config, splits.train, splits.val, store=Store(), progress=False)
    print(json.dumps({"history": trained.history, "weights": fingerprint(*trained.model.state_dict().values())}))
""")

GAN_JOB = textwrap.dedent("""
    import json, sys
    from igan_utils.method import data, training, interpretgan
    from igan_utils.book.store import Store
    from igan_utils.method.cache import fingerprint
    splits = data.load_splits("mnist", train_size=500, val_size=0, split_seed=0, download=False)
    config = training.TrainConfig(dataset="mnist", arch="small_cnn", pool="max", seed=0, method="natural",
                                  epochs=1, batch_size=50, lr=5e-3)
    store = Store()
    trained = training.get_or_train(config, splits.train, store=store, progress=False)
    gan = interpretgan.GanConfig(steps=int(sys.argv[1]), batch_size=16)
    found = interpretgan.get_or_train_interpreter(trained.model, "fc1", splits.train, gan, store=store, progress=False)
    print(json.dumps({"weights": fingerprint(*found.generator.state_dict().values())}))
""")


def _env(mnist_dir, store_dir, **extra):
    return {**os.environ, "IGAN_DATA_DIR": str(mnist_dir), "IGAN_STORE_DIR": str(store_dir), **extra}


def _run(job, *args, env):
    result = subprocess.run([sys.executable, "-c", job, *map(str, args)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _kill_when(job, args, env, ready, timeout=300):
    """Start ``job`` in its own process group and SIGKILL the group as soon as ``ready()`` holds."""
    process = subprocess.Popen([sys.executable, "-c", job, *map(str, args)], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while not ready():
            assert process.poll() is None, "the job ended before the fault could be injected"
            assert time.time() < deadline, "the job never reached the point of the fault"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _finished(folder: Path, kind: str) -> list[Path]:
    return sorted((folder / kind).glob("*.meta.json")) if (folder / kind).exists() else []


def _partial(folder: Path, kind: str) -> list[Path]:
    return sorted((folder / kind).glob("*.partial.pt")) if (folder / kind).exists() else []


# 1. Determinism -------------------------------------------------------------------------------------

def test_two_runs_of_the_same_config_give_identical_metrics_and_weights(mnist_dir, tmp_path):
    a = _run(TRAIN_JOB, 2, env=_env(mnist_dir, tmp_path / "a"))
    b = _run(TRAIN_JOB, 2, env=_env(mnist_dir, tmp_path / "b"))
    assert a == b  # every per-epoch metric and every weight, bit for bit, in two fresh processes


def test_deterministic_switch(mnist_dir, tmp_path):
    code = "import igan_utils, torch; print(torch.are_deterministic_algorithms_enabled())"
    for value, expected in (("1", "True"), ("", "False")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "IGAN_DETERMINISTIC": value}).stdout.strip()
        assert out == expected


# 2. Interruption ------------------------------------------------------------------------------------

def test_killed_classifier_training_resumes_and_matches_an_uninterrupted_run(mnist_dir, tmp_path):
    killed = tmp_path / "killed"
    _kill_when(TRAIN_JOB, [3], _env(mnist_dir, killed), lambda: bool(_partial(killed, "classifier")))
    assert not _finished(killed, "classifier"), "a killed run left an artifact that counts as finished"
    assert _partial(killed, "classifier")  # the periodic checkpoint survived
    resumed = _run(TRAIN_JOB, 3, env=_env(mnist_dir, killed))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert not _partial(killed, "classifier")  # cleaned up once finished
    uninterrupted = _run(TRAIN_JOB, 3, env=_env(mnist_dir, tmp_path / "whole"))
    assert resumed == uninterrupted


def test_killed_gan_training_resumes_and_matches_an_uninterrupted_run(mnist_dir, tmp_path):
    killed = tmp_path / "killed"
    _kill_when(GAN_JOB, [40], _env(mnist_dir, killed), lambda: bool(_partial(killed, "interpreter")))
    assert not _finished(killed, "interpreter")
    resumed = _run(GAN_JOB, 40, env=_env(mnist_dir, killed))
    assert resumed == _run(GAN_JOB, 40, env=_env(mnist_dir, tmp_path / "whole"))


def test_killed_sweep_resumes_with_finished_points_skipped(tmp_path, sweepable):
    notebook = sweepable(tmp_path, seconds=1.5)  # slow points
    out = tmp_path / "out"
    job = "import sys; from igan_utils.book.sweep import main; sys.exit(main(sys.argv[1:]))"
    args = [notebook, "--grid", "a=1,2,3,4,5,6", "--out", out, "--workers", "1"]
    _kill_when(job, args, {**os.environ, "PYTHONPATH": str(ROOT)}, lambda: len(list(out.glob("*.csv"))) >= 1)
    done = {p.name for p in out.glob("a=*.csv")}
    assert 1 <= len(done) < 6
    result = subprocess.run([sys.executable, "-c", job, *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"({len(done)} already finished)" in result.stdout
    assert len(list(out.glob("a=*.csv"))) == 6


# 3. Concurrency -------------------------------------------------------------------------------------

RACE_JOB = textwrap.dedent("""
    import sys, time, torch
    from igan_utils.book.store import Store
    def create():
        with open(sys.argv[1], "a") as log:
            log.write("computed\\n")
        time.sleep(2)  # slow, so that the other process arrives while this one works
        return {"w": torch.arange(100000, dtype=torch.float32)}
    found = Store().get_or_create("race", {"k": 1}, create)
    assert torch.equal(found["w"], torch.arange(100000, dtype=torch.float32))
    print("ok")
""")


def test_two_processes_asking_for_one_artifact_compute_it_once(tmp_path):
    log = tmp_path / "computations.log"
    env = {**os.environ, "IGAN_STORE_DIR": str(tmp_path / "store")}
    runs = [subprocess.Popen([sys.executable, "-c", RACE_JOB, str(log)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=120) for r in runs]
    assert all(r.returncode == 0 for r in runs), [o[1][-1000:] for o in outputs]
    assert log.read_text().count("computed") == 1  # the second process reused the first one's result
    assert torch.equal(Store(tmp_path / "store").load("race", {"k": 1})["w"], torch.arange(100000, dtype=torch.float32))


# 4. Untrusted checkpoints ---------------------------------------------------------------------------

class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "shared.pt"
    torch.save({"conv1.0.weight": torch.zeros(1), "extra": _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load {path}"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoint_of_the_wrong_shapes_names_the_tensor(tmp_path):
    path = tmp_path / "cifar.pt"
    torch.save(models.cifar_cnn().state_dict(), path)
    with pytest.raises(ValueError, match=r"tensor 'conv1.0.weight' has shape \(64, 3, 3, 3\) but the model expects "
                                         r"\(32, 1, 3, 3\)"):
        models.load_state(models.small_cnn(), load_checkpoint(path), str(path))


def test_a_tampered_classifier_artifact_is_rebuilt_not_used(mnist, tmp_path):
    store = Store(tmp_path)
    config = training.TrainConfig(dataset="mnist", arch="small_cnn", pool="max", seed=0, method="natural",
                                  epochs=1, batch_size=100, lr=5e-3)
    small = mnist.train.subset(200)
    first = training.get_or_train(config, small, store=store, progress=False, device=torch.device("cpu"))
    artifact = next((tmp_path / "classifier").glob("*.pt"))
    buffer = io.BytesIO()
    torch.save({"state_dict": {"conv1.0.weight": _Payload()}, "history": []}, buffer)
    artifact.write_bytes(buffer.getvalue())  # checksum no longer matches: never loaded, rebuilt
    with pytest.warns(UserWarning, match="checksum"):
        again = training.get_or_train(config, small, store=store, progress=False, device=torch.device("cpu"))
    assert again.history == first.history


# 5. Bad parameters through papermill ----------------------------------------------------------------

@pytest.mark.parametrize("parameters, message", [
    ({"epochs": 0}, "'epochs' must be >= 1"),
    ({"epoch": 3}, "unknown parameter(s) 'epoch'"),
    ({"eps": "abc"}, "'eps' must be of type float"),
    ({"profile": "fast"}, "unknown profile 'fast'"),
])
def test_bad_papermill_parameters_fail_in_the_parameters_check(tmp_path, parameters, message):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = ROOT / "notebooks" / "01_classification.ipynb"
    with pytest.raises(PapermillExecutionError) as error:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(notebook.parent))
    assert error.value.ename == "ValueError" and message in error.value.evalue
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    failing = [c for c in executed["cells"] if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failing) == 1
    assert "profiles.from_namespace" in "".join(failing[0]["source"])  # right after the parameters, before any work


# 6. Unwritable or full artifact folder --------------------------------------------------------------

def test_unwritable_store_stops_the_book_before_any_work(mnist_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "-m", "igan_utils.book", "--profile", "smoke", "--only", "01",
                             "--no-build", "--out", str(tmp_path / "executed")], cwd=ROOT, capture_output=True,
                            text=True, env=_env(mnist_dir, blocker / "store"))
    assert result.returncode == 1
    assert "StoreNotWritableError" in result.stderr and str(blocker / "store") in result.stderr
    executed = json.loads((tmp_path / "executed" / "01_classification.ipynb").read_text())
    ran = [c for c in executed["cells"] if c["cell_type"] == "code" and c.get("execution_count")]
    assert not any("models_for" in "".join(c["source"]) for c in ran)  # failed before training started


def test_unwritable_folder_is_refused_up_front(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreNotWritableError, match=str(blocker / "store")):
        Store(blocker / "store")  # a folder cannot be made inside a file (holds for root too)


def test_full_disk_is_refused_up_front(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: usage._replace(free=10 * 2**20))
    with pytest.raises(StoreNotWritableError, match="only 10 MiB free"):
        Store(tmp_path / "artifacts", min_free_mb=100)


def test_disk_full_during_a_write_names_the_folder_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    store = Store(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    with pytest.raises(StoreNotWritableError, match="No space left on device.*thing"):
        store.get_or_create("thing", {"a": 1}, lambda: {"w": torch.ones(1)})
    assert not [p for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")]
