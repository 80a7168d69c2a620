"""The diagnosis where its answer is known: planted vulnerable layers, and cascading randomisation."""

import pandas as pd
import pytest
import torch
from torch import nn

from igan_utils.book import verdicts
from igan_utils.book.store import Store
from igan_utils.method import interpretgan, layers, planted, randomisation, taps


class _Binarise(nn.Module):
    def forward(self, x):
        return (x > 0.5).float()


@pytest.fixture(scope="module")
def linear_judge(mnist):
    """A logistic regression on binarised pixels: a judge independent of the CNN inside the plants,
    that perturbations of 0.3 rarely fool (an MNIST pixel is nearly 0 or 1; transfer stays low)."""
    x, y = mnist.train.tensors()
    judge = nn.Sequential(_Binarise(), nn.Flatten(), nn.Linear(784, 10))
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(150):
        index = torch.randint(len(x), (256,))
        loss = nn.functional.cross_entropy(judge(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return judge.eval()


def test_a_flip_plant_changes_the_class_at_its_planted_stage_only(mnist, natural_model):
    prototypes = planted.class_prototypes(mnist.train)
    assert prototypes.shape == (10, 1, 28, 28)
    plant = planted.plant_flip(natural_model, prototypes, at="stage3")
    x, y = mnist.test.take(slice(0, 50)).tensors()
    found = taps.activations(plant, x)
    assert torch.equal(found["stage1"], x) and torch.equal(found["stage2"], x)  # exact until the plant
    assert torch.equal(found["stage3"], found["stage4"])
    assert (plant(x).argmax(1) == natural_model(x).argmax(1)).float().mean() > 0.95  # it decides as C does
    assert torch.equal(planted.plant_null(natural_model)(x), natural_model(x))  # null: C is the head
    with pytest.raises(ValueError, match="one of the stages"):
        planted.plant_flip(natural_model, prototypes, at="stage9")
    with pytest.raises(ValueError, match="distinct names"):
        planted.plant_null(natural_model, stages=["a", "a"])


def test_the_diagnosis_finds_every_planted_layer_and_none_in_null_plants(mnist, natural_model, linear_judge):
    table = planted.planted_check(natural_model, linear_judge, mnist.train, mnist.test, eps=0.3, plants=4,
                                  per_plant=30, bootstrap=100)
    assert list(table["kind"]) == ["flip"] * 4 + ["null"] * 4
    flips = table[table["kind"] == "flip"]
    assert list(flips["planted"]) == list(planted.STAGES) and (flips["n"] > 10).all()
    assert flips["found"].all(), flips.to_string()
    assert (flips["top"] == flips["planted"]).all() and (flips["V_top_lo"] > 0).all()
    assert table.loc[table["kind"] == "null", "found"].all()
    rates = planted.pass_rates(table)
    assert rates["passed"].all() and list(rates["share"]) == [1.0, 1.0]
    half = table.assign(found=[True, False, True, False] + [True] * 4)
    assert list(planted.pass_rates(half)["passed"]) == [False, True]  # 2 of 4 is below 9 of 10


def test_feature_inversion_reproduces_a_stage_that_passes_the_image_on(mnist, natural_model):
    plant = planted.plant_null(natural_model)
    x, _ = mnist.test.take(slice(0, 20)).tensors()
    x_adv = (x + 0.3 * torch.randn_like(x).sign()).clamp(0, 1)  # off the clean distribution, as x′ is
    found = interpretgan.inversion_interpreters(plant, ["stage1", "stage4"], (1, 28, 28))
    assert [i.z_shape for i in found.values()] == [(1, 28, 28)] * 2 and found["stage1"].history == []
    natural_model.train()
    inverted = interpretgan.interpret(plant, found, x_adv)
    assert natural_model.training and all(p.requires_grad for p in natural_model.parameters())  # kept
    assert (inverted["stage1"] - x_adv).abs().mean() < 0.04  # the trained generators were 0.12-0.18 off
    again = interpretgan.inversion_interpreters(plant, ["stage1"], (1, 28, 28))
    assert torch.equal(interpretgan.interpret(plant, again, x_adv)["stage1"], inverted["stage1"])  # seeded
    with pytest.raises(ValueError, match="steps must be >= 1"):
        interpretgan.inversion_interpreters(plant, None, (1, 28, 28), steps=0)


def test_feature_inversion_keeps_its_images_in_a_store(mnist, natural_model, tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    x, _ = mnist.test.take(slice(0, 8)).tensors()
    first = interpretgan.interpret(natural_model, interpretgan.inversion_interpreters(
        natural_model, ["conv2"], (1, 28, 28), steps=5, store=store), x)["conv2"]

    def no_descent(*args, **kwargs):
        raise AssertionError("descended again although the store holds these images")

    monkeypatch.setattr(interpretgan, "_descend", no_descent)
    again = interpretgan.interpret(natural_model, interpretgan.inversion_interpreters(
        natural_model, ["conv2"], (1, 28, 28), steps=5, store=store), x)["conv2"]
    assert torch.equal(again, first)
    assert list(store.ledger()["made"]) == [True, False]
    with pytest.raises(AssertionError, match="descended again"):  # other activations: a new artifact
        interpretgan.interpret(natural_model, interpretgan.inversion_interpreters(
            natural_model, ["conv2"], (1, 28, 28), steps=5, store=store), x[:4])


def test_the_diagnosis_with_feature_inversion_finds_planted_layers(mnist, natural_model, linear_judge):
    table = planted.planted_check(natural_model, linear_judge, mnist.train, mnist.test, eps=0.3, plants=2,
                                  per_plant=20, bootstrap=100, stages=("stage1", "stage2"),
                                  interpreters=lambda plant: interpretgan.inversion_interpreters(plant, None, (1, 28, 28),
                                                                                                 steps=60))
    assert table["found"].all(), table.to_string()


def test_rule_10_names_no_layer_when_every_v_is_zero():
    # a null plant over three seeds: V = 0 at every tap; naming the first tap of a tie would be wrong
    rows = [{"seed": s, "tap": t, "V": 0.0, "V_lo": 0.0, "V_hi": 0.0, "n": 50, "faithful": True, "model": "null"}
            for s in range(3) for t in planted.STAGES]
    verdict = verdicts.layer_verdict(pd.DataFrame(rows), ["model"]).iloc[0]
    assert verdict["verdict"] == "not identifiable" and verdict["named"] is None
    planted_rows = [{**r, "V": 0.4 if r["tap"] == "stage2" else 0.0} for r in rows]
    assert verdicts.layer_verdict(pd.DataFrame(planted_rows), ["model"]).iloc[0]["named"] == "stage2"


def test_cascade_and_randomised_reinitialise_from_the_top(natural_model):
    levels = randomisation.cascade(natural_model)
    assert levels[0] == ["logits"] and levels[1] == ["fc2", "logits"] and levels[-1][0] == "conv1"
    assert randomisation.cascade(natural_model, down_to="fc1")[-1] == ["fc1", "fc2", "logits"]
    with pytest.raises(ValueError, match="down_to"):
        randomisation.cascade(natural_model, down_to="pool1")  # max pooling has no weights
    fresh = randomisation.randomised(natural_model, ["fc2", "logits"], seed=1)
    assert torch.equal(fresh.conv1[0].weight, natural_model.conv1[0].weight)
    assert not torch.equal(fresh.logits.weight, natural_model.logits.weight)
    assert torch.equal(randomisation.randomised(natural_model, ["logits"], seed=1).logits.weight,
                       randomisation.randomised(natural_model, ["logits"], seed=1).logits.weight)
    with pytest.raises(ValueError, match="unknown layer"):
        randomisation.randomised(natural_model, ["nope"])


def test_randomisation_check_runs_the_diagnosis_again_on_each_level(mnist, natural_model, linear_judge):
    x, y = mnist.test.take(slice(0, 120)).tensors()
    diagnosed = ["fc1"]
    attack = lambda model, x, y: layers.confident_attacks(model, x, y, eps=0.3, steps=5, step_size=0.08)
    levels = [["logits"], ["fc1", "fc2", "logits"]]
    table = randomisation.randomisation_check(
        natural_model, linear_judge, x, y, taps=diagnosed, attack=attack, levels=levels, bootstrap=100,
        interpreters=lambda model: layers.decoder_interpreters(model, diagnosed, mnist.train, steps=10))
    assert list(table["level"]) == [0, 1, 2] and list(table["randomised"]) == ["none", "logits", "fc1"]
    assert list(table["taps_randomised"]) == [0, 0, 1] and not table.loc[0, "disjoint"]
    summary, passed = randomisation.randomisation_verdict(table)
    assert list(summary["tested"]) == [False, bool(table.loc[2, "n"] >= randomisation.MIN_RANDOMISED_EXAMPLES)]
    assert passed == bool(summary.loc[summary["tested"], "differs"].all() and summary["tested"].any())
    # the verdict itself, on tables whose answer is known
    made = lambda disjoint, n=50: pd.DataFrame({"level": [0, 1], "randomised": ["none", "fc1"], "taps_randomised": [0, 1],
                                                "tap": "fc1", "n": [50, n], "V": 0.0, "V_lo": 0.0, "V_hi": 0.0,
                                                "disjoint": [False, disjoint]})
    assert randomisation.randomisation_verdict(made(True))[1] and not randomisation.randomisation_verdict(made(False))[1]
    assert not randomisation.randomisation_verdict(made(True, n=3))[1]  # nothing tested: no pass
