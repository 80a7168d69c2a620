"""The device rule: every package function that takes a model and tensors runs where the model is
(``runtime.to_model``), and gives its tensors back where the caller's were.

There is no GPU on the test machines, so the tests put the model somewhere the caller's tensors are
not in the one other way a CPU allows: in float64 while the images are float32. ``to_model`` moves a
tensor's device and dtype in one call, so a function that forgets to move its inputs fails here
exactly as it would on CUDA (a pre-hook on the model checks every batch it is given), and its
results must come back as the caller gave them."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT

from igan_utils.method import attacks, autoattack, interpretgan, layers, runtime, taps
from igan_utils.method.data import ImageSet
from igan_utils.method.interpretgan import GanConfig


def _elsewhere(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in float64 (its own copy), refusing any input that is not on its device and dtype."""
    import copy

    model = copy.deepcopy(model).double().eval()

    def check(module, args):
        x, first = args[0], next(module.parameters())
        assert (x.device, x.dtype) == (first.device, first.dtype), \
            f"the model got a batch on {x.device}/{x.dtype}, but it is on {first.device}/{first.dtype}"

    model.register_forward_pre_hook(check)
    return model


@pytest.fixture(scope="module")
def remote(natural_model):
    return _elsewhere(natural_model)


@pytest.fixture(scope="module")
def batch(test_batch):
    x, y = test_batch
    return x[:24], y[:24].to(torch.int32)  # int32 labels: integer labels of any width are accepted


def _as_given(tensor: torch.Tensor, like: torch.Tensor) -> None:
    assert tensor.device == like.device and tensor.dtype == like.dtype, (tensor.device, tensor.dtype)


def test_attacks_run_where_the_model_is(remote, batch):
    x, y = batch
    for result in (attacks.pgd(remote, x, y, 0.1, steps=3, restarts=2, early_exit=True),
                   attacks.fgsm(remote, x, y, 0.1, random_start=True)):
        _as_given(result.adv, x)
        assert result.success.device == x.device
    labels = attacks.predict(remote, x)
    assert labels.device == x.device and labels.dtype == torch.int64
    assert 0 <= attacks.accuracy(remote, x, y) <= 1
    assert attacks.robust_accuracy(remote, x, y, eps=0.1, steps=3).n == len(x)


def test_a_generator_of_another_device_draws_the_noise_where_it_is(remote, batch):
    # chapters pass a CPU generator; on CUDA the noise is drawn on the CPU and moved, so a seed gives
    # the same attack whichever device the model is on
    x, y = batch
    a, b = (attacks.pgd(remote, x, y, 0.1, steps=2, generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a.adv, b.adv)


def test_the_evaluation_runs_where_the_model_is(remote, batch):
    x, y = batch
    ensemble = autoattack.Ensemble(attacks=("apgd-ce", "square"), apgd_iters=5, square_queries=20, pgd_steps=3)
    result = autoattack.worst_case(remote, x, y, eps=0.1, ensemble=ensemble)
    assert result.broken_by.device == x.device and len(result.broken_by) == len(x)


def test_taps_and_interpretations_run_where_the_model_is(remote, mnist, batch):
    x, y = batch
    logits, acts = taps.forward_with_taps(remote, x, ["pool1", "fc2"])
    assert logits.device == x.device and acts["fc2"].shape == (len(x), 200)
    assert taps.tap_shapes(remote, (1, 28, 28), ["pool1"]) == {"pool1": (32, 12, 12)}
    assert any(row["usable"] for row in taps.tap_candidates(remote, (1, 28, 28)))
    small = ImageSet("mnist", mnist.train.images[:64], mnist.train.labels[:64], mnist.train.classes)
    found = {"fc2": interpretgan.train_interpreter(remote, "fc2", small, GanConfig(steps=2, batch_size=8),
                                                   progress=False)}
    _as_given(interpretgan.interpret(remote, found, x)["fc2"], x)
    _as_given(interpretgan.invert_features(remote, "pool1", x[:2], steps=2), x)
    assert len(interpretgan.quality(remote, found, x)) == 1
    images, captions = interpretgan.interpretation_rows(remote, found, x[:2], mnist.train.classes)
    assert len(images) == 2 and len(captions[0]) == 2
    attacked = layers.confident_attacks(remote, x, y, eps=0.3, steps=3, step_size=0.1)
    table = layers.vulnerability_table(remote, found, {"self": remote}, attacked, bootstrap=20)
    assert set(table["tap"]) == {layers.INPUT, "fc2"}
    assert len(layers.feature_change(remote, x, x, ["fc2"])) == 1
    assert len(layers.linear_information_loss(remote, ["pool1"], small, small.take(slice(0, 16)))) == 1
    assert layers.train_decoder(remote, "fc2", small, steps=2)(acts["fc2"].float()).shape == x.shape


def test_igan_device_chooses_the_device(monkeypatch):
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.default_device() == torch.device("cpu")
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "CUDA")
    assert runtime.default_device() == torch.device("cuda")
    monkeypatch.delenv(runtime.DEVICE_ENV_VAR)
    assert runtime.default_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.default_device() == torch.device("cpu")
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match="IGAN_DEVICE=cuda, but PyTorch sees no CUDA device"):
        runtime.default_device()
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "tpu")
    with pytest.raises(ValueError, match="'tpu' is not a device; use one of cpu, cuda"):
        runtime.default_device()


def test_to_model_moves_only_what_must_move(natural_model, remote):
    x, y, mask = torch.rand(2, 1, 28, 28), torch.tensor([1, 2], dtype=torch.int32), torch.tensor([True, False])
    same = runtime.to_model(natural_model, x, y.long(), mask)
    assert same[0] is x and same[2] is mask  # nothing to do: no copy
    moved = runtime.to_model(remote, x, y, mask)
    assert [t.dtype for t in moved] == [torch.float64, torch.int64, torch.bool]
    assert runtime.model_device(torch.nn.ReLU()) == torch.device("cpu")
    assert runtime.device_name(natural_model) == "cpu"


def test_chapters_never_move_tensors_or_call_a_model_directly():
    """Chapters leave devices to the package: no .to(...), .cuda(), .cpu() or device= in a code cell,
    and no direct forward pass of a trained model (``m.model(x)``), which would skip the move."""
    import re

    forbidden = re.compile(r"\.to\(|\.cuda\(|\.cpu\(|device\s*=|\.model\(")
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                found += [f"{path.name}: {line.strip()}" for line in "".join(cell["source"]).splitlines()
                          if forbidden.search(line)]
    assert not found, found
