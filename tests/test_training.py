import pytest
import torch

from igan_utils import attacks, profiles, training
from igan_utils.store import Checkpoint, Store

CPU = torch.device("cpu")


def _config(**kw):
    base = dict(dataset="mnist", arch="small_cnn", pool="max", seed=0, method="natural", epochs=2,
                batch_size=100, lr=5e-3)
    return training.TrainConfig(**{**base, **kw})


def test_natural_training_learns(natural_model, test_batch):
    assert attacks.accuracy(natural_model, *test_batch) > 0.85


def test_history_has_validation_metrics(mnist):
    small = mnist.train.subset(300)
    _, history = training.train_classifier(_config(method="fgsm", eps=0.3, epochs=1), small, mnist.val,
                                           progress=False, device=CPU)
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_clean_acc", "val_pgd_acc"}


def test_same_seed_same_weights_other_seed_other_weights(mnist):
    small = mnist.train.subset(300)
    a, _ = training.train_classifier(_config(epochs=1), small, progress=False, device=CPU)
    b, _ = training.train_classifier(_config(epochs=1), small, progress=False, device=CPU)
    c, _ = training.train_classifier(_config(epochs=1, seed=1), small, progress=False, device=CPU)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.state_dict()["conv1.0.weight"], c.state_dict()["conv1.0.weight"])


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(mnist, tmp_path):
    small = mnist.train.subset(300)
    config = _config(method="pgd", eps=0.3, steps=2, step_size=0.15, epochs=3)
    whole, whole_history = training.train_classifier(config, small, progress=False, device=CPU)

    checkpoint = Checkpoint(tmp_path / "partial.pt")
    state = {}

    class StopAfterFirstSave(Checkpoint):
        def save(self, s):
            super().save(s)
            state["saved"] = True
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # as if killed right after the first epoch's checkpoint
        training.train_classifier(config, small, checkpoint=StopAfterFirstSave(checkpoint.path),
                                  progress=False, device=CPU)
    assert state["saved"] and checkpoint.load()["epoch"] == 0
    resumed, history = training.train_classifier(config, small, checkpoint=checkpoint, progress=False,
                                                 device=CPU)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history == whole_history
    assert all(torch.equal(p, q) for p, q in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_get_or_train_reuses_the_store(mnist, tmp_path):
    store = Store(tmp_path)
    small = mnist.train.subset(200)
    first = training.get_or_train(_config(epochs=1), small, store=store, progress=False, device=CPU)
    second = training.get_or_train(_config(epochs=1), small, store=store, progress=False, device=CPU)
    assert first.history == second.history
    assert len(list((tmp_path / "classifier").glob("*.pt"))) == 1
    other_data = training.get_or_train(_config(epochs=1), mnist.train.subset(201), store=store,
                                       progress=False, device=CPU)
    assert len(list((tmp_path / "classifier").glob("*.pt"))) == 2  # other data, other model
    assert other_data.config.data != first.config.data


@pytest.mark.parametrize("kw, message", [
    ({"method": "trades"}, "unknown training method 'trades'"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"method": "fgsm", "eps": 0.0}, "needs eps > 0"),
    ({"method": "pgd", "eps": 0.3, "steps": 0}, "PGD training needs steps >= 1"),
])
def test_bad_training_config(kw, message):
    with pytest.raises(ValueError, match=message):
        _config(**kw)


def test_config_for_follows_the_profile():
    quick = profiles.resolve("01_classification", "quick")
    config = training.config_for(quick, "mnist", "avg", 1, adversarial=True)
    assert (config.method, config.eps, config.epochs, config.pool, config.seed) == ("pgd", 0.3, 4, "avg", 1)
    assert (config.steps, config.step_size) == (10, pytest.approx(0.4 / 10))  # reference path: 40 × 0.01
    paper = profiles.resolve("01_classification", "paper")
    config = training.config_for(paper, "cifar10", "max", 0, adversarial=True)
    assert (config.arch, config.method, config.steps) == ("cifar_cnn", "pgd", 10)
    assert config.step_size == pytest.approx(2 / 255)
