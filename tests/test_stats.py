"""The statistics and the verdict rules, on constructed tables where the answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from igan_utils.book import findings, studies, verdicts
from igan_utils.method import stats


def _images(p: float, n: int, rng) -> str:
    return "".join("r" if v else "x" for v in rng.random(n) < p)


def _study(avg, max_, masked_avg=None, masked_max=None) -> pd.DataFrame:
    """One row per model: ``avg``/``max_`` are per-seed robust-image strings."""
    masked = {"avg": masked_avg or (False,) * len(avg), "max": masked_max or (False,) * len(max_)}
    rows = [{"data_label": "d", "method": "pgd", "pool": pool, "seed": s, "robust_images": flags,
             "masked": masked[pool][s], "model": f"{pool}/pgd/s{s}"}
            for pool, column in (("avg", avg), ("max", max_)) for s, flags in enumerate(column)]
    return pd.DataFrame(rows)


def _compare(table, **kwargs):
    return verdicts.compare_pools(table, ["data_label", "method"], resamples=500, **kwargs).iloc[0]


def test_both_sides_unmasked_use_the_paired_two_level_interval():
    rng = np.random.default_rng(0)
    better = _compare(_study([_images(0.8, 400, rng) for _ in range(5)], [_images(0.6, 400, rng) for _ in range(5)]))
    assert better["evidence"] == "estimates" and better["winner"] == "avg" and 0.15 < better["avg_minus_max"] < 0.25
    assert better["verdict"] == "avg higher, beyond the interval"
    same = _compare(_study([_images(0.7, 400, rng) for _ in range(5)], [_images(0.7, 400, rng) for _ in range(5)]))
    assert same["winner"] == "none" and same["ci_lo"] < 0 < same["ci_hi"]
    few = _compare(_study([_images(0.7, 50, rng) for _ in range(5)], [_images(0.7, 50, rng) for _ in range(5)]))
    assert few["ci_hi"] - few["ci_lo"] > same["ci_hi"] - same["ci_lo"]  # fewer test images, wider interval


def test_one_masked_side_gives_a_one_sided_verdict_only_below_the_other_interval():
    rng = np.random.default_rng(1)
    low = [_images(0.45, 500, rng) for _ in range(5)]
    high = [_images(0.85, 500, rng) for _ in range(5)]
    row = _compare(_study(low, high, masked_avg=(True, True, True, True, False)))
    assert row["evidence"] == "bound on avg" and row["winner"] == "max"
    assert row["at_least"] == pytest.approx(row["max_lo"] - row["avg_hi"]) and row["at_least"] > 0.3
    assert row["verdict"].startswith("max higher by at least")
    sentence = findings.comparison_sentence(row, data_label="MNIST-10k", method="adversarial (PGD)", attack="AA")
    assert "max pooling is more robust than average pooling by at least" in sentence
    assert "upper bound" in sentence and "4 of its 5 models failed a masking check" in sentence
    assert "500 test images per model" in sentence and "95% intervals" in sentence and "**" not in sentence
    # a masked side whose bound reaches into the other side's interval: no verdict, and why
    close = _compare(_study([_images(0.84, 500, rng) for _ in range(5)], high, masked_avg=(True,) * 5))
    assert close["winner"] == "" and close["verdict"].startswith("no verdict: avg's upper bound reaches")
    text = findings.comparison_sentence(close, data_label="d", method="t", attack="AA")
    assert "no verdict" in text and "would decide it" in text
    # the masked side can be max pooling too: the verdict then goes to average pooling
    flipped = _compare(_study(high, low, masked_max=(True,) * 5))
    assert flipped["evidence"] == "bound on max" and flipped["winner"] == "avg"


def test_the_boundary_needs_a_strict_gap():
    # constant images make every bootstrap interval a point: the masked side's upper end (0) then
    # equals the other side's lower end (0), a gap of exactly zero, which is no verdict
    level = _compare(_study(["x" * 40] * 3, ["x" * 40] * 3, masked_avg=(True,) * 3))
    assert level["avg_hi"] == level["max_lo"] == 0 and level["winner"] == "" and np.isnan(level["at_least"])
    apart = _compare(_study(["x" * 40] * 3, ["r" * 40] * 3, masked_avg=(True,) * 3))
    assert apart["winner"] == "max" and apart["at_least"] == pytest.approx(1.0)


def test_a_stronger_attack_on_the_masked_side_only_makes_the_verdict_more_certain():
    rng = np.random.default_rng(3)
    avg = [_images(0.55, 400, rng) for _ in range(5)]
    high = [_images(0.80, 400, rng) for _ in range(5)]
    before = _compare(_study(avg, high, masked_avg=(True,) * 5))
    # a stronger attack breaks some more of the masked models' images (r -> x), never the reverse
    weaker = ["".join("x" if c == "r" and rng.random() < 0.3 else c for c in s) for s in avg]
    after = _compare(_study(weaker, high, masked_avg=(True,) * 5))
    assert before["winner"] == after["winner"] == "max"
    assert after["avg_hi"] <= before["avg_hi"] and after["at_least"] >= before["at_least"]
    # and a bound that gave no verdict can only come to one, never to the opposite one
    tight = [_images(0.78, 400, rng) for _ in range(5)]
    undecided = _compare(_study(tight, high, masked_avg=(True,) * 5))
    lowered = _compare(_study(["".join("x" if c == "r" and rng.random() < 0.5 else c for c in s) for s in tight], high,
                              masked_avg=(True,) * 5))
    assert undecided["winner"] == "" and lowered["winner"] in ("", "max")


def test_no_verdict_when_both_sides_are_masked_or_seeds_are_too_few():
    both = _compare(_study(["r" * 50] * 3, ["x" * 50] * 3, masked_avg=(True,) * 3, masked_max=(True, False, False)))
    assert both["evidence"] == "bounds" and both["winner"] == "" and "both" in both["verdict"]
    assert "only upper bounds" in findings.comparison_sentence(both, data_label="d", method="t", attack="AA")
    two = _compare(_study(["r" * 50] * 2, ["x" * 50] * 2))
    assert two["winner"] == "" and two["verdict"] == "no verdict: 2 avg/max seed pairs, a verdict needs 3"
    masked_two = _compare(_study(["x" * 50] * 2, ["r" * 50] * 2, masked_avg=(True, True)))
    assert masked_two["winner"] == "" and masked_two["verdict"].startswith("no verdict: 2 seeds")
    three = _compare(_study(["r" * 400] * 3, ["x" * 400] * 3))
    assert stats.MIN_VERDICT_SEEDS == 3 and three["winner"] == "avg"
    assert _compare(_study(["r" * 400] * 3, ["x" * 400] * 3), min_seeds=4)["winner"] == ""
    natural = _study(["r" * 30] * 3, ["x" * 30] * 3)
    natural["masked"] = np.nan  # natural training is not checked: its numbers are estimates
    assert _compare(natural)["evidence"] == "estimates"


def _looks(tables: dict, looks):
    """verdicts.sequential_comparison over constructed tables: ``tables[n]`` is the study on n images."""
    asked = []

    def evaluate(n):
        asked.append(n)
        return tables[n]

    found = verdicts.sequential_comparison(evaluate, looks, lambda t, alpha: verdicts.compare_pools(
        t, ["data_label", "method"], resamples=500, alpha=alpha))
    return (*found, asked)


def test_a_clear_difference_stops_at_the_first_look():
    rng = np.random.default_rng(5)
    full = _study([_images(0.45, 1000, rng) for _ in range(5)], [_images(0.85, 1000, rng) for _ in range(5)],
                  masked_avg=(True,) * 5)
    prefix = lambda n: full.assign(robust_images=full["robust_images"].str[:n])  # noqa: E731
    table, comparison, history, asked = _looks({200: prefix(200), 1000: full}, [200, 1000])
    assert asked == [200] and len(history) == 1 and comparison["winner"].iloc[0] == "max"
    row = comparison.iloc[0]
    assert row["level"] == pytest.approx(0.975) and row["n"] == 200 and (row["look"], row["looks"]) == (1, 2)
    text = findings.comparison_sentence(row, data_label="d", method="adversarial (PGD)", attack="AA")
    assert "200 test images per model, look 1 of 2" in text and "97.5% intervals" in text


def test_a_tie_runs_to_the_cap_at_the_corrected_level():
    rng = np.random.default_rng(6)
    full = _study([_images(0.7, 1000, rng) for _ in range(5)], [_images(0.7, 1000, rng) for _ in range(5)])
    prefix = lambda n: full.assign(robust_images=full["robust_images"].str[:n])  # noqa: E731
    table, comparison, history, asked = _looks({n: prefix(n) for n in (200, 500, 1000)}, [200, 500, 1000])
    assert asked == [200, 500, 1000] and list(history["n"]) == [200, 500, 1000]
    assert comparison["winner"].iloc[0] == "none" and comparison["n"].iloc[0] == 1000
    assert comparison["level"].iloc[0] == pytest.approx(1 - 0.05 / 3)
    # the corrected interval is wider than the uncorrected one on the same table
    plain = verdicts.compare_pools(full, ["data_label", "method"], resamples=500).iloc[0]
    assert comparison["ci_hi"].iloc[0] - comparison["ci_lo"].iloc[0] > plain["ci_hi"] - plain["ci_lo"]


def test_an_undecided_first_look_goes_on_and_may_decide_later():
    rng = np.random.default_rng(7)
    # 3 seeds whose difference of 8 points is too small for 40 images but clear on 2,000
    full = _study([_images(0.62, 2000, rng) for _ in range(3)], [_images(0.70, 2000, rng) for _ in range(3)])
    prefix = lambda n: full.assign(robust_images=full["robust_images"].str[:n])  # noqa: E731
    _, comparison, history, asked = _looks({40: prefix(40), 2000: full}, [40, 2000])
    assert asked == [40, 2000] and list(history["winner"]) == ["none", "max"]
    assert not verdicts.decided(comparison.assign(winner="none")) and verdicts.decided(comparison)


def test_looks_must_increase():
    for looks in ([], [0, 10], [200, 200], [500, 200]):
        with pytest.raises(ValueError, match="looks must be increasing"):
            verdicts.sequential_comparison(lambda n: None, looks, lambda t, a: None)


def test_bootstrap_refuses_too_few_resamples():
    with pytest.raises(ValueError, match="resamples must be an integer >= 20"):
        stats.two_level_bootstrap(np.ones((3, 10)), resamples=1)


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_exact_p_of_a_perfect_ordering_is_two_over_n_factorial(n):
    found = stats.spearman_test(range(n), range(n))
    assert found["rho"] == pytest.approx(1.0)
    assert found["p_value"] == pytest.approx(2 / math.factorial(n)) == pytest.approx(found["min_p"])
    assert found["method"].startswith("exact")


def test_four_taps_cannot_support_the_hypothesis():
    # the case a user met: rho = 1 over 4 taps was called support with p = 0; exactly, p = 2/24
    frame = pd.DataFrame({"model": "m", "dIL": [0.1, 0.2, 0.3, 0.4], "V": [0.0, 0.1, 0.2, 0.5]})
    row = verdicts.tap_correlations(frame, ["model"]).iloc[0]
    assert row["p_value"] == pytest.approx(1 / 12) and row["verdict"] == "cannot test"
    sentence = findings.correlation_sentence(row)
    assert "p = 0.083" in sentence and "even a perfect ordering gives p = 0.083 > 0.05" in sentence
    assert sentence.endswith("which cannot test the hypothesis")


def test_unfaithful_taps_are_left_out_of_the_correlation_and_named():
    frame = pd.DataFrame({"model": "m", "tap": list("abcde"), "dIL": [0.1, 0.2, 0.3, 0.4, 0.5],
                          "V": [0.0, 0.1, 0.2, 0.5, 0.9], "faithful": [True, False, True, True, True]})
    row = verdicts.tap_correlations(frame, ["model"]).iloc[0]
    assert row["taps"] == 4 and row["left_out"] == "b"
    assert "over 4 faithful taps" in findings.correlation_sentence(row) and "left out: b" in findings.correlation_sentence(row)


def test_permutation_p_values_agree_with_known_cases_and_monte_carlo_beyond_nine():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(4)
    x, y = rng.random(8), rng.random(8)
    exact = stats.spearman_test(x, y)
    assert exact["rho"] == pytest.approx(spearmanr(x, y)[0])
    assert 0 < exact["p_value"] <= 1
    x, y = np.arange(12), np.arange(12) + rng.normal(0, 2, 12)
    sampled = stats.spearman_test(x, y)
    assert sampled["method"].startswith("Monte Carlo") and sampled["p_value"] < 0.01
    assert verdicts.correlation_verdict(sampled["rho"], sampled["p_value"], min_p=sampled["min_p"]) == "supports"
    assert verdicts.correlation_verdict(0.3, 0.4) == "leans towards"
    assert verdicts.correlation_verdict(-0.95, 0.01) == "contradicts"
    assert verdicts.correlation_verdict(float("nan"), float("nan")) == "cannot test"
    assert np.isnan(stats.spearman(pd.DataFrame({"dIL": [1, 2], "V": [1, 2]}))[0])


def test_correlation_over_seeds_resamples_seeds():
    table = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "loss": [1, 2, 1.1, 2.1, 0.9, 1.9],
                          "robust": [0.9, 0.5, 0.85, 0.45, 0.95, 0.55]})
    found = stats.correlation_over_seeds(table, "loss", "robust", resamples=200)
    assert found["rho"] < -0.8 and found["ci_hi"] < 0 and found["seeds"] == 3 and found["models"] == 6
    assert np.isnan(stats.correlation_over_seeds(table.head(2), "loss", "robust")["rho"])



def test_rule_9_tests_the_variants_means_by_exact_permutation():
    """Five variants × three seeds: only a perfect ordering of the five means reaches p < 0.05
    (2 of 5! = 120 orders), so a near-perfect one stays inconclusive."""
    rows = [{"pool": v, "seed": s, "loss": v_i + 0.01 * s, "robust": 0.9 - 0.1 * r_i + 0.001 * s}
            for v_i, (v, r_i) in enumerate(zip("abcde", [0, 1, 2, 3, 4])) for s in range(3)]
    perfect = stats.correlation_over_seeds(pd.DataFrame(rows), "loss", "robust", resamples=50, group="pool")
    assert perfect["groups"] == 5 and perfect["group_rho"] == -1 and perfect["group_p"] == pytest.approx(2 / 120)
    assert verdicts.family_verdict(perfect) == "supports"
    swapped = pd.DataFrame(rows).assign(robust=lambda t: t["robust"].where(~t["pool"].isin(["d", "e"]),
                                                                           t["robust"][::-1].values))
    near = stats.correlation_over_seeds(swapped.sort_values("pool"), "loss", "robust", resamples=50, group="pool")
    assert verdicts.family_verdict(near) in ("is inconclusive about", "supports")
    few = stats.correlation_over_seeds(pd.DataFrame(rows).query("pool in ['a', 'b']"), "loss", "robust", group="pool")
    assert verdicts.family_verdict(few) == "cannot test"


@pytest.mark.parametrize("models, group_rho, group_p, verdict", [
    (2, -1.0, 0.017, "too few to test"),
    (15, -1.0, 0.017, "supports the hypothesis"),
    (15, 1.0, 0.017, "contradicts the hypothesis"),
    (15, -0.9, 0.083, "is inconclusive about the hypothesis"),
])
def test_the_family_sentence_gives_rule_9_s_verdict(models, group_rho, group_p, verdict):
    row = pd.Series({"data_label": "MNIST-10k", "models": models, "seeds": 3, "rho": group_rho, "ci_lo": -1.0,
                     "ci_hi": 0.2, "group_rho": group_rho, "group_p": group_p, "group_min_p": 2 / 120, "groups": 5})
    text = findings.family_sentence(row, variants=["max", "avg", "strided", "blur", "lp"])
    assert verdict in text and "MNIST-10k" in text
    assert ("interval over seeds [-1.00, +0.20]" in text) == (models >= 3)
    # the verdict under the rule as first written (the whole seed interval negative) is said beside it
    assert ("as first written" in text and text.endswith("would be inconclusive.")) == (models >= 3)
    if models >= 3:
        negative = findings.family_sentence({**row, "ci_hi": -0.1}, variants=["max", "avg", "strided", "blur", "lp"])
        assert negative.endswith("would be supported.")


def _recipes(avg_masked: dict, epochs: int = 4) -> pd.DataFrame:
    """Two seeds per recipe and pooling; ``avg_masked``: recipe method → masked flags of its avg seeds."""
    rows = []
    for method, flags in avg_masked.items():
        for seed, masked in enumerate(flags):
            rows.append({"adv_method": method, "adv_epochs": epochs, "pool": "avg", "seed": seed, "masked": masked,
                         "robust_acc": 0.5 if masked else 0.8, "gap": 0.3 if masked else 0.02})
            rows.append({"adv_method": method, "adv_epochs": epochs, "pool": "max", "seed": seed, "masked": False,
                         "robust_acc": 0.83, "gap": 0.03})
    return pd.DataFrame(rows)


def test_the_recipe_sentence_names_a_recipe_that_unmasks_average_pooling_in_every_seed():
    summary = verdicts.recipe_summary(_recipes({"pgd": [True, True], "trades": [False, False]}))
    assert summary.set_index(["adv_method", "pool"]).loc[("pgd", "avg"), "masked"] == 2
    text = findings.recipe_sentence(summary, images=200)
    assert text.startswith("Under TRADES × 4 epochs every average pooling model passes")
    assert "PGD × 4 epochs: 2 of 2 masked, worst case at most 50.0 %" in text and "200 test images" in text
    assert "TRADES × 4 epochs: 0 of 2 masked, worst case 80.0 %" in text  # estimates: no "at most"


def test_the_recipe_sentence_says_when_masking_persists_or_is_only_partly_removed():
    persists = findings.recipe_sentence(verdicts.recipe_summary(_recipes({"pgd": [True, True], "trades": [True, True]})),
                                     images=200)
    assert persists.startswith("Every average pooling model is masked under every recipe tried")
    partly = findings.recipe_sentence(verdicts.recipe_summary(_recipes({"pgd": [True, True], "trades": [False, True]})),
                                   images=200)
    assert partly.startswith("Some average pooling models pass") and "one-sided" in partly
    one_seed = verdicts.recipe_summary(_recipes({"trades": [False]}))
    assert not findings.recipe_sentence(one_seed, images=200).startswith("Under")  # one seed decides nothing


def test_the_recipe_sentence_says_whether_masking_shrinks_with_training_length():
    def sentence(by_epochs: dict) -> str:
        table = pd.concat([_recipes({"pgd": flags}, epochs=e) for e, flags in by_epochs.items()], ignore_index=True)
        return findings.recipe_sentence(verdicts.recipe_summary(table), images=200)

    shrinks = sentence({4: [True, True], 8: [False, True], 16: [False, False]})
    assert ("Average pooling under PGD: 2 of 2 masked and a gap of at least 30.0 points at 4 epochs, 1 of 2 masked and "
            "a gap of at least 16.0 points at 8 epochs, 0 of 2 masked and a gap of 2.0 points at 16 epochs; the masking "
            "shrinks with PGD training.") in shrinks
    assert shrinks.startswith("Under PGD × 16 epochs every average pooling model passes")
    assert "persists with PGD training up to 16 epochs" in sentence({4: [True, True], 16: [True, True]})
    assert "does not reduce the masking" in sentence({4: [False, True], 16: [True, False]})
    assert "does not reduce" in sentence({4: [False, False], 8: [False, False]})  # nothing to shrink
    assert "under PGD:" not in sentence({4: [True, True]})  # one length: no trend to tell


def _diagnosis(v_by_seed: dict[int, dict[str, float]], *, n: int = 100, half_width: float = 0.05,
               unfaithful: tuple[str, ...] = ()) -> pd.DataFrame:
    """A diagnosis table of one adversarially trained model under the independent judge: V per seed
    and tap, with a bootstrap interval of ± ``half_width``."""
    rows = [{"dataset": "mnist", "method": "pgd", "pool": "max", "judge": "independent", "seed": seed, "tap": tap,
             "n": n, "V": v, "V_lo": v - half_width, "V_hi": v + half_width, "faithful": tap not in unfaithful}
            for seed, taps in v_by_seed.items() for tap, v in {"input": 0.3, **taps}.items()]
    return pd.DataFrame(rows)


BY = ["dataset", "method", "pool", "judge"]


def test_rule_10_names_a_layer_only_when_seeds_agree_on_it():
    agreeing = _diagnosis({s: {"conv1": 0.2, "pool1": 0.1 + 0.01 * s, "fc1": 0.05} for s in range(3)})
    row = verdicts.layer_verdict(agreeing, BY).iloc[0]
    assert (row["verdict"], row["named"], row["seeds"], row["agreement"]) == ("named", "conv1", 3, 1.0)
    assert row["kendall_w"] == pytest.approx(1.0)  # every seed orders the three taps alike
    assert row["examples_needed"] is None  # nothing left to separate
    # two of three seeds put pool1 first, but conv1 keeps the largest mean: no layer is both
    split = _diagnosis({0: {"conv1": 0.5, "pool1": 0.1}, 1: {"conv1": 0.1, "pool1": 0.2}, 2: {"conv1": 0.1, "pool1": 0.2}})
    row = verdicts.layer_verdict(split, BY).iloc[0]
    assert (row["verdict"], row["first"], row["top"]) == ("not identifiable", "conv1", ["conv1", "pool1", "pool1"])
    # the top tap of every seed, but unfaithful: the rule reads only faithful taps
    hidden = _diagnosis({s: {"conv1": 0.2, "pool1": 0.1, "fc1": 0.05} for s in range(3)}, unfaithful=("conv1",))
    assert verdicts.layer_verdict(hidden, BY).iloc[0]["named"] == "pool1"


def test_rule_10_with_one_seed_names_nothing_and_says_what_size_would_do():
    one = _diagnosis({0: {"conv1": 0.20, "pool1": 0.15, "fc1": 0.05}}, n=30, half_width=0.1).drop(columns="seed")
    row = verdicts.layer_verdict(one, BY).iloc[0]
    assert (row["verdict"], row["seeds"], row["first"], row["second"]) == ("not identifiable", 1, "conv1", "pool1")
    # gap 0.05, standard error of the difference √2 · 0.1/1.96 at n = 30: 2.80 standard errors need n ≈ 30 · 8.2²
    se = np.sqrt(2) * 0.1 / 1.96
    assert row["examples_needed"] == int(np.ceil(30 * (verdicts.Z_POWER * se / 0.05) ** 2))
    wider = verdicts.layer_verdict(_diagnosis({0: {"conv1": 0.20, "pool1": 0.10}}, n=30, half_width=0.1), BY)
    assert wider.iloc[0]["examples_needed"] < row["examples_needed"]  # a larger gap needs fewer examples


def test_claim_3_comes_from_rule_10_not_a_fixed_phrase():
    agreeing = _diagnosis({s: {"conv1": 0.2, "pool1": 0.1, "fc1": 0.05} for s in range(3)}).assign(source="PGD")
    line = findings.diagnosis_claim(verdicts.layer_verdict(agreeing, [*BY, "source"]))
    assert line.startswith("Named by rule 10: max pooling, PGD's x′: conv1 (top in 3 of 3 seeds)")
    one = agreeing[agreeing["seed"] == 0].assign(V_lo=lambda t: t["V"] - 0.1, V_hi=lambda t: t["V"] + 0.1)
    line = findings.diagnosis_claim(verdicts.layer_verdict(one, [*BY, "source"]))
    assert line.startswith("Not identifiable at this size (rule 10): 1 seed(s) where the rule needs 3, 100–100")
    assert "Yes" not in line and "per seed" in line
    split = _diagnosis({0: {"conv1": 0.5, "pool1": 0.1}, 1: {"conv1": 0.1, "pool1": 0.2}, 2: {"conv1": 0.1, "pool1": 0.2}})
    line = findings.diagnosis_claim(verdicts.layer_verdict(split.assign(source="PGD"), [*BY, "source"]))
    assert line.startswith("Not identifiable at this size (rule 10): over 3 seeds no faithful layer is first")


def test_detectable_difference_is_the_power_of_a_no_difference():
    # a 95 % interval of half-width 1.96 standard errors: 1.96 + 0.84 = 2.80 standard errors at power 0.8
    assert stats.detectable_difference(-0.0196, 0.0196) == pytest.approx(0.028016, abs=1e-5)
    wide, narrow = (stats.detectable_difference(-w, w, level=0.975) for w in (0.02, 0.01))
    assert wide == pytest.approx(2 * narrow) and stats.detectable_difference(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="lo <= hi"):
        stats.detectable_difference(0.1, -0.1)


def test_a_no_difference_says_what_difference_it_could_have_seen():
    flat = _study(["r" * 90 + "x" * 10] * 4, ["r" * 89 + "x" * 11] * 4)
    row = _compare(flat)
    assert row["winner"] == "none"
    sentence = findings.comparison_sentence(row, data_label="d", method="pgd", attack="PGD")
    expected = 100 * stats.detectable_difference(row["ci_lo"], row["ci_hi"], level=row["level"])
    assert f"finds a true difference of {expected:.1f} points with probability 0.8" in sentence


def _family(slope: float, levels=("avg", "lp", "lp3", "lp4", "lp8", "max"), seeds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"data_label": "d", "method": "pgd", "pool": pool, "seed": s,
                          "robust_acc": 0.8 + slope * i + 0.002 * rng.standard_normal(), "il": 0.01 * i + 0.001 * s}
                         for i, pool in enumerate(levels) for s in range(seeds)])


def test_rule_11_reads_the_trend_over_every_model_in_the_knobs_order():
    by = ["data_label", "method"]
    levels = ["avg", "lp", "lp3", "lp4", "lp8", "max"]
    down = verdicts.knob_trend(_family(-0.01), levels, by, measures=("robust_acc", "il"))
    row = down.set_index("measure").loc["robust_acc"]
    assert (row["verdict"], row["models"], row["levels"]) == ("supports", 18, 6) and row["rho"] < -0.9
    assert down.set_index("measure").loc["il", "rho"] > 0.9  # the knob orders the information loss too
    assert verdicts.knob_trend(_family(+0.01), levels, by).iloc[0]["verdict"] == "contradicts"
    assert verdicts.knob_trend(_family(0.0), levels, by).iloc[0]["verdict"] == "not decided"
    # the same models in another order of the knob give the opposite sign: the order is the hypothesis
    assert verdicts.knob_trend(_family(-0.01), levels[::-1], by).iloc[0]["verdict"] == "contradicts"
    two = _family(-0.01, levels=("avg", "max"))
    assert verdicts.knob_trend(two, ["avg", "max"], by).iloc[0]["verdict"] == "cannot test"


def test_claim_4_under_rule_11_names_the_test_and_what_it_could_detect():
    table = verdicts.knob_trend(_family(0.0), ["avg", "lp", "lp3", "lp4", "lp8", "max"], ["data_label", "method"])
    line = findings.trend_claim(table, detectable="detects |ρ| ≥ 0.6 with power 0.8")
    assert line.startswith("Not decided by rule 11 on d (robust accuracy over the 6 levels of Lp pooling: ρ = ")
    assert "18 unmasked models; detects |ρ| ≥ 0.6 with power 0.8)" in line
    assert "rule 11 does not decide the claim" in findings.trend(table)


def test_kendalls_w_is_one_for_equal_orders_and_low_for_reversed_ones():
    assert stats.kendalls_w([[1, 2, 3, 4], [10, 20, 30, 40], [0.1, 0.2, 0.3, 0.4]]) == pytest.approx(1.0)
    assert stats.kendalls_w([[1, 2, 3, 4], [4, 3, 2, 1]]) == pytest.approx(0.0)  # two opposite orders
    # scipy-free check by the formula: 3 raters, ranks (1,2,3), (1,3,2), (2,1,3): sums 4, 6, 8; S = 8
    assert stats.kendalls_w([[1, 2, 3], [1, 3, 2], [2, 1, 3]]) == pytest.approx(12 * 8 / (9 * 24))
    assert np.isnan(stats.kendalls_w([[1, 2, 3]])) and np.isnan(stats.kendalls_w([[1, np.nan], [1, 2]]))


def test_seed_spread_sets_the_spread_across_seeds_beside_the_within_seed_interval():
    table = _diagnosis({0: {"conv1": 0.1}, 1: {"conv1": 0.3}, 2: {"conv1": 0.2}}, half_width=0.05)
    row = studies.seed_spread(table, ["dataset", "method", "pool"]).iloc[0]
    assert (row["tap"], row["seeds"]) == ("conv1", 3)
    assert row["V"] == pytest.approx(0.2) and row["V_sd_seeds"] == pytest.approx(0.1)
    assert row["V_halfwidth"] == pytest.approx(0.05)


def _rates(passing: dict[tuple[str, str], bool]) -> pd.DataFrame:
    """Rule 12's pass rates: one row per dataset, interpreters and plant kind (the null kind failing
    where ``passing`` says False)."""
    return pd.DataFrame([{"dataset": ds, "interpreters": name, "kind": kind,
                          "passed": ok or kind == "flip"} for (ds, name), ok in passing.items()
                         for kind in ("flip", "null")])


def test_rule_13_reads_the_first_interpreters_that_pass_the_plants():
    clean, twins, plain_twins, inversion = verdicts.INTERPRETER_CANDIDATES
    choice = verdicts.interpreter_choice(_rates({("mnist", "exact"): True, ("mnist", clean): False, ("mnist", twins): True,
                                                 ("mnist", plain_twins): True,
                                                 ("fashion", "exact"): True, ("fashion", clean): True,
                                                 ("fashion", twins): True, ("cifar", clean): False,
                                                 ("cifar", twins): False, ("cifar", inversion): False,
                                                 ("svhn", clean): False, ("svhn", plain_twins): False,
                                                 ("svhn", inversion): True})).set_index("dataset")
    assert choice.loc["mnist", ["interpreters", "reads", "validated"]].tolist() == [twins, twins, True]  # in rule 13's order
    assert choice.loc["fashion", "interpreters"] == clean  # the simpler ones first
    assert choice.loc["svhn", "interpreters"] == inversion and choice.loc["svhn", "validated"]  # the last resort
    assert pd.isna(choice.loc["cifar", "interpreters"]) and choice.loc["cifar", "reads"] == clean and not choice.loc["cifar", "validated"]
    # exact interpreters passing validates the diagnosis, not the generators: they are never chosen
    assert verdicts.interpreter_choice(_rates({("mnist", "exact"): True, ("mnist", clean): False})).iloc[0]["validated"] == False


def test_rule_13_withholds_claim_3_where_the_interpreters_failed_the_plants():
    clean, twins, *_ = verdicts.INTERPRETER_CANDIDATES
    agreeing = _diagnosis({s: {"conv1": 0.2, "pool1": 0.1, "fc1": 0.05} for s in range(3)}).assign(source="PGD")
    other = agreeing.assign(dataset="fashion")
    verdict = verdicts.layer_verdict(pd.concat([agreeing, other]), [*BY, "source"])
    choice = verdicts.interpreter_choice(_rates({("mnist", clean): False, ("mnist", twins): False, ("fashion", twins): True}))
    withheld = verdicts.withhold_unvalidated(verdict, choice).set_index("dataset")
    assert withheld.loc["mnist", "verdict"] == verdicts.UNVALIDATED and pd.isna(withheld.loc["mnist", "named"])
    assert withheld.loc["fashion", "named"] == "conv1"  # validated: rule 10's verdict stays
    line = findings.diagnosis_claim(withheld.reset_index())
    assert line.startswith("No layer named on mnist (rule 13): no candidate interpreter passed the planted check")
    assert "; on fashion: Named by rule 10: max pooling, PGD's x′: conv1" in line
    alone = verdicts.withhold_unvalidated(verdicts.layer_verdict(agreeing, [*BY, "source"]), choice)
    assert "Named" not in findings.diagnosis_claim(alone)
    text = findings.interpreter_choice(choice, {"mnist": "MNIST-10k", "fashion": "Fashion-MNIST"})
    assert "On MNIST-10k no candidate interpreter passed" in text
    assert f"On Fashion-MNIST the diagnosis reads {twins} interpreters (rule 13)." in text


def test_rule_13s_interpreters_differ_only_as_named():
    from igan_utils.book import profiles, studies
    P = profiles.resolve("04_diagnosis", "smoke")
    clean, twins, plain_twins = (studies.diagnosis_gan(P, "mnist", 0, name) for name in verdicts.INTERPRETER_CANDIDATES[:3])
    assert (clean.adv_share, twins.adv_share, plain_twins.adv_share) == (0.0, studies.MIXED_SHARE, studies.MIXED_SHARE)
    assert twins.adv_eps == plain_twins.adv_eps > 0 and clean.lambda_cls == twins.lambda_cls > 0 == plain_twins.lambda_cls
    with pytest.raises(ValueError, match="interpreters must be one of"):
        studies.diagnosis_gan(P, "mnist", 0, "InterpretGAN, robust")
    with pytest.raises(ValueError, match="interpreters must be one of"):
        studies.diagnosis_gan(P, "mnist", 0, verdicts.FEATURE_INVERSION)  # not a GAN
