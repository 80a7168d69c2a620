"""A user's mistakes, one test per kind: each gets one clear sentence before any work (issue 25's
battery; the attacks' own rows are in test_attacks.py, the store's faults in test_reliability.py)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from igan_utils import diagnose_model
from igan_utils.book import profiles, runner, sweep
from igan_utils.book.commands import check_out_folder
from igan_utils.book.store import (
    Checkpoint,
    CorruptArtifactError,
    Store,
    load_checkpoint,
)
from igan_utils.diagnose import cli
from igan_utils.method import (
    attacks,
    autoattack,
    data,
    interpretgan,
    layers,
    masking,
    models,
    training,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = f"{ROOT / 'examples' / 'residual_cnn.py'}:ResidualCNN"
TINY = dict(profile="smoke", gan_steps=2, gan_batch_size=8, decoder_steps=2, diag_size=24, eval_size=24,
            bootstrap=20, eval_steps=3, progress=False)


def _digits(n=48, shape=(1, 28, 28)):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


class RandomisedCNN(nn.Module):
    """Dropout forced on in every mode: the same images give other logits each pass."""

    def __init__(self):
        super().__init__()
        self.inner = models.small_cnn()

    def forward(self, x):
        return F.dropout(self.inner(x), p=0.5, training=True)


@pytest.fixture(autouse=True)
def _refuse_work(monkeypatch):
    """A mistake must be found before any training: training anything here fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the mistake was found")

    monkeypatch.setattr(interpretgan, "train_interpreter", refuse)
    monkeypatch.setattr(layers, "train_decoder", refuse)
    monkeypatch.setattr(training, "train_classifier", refuse)
    monkeypatch.setattr(runner, "execute", refuse)


# ---- the public functions ------------------------------------------------------------------------

def test_a_randomised_model_is_refused_for_robust_accuracy():
    torch.manual_seed(0)
    x, y = _digits(8)
    with pytest.raises(ValueError, match="different logits for the same images"):
        attacks.robust_accuracy(RandomisedCNN(), x, y, eps=0.3, steps=2)
    with pytest.raises(ValueError, match="different logits for the same images"):
        autoattack.worst_case(RandomisedCNN(), x, y, eps=0.3, ensemble=autoattack.Ensemble(attacks=("apgd-ce",),
                                                                                            apgd_iters=2))


def test_an_image_size_the_model_does_not_take_names_the_size():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # no input_shape: only its layers know
    x, y = _digits(4, (1, 32, 32))
    with pytest.raises(ValueError, match=r"cannot take images of shape \(1, 32, 32\)"):
        attacks.pgd(model, x, y, 0.1, steps=1)


def test_images_in_hwc_order_are_refused_with_the_permute():
    images, labels = _digits(6)
    with pytest.raises(ValueError, match=r"looks like \(N, H, W, C\).*permute\(0, 3, 1, 2\)"):
        data.as_image_set((images.permute(0, 2, 3, 1), labels))


def test_an_ensemble_given_as_a_list_says_how_to_make_one():
    x, y = _digits(4)
    with pytest.raises(TypeError, match=r"must be an autoattack.Ensemble, got list.*Ensemble\(attacks=\('apgd-ce',\)\)"):
        autoattack.worst_case(models.small_cnn(), x, y, eps=0.3, ensemble=["apgd-ce"])


def test_a_plain_module_to_the_masking_checks_is_told_what_they_take(tmp_path):
    x, y = _digits(4)
    with pytest.raises(TypeError, match="expected a TrainedModel.*worst_case"):
        masking.masking_checks(models.small_cnn(), x, y, eps=0.3, large_eps=0.5, ensemble=autoattack.Ensemble(),
                                  store=Store(tmp_path))


