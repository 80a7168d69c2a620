import pandas as pd
import pytest
import torch

from igan_utils.book import verdicts
from igan_utils.book.store import Store
from igan_utils.method import autoattack, interpretgan, layers
from igan_utils.method.interpretgan import GanConfig

CPU = torch.device("cpu")


def test_vulnerability_is_the_increment_of_judged_error():
    # 4 adversarial examples; columns: input, tap a, tap b
    errors = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    table = layers.vulnerability(errors, ["a", "b"], bootstrap=200)
    assert table["tap"].tolist() == ["input", "a", "b"]
    assert table["R"].tolist() == [0.25, 0.5, 0.75]
    assert table["V"].tolist() == [0.25, 0.25, 0.25]
    assert table["first_flip"].tolist() == [0.25, 0.25, 0.25]  # the 4th never flips
    assert (table["V_lo"] <= table["V"]).all() and (table["V"] <= table["V_hi"]).all()


def test_first_flip_differs_from_v_when_labels_flip_back():
    errors = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    table = layers.vulnerability(errors, ["a", "b"], bootstrap=20)
    assert table["V"].tolist() == [0.5, 0.0, 0.0]
    assert table["first_flip"].tolist() == [0.5, 0.5, 0.0]


def test_no_adversarial_examples_gives_an_empty_but_valid_table():
    table = layers.vulnerability(torch.zeros(0, 3, dtype=torch.bool), ["a", "b"])
    assert len(table) == 3 and (table["n"] == 0).all() and table["V"].isna().all()
    with pytest.raises(ValueError, match="expected 1 \\+ 2 taps"):
        layers.vulnerability(torch.zeros(5, 4, dtype=torch.bool), ["a", "b"])


@pytest.fixture(scope="module")
def interpreters(natural_model, mnist):
    return {tap: interpretgan.train_interpreter(natural_model, tap, mnist.train, GanConfig(steps=30, batch_size=16),
                                                progress=False, device=CPU) for tap in ("pool1", "fc2")}


def test_diagnose_a_model(natural_model, interpreters, test_batch):
    x, y = test_batch
    attacked = layers.successful_attacks(natural_model, x[:60], y[:60], eps=0.3,
                                         ensemble=layers.default_attack(steps=10, step_size=0.075))
    table = layers.vulnerability_table(natural_model, interpreters, {"self": natural_model}, attacked, bootstrap=50)
    assert table["tap"].tolist() == ["input", "pool1", "fc2"]
    assert (table["n"] > 40).all()  # PGD breaks a natural model
    assert table.loc[0, "R"] == 1.0  # the attacked model is fooled by its own adversarial examples
    assert abs(table["V"].sum() - table["R"].iloc[-1]) < 1e-9
    assert (table.dropna(subset=["feature_change"])["feature_change"] > 0).all()
    margin = layers.margins(natural_model, attacked.x_adv, attacked.y)
    assert (margin > 0).all() and table["margin"].iloc[0] == pytest.approx(margin.median().item())  # all misclassified
    assert (layers.margins(natural_model, attacked.x, attacked.y) < 0).all()  # their clean twins are classified right


@pytest.mark.parametrize("attack", [autoattack.Ensemble(("apgd-ce",), apgd_iters=5, pgd_steps=2, pgd_step_size=1e-7),
                                    "pgd"])
def test_an_attack_that_fools_no_image_gives_an_empty_table_and_says_so(natural_model, interpreters, test_batch,
                                                                        attack):
    x, y = test_batch
    if attack == "pgd":
        attacked = layers.confident_attacks(natural_model, x[:20], y[:20], eps=1e-6, steps=2, step_size=1e-7)
    else:
        attacked = layers.successful_attacks(natural_model, x[:20], y[:20], eps=1e-6, ensemble=attack)
    with pytest.warns(UserWarning, match="no successful adversarial examples among 20 images.*the table has no rows"):
        table = layers.vulnerability_table(natural_model, interpreters, {"self": natural_model}, attacked)
    assert table.empty and list(table.columns) == list(layers.TABLE_COLUMNS)
    assert layers.most_vulnerable(table, ["judge"]).empty


