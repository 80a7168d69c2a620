import pytest
import torch

from igan_utils.book import configs, profiles
from igan_utils.book.store import Checkpoint, Store
from igan_utils.method import attacks, training

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
    ({"method": "sgd"}, "unknown training method 'sgd'"),
    ({"method": "trades", "eps": 0.3, "steps": 2, "step_size": 0.1}, "TRADES training needs beta > 0"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"method": "fgsm", "eps": 0.0}, "needs eps > 0"),
    ({"method": "pgd", "eps": 0.3, "steps": 0}, "pgd training needs steps >= 1"),
])
def test_bad_training_config(kw, message):
    with pytest.raises(ValueError, match=message):
        _config(**kw)


def test_config_for_follows_the_profile():
    quick = profiles.resolve("01_classification", "quick")
    config = configs.train_config_for(quick, "mnist", "avg", 1, adversarial=True)
    assert (config.method, config.eps, config.epochs, config.pool, config.seed) == ("pgd", 0.3, 8, "avg", 1)
    assert (config.steps, config.step_size) == (10, pytest.approx(0.4 / 10))  # reference path: 40 × 0.01
    paper = profiles.resolve("01_classification", "paper")
    config = configs.train_config_for(paper, "cifar10", "max", 0, adversarial=True)
    assert (config.arch, config.method, config.steps) == ("cifar_cnn", "pgd", 10)
    assert config.step_size == pytest.approx(2 / 255)


def test_trades_trains_on_the_kl_adversary_and_keeps_older_keys(mnist):
    small = mnist.train.subset(1000)
    config = _config(method="trades", eps=0.3, steps=3, step_size=0.1, epochs=2, batch_size=50, beta=1.0)
    model, history = training.train_classifier(config, small, mnist.val, progress=False, device=CPU)
    assert history[-1]["val_clean_acc"] > 0.5  # it learns
    x, _ = mnist.val.take(slice(0, 20)).tensors()
    gen = torch.Generator().manual_seed(0)
    xa = training._trades_inputs(model, x, 0.3, 5, 0.1, gen)
    assert (xa - x).abs().amax() <= 0.3 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    kl = lambda a: torch.nn.functional.kl_div(model(a).log_softmax(1), model(x).softmax(1), reduction="sum")
    with torch.no_grad():
        assert kl(xa) > kl((x + 0.001 * torch.randn(x.shape, generator=gen)).clamp(0, 1))  # it climbs the KL
    assert "beta" in config.key() and "beta" not in _config(method="pgd", eps=0.3, steps=2, step_size=0.1).key()


def test_config_for_trades_takes_beta_from_the_parameters():
    quick = profiles.resolve("01_classification", "quick", adv_method="trades", trades_beta=1.0)
    config = configs.train_config_for(quick, "mnist", "avg", 0, adversarial=True)
    assert (config.method, config.beta, config.steps) == ("trades", 1.0, 10)
