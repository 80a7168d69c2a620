"""What the book says about its results: every sentence a chapter glues, one function per paragraph.

The rules that decide a verdict are in :mod:`igan_utils.book.verdicts` (and the masking rules, which
decide whether a number is an estimate or a bound, in :mod:`igan_utils.method.masking`); this module
only words what they decided, so a chapter cell is one call and no chapter builds a sentence itself.
Each chapter ends with "What we found", its :func:`answer` glued as ``answer``, and glues a one-line ``claim_N`` for every claim of the paper it
decides; :func:`claims_table` gathers those lines from executed chapters into the table that the
README and the book's front page share.

Plain tables in, plain text out: nothing here trains, attacks or reads the store.

Example::

    from igan_utils import findings
    text = findings.clean_accuracy(table, labels={"mnist": "MNIST-10k"}, pools=["max", "avg"])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..method.layers import INPUT
from ..method.randomisation import MIN_RANDOMISED_EXAMPLES
from ..method.stats import ALPHA, MIN_CORRELATION_MODELS, MIN_VERDICT_SEEDS, detectable_difference
from .verdicts import UNVALIDATED, family_verdict

__all__ = ["CLAIMS", "training_name", "clean_accuracy", "robust_accuracy", "masking", "attack_failure",
           "interpretation_quality", "judge", "mixing", "most_vulnerable", "diagnosis_summary", "attack_comparison",
           "information_vs_vulnerability", "pooling_layers", "pooling_verdict", "pooling_summary", "recipe", "family",
           "family_summary", "quality_claim", "rows_claim", "diagnosis_claim", "pooling_claim", "family_claim", "answer", "glued",
           "claims_table"]

# The paper's claims (its abstract's wording), the chapter that decides each, and the glue name of
# that chapter's one-line verdict.
CLAIMS = (
    ("1", "InterpretGAN turns a hidden layer's features back into an image", "03_interpretation"),
    ("2", "Interpretations show how a perturbation changes the features layer by layer", "03_interpretation"),
    ("3", "A diagnosis quantifies the vulnerability each layer contributes", "04_diagnosis"),
    ("4", "Layers that lose more information tend to be more vulnerable", "06_pooling_family"),
    ("5", "Average pooling (less information loss) is more robust than max pooling, for the networks studied",
     "05_sweeps"),
)


def training_name(method: str) -> str:
    """``natural`` as is, any adversarial method as "adversarial (PGD)"."""
    return "natural" if method == "natural" else f"adversarial ({method.upper()})"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def clean_accuracy(table: pd.DataFrame, *, labels: Mapping[str, str], pools: Sequence[str]) -> str:
    """Chapter 1: the mean clean test accuracy per dataset, training method and pooling of ``table``
    (columns ``dataset``, ``method``, ``pool``, ``clean_acc``)."""
    mean = table.groupby(["dataset", "method", "pool"], sort=False)["clean_acc"].mean()
    return " ".join(
        f"On {labels[ds]}, {training_name(method)} training reaches a clean test accuracy of "
        + " and ".join(f"{_percent(mean[ds, method, pool])} ({pool} pooling)" for pool in pools) + "."
        for ds in dict.fromkeys(table["dataset"]) for method in dict.fromkeys(table["method"]))


def robust_accuracy(robust: pd.DataFrame, *, labels: Mapping[str, str], attack: Mapping[str, str],
                    eps: Mapping[str, float], images: int, pools: Sequence[str]) -> str:
    """Chapter 2: the worst-case robust accuracy per dataset, training and pooling (mean over seeds),
    a masked model's number said as the upper bound it is."""
    means = robust.groupby(["dataset", "method", "pool"], sort=False)[["robust_acc", "masked"]].agg(
        {"robust_acc": "mean", "masked": "any"})

    def one(ds, method, pool):
        row = means.loc[(ds, method, pool)]
        bound = "at most " if row["masked"] else ""
        return f"{bound}{_percent(row['robust_acc'])} ({pool} pooling{', masked: an upper bound' if row['masked'] else ''})"

    return " ".join(
        f"Under {attack[ds]} at ε = {eps[ds]:.3g} on {images} {labels[ds]} test images, the "
        f"{'naturally' if method == 'natural' else 'adversarially'} trained models keep "
        + " and ".join(one(ds, method, pool) for pool in pools) + "."
        for ds in dict.fromkeys(robust["dataset"]) for method in dict.fromkeys(robust["method"]))


def masking(checks: pd.DataFrame) -> str:
    """Chapter 2: how many masking checks pass, and which models fail which (``checks``: one row per
    model and check, with ``model``, ``check`` and ``passed``)."""
    failed = checks[~checks["passed"].astype(bool)]
    head = f"{int(checks['passed'].sum())} of {len(checks)} masking checks pass; "
    if failed.empty:
        return head + "no model is masked."
    models = "; ".join(f"{model} ({', '.join(part['check'])})" for model, part in failed.groupby("model"))
    return (head + f"{failed['model'].nunique()} of {checks['model'].nunique()} models fail at least one and are "
            f"marked masked: {models}. Their robust accuracies count only as upper bounds on their robustness: "
            f"chapter 5's verdict uses them one-sided, chapters 4 and 6 leave them out of their comparisons.")


def attack_failure(indicators: pd.DataFrame) -> str:
    """Chapter 2: the indicators of attack failure that fire, per model, and what a fired one means for
    the numbers quoted (the masking verdict does not use them)."""
    failed = indicators[~indicators["passed"].astype(bool)]
    head = f"Over {indicators['model'].nunique()} adversarially trained models, "
    if failed.empty:
        return head + "no indicator of attack failure fires."
    return head + "indicators of attack failure fire for " + "; ".join(
        f"{model} ({', '.join(part['indicator'] + ': ' + part['detail'])})"
        for model, part in failed.groupby("model")) + (
        ". They are not part of the masking verdict (method page) but say that one PGD run had not finished "
        "its work on those images, which is why every robust accuracy quoted is the worst case of the whole "
        "AutoAttack ensemble, not PGD's.")


