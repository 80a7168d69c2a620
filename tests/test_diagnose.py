"""Diagnose your own model: the one call, the command, and the models people actually have."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from igan_utils import diagnose_model
from igan_utils.book.store import Store
from igan_utils.diagnose.cli import main
from igan_utils.method import interpretgan, layers, taps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from residual_cnn import ResidualCNN, train  # noqa: E402  (the README's example model)

TINY = dict(profile="smoke", gan_steps=2, gan_batch_size=8, decoder_steps=2, diag_size=24, eval_size=24,
            bootstrap=20, eval_steps=3, progress=False)
RESIDUAL_TAPS = ["stage1.0", "stage1", "stage2.1", "head.2"]


def _digits(n: int = 160, seed: int = 0, shape=(1, 28, 28)):
    """Images in [0, 1] whose class is their brightness: learnable in a few steps, and attackable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = (0.05 * labels.float().view(-1, 1, 1, 1) + 0.4 * torch.rand(n, *shape, generator=g)).clamp(0, 1)
    return images, labels


@pytest.fixture(scope="module")
def residual():
    images, labels = _digits()
    torch.manual_seed(0)
    # 20 epochs: with fewer, BatchNorm's running statistics are still far from the data and the model
    # in eval mode answers one class, which no attack can flip (measured: 2 epochs 5–30 %, 20 epochs 83–100 %).
    model = train(ResidualCNN(), images, labels, epochs=20)
    with torch.no_grad():
        assert (model(images[120:]).argmax(1) == labels[120:]).float().mean() > 0.5, "the test model did not learn"
    return model, (images[:120], labels[:120]), (images[120:], labels[120:])


def test_a_residual_model_with_batchnorm_and_functional_relus(residual, tmp_path, monkeypatch):
    model, train_data, test_data = residual
    store = Store(tmp_path / "store")
    model.train()  # the caller's mode comes back as it was
    found = diagnose_model(model, RESIDUAL_TAPS, train_data, test_data, eps=0.3, judge="self", store=store, **TINY)
    assert model.training
    model.eval()
    assert found.taps == RESIDUAL_TAPS
    v = found.vulnerability
    assert list(v["tap"]) == [layers.INPUT, *RESIDUAL_TAPS] and set(v["judge"]) == {"self"}
    assert v["n"].iloc[0] > 0 and v["R"].between(0, 1).all()
    assert abs(v["V"].sum() - v["R"].iloc[-1]) < 1e-9  # the V telescope to the last R
    assert list(found.information["tap"]) == RESIDUAL_TAPS and found.information["IL"].is_monotonic_increasing
    assert "not independent" in found.judge and "ResidualCNN" in found.summary()
    html, md = found.report(tmp_path / "html"), found.report(tmp_path / "md", "md")
    assert "data:image/png;base64" in html.read_text() and "Vulnerability per tap" in html.read_text()
    # the answer leads: the most vulnerable layer with its V and interval, before the details
    page = html.read_text()
    assert "Most vulnerable layer of" in found.answer() and "95% interval" in found.answer()
    assert page.index("Most vulnerable layer") < page.index("Details") < page.index("Vulnerability per tap")
    assert {"vulnerability.png", "information.png", "interpretations.png"} <= {p.name for p in md.parent.iterdir()}

    # A second call trains nothing: interpreters and decoders come from the store.
    def refuse(*args, **kwargs):
        raise AssertionError("trained again although stored")

    monkeypatch.setattr(interpretgan, "train_interpreter", refuse)
    monkeypatch.setattr(layers, "train_decoder", refuse)
    again = diagnose_model(model, RESIDUAL_TAPS, train_data, test_data, eps=0.3, judge="self", store=store, **TINY)
    assert again.information.equals(found.information)


def test_resnet18_on_32x32_colour_images_from_a_dataset_and_a_loader(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)  # random weights: it must run, not be accurate
    images, labels = _digits(48, shape=(3, 32, 32))
    train_set = torch.utils.data.TensorDataset(images[:32], labels[:32])
    test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[32:], labels[32:]), batch_size=5)
    judge = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    found = diagnose_model(model, ["layer1", "layer3", "avgpool", "fc"], train_set, test_loader, eps=8 / 255,
                           judge=judge, store=Store(tmp_path), **TINY)
    assert set(found.vulnerability["judge"]) == {"independent", "self"}
    assert "given by the caller" in found.judge
    assert found.quality["tap"].tolist() == ["layer1", "layer3", "avgpool", "fc"]