def test_taps_without_interpreters_are_named(natural_model, interpreters, test_batch):
    x, y = test_batch
    attacked = layers.confident_attacks(natural_model, x[:4], y[:4], eps=0.3, steps=1, step_size=0.3)
    with pytest.raises(ValueError, match="taps without interpreters: conv1, logits"):
        layers.vulnerability_table(natural_model, interpreters, {"self": natural_model}, attacked,
                                   taps=["conv1", "pool1", "logits"])


def test_information_loss_grows_with_depth_and_is_cached(natural_model, mnist, tmp_path):
    store = Store(tmp_path)
    test = mnist.test.take(slice(0, 100))
    il = layers.information_loss(natural_model, ["conv1", "logits"], mnist.train, test, steps=60, store=store,
                                    progress=False)
    assert il.loc[0, "decoder_mse"] < il.loc[1, "decoder_mse"]  # 10 logits keep less than 32 feature maps
    assert il.loc[0, "dIL"] == il.loc[0, "IL"] and il.loc[1, "dIL"] == pytest.approx(il.loc[1, "IL"] - il.loc[0, "IL"])
    again = layers.information_loss(natural_model, ["conv1", "logits"], mnist.train, test, steps=60, store=store,
                                       progress=False)
    pd.testing.assert_frame_equal(il, again)


def test_pool_comparison_reads_the_intervals():
    rows = [{"judge": "self", "tap": "pool1", "pool": "avg", "V": 0.1, "V_lo": 0.05, "V_hi": 0.15},
            {"judge": "self", "tap": "pool1", "pool": "max", "V": 0.3, "V_lo": 0.25, "V_hi": 0.35},
            {"judge": "self", "tap": "pool2", "pool": "avg", "V": 0.2, "V_lo": 0.1, "V_hi": 0.3},
            {"judge": "self", "tap": "pool2", "pool": "max", "V": 0.25, "V_lo": 0.15, "V_hi": 0.35}]
    found = verdicts.pool_comparison(pd.DataFrame(rows)).set_index("tap")["verdict"]
    assert found.to_dict() == {"pool1": "supports", "pool2": "is inconclusive about"}


def test_information_loss_is_the_tightest_monotone_bound(natural_model, mnist, tmp_path, monkeypatch):
    errors = iter([{"decoder_mse": mse, "decoder_1_minus_ssim": one_minus_ssim}  # what the store holds
                   for mse, one_minus_ssim in ((0.01, 0.3), (0.05, 0.6), (0.03, 0.5), (0.06, 0.7))])
    monkeypatch.setattr(Store, "get_or_create", lambda self, kind, key, compute, fmt: next(errors))
    il = layers.information_loss(natural_model, ["conv1", "conv2", "pool1", "fc1"], mnist.train, mnist.test,
                                    steps=1, store=Store(tmp_path), progress=False)
    # conv2's decoder (0.05) did worse than pool1's (0.03), a function of conv2: the bound is 0.03
    assert il["decoder_mse"].tolist() == [0.01, 0.05, 0.03, 0.06]
    assert il["IL"].tolist() == [0.01, 0.03, 0.03, 0.06]
    assert il["dIL"].tolist() == pytest.approx([0.01, 0.02, 0.0, 0.03])


def test_linear_information_loss_is_zero_for_an_invertible_layer_and_grows_with_pooling(mnist):
    model = torch.nn.Sequential()
    model.add_module("copy", torch.nn.Identity())
    model.add_module("avg2", torch.nn.AvgPool2d(2))
    model.add_module("avg4", torch.nn.AvgPool2d(2))
    model.add_module("flat", torch.nn.Flatten())
    model.add_module("logits", torch.nn.Linear(49, 10))
    train, test = mnist.train, mnist.test.take(slice(0, 100))  # more images than pixels: the identity is learnable
    found = layers.linear_information_loss(model, ["copy", "avg2", "avg4"], train, test).set_index("tap")
    assert found.loc["copy", "linear_mse"] < 1e-4
    assert found.loc["copy", "linear_mse"] < found.loc["avg2", "linear_mse"] < found.loc["avg4", "linear_mse"]
    x, _ = test.tensors()
    assert found.loc["avg4", "linear_mse"] < x.var(0).mean().item()  # better than predicting the mean image