def interpretation_quality(quality: pd.DataFrame) -> str:
    """Chapter 3: label agreement of the interpretations at the two deepest taps, and the lowest
    agreement over all taps (``quality``: one row per model and tap). The judge here is the
    interpreted classifier itself, and the sentence says so; no target is set, since none is
    justified: chapter 4's independent judge is the test."""
    deepest = quality.groupby(["dataset", "pool"]).tail(2)
    lowest = deepest["label_agreement"].min()
    worst = quality.loc[quality["label_agreement"].idxmin()]
    return (f"On clean test images, the classifier itself gives the interpretations at the two deepest interpreted "
            f"taps ({', '.join(dict.fromkeys(deepest['tap']))}) the label of the original in at least "
            f"{_percent(lowest)} of cases; over all taps the lowest agreement is {_percent(worst['label_agreement'])} "
            f"(at {worst['tap']}).")


def judge(judges: Mapping[str, str], trusted: Mapping[str, bool], accuracy: pd.DataFrame,
          labels: Mapping[str, str]) -> str:
    """Chapter 4: the independent judge per dataset (its label in ``judges``), whether it passed every
    masking check, and its accuracy on clean images and on the interpretations of clean images
    (``accuracy``: ``dataset``, ``tap``, ``judge_accuracy``; tap ``input`` is the clean image)."""
    sentences = []
    for ds, name in judges.items():
        part = accuracy[accuracy["dataset"] == ds]
        taps = part[part["tap"] != INPUT]["judge_accuracy"]
        status = ("passes every masking check" if trusted[ds]
                  else "but it fails a masking check, so its verdicts are not trustworthy")
        sentences.append(
            f"The independent judge for {labels[ds]} is {name} (adversarially trained, {status}); it labels "
            f"{_percent(part[part['tap'] == INPUT]['judge_accuracy'].mean())} of the clean test images correctly "
            f"and, over all taps of the diagnosed models, between {_percent(part['judge_accuracy'].min())} and "
            f"{_percent(taps.max())} of their interpretations.")
    return " ".join(sentences)