def test_a_reused_module_is_refused_with_the_reason(tmp_path):
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(1, 4, 3), relu, nn.Conv2d(4, 4, 3), relu, nn.Flatten(), nn.Linear(4 * 24 * 24, 10))
    rows = {r["tap"]: r for r in taps.tap_candidates(model, (1, 28, 28))}
    assert not rows["1"]["usable"] and "runs 2 times" in rows["1"]["reason"] and "reused" in rows["1"]["reason"]
    assert rows["2"]["usable"] and rows["2"]["shape"] == (4, 24, 24)
    with pytest.raises(ValueError, match="tap '1' is refused: its module runs more than once"):
        diagnose_model(model, ["0", "1"], _digits(), _digits(), eps=0.3, judge="self", store=Store(tmp_path), **TINY)


class TupleOut(nn.Module):
    def __init__(self, as_dict: bool = False):
        super().__init__()
        self.body, self.as_dict = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), as_dict

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits} if self.as_dict else (logits, x)


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_model_returning_a_tuple_or_dict_is_told_how_to_wrap_it(as_dict, tmp_path):
    with pytest.raises(TypeError, match="must return a logits tensor.*wrap it"):
        diagnose_model(TupleOut(as_dict), ["body.1"], _digits(), _digits(), eps=0.3, judge="self",
                       store=Store(tmp_path), **TINY)


def test_bad_data_and_a_missing_judge_are_clear_errors(residual, tmp_path):
    model = residual[0]
    images, labels = _digits()
    cases = [((images * 2, labels), ValueError, r"\[0, 1\].*normalisation"),
             ((images, labels.float()), ValueError, "labels must be an integer tensor"),
             ((images, labels[:5]), ValueError, "160 images but 5 labels"),
             ([1, 2, 3], TypeError, "Dataset, a DataLoader or an \\(images, labels\\)"),
             ((images, labels + 5), ValueError, "labels must lie in 0..9")]
    for train_data, error, message in cases:
        with pytest.raises(error, match=message):
            diagnose_model(model, RESIDUAL_TAPS, train_data, (images, labels), eps=0.3, judge="self",
                           store=Store(tmp_path), **TINY)
    with pytest.raises(ValueError, match="no judge.*judge='self'"):
        diagnose_model(model, RESIDUAL_TAPS, (images, labels), (images, labels), eps=0.3, store=Store(tmp_path), **TINY)
    with pytest.raises(ValueError, match="unknown tap.*'stage9'"):
        diagnose_model(model, ["stage9"], (images, labels), (images, labels), eps=0.3, judge="self",
                       store=Store(tmp_path), **TINY)


def test_the_command_lists_taps_and_writes_a_report(residual, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IGAN_STORE_DIR", str(tmp_path / "store"))
    model, train_data, test_data = residual
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save({"train": train_data, "test": test_data}, tmp_path / "data.pt")
    spec = f"{ROOT / 'examples' / 'residual_cnn.py'}:ResidualCNN"
    assert main(["--model", spec, "--weights", str(tmp_path / "weights.pt"), "--list-taps", "--input-shape", "1,28,28"]) == 0
    listed = capsys.readouterr().out
    assert "stage1.0" in listed and "Block" in listed and "16×14×14" in listed

    args = ["--model", spec, "--weights", str(tmp_path / "weights.pt"), "--data", str(tmp_path / "data.pt"),
            "--taps", ",".join(RESIDUAL_TAPS), "--eps", "0.3", "--judge", "self", "--profile", "smoke",
            "--format", "md", "--out", str(tmp_path / "report")]
    budget = [f"-p{k}={v}" for k, v in TINY.items() if k not in ("profile", "progress")]
    assert main(args + budget) == 0
    assert "report:" in capsys.readouterr().out and (tmp_path / "report" / "report.md").exists()

    assert main(args[:8]) == 2  # no --eps
    assert "missing --eps" in capsys.readouterr().err
    assert main(["--model", "no_such_module:make", "--list-taps", "--input-shape", "1,28,28"]) == 2
    assert "no_such_module" in capsys.readouterr().err


def test_the_command_with_the_books_data_uses_the_books_judge(residual, mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IGAN_STORE_DIR", str(tmp_path / "store"))
    torch.save(residual[0].state_dict(), tmp_path / "weights.pt")
    code = main(["--model", f"{ROOT / 'examples' / 'residual_cnn.py'}:ResidualCNN", "--weights",
                 str(tmp_path / "weights.pt"), "--data", "mnist", "--data-dir", str(mnist_dir), "--taps",
                 "stage1,head.2", "--eps", "0.3", "--profile", "smoke", "-p", "gan_steps=2", "-p", "decoder_steps=2",
                 "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0 and "the book's judge for MNIST" in out
    assert "gradient-masking checks" in (tmp_path / "report" / "report.html").read_text()