@pytest.mark.parametrize("judge, message", [
    (nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), "judge returns 3 logits but the model 10"),
    (nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 10)), "judge does not take the diagnosed model's images"),
])
def test_a_judge_of_other_classes_or_images_is_refused(judge, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        diagnose_model(models.small_cnn(), ["conv1"], _digits(), _digits(), eps=0.3, judge=judge,
                       store=Store(tmp_path), **TINY)


@pytest.mark.parametrize("resamples", [1, 2, 19])
def test_too_few_bootstrap_resamples_fail_before_the_work(resamples, tmp_path):
    with pytest.raises(ValueError, match="parameter 'bootstrap' must be >= 20"):
        diagnose_model(models.small_cnn(), ["conv1"], _digits(), _digits(), eps=0.3, judge="self",
                       store=Store(tmp_path), **{**TINY, "bootstrap": resamples})
    x, y = _digits(4)
    attacked = layers.Attacked(x, x, y, ["pgd"] * 4, "none", 4, 0.3)
    with pytest.raises(ValueError, match="resamples must be an integer >= 20"):
        layers.vulnerability_table(models.small_cnn(), {}, {}, attacked, taps=["conv1"], bootstrap=resamples)


@pytest.mark.parametrize("name", ["eps", "lr", "gan_lr", "large_eps"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan")])
def test_non_finite_numbers_are_refused_by_the_profiles(name, value):
    with pytest.raises(ValueError, match=f"parameter '{name}' must be a finite number"):
        profiles.resolve("04_diagnosis", "smoke", **{name: value})


def test_mnist_files_whose_image_and_label_counts_differ_are_corrupt(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)

    def idx(path, array):
        dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        path.write_bytes(bytes([0, 0, 8, array.ndim]) + dims + array.astype(np.uint8).tobytes())

    for stem, images, labels in (("train", 20, 20), ("t10k", 8, 12)):
        idx(raw / f"{stem}-images-idx3-ubyte", np.zeros((images, 28, 28)))
        idx(raw / f"{stem}-labels-idx1-ubyte", np.zeros(labels))
    data._load.cache_clear()
    with pytest.raises(data.DataCorruptError, match="has 8 images but 12 labels"):
        data.load("mnist", "test", data_dir=tmp_path, download=False)


def test_the_callers_models_come_back_in_the_mode_they_came_in():
    model = models.small_cnn().train()
    model.conv1.eval()  # a mixed mode, e.g. a frozen layer inside a training network
    x, y = _digits(8)
    attacks.robust_accuracy(model, x, y, eps=0.1, steps=1)
    attacks.pgd(model, x, y, 0.1, steps=1)
    from igan_utils.method import taps
    taps.tap_candidates(model, (1, 28, 28))
    layers.feature_change(model, x, x, ["conv1"])
    assert model.training and not model.conv1.training and model.fc1.training


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_garbage_checkpoints_are_corrupt_never_an_internal_error(tmp_path):
    path = tmp_path / "garbage.pt"
    for seed in range(300):  # random bytes make the unpickler fail in many ways (IndexError, KeyError...)
        rng = random.Random(seed)
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))))
        try:
            load_checkpoint(path)
        except CorruptArtifactError:
            pass
    for garbage in (b".", b"e", b""):
        path.write_bytes(garbage)
        with pytest.raises(CorruptArtifactError, match="truncated or not a checkpoint"):
            load_checkpoint(path)


def test_a_garbage_partial_checkpoint_is_ignored_with_one_warning(tmp_path):
    path = tmp_path / "partial.pt"
    path.write_bytes(b"e")  # was "IndexError: pop from empty list"
    with pytest.warns(UserWarning, match="ignoring unreadable partial checkpoint"):
        assert Checkpoint(path).load() is None


# ---- the commands: `error: ...`, exit 2, no traceback, before any work ------------------------------

def _fails_clearly(run, argv, capsys, message):
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err and message in err, err


@pytest.fixture
def user_files(tmp_path):
    images, labels = _digits(40)
    torch.save({"train": (images, labels), "test": (images, labels)}, tmp_path / "data.pt")
    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04")
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")  # a whole module: pickled code
    (tmp_path / "a_file").write_text("")
    (tmp_path / "broken.py").write_text("from torch import nn\ndef make():\n    raise RuntimeError('no GPU here')\n")
    return tmp_path


@pytest.mark.parametrize("extra, message", [
    (["--weights", "{d}/truncated.pt"], "truncated or not a checkpoint"),
    (["--weights", "{d}/missing.pt"], "missing.pt"),
    (["--weights", "{d}/pickled.pt"], "refusing to load"),
    (["--judge", "self", "--judge-weights", "{d}/missing.pt"], "--judge-weights needs --judge MODULE:FACTORY"),
    (["--out", "{d}/a_file"], "a_file is a file"),
    (["--out", "{d}/a_file/report"], "a_file is a file"),
    (["--out", "{d}/" + "n" * 300 + "/report"], "cannot be created: File name too long"),
    (["-p", "gan_steps=two"], "parameter 'gan_steps' must be of type int"),
    (["-p", "bootstrap=1"], "parameter 'bootstrap' must be >= 20"),
    (["-p", "judges=self"], "unknown parameter(s) 'judges'"),
])
def test_igan_diagnose_mistakes(extra, message, user_files, capsys, monkeypatch):
    monkeypatch.setenv("IGAN_STORE_DIR", str(user_files / "store"))
    base = ["--model", EXAMPLE, "--data", f"{user_files}/data.pt", "--taps", "stage1", "--eps", "0.3",
            "--judge", "self", "--out", f"{user_files}/report"]
    argv = base + [a.format(d=user_files) for a in extra]
    if "--judge-weights" in extra:
        argv = [a for a in base if a not in ("--judge", "self")] + [a.format(d=user_files) for a in extra]
    _fails_clearly(cli.main, argv, capsys, message)
    assert not (user_files / "report").exists()  # a failed run leaves no output behind


