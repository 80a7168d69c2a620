"""Seeds of one recipe trained as one computation (``batched_training``): the same models as one at a
time within stated tolerances, a step whose operations do not grow with the number of models, and
store keys that keep batched and sequential models apart."""

import dataclasses

import pytest
import torch
from conftest import KernelCounter

from igan_utils.book.store import Checkpoint, Store
from igan_utils.method import attacks, batched_training, models, training

# Tolerances, fixed before the comparison was run. Natural training shares every random draw with
# the sequential loop, so only the summation order differs; adversarial training draws its starting
# noise from one stream for the group, so models differ a little more.
NATURAL_WEIGHT_TOL = 1e-3
ADVERSARIAL_WEIGHT_TOL = 0.05
ADVERSARIAL_ACCURACY_TOL = 0.05


def _configs(method, seeds=(0, 1), epochs=1, **kw):
    if method != "natural":
        kw = {"eps": 0.3, "steps": 2, "step_size": 0.2, **kw}
    return [training.TrainConfig("mnist", "small_cnn", "max", s, method, epochs, 32, 1e-3, **kw) for s in seeds]


def _max_weight_difference(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def small(mnist):
    return mnist.train.take(slice(0, 128)), mnist.test.take(slice(0, 200))


def test_stacked_models_give_each_model_its_own_logits():
    nets = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        nets.append(models.build("small_cnn", "blur"))  # blur: a model with a buffer
    stacked = batched_training.StackedModels(nets)
    x = torch.rand(3 * 4, 1, 28, 28)
    expected = torch.cat([net(x[4 * m:4 * (m + 1)]) for m, net in enumerate(nets)])
    torch.testing.assert_close(stacked(x), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cannot be split evenly over 3 models"):
        stacked(torch.rand(4, 1, 28, 28))


def test_natural_batched_training_gives_the_sequential_models(small):
    train, _ = small
    configs = _configs("natural")
    batched = batched_training.train_classifiers(configs, train, progress=False)
    for config, (model, history) in zip(configs, batched):
        alone, alone_history = training.train_classifier(config, train, progress=False)
        assert _max_weight_difference(model, alone) <= NATURAL_WEIGHT_TOL
        assert history[0]["train_acc"] == pytest.approx(alone_history[0]["train_acc"], abs=1 / 128)


def test_adversarial_batched_training_gives_close_models(small):
    train, test = small
    x, y = test.tensors()
    configs = _configs("pgd")
    for config, (model, _) in zip(configs, batched_training.train_classifiers(configs, train, progress=False)):
        alone, _ = training.train_classifier(config, train, progress=False)
        assert _max_weight_difference(model, alone) <= ADVERSARIAL_WEIGHT_TOL
        assert abs(attacks.accuracy(model, x, y) - attacks.accuracy(alone, x, y)) <= ADVERSARIAL_ACCURACY_TOL


def test_trades_batched_training_keeps_each_model_its_own_pairs(small):
    """TRADES feeds clean and adversarial images together; each model must get its own pair."""
    train, test = small
    x, y = test.tensors()
    configs = _configs("trades", beta=6.0)
    for config, (model, _) in zip(configs, batched_training.train_classifiers(configs, train, progress=False)):
        alone, _ = training.train_classifier(config, train, progress=False)
        assert _max_weight_difference(model, alone) <= ADVERSARIAL_WEIGHT_TOL
        assert abs(attacks.accuracy(model, x, y) - attacks.accuracy(alone, x, y)) <= ADVERSARIAL_ACCURACY_TOL


def _ops(train, seeds, steps):
    with KernelCounter() as counter:
        batched_training.train_classifiers(_configs("pgd", seeds), train.take(slice(0, 32 * steps)), progress=False)
    return counter.count


def test_the_operations_of_a_training_step_do_not_grow_with_the_number_of_models(small):
    """Operations per step = ops(2 steps) − ops(1 step); two models or four, the same count. (One model
    differs by a few views and copies: vmap over a single model lays its weights out differently.)"""
    train, _ = small
    per_step = {len(seeds): _ops(train, seeds, 2) - _ops(train, seeds, 1) for seeds in ((0, 1), (0, 1, 2, 3))}
    assert per_step[2] > 0
    assert per_step[4] == per_step[2], per_step


def test_an_interrupted_batched_training_resumes_to_the_same_models(small, tmp_path):
    train, _ = small
    configs = _configs("natural", epochs=2)
    whole = batched_training.train_classifiers(configs, train, progress=False)
    checkpoint = Checkpoint(tmp_path / "partial.pt")
    with pytest.raises(_Stopped):
        batched_training.train_classifiers(configs, train, progress=False, checkpoint=_StopAfterSave(checkpoint))
    resumed = batched_training.train_classifiers(configs, train, progress=False, checkpoint=checkpoint)
    for (a, history_a), (b, history_b) in zip(whole, resumed):
        assert _max_weight_difference(a, b) == 0
        assert history_a == history_b


class _StopAfterSave:
    """A checkpoint whose first save ends the run, as a kill would."""

    def __init__(self, inner):
        self.inner = inner

    def load(self):
        return self.inner.load()

    def save(self, state):
        self.inner.save(state)
        raise _Stopped


class _Stopped(Exception):
    pass


def test_batched_models_are_stored_apart_and_reused(small, tmp_path):
    train, _ = small
    store = Store(tmp_path)
    configs = _configs("natural", seeds=(0, 1, 2))
    trained = batched_training.get_or_train_many(configs, train, store=store, batched=True, progress=False)
    assert [m.config.seed for m in trained] == [0, 1, 2]
    assert all(m.config.batched and m.config.key()["batched"] for m in trained)
    assert "batched" not in configs[0].key()  # sequential keys as before batched training existed
    assert not store.exists("classifier", dataclasses.replace(configs[0], data=train.fingerprint()).key())
    again = batched_training.get_or_train_many(configs, train, store=store, batched=True, progress=False)
    ledger = store.ledger()
    assert ledger["made"].tolist() == [True] * 3 + [False] * 3
    assert ledger["batched"].dropna().tolist() == [3, 3, 3]
    for a, b in zip(trained, again):
        assert _max_weight_difference(a.model, b.model) == 0
        assert a.seconds == b.seconds > 0
    with pytest.raises(ValueError, match="batched model: train it with batched_training.get_or_train_many"):
        training.get_or_train(dataclasses.replace(configs[0], seed=7, batched=True), train, store=store)


def test_sequential_is_the_default_off_cuda_and_keeps_the_old_keys(small, tmp_path):
    train, _ = small
    store = Store(tmp_path)
    trained = batched_training.get_or_train_many(_configs("natural", seeds=(0,)), train, store=store,
                                                 device=torch.device("cpu"), progress=False)
    assert not trained[0].config.batched
    assert "batched" not in trained[0].config.key()


@pytest.mark.parametrize("change, message", [
    ({"pool": "avg"}, "differ only in their seed; max/pgd/s0 and avg/pgd/s1 also differ in pool"),
    ({"seed": 0}, r"distinct seeds, got \[0, 0\]"),
])
def test_models_trained_together_must_share_their_recipe(change, message):
    first, second = _configs("pgd")
    with pytest.raises(ValueError, match=message):
        batched_training.check_group([first, dataclasses.replace(second, **change)])