def planted(rates: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Chapter 4: rule 12's plants (``rates``: ``planted.pass_rates`` by dataset and interpreters)."""
    sentences = []
    for (ds, interpreters), part in rates.groupby(["dataset", "interpreters"], sort=False):
        found = {r["kind"]: r for r in part.to_dict("records")}
        verdict = "passes" if part["passed"].all() else "fails"
        sentences.append(
            f"On {labels[ds]} with {interpreters} interpreters the diagnosis {verdict} rule 12: it finds the planted "
            f"layer in {found['flip']['found']} of {found['flip']['plants']} flip plants and no layer in "
            f"{found['null']['found']} of {found['null']['plants']} null plants.")
    return " ".join(sentences)


def interpreter_choice(choice: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Chapter 4: which interpreters the diagnosis reads (``choice``: ``verdicts.interpreter_choice``)."""
    sentences = []
    for r in choice.to_dict("records"):
        sentences.append(
            f"On {labels[r['dataset']]} the diagnosis reads {r['interpreters']} interpreters (rule 13)." if r["validated"]
            else f"On {labels[r['dataset']]} no candidate interpreter passed, so the tables below read "
                 f"{r['reads']} interpreters (clean images only) and claim 3 names no layer there (rule 13).")
    return " ".join(sentences)


def randomisation(levels: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Chapter 4: the cascading randomisation (``levels``: ``randomisation.randomisation_verdict``'s
    table per dataset, with ``dataset`` and ``passed``)."""
    sentences = []
    for ds, part in levels.groupby("dataset", sort=False):
        tested = part[part["tested"]]
        outcome = ("passes" if part["passed"].iloc[0] else "fails") if len(tested) else "cannot be judged"
        sentences.append(
            f"Re-initialising the {labels[ds]} adversarially trained model from the head down, the V profile "
            f"leaves the trained model's intervals at {int(tested['differs'].sum())} of the {len(tested)} levels "
            f"judged (each with at least {MIN_RANDOMISED_EXAMPLES} adversarial examples), so the check "
            f"{outcome}.")
    return " ".join(sentences)


def mixing(mixing_table: pd.DataFrame, *, reason: str, worst, labels: Mapping[str, str]) -> str:
    """Chapter 4: what interpreters trained on adversarial twins too change (``mixing_table``: one
    row per tap and ``interpreters`` "clean only" / "clean + adversarial", with ``R``,
    ``label_agreement`` and ``ssim``) for the model of ``worst`` (the diagnosis row of the least
    faithful tap: ``dataset``, ``method``, ``pool``, ``tap``, ``fidelity_ratio``), with rule 7's ``reason``."""
    by_tap = mixing_table.pivot_table(index="tap", columns="interpreters", sort=False,
                                      values=["R", "label_agreement", "ssim"])
    change = {v: by_tap[v, "clean + adversarial"] - by_tap[v, "clean only"] for v in ("R", "label_agreement", "ssim")}
    most = change["R"].abs().idxmax()
    return (f"For the {labels[worst['dataset']]} {worst['pool']}-pool model ({worst['method']} training), whose "
            f"interpretations of x′ are the least faithful (ratio {worst['fidelity_ratio']:.2f} at {worst['tap']}): "
            f"{reason}. Mixed interpreters change the independent judge's R by {change['R'].min():+.3f} to "
            f"{change['R'].max():+.3f} across taps (most at {most}, {by_tap.loc[most, ('R', 'clean only')]:.3f} → "
            f"{by_tap.loc[most, ('R', 'clean + adversarial')]:.3f}) and, on clean images, the label agreement by "
            f"{100 * change['label_agreement'].min():+.1f} to {100 * change['label_agreement'].max():+.1f} points and "
            f"the SSIM by {change['ssim'].min():+.3f} to {change['ssim'].max():+.3f}.")


def _taps(row) -> str:
    found = " and ".join(row["taps"]) if row["taps"] else "no faithful tap"
    return found + (f" (left out as unfaithful on x′: {', '.join(row['left_out'])})" if row["left_out"] else "")


def most_vulnerable(ranking: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Chapter 4: per model, where each judge finds the most vulnerability (``ranking``:
    ``layers.most_vulnerable`` by dataset, method, pool and judge)."""
    rows = {tuple(r[k] for k in ("dataset", "method", "pool", "judge")): r for r in ranking.to_dict("records")}
    models = dict.fromkeys(key[:3] for key in rows)
    return " ".join(
        f"For the {labels[ds]} {pool}-pool model ({method} training), the independent judge finds the most "
        f"vulnerability at {_taps(rows[ds, method, pool, 'independent'])}; with the model as its own judge, at "
        f"{_taps(rows[ds, method, pool, 'self'])}." for ds, method, pool in models)


def diagnosis_summary(ranking: pd.DataFrame, correlation: pd.DataFrame, pooling: pd.DataFrame, *,
                      layer_rule: pd.DataFrame | None = None, labels: Mapping[str, str] | None = None) -> str:
    """Chapter 4's answer in plain sentences, read above its details: where the independent judge
    finds the most vulnerability per dataset and training (``ranking``: ``layers.most_vulnerable``),
    rule 10's verdict over seeds (``layer_rule``: ``verdicts.layer_verdict``, when given), in how many
    models information loss predicts vulnerability over the taps (``correlation``:
    ``verdicts.tap_correlations``), and how the pooling-layer comparisons came out (``pooling``, as
    for :func:`pooling_layers`; masked rows count as left out). ``labels`` name the datasets."""
    independent = ranking[ranking["judge"] == "independent"]

    def where(rows: pd.DataFrame) -> str:
        return "; ".join(f"{training_name(method)} training, " + ", ".join(
            f"{_POOL_NAMES.get(r['pool'], r['pool'] + ' pooling')} at {' and '.join(r['taps']) or 'no faithful tap'}"
            for r in part.to_dict("records")) for method, part in rows.groupby("method", sort=False))

    if "dataset" in independent and independent["dataset"].nunique() > 1:
        found = "; ".join(f"on {(labels or {}).get(ds, ds)}, {where(part)}"
                          for ds, part in independent.groupby("dataset", sort=False))
    else:
        found = where(independent)
    unvalidated = layer_rule is not None and (layer_rule["verdict"] == UNVALIDATED).any()
    caveat = "With interpreters that failed the planted check (rule 13), the" if unvalidated else "The"
    text = f"**In short.** {caveat} independent judge sees the true class lost mostly at these layers: {found}."
    if layer_rule is not None:
        text += f" Over seeds, claim 3 reads: {diagnosis_claim(layer_rule)}."

    rows = correlation[correlation["judge"] == "independent"].to_dict("records")
    significant = [f"{_POOL_NAMES.get(r['pool'], r['pool'])}, {training_name(r['method'])} training"
                   for r in rows if r["verdict"] == "supports"]
    against = sum(r["verdict"] == "contradicts" for r in rows)
    text += (f" Over the layers of one model, those that lose more information are significantly more vulnerable in "
             f"{len(significant)} of the {len(rows)} models{' (' + '; '.join(significant) + ')' if significant else ''}"
             f", significantly less in {against}, and neither in the rest")
    seeds = correlation["seed"].nunique() if "seed" in correlation else 1
    text += (f"; with {'one seed' if seeds == 1 else f'{seeds} seeds'} per model that decides nothing across seeds, "
             f"and chapter 6 decides claim 4." if seeds < MIN_VERDICT_SEEDS else ".")

    compared = pooling[~pooling["masked"].astype(bool)] if "masked" in pooling else pooling
    if len(compared):
        less, more = (compared["verdict"] == "supports").sum(), (compared["verdict"] == "contradicts").sum()
        text += (f" At the pooling layers, average pooling contributes clearly less vulnerability than max pooling in "
                 f"{less} of {len(compared)} comparisons and clearly more in {more}; in the other "
                 f"{len(compared) - less - more} the intervals overlap or the interpretation is unfaithful.")
    left_out = len(pooling) - len(compared)
    if left_out:
        text += f" Left out of that count: {left_out} comparison{'s' * (left_out != 1)} with a masked model."
    return text


def attack_comparison(compare: pd.DataFrame, r_first: pd.DataFrame, first_tap: str) -> str:
    """Chapter 4: whether x′ from the ensemble and from PGD name the same most vulnerable taps per
    model and judge (``compare``: both ``layers.most_vulnerable`` tables merged, with columns
    ``taps (ensemble)`` and ``taps (PGD)``), and the independent judge's R at ``first_tap`` for both
    (``r_first``: indexed by dataset, method and pool, columns ``ensemble`` and ``PGD``). A model is
    named with its dataset only when the tables hold several."""
    several = compare["dataset"].nunique() > 1 if "dataset" in compare else False

    def model(r) -> str:
        return f"the {r['dataset'] + ' ' if several else ''}{r['pool']}-pool model"

    differs = compare[[set(a) != set(b) for a, b in zip(compare["taps (ensemble)"], compare["taps (PGD)"])]]
    text = (f"The two attacks name the same most vulnerable layers for {len(compare) - len(differs)} of the "
            f"{len(compare)} model-judge pairs")
    if len(differs):
        text += "; they differ for " + "; ".join(
            f"{model(r)} ({r['method']} training, judge {r['judge']}): "
            f"{' and '.join(r['taps (ensemble)']) or 'none'} with the ensemble's x′, "
            f"{' and '.join(r['taps (PGD)']) or 'none'} with PGD's" for r in differs.to_dict("records"))
    return text + f". At {first_tap}, the independent judge's R is " + "; ".join(
        f"{r['ensemble']:.3f} with the ensemble's x′ and {r['PGD']:.3f} with PGD's for {model(r)} "
        f"({r['method']} training)" for r in r_first.reset_index().to_dict("records")) + "."


def information_vs_vulnerability(correlation: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Chapter 4: the rank correlation of ΔIL with V over the taps of each model under the independent
    judge (``correlation``: ``verdicts.tap_correlations``), and what one model can decide."""
    rows = correlation[correlation["judge"] == "independent"].to_dict("records")
    seeds = correlation["seed"].nunique() if "seed" in correlation else 1
    text = " ".join(f"For the {labels[r['dataset']]} {r['pool']}-pool model ({r['method']} training"
                    f"{', seed ' + str(r['seed']) if 'seed' in r else ''}, independent judge), "
                    f"{correlation_sentence(r)}." for r in rows)
    text += (f" Over the taps of {'one model' if seeds == 1 else f'{seeds} seeds of each model'}, depth changes "
             f"everything at once and only a large correlation can be significant; chapter 6 varies the "
             f"downsampling layer alone, across models.")
    if seeds < MIN_VERDICT_SEEDS:
        text += (f" This correlation reads {'one seed' if seeds == 1 else f'{seeds} seeds'} of each model, fewer "
                 f"than the {MIN_VERDICT_SEEDS} a verdict over seeds needs: whether this correlation holds from seed to seed is left undecided here, and claim 4 is "
                 f"decided in chapter 6, over at least {MIN_VERDICT_SEEDS} seeds of each downsampling variant.")
    return text


# pool_comparison's verdicts, as the predicate of "N comparisons ..."
_COUNTED = {"supports": ("supports it", "support it"), "contradicts": ("contradicts it", "contradict it"),
            "is inconclusive about": ("decides nothing", "decide nothing"),
            "cannot decide (an interpretation of x′ is unfaithful there)": ("cannot decide (an unfaithful interpretation)",) * 2}


def pooling_layers(pooling: pd.DataFrame, masked: Mapping[str, Sequence[str]]) -> str:
    """Chapter 4: at each pooling tap, whether average pooling contributes less vulnerability than max
    pooling (``pooling``: ``verdicts.pool_comparison`` per training method), counted by verdict in one
    sentence, each decided case named with its V (the table beside it has them all); a training with a
    masked model makes no verdict here (its attacks succeed less often, so its x′ are not comparable)."""
    read = pooling[~pooling["masked"].astype(bool)] if "masked" in pooling else pooling
    text = ""
    if len(read):
        several = "dataset" in read and read["dataset"].nunique() > 1
        counts = read["verdict"].value_counts()
        decided = read[read["verdict"].isin(["supports", "contradicts"])]
        text = (f"Does average pooling contribute less vulnerability than max pooling at its pooling layers? Of "
                f"{len(read)} comparisons (pooling tap × training × judge{' × dataset' if several else ''}), "
                + ", ".join(f"{n} {_COUNTED.get(verdict, (verdict, verdict))[n > 1]}" for verdict, n in counts.items()) + ".")
        if len(decided):
            text += " Decided: " + "; ".join(
                f"{r['verdict']} at {r['tap']} ({(r['dataset'] + ', ') if several else ''}{r['method']} training, "
                f"judge {r['judge']}: V = {r['V_avg']:.3f} against {r['V_max']:.3f} for max pooling)"
                for r in decided.to_dict("records")) + "."
    text += "".join(f" {method} training makes no verdict here: {', '.join(names)} failed a masking check (chapter 2)."
                    for method, names in masked.items() if names)
    return text.strip() or "The models compared have no pooling taps in common."


def pooling_verdict(comparison: pd.DataFrame, *, attack: str) -> str:
    """Chapter 5: the verdict of every row of the pooling comparison (``verdicts.compare_pools`` or
    ``verdicts.sequential_comparison``), by the rules of the method page."""
    return " ".join(comparison_sentence(r, data_label=r["data_label"], method=training_name(r["method"]), attack=attack)
                    for r in comparison.to_dict("records"))


def pooling_summary(comparison: pd.DataFrame, *, low: str = "avg") -> str:
    """Chapter 5's answer in plain words, read above its details: per row of the pooling comparison
    (``verdicts.compare_pools`` or ``verdicts.sequential_comparison``) both poolings' robust accuracy and
    the verdict, and, for adversarial training, what it says of the paper's claim that ``low`` pooling is
    the more robust."""
    said = []
    for r in comparison.to_dict("records"):
        a, b = r["a"], r["b"]
        name = {p: _POOL_NAMES.get(p, f"{p} pooling") for p in (a, b)}
        other = b if low == a else a
        measured = (f"{training_name(r['method'])} training on {r['data_label']}: {name[a]} {_percent(r[f'{a}_mean'])}, "
                    f"{name[b]} {_percent(r[f'{b}_mean'])}")
        if r["winner"] == "none":
            verdict = "no difference beyond the interval"
        elif r["winner"]:
            verdict = f"{name[r['winner']]} is the more robust" + (" (the other's number an upper bound)"
                                                                   if r["evidence"] != "estimates" else "")
        else:
            verdict = r["verdict"]  # says why: masked models on both sides, or too few seeds
        claim = ""
        if r["method"] != "natural":
            claim = {low: ", which supports", other: ", which contradicts", "none": ", which does not bear out"}.get(
                r["winner"], ", which leaves undecided")
            claim += f" the paper's claim that {name[low]} is more robust than {name[other]}"
        said.append(f"{measured[0].upper()}{measured[1:]}; {verdict}{claim}.")
    return "**In short.** " + " ".join(said) if said else ""


def recipe(summary: pd.DataFrame, *, images: int) -> str:
    """Chapter 5: is average pooling's masking the pooling's or the recipe's (``verdicts.recipe_summary``)."""
    return recipe_sentence(summary, images=images)


def family(correlation: pd.DataFrame, *, adversarial: pd.DataFrame, variants: Sequence[str],
           cuts: Mapping[str, tuple], profile: str) -> str:
    """Chapter 6: the rank correlation of information loss at the downsampling layers with robust
    accuracy, how many models were masked and left out, and this chapter's own budget when it has one."""
    headline = correlation[correlation["measure"] == "il_downsampling"]
    text = " ".join(family_sentence(r, variants=variants) for r in headline.itertuples())
    text = text or ("No adversarially trained model passed the gradient-masking checks, so the hypothesis cannot "
                    "be tested here.")
    masked = int(adversarial["masked"].fillna(False).astype(bool).sum())
    text += f" {masked} of {len(adversarial)} adversarially trained models were masked and left out."
    if cuts:
        cut = ", ".join(f"{name} {own} instead of {book}" for name, (own, book) in cuts.items())
        text += f" This chapter runs its own budget in the `{profile}` profile ({cut})."
    return text


def _claim_side(rho: float) -> str:
    """Which side of claim 4 a nonzero correlation of information loss with robust accuracy lies on."""
    return "as the claim says" if rho < 0 else "against the claim"


def family_summary(correlation: pd.DataFrame, *, adversarial: pd.DataFrame) -> str:
    """Chapter 6's answer in plain words, read above its details: rule 9's verdict, how far apart the
    variants' robust accuracies are (mean over the unmasked seeds of ``adversarial``), and which way
    each measure of information loss ranks them (``correlation`` as for :func:`family`: rows
    ``il_downsampling``, the decoder's error, and ``linear_downsampling``, the affine map's)."""
    def direction(rho: float) -> str:
        if rho == 0:
            return "information loss does not order the models' robustness"
        return (f"the layers that lose more information give the {'less' if rho < 0 else 'more'} robust models, "
                f"{_claim_side(rho)}")

    said = []
    unmasked = adversarial[~adversarial["masked"].fillna(False).astype(bool)]
    for (label, method), part in correlation.groupby(["data_label", "method"], sort=False):
        rows = part.set_index("measure")
        r = rows.loc["il_downsampling"]
        if r["models"] < MIN_CORRELATION_MODELS or pd.isna(r["group_rho"]):
            said.append(f"Untested on {label}: {r['models']} unmasked adversarially trained models.")
            continue
        word = {"supports": "Supported", "contradicts": "Contradicted"}.get(family_verdict(r), "Not decided")
        means = unmasked[(unmasked["data_label"] == label) & (unmasked["method"] == method)].groupby("pool")["robust_acc"].mean()
        text = (f"{word} on {label}. The {r['groups']} downsampling layers' adversarially trained models are "
                f"{_percent(means.min())} to {_percent(means.max())} robust on average. Ranked by the decoder's error, "
                f"{direction(r['group_rho'])} (ρ = {r['group_rho']:+.2f} over the variants' means, p = {r['group_p']:.2g})")
        if "linear_downsampling" in rows.index and not pd.isna(rows.loc["linear_downsampling", "group_rho"]):
            lin = rows.loc["linear_downsampling"]
            text += (f"; ranked by the affine map's, "
                     f"{'the same' if (lin['group_rho'] < 0) == (r['group_rho'] < 0) else 'the other way'} "
                     f"(ρ = {lin['group_rho']:+.2f}, p = {lin['group_p']:.2g})")
        said.append(text + f". Rule 9 decides at p < {ALPHA:g} on the decoder's ranking.")
    return "**In short.** " + " ".join(said) if said else ""


def quality_claim(quality: pd.DataFrame) -> str:
    """Claim 1 in one line: the label agreement at the two deepest taps, as judged by the interpreted
    classifier itself (a measurement, not a test: no rule sets a target for it)."""
    lowest = quality.groupby(["dataset", "pool"]).tail(2)["label_agreement"].min()
    worst = quality["label_agreement"].min()
    return (f"Measured, not tested: judged by the classifier itself, the interpretations at the two deepest taps "
            f"keep the original's label in at least {_percent(lowest)} of clean test images ({_percent(worst)} at "
            f"the weakest tap)")


def rows_claim(examples: int) -> str:
    """Claim 2 in one line: shown, for ``examples`` image pairs; measured in chapter 4."""
    return (f"Shown for {examples} clean/adversarial pairs per model: the interpretations follow x′ into another "
            f"class at some depth; chapter 4 measures at which")


def diagnosis_claim(verdict: pd.DataFrame) -> str:
    """Claim 3 in one line: rule 10 (``verdicts.layer_verdict``) for the adversarially trained models
    under the independent judge, per attack that made x′ (``source``): the named layers, or why none
    is named and how many adversarial examples per seed the observed gap would need."""
    part = verdict[(verdict["judge"] == "independent") & (verdict["method"] != "natural")]
    if part.empty:
        return "Untested: no adversarially trained model was diagnosed by the independent judge"
    failed = part[part["verdict"] == UNVALIDATED]
    if len(failed):
        where = ", ".join(dict.fromkeys(failed["dataset"])) if "dataset" in failed else "this dataset"
        withheld = (f"No layer named on {where} (rule 13): no candidate interpreter passed the planted check, so "
                    f"a jump of V may be the interpreter's")
        if len(part) == len(failed):
            return withheld
        rest = verdict.drop(failed.index)
        others = ", ".join(dict.fromkeys(part.drop(failed.index)["dataset"]))
        return f"{withheld}; on {others}: {diagnosis_claim(rest)}"
    named = part[part["verdict"] == "named"]

    def attack(r) -> str:
        return f"{r['source']}'s x′" if "source" in r else "x′"

    if len(named):
        several = "dataset" in named and part["dataset"].nunique() > 1
        said = "; ".join(f"{r['dataset'] + ', ' if several else ''}{r['pool']} pooling, {attack(r)}: {r['named']} (top in {round(r['agreement'] * r['seeds'])} "
                         f"of {r['seeds']} seeds)" for r in named.to_dict("records"))
        left = len(part) - len(named)
        return (f"Named by rule 10: {said}" + (f"; not identifiable for the other {left} model-attack pairs" if left else "")
                + f" ({int(part['n'].min())}–{int(part['n'].max())} adversarial examples per seed)")
    needed = part["examples_needed"].dropna()
    seeds = int(part["seeds"].max())
    why = (f"{seeds} seed(s) where the rule needs {MIN_VERDICT_SEEDS}" if seeds < MIN_VERDICT_SEEDS else
           f"over {seeds} seeds no faithful layer is first by mean V and top in two thirds of them")
    return (f"Not identifiable at this size (rule 10): {why}, {int(part['n'].min())}–{int(part['n'].max())} "
            f"adversarial examples per adversarially trained model" + (f"; separating the top two layers at the gaps observed would take about "
                                 f"{int(needed.min()):,}–{int(needed.max()):,} per seed" if len(needed) else ""))


def pooling_claim(comparison: pd.DataFrame) -> str:
    """Claim 5 in one line: the adversarial pooling verdict with its interval, seeds, images and evidence."""
    rows = [r for r in comparison.to_dict("records") if r["method"] != "natural"]
    said = []
    for r in rows:
        interval = (f"avg − max {100 * r['avg_minus_max']:+.1f} points, {100 * r['level']:.4g}% interval "
                    f"[{100 * r['ci_lo']:+.1f}, {100 * r['ci_hi']:+.1f}]" if r["evidence"] == "estimates"
                    else f"avg {_percent(r['avg_mean'])}, max {_percent(r['max_mean'])}")
        if r["evidence"] == "estimates" and r["winner"] == "none":
            interval += f"; detects {100 * _detectable(r):.1f} points with power 0.8"
        said.append(f"{r['verdict'].capitalize()} ({interval}; {r['seeds']} seeds, {r['n']} {r['data_label']} images, "
                    f"{training_name(r['method'])} training, evidence: {r['evidence']})")
    return "; ".join(said) or "not decided"


def family_claim(correlation: pd.DataFrame, *, variants: Sequence[str]) -> str:
    """Claim 4 in one line: rule 9's verdict on the pooling family (``verdicts.family_verdict``), with the
    correlation of the variants' means, its p-value and the models it rests on; an undecided verdict says
    which way its sign points (negative: more information lost, less robust, as the claim says)."""
    said = []
    for r in correlation[correlation["measure"] == "il_downsampling"].to_dict("records"):
        verdict = family_verdict(r) if r["models"] >= 3 and not pd.isna(r["rho"]) else "cannot test"
        if verdict == "cannot test":
            said.append(f"Untested: {r['models']} unmasked models")
            continue
        word = {"supports": "Supported", "contradicts": "Contradicted"}.get(verdict, "Not decided")
        sign = f", sign {_claim_side(r['group_rho'])}" if word == "Not decided" and r["group_rho"] != 0 else ""
        said.append(f"{word} (ρ over the {r['groups']} poolings' means {r['group_rho']:+.2f}, permutation p = "
                    f"{r['group_p']:.2g}{sign}; {r['models']} unmasked models, {len(variants)} poolings × "
                    f"{r['seeds']} seeds)")
    return "; ".join(said) or "untested"


def trend_claim(trend: pd.DataFrame, *, detectable: str = "") -> str:
    """Claim 4 in one line under rule 11 (``verdicts.knob_trend``): the verdict of the trend of robust
    accuracy over the knob's levels, its ρ and p over every unmasked model, and, when not decided,
    ``detectable`` (what the design could detect, from the power study)."""
    said = []
    for r in trend[trend["measure"] == "robust_acc"].to_dict("records"):
        word = {"supports": "Supported", "contradicts": "Contradicted", "cannot test": "Untested"}.get(
            r["verdict"], "Not decided")
        said.append(f"{word} by rule 11 on {r['data_label']} (robust accuracy over the {r['levels']} levels of Lp "
                    f"pooling: ρ = {r['rho']:+.2f}, permutation p = {r['p_value']:.2g}, {r['models']} unmasked models"
                    + (f"; {detectable}" if detectable and word == "Not decided" else "") + ")")
    return "; ".join(said) or "untested"


_MEASURES = {"il_downsampling": "the decoder's error", "linear_downsampling": "the affine map's error"}


def trend(trend_table: pd.DataFrame) -> str:
    """Chapter 6: rule 11's trend tests, robust accuracy and each information-loss measure against the
    knob, one sentence per dataset and training."""
    said = []
    for (label, method), part in trend_table.groupby(["data_label", "method"], sort=False):
        rows = part.set_index("measure")
        r = rows.loc["robust_acc"]
        losses = "; ".join(f"{_MEASURES.get(m, m)}: ρ = {rows.loc[m, 'rho']:+.2f} (p = {rows.loc[m, 'p_value']:.2g})"
                           for m in rows.index if m != "robust_acc")
        said.append(f"On {label}, over {r['models']} unmasked models ({training_name(method)} training) at {r['levels']} "
                    f"levels of the knob, robust accuracy has ρ = {r['rho']:+.2f} with the level (permutation p = "
                    f"{r['p_value']:.2g}): rule 11 {r['verdict'] if r['verdict'] != 'not decided' else 'does not decide'} "
                    f"the claim." + (f" The level against each information-loss measure: {losses}." if losses else ""))
    return " ".join(said)


def answer(*sentences: str, profile: str, lead: str = "") -> str:
    """A chapter's "What we found": its sentences in order, and, in ``smoke``, the reminder that its
    numbers test the pipeline and are not results. With a ``lead`` (a short answer in plain words),
    the lead comes first and each of the sentences becomes one item of a list of details below it."""
    parts = [s.strip() for s in sentences if s and s.strip()]
    text = lead + "\n\n" + "\n".join(f"- {s}" for s in parts) if lead else " ".join(parts)
    if profile == "smoke":
        text += ("\n\n" if lead else " ") + ("(Profile `smoke`: a few hundred images and seconds of training test the "
                                            "pipeline; these numbers are not results.)")
    return text


def glued(notebook: str | Path) -> dict[str, str]:
    """The plain-text values an executed notebook glued (``myst_nb.glue``), by name."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    found = {}
    for cell in cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = next((v for k, v in output.get("data", {}).items() if k.endswith("text/plain")), None)
            if name and text is not None:
                text = "".join(text) if isinstance(text, list) else text
                found[name] = text[1:-1] if text[:1] == text[-1:] and text[:1] in "'\"" else text
    return found


def claims_table(executed: str | Path, *, link: str = "{nn}") -> str:
    """The paper's five claims as a Markdown table, each with the one-line verdict (``claim_N``) that
    its chapter glued in the executed notebooks of folder ``executed``, and where to read it: ``link``
    formatted with ``chapter`` (e.g. ``05_sweeps``) and ``nn`` (``05``). A chapter not executed there
    says so."""
    executed = Path(executed)
    lines = ["| claim of the paper | what this book found | chapter |", "| --- | --- | --- |"]
    for number, claim, chapter in CLAIMS:
        path = executed / f"{chapter}.ipynb"
        verdict = (glued(path).get(f"claim_{number}") if path.exists() else None) or "not in this run yet"
        lines.append(f"| {number}. {claim} | {verdict} | {link.format(chapter=chapter, nn=chapter[:2])} |")
    return "\n".join(lines)


# ---- the sentences of the verdicts (rules in verdicts) ----

_POOL_NAMES = {"avg": "average pooling", "max": "max pooling"}



def _detectable(row) -> float:
    """The difference a comparison row's design finds with power 0.8 (``stats.detectable_difference``)."""
    return detectable_difference(row["ci_lo"], row["ci_hi"], level=row["level"])


def comparison_sentence(row, *, data_label: str, method: str, attack: str) -> str:
    """The verdict of one row of :func:`compare_pools` (or :func:`sequential_comparison`) as plain text
    that names its evidence (estimates or bounds, seeds, images, the level of its intervals and, for a
    sequential study, the look it stopped at); ``data_label`` names the data, ``method`` the training
    method as the reader should read it (e.g. "adversarial (PGD)")."""
    a, b = row["a"], row["b"]
    name = {p: _POOL_NAMES.get(p, f"{p} pooling") for p in (a, b)}
    level = f"{100 * row['level']:.4g}%"
    stopped = (f", look {row['look']} of {row['looks']} of the sequential rule" if "looks" in row else "")
    head = f"On {data_label}, {method} training ({attack}, {row['n']} test images per model{stopped})"

    def side(p):
        masked = f", {row[f'{p}_masked']} masked" if row[f"{p}_masked"] else ""
        return (f"{name[p]} {100 * row[f'{p}_mean']:.1f}% [{100 * row[f'{p}_lo']:.1f}, {100 * row[f'{p}_hi']:.1f}] "
                f"over {row[f'{p}_seeds']} seeds{masked}")

    measured = f"{side(a)}; {side(b)} ({level} intervals over seeds and test images)"
    if row["evidence"] == "estimates":
        if not row["winner"]:
            return f"{head}: {row['verdict']}. Measured: {measured}."
        verdict = ("no difference beyond the interval" if row["winner"] == "none"
                   else f"{name[row['winner']]} is more robust")
        power = ("" if row["winner"] != "none" else
                 f" At this size the study finds a true difference of {100 * _detectable(row):.1f} points with "
                 f"probability 0.8; a smaller one would usually go unseen.")
        return (f"{head}: {verdict}. {name[a].capitalize()} minus {name[b]}: {100 * row[f'{a}_minus_{b}']:+.1f} points, "
                f"{level} interval [{100 * row['ci_lo']:+.1f}, {100 * row['ci_hi']:+.1f}] over {row['seeds']} paired seeds "
                f"and the test images (the same images for both poolings). Evidence: estimates (every model passed the "
                f"masking checks).{power}")
    if row["evidence"] == "bounds":
        return (f"{head}: no verdict. Both poolings have models that failed a masking check, so both numbers are "
                f"only upper bounds on robustness. Measured: {measured}.")
    bound = row["evidence"].removeprefix("bound on ")
    estimate = b if bound == a else a
    why = (f"{name[bound].capitalize()}'s number is an upper bound, because {row[f'{bound}_masked']} of its "
           f"{row[f'{bound}_seeds']} models failed a masking check: its true robustness can only be lower")
    if row["winner"]:
        return (f"{head}: {name[estimate]} is more robust than {name[bound]} by at least {100 * row['at_least']:.1f} "
                f"points. {why}, and even the upper end of its interval ({100 * row[f'{bound}_hi']:.1f}%) lies below "
                f"the lower end of {name[estimate]}'s ({100 * row[f'{estimate}_lo']:.1f}%, an estimate from unmasked "
                f"models). A stronger attack could only widen the gap. Measured: {measured}.")
    if row["seeds"] < row["min_seeds"]:
        return f"{head}: {row['verdict']}. Measured: {measured}."
    return (f"{head}: no verdict. {why}, but its interval reaches into {name[estimate]}'s, so it may be as robust "
            f"as {name[estimate]} or far less; an attack that breaks the masked models further, or a training "
            f"recipe that leaves them unmasked, would decide it. Measured: {measured}.")



def correlation_sentence(row, what: str = "ΔIL with V") -> str:
    """One row of :func:`tap_correlations` as plain text: rho, the permutation p-value and how it was
    found, the number of taps, and what it says about the hypothesis."""
    left_out = row.get("left_out") or ""
    left = f"; taps whose interpretations of x′ are unfaithful, left out: {left_out}" if left_out else ""
    taps = f"{int(row['taps'])} {'faithful ' if left_out else ''}taps"
    if np.isnan(row["spearman_rho"]):
        return f"the rank correlation of {what} is undefined over {taps}{left}, which cannot test the hypothesis"
    text = (f"Spearman ρ of {what} = {row['spearman_rho']:.2f} over {taps} (permutation p = "
            f"{row['p_value']:.2g}, {row['p_method']}")
    if row["min_p"] > ALPHA:
        text += f"; with {int(row['taps'])} taps even a perfect ordering gives p = {row['min_p']:.2g} > {ALPHA:g}"
    return text + f"){left}, which {row['verdict']} the hypothesis"



def family_sentence(row, *, variants: Sequence[str]) -> str:
    """The verdict of rule 9 (:func:`family_verdict`) on one row of :func:`correlation_over_seeds` (with
    ``group``, plus ``data_label``) on "downsampling that loses more information gives less robust
    models", with the correlation over all models and its interval over seeds as the description."""
    row = row._asdict() if hasattr(row, "_asdict") else dict(row)
    if row["models"] < MIN_CORRELATION_MODELS or pd.isna(row["rho"]):
        return (f"On {row['data_label']}, only {row['models']} adversarially trained models passed the masking checks: "
                f"too few to test the hypothesis.")
    verdict = family_verdict(row)
    test = (f"over the {row['groups']} variants' means, Spearman ρ = {row['group_rho']:+.2f} (exact permutation "
            f"p = {row['group_p']:.2g}; with {row['groups']} variants only a perfect ordering can reach p < {ALPHA:g})"
            if not pd.isna(row.get("group_rho")) else "the variants' means have no defined rank correlation")
    return (f"On {row['data_label']}, across {row['models']} unmasked adversarially trained models "
            f"({', '.join(variants)}; {row['seeds']} seed{'s' if row['seeds'] > 1 else ''}), {test}, which "
            f"{'cannot test' if verdict == 'cannot test' else verdict} the hypothesis (rule 9). Over all models the "
            f"rank correlation of information loss at the downsampling layers (decoder MSE) with AutoAttack robust "
            f"accuracy is {row['rho']:+.2f}, 95% interval over seeds [{row['ci_lo']:+.2f}, {row['ci_hi']:+.2f}]; under "
            f"rule 9 as first written (changed before this run: the claim supported when that whole interval is "
            f"negative) the verdict would be {_first_rule_9(row)}.")


def _first_rule_9(row) -> str:
    """Rule 9 as first written (method page), on the seed interval of the correlation over all models."""
    return "supported" if row["ci_hi"] < 0 else "contradicted" if row["ci_lo"] > 0 else "inconclusive"



def recipe_sentence(summary: pd.DataFrame, *, low: str = "avg", images: int) -> str:
    """The recipe study's answer from :func:`recipe_summary`: which recipes, if any, train
    ``low``-pooling models that pass every masking check in every seed (at least two seeds), and, for a
    method tried at several lengths, whether its masking shrinks with training or persists."""
    name = _POOL_NAMES.get(low, low)
    part = summary[summary["pool"] == low]
    if part.empty:
        return f"The recipe study has no {name} models."
    recipe = lambda r: f"{r['adv_method'].upper()} × {r['adv_epochs']} epoch{'s' * (r['adv_epochs'] != 1)}"  # noqa: E731
    # a recipe with a masked model has a mean of upper bounds: said as "at most"
    counts = "; ".join(f"{recipe(r)}: {r['masked']} of {r['seeds']} masked, worst case "
                       f"{'at most ' if r['masked'] else ''}{100 * r['robust_acc']:.1f} % "
                       f"(PGD − worst case {100 * r['gap']:.1f} points)" for _, r in part.iterrows())
    clean = part[(part["masked"] == 0) & (part["seeds"] >= 2)]
    evidence = f" ({counts}; {images} test images per model)"
    if not clean.empty:
        answer = (f"Under {', '.join(recipe(r) for _, r in clean.iterrows())} every {name} model passes the masking "
                  f"checks{evidence}: there the masking is the recipe's, not the pooling's, and the pooling verdict "
                  f"should be drawn from that recipe.")
    elif (part["masked"] == part["seeds"]).all():
        answer = (f"Every {name} model is masked under every recipe tried{evidence}: the masking persists, so the "
                  f"pooling verdict stays one-sided; a recipe that trained unmasked {name} models would turn its "
                  f"upper bounds into estimates.")
    else:
        answer = (f"Some {name} models pass the masking checks, but no recipe makes all of them pass over at least "
                  f"two seeds{evidence}: none removes the masking reliably, so the pooling verdict stays one-sided.")
    return " ".join([answer, *_length_clauses(part, name)])



def _length_clauses(part: pd.DataFrame, name: str) -> list[str]:
    """For each training method of ``part`` (one pooling's rows of :func:`recipe_summary`) tried at two or
    more lengths: how its masking changes from the shortest to the longest, judged by the count of masked
    models alone (the gap is told, not judged: with few seeds a point or two of it is noise)."""
    clauses = []
    for method, rows in part.groupby("adv_method", sort=False):
        if rows["adv_epochs"].nunique() < 2:
            continue
        rows = rows.sort_values("adv_epochs")
        short, long = rows.iloc[0], rows.iloc[-1]
        if long["masked"] == long["seeds"]:
            trend = f"the masking persists with {method.upper()} training up to {long['adv_epochs']} epochs"
        elif long["masked"] / long["seeds"] < short["masked"] / short["seeds"]:
            trend = f"the masking shrinks with {method.upper()} training"
        else:
            trend = f"longer {method.upper()} training does not reduce the masking"
        # a masked model's worst case is an upper bound, so its gap is a lower bound
        steps = ", ".join(f"{r['masked']} of {r['seeds']} masked and a gap of {'at least ' if r['masked'] else ''}"
                          f"{100 * r['gap']:.1f} points at {r['adv_epochs']} epochs" for _, r in rows.iterrows())
        clauses.append(f"{name.capitalize()} under {method.upper()}: {steps}; {trend}.")
    return clauses