@pytest.mark.parametrize("model, data_option, message", [
    ("{d}/broken.py:make", "{d}/data.pt", "make() raised RuntimeError: no GPU here"),
    (EXAMPLE, "{d}/a_file", "a_file must hold a dict"),
    (EXAMPLE, "{d}/bare.pt", "'train' must be a pair (images, labels) of tensors"),
    (EXAMPLE, "{d}/pair.pt", "must hold a dict with keys 'train' and 'test', each (images, labels); it holds a tuple"),
    (EXAMPLE, "mnist", "is a file, not a folder"),
])
def test_igan_diagnose_user_code_and_data_faults(model, data_option, message, user_files, capsys, monkeypatch):
    monkeypatch.setenv("IGAN_DATA_DIR", str(user_files / "a_file"))
    torch.save({}, user_files / "a_file")  # a checkpoint, but not train and test data
    images, labels = _digits(40)
    torch.save({"train": images, "test": images}, user_files / "bare.pt")  # tensors without their labels
    torch.save((images, labels), user_files / "pair.pt")  # one pair, not train and test
    argv = ["--model", model.format(d=user_files), "--data", data_option.format(d=user_files), "--taps", "stage1",
            "--eps", "0.3", "--judge", "self", "--out", f"{user_files}/report"]
    _fails_clearly(cli.main, argv, capsys, message)


@pytest.mark.parametrize("shape, message", [
    ("28,28", "--input-shape must be one image's C,H,W"),
    ("1,0,28", "--input-shape must be one image's C,H,W"),
    ("1,28,27", "the model cannot run on one image of shape (1, 28, 27)"),
])
def test_igan_diagnose_input_shapes_the_model_cannot_take(shape, message, capsys):
    small_cnn = "igan_utils.method.models:small_cnn"  # ends in a linear layer of fixed size: 28×27 does not fit
    _fails_clearly(cli.main, ["--model", small_cnn, "--list-taps", "--input-shape", shape], capsys, message)


def test_an_output_folder_check_leaves_nothing_behind(tmp_path):
    assert check_out_folder(tmp_path / "a" / "b" / "report") == tmp_path / "a" / "b" / "report"
    assert list(tmp_path.iterdir()) == []  # made to try, then removed


@pytest.mark.parametrize("parameter, message", [
    ("epochs=two", "parameter 'epochs' must be of type int"),
    ("seeds=0,x", "parameter 'seeds' must be of type int"),
    ("eps=nan", "parameter 'eps' must be a finite number"),
])
def test_the_book_command_checks_values_before_any_chapter(parameter, message, capsys):
    _fails_clearly(runner.main, ["--only", "01", "-p", parameter, "--no-build"], capsys, message)


def test_the_book_command_checks_its_output_folder(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    _fails_clearly(runner.main, ["--only", "01", "--out", str(tmp_path / "a_file"), "--no-build"], capsys, "is a file")


@pytest.mark.parametrize("args, message", [
    (["--grid", "seed=a"], "parameter 'seed' must be of type int"),
    (["--grid", "seed=0", "-p", "eps=inf"], "parameter 'eps' must be a finite number"),
    (["--grid", "seed=0", "--out", "{d}/a_file"], "a_file is a file"),
])
def test_the_sweep_command_checks_values_and_output_before_any_point(args, message, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    argv = [str(ROOT / "notebooks" / "robustness_point.ipynb"), "--out", str(tmp_path / "sweep")]
    argv += [a.format(d=tmp_path) for a in args]
    _fails_clearly(sweep.main, argv, capsys, message)
    assert not (tmp_path / "sweep").exists()


def test_the_sweep_command_refuses_a_file_that_is_not_a_notebook(tmp_path, capsys):
    (tmp_path / "study.py").write_text("print('hello')\n")
    _fails_clearly(sweep.main, [str(tmp_path / "study.py"), "--grid", "seed=0", "--out", str(tmp_path / "out")],
                   capsys, "is not a Jupyter notebook")