def test_fidelity_flags_activations_far_off_the_clean_ones(natural_model, interpreters, test_batch):
    x, _ = test_batch
    clean = layers.fidelity(natural_model, interpreters, x[:40], x[40:80], ["pool1", "fc2"])
    assert clean["faithful"].all() and (clean["fidelity_ratio"] < layers.FIDELITY_FACTOR).all()
    # digits at 5 % contrast: pool1 activations of a size no clean image gives (measured ratio ≈ 12;
    # the relative error is scale-free, so it flags latents of the wrong size, not merely unusual ones)
    off = layers.fidelity(natural_model, interpreters, x[:40], 0.05 * x[40:80], ["pool1", "fc2"]).set_index("tap")
    assert not off.loc["pool1", "faithful"] and off.loc["pool1", "fidelity_ratio"] > layers.FIDELITY_FACTOR
    assert off["faithful_share"].between(0, 1).all()


def test_the_diagnosis_table_marks_each_taps_fidelity(natural_model, interpreters, test_batch):
    x, y = test_batch
    attacked = layers.successful_attacks(natural_model, x[:30], y[:30], eps=0.3,
                                         ensemble=layers.default_attack(steps=10, step_size=0.075))
    table = layers.vulnerability_table(natural_model, interpreters, {"self": natural_model}, attacked, bootstrap=20)
    taps = table[table["tap"] != layers.INPUT]
    assert taps["faithful"].notna().all() and taps["fidelity_ratio"].gt(0).all()
    assert table.loc[table["tap"] == layers.INPUT, "faithful"].isna().all()  # no interpretation there


def test_pool_comparison_cannot_decide_at_an_unfaithful_tap():
    rows = [{"judge": "self", "tap": "pool1", "pool": "avg", "V": 0.1, "V_lo": 0.05, "V_hi": 0.15, "faithful": False},
            {"judge": "self", "tap": "pool1", "pool": "max", "V": 0.3, "V_lo": 0.25, "V_hi": 0.35, "faithful": True}]
    assert verdicts.pool_comparison(pd.DataFrame(rows))["verdict"].iloc[0].startswith("cannot decide")


def _taps(faithful, agreement=(0.95, 0.95), ssim=(0.60, 0.60)):
    return pd.DataFrame({"tap": ["conv1", "conv2"], "faithful": faithful, "label_agreement": agreement, "ssim": ssim})


def test_mixing_is_adopted_only_when_it_fixes_every_unfaithful_tap_at_no_clean_cost():
    clean = _taps([False, True])
    assert verdicts.mixing_verdict(clean, _taps([True, True]))[0]
    assert verdicts.mixing_verdict(clean, _taps([True, True], agreement=(0.93, 0.95)))[0]  # a drop of 2 points: at the bound
    adopt, why = verdicts.mixing_verdict(clean, _taps([True, True], agreement=(0.95, 0.92)))
    assert not adopt and "at conv2" in why
    assert not verdicts.mixing_verdict(clean, _taps([True, True], ssim=(0.57, 0.60)))[0]
    adopt, why = verdicts.mixing_verdict(clean, _taps([False, True]))
    assert not adopt and "leaves conv1 unfaithful" in why
    adopt, why = verdicts.mixing_verdict(_taps([True, True]), _taps([True, True]))
    assert not adopt and "nothing to fix" in why


