"""AutoAttack evaluation and gradient-masking checks: a model built to mask gradients must be
flagged, a plain one must not; the worst case only ever lowers accuracy; intervals and verdicts."""

import dataclasses

import pandas as pd
import pytest
import torch
from torch import nn

from igan_utils.book.store import Store
from igan_utils.method import autoattack, masking, training

SMALL = autoattack.Ensemble(("apgd-ce", "apgd-t", "square"), apgd_iters=10, targets=2, square_queries=300,
                            pgd_steps=10, pgd_step_size=0.025)
CONFIG = training.TrainConfig(dataset="mnist", arch="small_cnn", pool="max", seed=0, method="natural",
                              epochs=1, batch_size=50, lr=5e-3)


class Quantised(nn.Module):
    """The same classifier behind a rounding of its input to 5 grey levels: zero gradients almost
    everywhere, and no robustness at all to an attack that does not need them (masking by design)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


def _checks(model, x, y, tmp_path, eps):
    trained = training.TrainedModel(model, CONFIG, [], 0.0)
    return masking.masking_checks(trained, x, y, eps=eps, large_eps=0.5, ensemble=SMALL,
                                     store=Store(tmp_path)).set_index("check")


def test_a_model_that_masks_its_gradients_is_flagged(natural_model, test_batch, tmp_path):
    x, y = (t[:60] for t in test_batch)
    checks = _checks(Quantised(natural_model), x, y, tmp_path, eps=0.1)
    assert not checks.loc["black-box vs white-box", "passed"]  # Square beats the stalled white-box attacks
    assert not checks.loc["AutoAttack's flags", "passed"]
    assert "zero gradient" in checks.loc["AutoAttack's flags", "detail"]
    assert masking.masked_models(checks.reset_index()) == {CONFIG.label}


def test_a_plain_model_passes_every_check(natural_model, test_batch, tmp_path):
    x, y = (t[:60] for t in test_batch)
    checks = _checks(natural_model, x, y, tmp_path, eps=0.1)
    assert checks["passed"].all(), checks[["accuracy", "baseline_accuracy", "detail"]]


def test_square_alone_is_skipped_only_where_it_cannot_change_the_check(natural_model, test_batch, tmp_path):
    x, y = (t[:60] for t in test_batch)
    store = Store(tmp_path)
    trained = training.TrainedModel(natural_model, CONFIG, [], 0.0)
    chain = autoattack.stored_worst_case(trained, x, y, eps=0.3, ensemble=SMALL, store=store)
    white = chain.robust_before(len(SMALL.order) - 1)
    assert not (white & ~chain.robust).any()  # at ε = 0.3 the white-box attacks leave Square nothing
    checks = masking.masking_checks(trained, x, y, eps=0.3, large_eps=0.5, ensemble=SMALL,
                                       store=store).set_index("check")
    row = checks.loc["black-box vs white-box"]
    assert "not run" in row["detail"] and row["passed"]
    made = store.ledger().query("kind == 'masking_checks'").iloc[-1]
    assert "square" not in made["attacked"]  # Square alone did not attack
    # what Square alone would have measured on the images the white-box attacks broke is no lower
    broken = (chain.clean & ~white).nonzero().flatten()
    alone = autoattack.worst_case(natural_model, x[broken], y[broken], eps=0.3, ensemble=SMALL.only("square"))
    assert (alone.robust.sum() + chain.robust.sum()) / len(x) >= row["accuracy"] >= row["baseline_accuracy"]


def test_checks_read_from_the_run_see_every_image_and_their_own_attacks_the_first_check_size(
        natural_model, test_batch, tmp_path):
    x, y = (t[:40] for t in test_batch)
    store = Store(tmp_path)
    trained = training.TrainedModel(natural_model, CONFIG, [], 0.0)
    chain = autoattack.stored_worst_case(trained, x, y, eps=0.05, ensemble=SMALL, store=store)
    white = chain.robust_before(len(SMALL.order) - 1)
    checks = masking.masking_checks(trained, x, y, eps=0.05, large_eps=0.5, ensemble=SMALL, store=store,
                                       check_size=20).set_index("check")

    def share(flags):  # an exact fraction, as the checks compute it
        return int(flags.sum()) / len(flags)

    gap = checks.loc["AutoAttack vs PGD"]
    assert gap["accuracy"] == share(white) and gap["baseline_accuracy"] == chain.after["pgd"]
    assert share(white) != share(white[:20])  # the two image sets tell apart here
    assert checks.loc["black-box vs white-box", "baseline_accuracy"] == share(white[:20])
    assert checks.loc["large eps", "baseline_accuracy"] == share(chain.clean[:20])
    assert "first 20 of 40 images" in checks.loc["large eps", "detail"]
    made = store.ledger().query("kind == 'masking_checks' and made")
    assert len(made) == 1 and made.iloc[0]["attacked"]["apgd-ce"] <= 20
    # checks whose own attacks see every image keep the key they had before check_size existed
    whole = masking.masking_checks(trained, x, y, eps=0.05, large_eps=0.5, ensemble=SMALL, store=store)
    again = masking.masking_checks(trained, x, y, eps=0.05, large_eps=0.5, ensemble=SMALL, store=store,
                                      check_size=40)
    pd.testing.assert_frame_equal(whole, again)
    assert len(store.ledger().query("kind == 'masking_checks' and made")) == 2
    with pytest.raises(ValueError, match="check_size must be at least 1"):
        masking.masking_checks(trained, x, y, eps=0.05, large_eps=0.5, ensemble=SMALL, store=store, check_size=0)


def test_the_worst_case_only_lowers_accuracy_and_every_example_is_valid(natural_model, test_batch):
    x, y = (t[:30] for t in test_batch)
    result = autoattack.worst_case(natural_model, x, y, eps=0.05, ensemble=SMALL)
    values = list(result.after.values())
    assert list(result.after) == ["clean", "pgd", "apgd-ce", "apgd-t", "square"]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert not (result.robust & ~result.clean).any()
    assert result.accuracy == values[-1] and set(result.seconds) == set(SMALL.order)
    # each attack of AutoAttack alone is no stronger than the ensemble
    for name in SMALL.attacks:
        alone = autoattack.worst_case(natural_model, x, y, eps=0.05, ensemble=SMALL.only(name))
        assert alone.accuracy >= result.accuracy


def test_the_global_random_state_is_left_alone(natural_model, test_batch):
    x, y = (t[:20] for t in test_batch)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    autoattack.worst_case(natural_model, x, y, eps=0.05, ensemble=dataclasses.replace(
        SMALL.only("apgd-ce", "square"), apgd_iters=3, square_queries=20))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("make, error, message", [
    (lambda x: (x, 0.1), TypeError, "eps must be a number"),
    (lambda x: (x * float("nan"), 0.1), ValueError, "NaN or infinite"),
    (lambda x: (x + 1, 0.1), ValueError, "x must lie in \\[0, 1\\]"),
    (lambda x: (x, 0.0), ValueError, "eps must be > 0"),
])
def test_bad_input_is_refused_before_any_attack(natural_model, test_batch, make, error, message):
    x, y = (t[:4] for t in test_batch)
    x, eps = make(x)
    eps = "0.1" if error is TypeError else eps
    with pytest.raises(error, match=message):
        autoattack.worst_case(natural_model, x, y, eps=eps, ensemble=SMALL)


def test_a_model_returning_a_tuple_is_refused(natural_model, test_batch):
    class Pair(nn.Module):
        def forward(self, x):
            return natural_model(x), x

    x, y = (t[:4] for t in test_batch)
    with pytest.raises(TypeError, match="must return a logits tensor"):
        autoattack.worst_case(Pair(), x, y, eps=0.1, ensemble=SMALL)


def test_ensemble_names_and_validation():
    assert autoattack.Ensemble().name == "AutoAttack standard"
    assert SMALL.name == "AutoAttack (APGD-CE-10, APGD-T×2, Square-300) + PGD-10×1"
    assert SMALL.only("square").order == ("square",)
    with pytest.raises(ValueError, match="unknown or no attacks"):
        autoattack.Ensemble(("apgd-ce", "deepfool"))


def test_mark_masked():
    checks = pd.DataFrame({"model": ["a", "a", "b"], "passed": [True, False, True]})
    table = masking.mark_masked(pd.DataFrame({"model": ["a", "b", "c"]}), checks)
    assert table["masked"].tolist()[:2] == [True, False] and pd.isna(table["masked"].iloc[2])


def test_accuracies_are_exact_fractions_so_a_gap_at_the_threshold_passes():
    # 171/200 - 161/200 is exactly 5 points; float32 means come out off in the 8th digit, either side
    clean = torch.ones(200, dtype=torch.bool)
    broken_by = torch.tensor([0] * 29 + [1] * 10 + [2] * 161)  # order: pgd, apgd-ce; 2 = robust
    after = autoattack._accuracies_after(clean, broken_by, ("pgd", "apgd-ce"))
    assert after == {"clean": 1.0, "pgd": 171 / 200, "apgd-ce": 161 / 200}
    assert masking.MAX_BELOW_PGD == 0.05
    assert masking._criterion("AutoAttack vs PGD", after["apgd-ce"], after["pgd"]) == ("at most 5% below PGD", True)
    # one image more below PGD fails
    assert not masking._criterion("AutoAttack vs PGD", 160 / 200, after["pgd"])[1]


def test_the_thresholds_are_applied_when_the_checks_are_read(natural_model, test_batch, tmp_path, monkeypatch):
    # the store keeps the measurements, so a changed threshold changes the verdict without new attacks
    x, y = (t[:30] for t in test_batch)
    checks = _checks(natural_model, x, y, tmp_path, eps=0.1)
    assert checks.loc["AutoAttack vs PGD", "passed"]
    monkeypatch.setattr(masking, "MAX_BELOW_PGD", -0.01)  # now even a gap of 0 is too large
    monkeypatch.setattr(masking, "worst_case", None)  # any new attack would fail
    monkeypatch.setattr(autoattack, "worst_case", None)
    again = _checks(natural_model, x, y, tmp_path, eps=0.1)
    assert again.drop(columns=["criterion", "passed"]).equals(checks.drop(columns=["criterion", "passed"]))
    assert not again.loc["AutoAttack vs PGD", "passed"]
    assert again.loc["AutoAttack vs PGD", "criterion"] == "at most -1% below PGD"


def test_labels_outside_the_models_classes_are_a_clear_error(natural_model, test_batch, mnist):
    x, y = (t[:4] for t in test_batch)
    y = y.clone()
    y[0] = 12
    with pytest.raises(ValueError, match=r"labels must lie in 0..9 \(the model returns 10 logits\).*12"):
        autoattack.worst_case(natural_model, x, y, eps=0.1, ensemble=SMALL)
    from igan_utils.method import attacks, data
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        attacks.robust_accuracy(natural_model, x, y, eps=0.1)
    wrong = data.ImageSet("mnist", mnist.val.images[:8], torch.full((8,), 10), mnist.val.classes)
    with pytest.raises(ValueError, match="labels must lie in 0..9.*10"):
        training.train_classifier(CONFIG, wrong, progress=False)


def test_masked_judged_from_stored_numbers_agrees_with_the_checks():
    checks = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "check": list(masking.MASKING_CHECKS) * 2,
                           "accuracy": [0.8, 0.79, 0.0, 0.0, 0.5, 0.70, 0.0, 1.0],
                           "baseline_accuracy": [0.8, 0.80, 0.9, 0.0, 0.7, 0.80, 0.9, 0.0]})
    checks["passed"] = [masking._criterion(c, a, b)[1] for c, a, b in
                        zip(checks["check"], checks["accuracy"], checks["baseline_accuracy"])]
    table = pd.DataFrame({"model": ["a", "b", "natural"]})
    stored = masking.with_check_numbers(table, checks)
    assert "masked" not in stored
    from_numbers = masking.masked_from_numbers(stored)
    assert from_numbers.tolist()[:2] == masking.mark_masked(table, checks)["masked"].tolist()[:2] == [False, True]
    assert pd.isna(from_numbers.iloc[2])  # a model without checks is not judged


def test_attack_failure_indicators_flag_the_quantised_model_and_not_a_plain_one(natural_model, test_batch):
    x, y = (t[:40] for t in test_batch)
    plain = masking.failure_indicators(natural_model, x, y, eps=0.1, steps=20).set_index("indicator")
    assert plain["passed"].all(), plain
    assert list(plain.index) == list(masking.INDICATORS)
    masked = masking.failure_indicators(Quantised(natural_model), x, y, eps=0.1, steps=20).set_index("indicator")
    assert not masked.loc["unconstrained attack failure", "passed"]  # zero gradients: even ε = 1 goes nowhere
    assert masked.loc["unconstrained attack failure", "value"] > 0.5


def test_incomplete_optimisation_is_flagged_when_the_attack_stops_too_early(natural_model, test_batch):
    x, y = (t[:40] for t in test_batch)
    # ten steps of 0.003 at eps = 0.3 (a path of a tenth of the radius): the losses are still climbing
    found = masking.failure_indicators(natural_model, x, y, eps=0.3, steps=10, step_size=0.003).set_index("indicator")
    assert not found.loc["incomplete optimisation", "passed"], found


def test_pgd_trace_records_every_iterate():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    from igan_utils.method import attacks
    run = attacks.pgd(model, x, y, 0.1, steps=7, restarts=2, trace=True)
    assert run.losses.shape == run.fooled.shape == (2 * 8, 5)
    with pytest.raises(ValueError, match="trace .* early_exit=False"):
        attacks.pgd(model, x, y, 0.1, steps=7, trace=True, early_exit=True)


def test_a_prefix_of_the_images_is_answered_exactly_from_the_store(natural_model, test_batch, tmp_path, monkeypatch):
    monkeypatch.setattr(autoattack, "CHUNK", 20)
    x, y = (t[:60] for t in test_batch)
    trained, store = training.TrainedModel(natural_model, CONFIG, [], 0.0), Store(tmp_path)
    whole = autoattack.worst_case(natural_model, x, y, eps=0.05, ensemble=SMALL)
    assert 0 < whole.accuracy < whole.after["clean"]  # some images break, some survive: a real test
    first = autoattack.stored_worst_case(trained, x[:40], y[:40], eps=0.05, ensemble=SMALL, store=store)
    more = autoattack.stored_worst_case(trained, x, y, eps=0.05, ensemble=SMALL, store=store)
    # an image's result does not depend on how many images were asked for
    assert torch.equal(first.broken_by, whole.broken_by[:40]) and torch.equal(more.broken_by, whole.broken_by)
    assert more.after == whole.after and more.flags == whole.flags
    made = store.ledger().query("kind == 'worst_case'")["made"].tolist()
    assert made == [True, True, False, False, True]  # the second request attacked only the last chunk
    assert sum(store.ledger().query("made")["attacked"].map(lambda a: a["pgd"])) == int(whole.clean.sum())