def test_x_adv_comes_from_the_ensemble_and_names_its_attacks(natural_model, interpreters, test_batch):
    x, y = test_batch
    small = autoattack.Ensemble(("apgd-ce", "apgd-t"), apgd_iters=20, targets=2, pgd_steps=2, pgd_step_size=0.01)
    found = layers.successful_attacks(natural_model, x[:30], y[:30], eps=0.3, ensemble=small)
    assert len(found.x_adv) == len(found.made_by) > 0 and set(found.made_by) <= {"pgd", "apgd-ce", "apgd-t"}
    assert (found.x_adv - found.x).abs().amax() <= 0.3 + 1e-6
    assert (natural_model(found.x_adv).argmax(1) != found.y).all()  # every x' fools the model
    assert "apgd-ce" in found.made_by  # two tiny PGD steps leave images that APGD then breaks
    assert "first success" in found.attack
    pgd_only = layers.confident_attacks(natural_model, x[:30], y[:30], eps=0.3, steps=2, step_size=0.01)
    assert len(pgd_only.x_adv) < len(found.x_adv) and set(pgd_only.made_by) == {"pgd"}
    assert (found.attacked, found.eps, pgd_only.attacked) == (30, 0.3, 30)


def test_a_stored_attack_is_made_once_and_read_back_identical(natural_model, test_batch, tmp_path, monkeypatch):
    # chapter 4's x′ are kept in the store, so that re-executing it from a full store attacks nothing
    x, y = test_batch
    store = Store(tmp_path)
    small = autoattack.Ensemble(("apgd-ce",), apgd_iters=5, pgd_steps=2, pgd_step_size=0.01)
    attacks = {"first success": lambda **s: layers.successful_attacks(natural_model, x[:30], y[:30], eps=0.3,
                                                                      ensemble=small, **s),
               "highest-loss PGD": lambda **s: layers.confident_attacks(natural_model, x[:30], y[:30], eps=0.3,
                                                                        steps=2, step_size=0.1, **s)}
    fresh = {name: attack() for name, attack in attacks.items()}
    made = {name: attack(store=store) for name, attack in attacks.items()}

    def no_attack(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(layers, "pgd", no_attack)
    monkeypatch.setattr(layers, "worst_case", no_attack)
    for name, attack in attacks.items():
        read = attack(store=store)
        for found in (made[name], read):
            assert torch.equal(found.x_adv, fresh[name].x_adv) and torch.equal(found.y, fresh[name].y)
            assert found.made_by == fresh[name].made_by and found.attacked == 30
    ledger = store.ledger()
    assert ledger["made"].tolist() == [True, True, False, False]  # two attacks made, each read once
    assert set(ledger["attacked"][0]) == {"pgd", "apgd-ce"} and ledger["attacked"][1] == {"pgd": 30}


def test_one_attack_serves_several_tables_and_attacks_nothing_again(natural_model, interpreters, test_batch,
                                                                    monkeypatch):
    x, y = test_batch
    attacked = layers.confident_attacks(natural_model, x[:30], y[:30], eps=0.3, steps=3, step_size=0.1)

    def no_attack(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(layers, "pgd", no_attack)
    monkeypatch.setattr(layers, "worst_case", no_attack)
    first = layers.vulnerability_table(natural_model, interpreters, {"self": natural_model}, attacked, bootstrap=50)
    again = layers.vulnerability_table(natural_model, interpreters, {"self": natural_model}, attacked, bootstrap=50)
    pd.testing.assert_frame_equal(first, again)
    reused = again
    assert (reused["n"] == len(attacked.x_adv)).all() and (reused["attacked"] == 30).all()


def test_mixed_interpreters_train_on_adversarial_twins_and_have_their_own_key(natural_model, mnist, tmp_path):
    store = Store(tmp_path)
    clean = GanConfig(steps=4, batch_size=8)
    mixed = GanConfig(steps=4, batch_size=8, adv_share=0.5, adv_eps=0.3, adv_steps=2)
    a = interpretgan.get_or_train_interpreter(natural_model, "fc2", mnist.train, clean, store=store, progress=False)
    b = interpretgan.get_or_train_interpreter(natural_model, "fc2", mnist.train, mixed, store=store, progress=False)
    assert len(list((tmp_path / "interpreter").glob("*.pt"))) == 2
    z = torch.randn(3, *a.z_shape)
    assert not torch.equal(a(z), b(z))
    with pytest.raises(ValueError, match="adv_share > 0 needs adv_eps"):
        GanConfig(steps=4, adv_share=0.5)
    with pytest.raises(ValueError, match="adv_share must be in"):
        GanConfig(steps=4, adv_share=1.5, adv_eps=0.3)
