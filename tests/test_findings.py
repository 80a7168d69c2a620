"""The book's sentences and its claims table (``igan_utils.findings``) and the published run
(``igan_utils.book``: stamps, staleness, staging, README's claims table)."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from igan_utils.book import findings, verdicts, runner

ROOT = Path(__file__).resolve().parents[1]


def test_masking_sentence_says_upper_bound_not_kept_out():
    checks = pd.DataFrame({"model": ["max/pgd/s0", "avg/pgd/s0", "avg/pgd/s0"],
                           "check": ["large eps", "large eps", "autoattack vs pgd"], "passed": [True, True, False]})
    text = findings.masking(checks)
    assert text.startswith("2 of 3 masking checks pass") and "avg/pgd/s0 (autoattack vs pgd)" in text
    assert "upper bounds" in text and "kept out" not in text
    assert findings.masking(checks.assign(passed=True)).endswith("no model is masked.")


def test_a_masked_model_s_robust_accuracy_reads_as_an_upper_bound():
    robust = pd.DataFrame({"dataset": ["mnist"] * 2, "method": ["pgd"] * 2, "pool": ["max", "avg"],
                           "robust_acc": [0.9, 0.5], "masked": [False, True]})
    text = findings.robust_accuracy(robust, labels={"mnist": "MNIST-10k"}, attack={"mnist": "AA"}, eps={"mnist": 0.3},
                                    images=100, pools=["max", "avg"])
    assert "90.0% (max pooling)" in text and "at most 50.0% (avg pooling, masked: an upper bound)" in text


def test_the_answer_of_a_smoke_chapter_says_its_numbers_are_not_results():
    assert "not results" in findings.answer("A.", "B.", profile="smoke")
    assert findings.answer("A.", " ", "B.", profile="quick") == "A. B."


def _executed(path: Path, glued: dict[str, str], code: str = "x = 1", stamp: dict | None = None) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# A chapter"), nbformat.v4.new_code_cell(code)]
    notebook.cells[1].outputs = [nbformat.v4.new_output("display_data", data={
        "application/papermill.record/text/plain": repr(value)},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}})
        for name, value in glued.items()]
    if stamp:
        notebook.metadata[runner.STAMP] = stamp
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def test_the_claims_table_reads_each_claim_from_its_chapter(tmp_path):
    _executed(tmp_path / "05_sweeps.ipynb", {"claim_5": "No difference beyond the interval (+1.0 points)"})
    table = findings.claims_table(tmp_path, link="[{nn}]({chapter}.html)")
    rows = table.splitlines()
    assert len(rows) == 2 + len(findings.CLAIMS)
    assert "| 5. Average pooling" in rows[-1] and "No difference beyond the interval (+1.0 points)" in rows[-1]
    assert rows[-1].endswith("[05](05_sweeps.html) |")
    assert "not in this run yet" in rows[2]  # chapter 3 was not executed there


def test_readme_s_claims_table_is_the_published_run_s():
    """README's table is written from book/published by `--publish`, so it cannot drift from the run."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split(runner.CLAIMS_START, 1)[1].split(runner.CLAIMS_END, 1)[0].strip()
    assert block == findings.claims_table(ROOT / runner.PUBLISHED, link=runner.README_LINK)


def _fake_root(tmp_path: Path) -> Path:
    """A project with two chapters, prose pages and a README, as the staging reads them."""
    root = tmp_path / "project"
    for name in ("notebooks", "book"):
        (root / name).mkdir(parents=True)
    _executed(root / "notebooks" / "01_classification.ipynb", {}, code="x = 1")
    _executed(root / "notebooks" / "05_sweeps.ipynb", {}, code="y = 2")
    (root / "book" / "results.md").write_text("{glue:text}`executed/05_sweeps.ipynb::sweep_text:s`\n")
    (root / "README.md").write_text(f"front\n{runner.CLAIMS_START}\nold\n{runner.CLAIMS_END}\nend\n")
    return root


def test_a_stale_published_chapter_is_marked_with_its_run_s_commit(tmp_path):
    root = _fake_root(tmp_path)
    run = tmp_path / "run"
    stamp = {"commit": "abc1234", "finished": "2026-12-04T20:00:00", "seconds": 60, "profile": "quick",
             "pass_ms": 190.0, "machine": "test"}
    _executed(run / "01_classification.ipynb", {"answer": "fresh"}, code="x = 1", stamp=stamp)
    _executed(run / "05_sweeps.ipynb", {"claim_5": "No difference", "sweep_text": "t"}, code="y = 1", stamp=stamp)
    runner.publish(run, root=root, store=runner.Store(tmp_path / "store"))
    published = root / runner.PUBLISHED
    assert [p.name for p in runner.stale_chapters(published, root)] == ["05_sweeps.ipynb"]  # its code changed
    record = (published / runner.RECORD).read_text()
    assert "abc1234" in record and "05_sweeps" in record
    assert "No difference" in (root / "README.md").read_text()

    assert runner.stage_published(root) == ["05_sweeps.ipynb"]
    staged = nbformat.read(root / runner.EXECUTED / "05_sweeps.ipynb", as_version=4)
    note = staged.cells[1].source
    assert note.startswith(":::{warning} Stale") and "abc1234" in note
    fresh = nbformat.read(root / runner.EXECUTED / "01_classification.ipynb", as_version=4)
    assert not any("Stale" in c.source for c in fresh.cells)
    assert "No difference" in (root / runner.EXECUTED / "claims.md").read_text()


def test_a_chapter_not_in_the_published_run_gets_a_page_that_says_so(tmp_path):
    root = _fake_root(tmp_path)
    run = tmp_path / "run"
    _executed(run / "01_classification.ipynb", {}, stamp={"commit": "abc1234"})
    runner.publish(run, root=root, store=runner.Store(tmp_path / "store"))
    runner.stage_published(root)
    page = nbformat.read(root / runner.EXECUTED / "05_sweeps.ipynb", as_version=4)
    assert "not in the published run yet" in page.cells[0].source
    # what the prose pages paste from it is glued, so the strict build finds every name
    assert findings.glued(root / runner.EXECUTED / "05_sweeps.ipynb") == {"sweep_text": "not in this run yet"}


def test_the_run_record_counts_a_chapter_s_work_over_all_its_sittings(tmp_path):
    store = runner.Store(tmp_path / "store")
    for made, key, seconds in ((True, "a", 100.0), (False, "a", None), (True, "b", 20.5), (False, "c", None)):
        store.note(tag="05_sweeps", kind="classifier", key=key, made=made,
                   **({"seconds": seconds} if made else {}))
    store.note(tag="05_sweeps", kind="worst_case", key="w", made=True, seconds=7.0, attacked={"pgd": 90, "square": 4})
    store.note(tag="01_classification", kind="classifier", key="z", made=True, seconds=999.0)
    assert runner._ledger_rows(store, "05_sweeps") == {
        "models new": 2, "models reused": 1, "chunks new": 1, "chunks reused": 0,
        "images attacked (attack × image)": 94, "work s": 128}


def test_a_chapter_published_earlier_keeps_its_ledger_figures(tmp_path):
    """Publishing one chapter from a new store leaves the record of one published from an older store."""
    root = _fake_root(tmp_path)
    old_store, new_store = runner.Store(tmp_path / "old"), runner.Store(tmp_path / "new")
    old_store.note(tag="05_sweeps", kind="classifier", key="a", made=True, seconds=100.0)
    _executed(tmp_path / "run1" / "05_sweeps.ipynb", {}, stamp={"commit": "abc1234"})
    runner.publish(tmp_path / "run1", root=root, store=old_store)
    new_store.note(tag="01_classification", kind="classifier", key="b", made=True, seconds=7.0)
    _executed(tmp_path / "run2" / "01_classification.ipynb", {}, stamp={"commit": "def5678"})
    record = runner.publish(tmp_path / "run2", root=root, store=new_store).read_text()
    header = next(line for line in record.splitlines() if line.startswith("| chapter"))
    assert [cell.strip() for cell in header.split("|")][-7:-1] == list(runner.LEDGER_COLUMNS)
    rows = {line.split("|")[1].strip(): line for line in record.splitlines() if line.startswith("| 0")}
    assert [cell.strip() for cell in rows["05_sweeps"].split("|")][-3:-1] == ["0", "100"]  # images, work s
    assert [cell.strip() for cell in rows["01_classification"].split("|")][-3:-1] == ["0", "7"]


def test_publishing_refuses_unstamped_notebooks(tmp_path):
    root = _fake_root(tmp_path)
    _executed(tmp_path / "run" / "01_classification.ipynb", {})
    with pytest.raises(ValueError, match="carries no run stamp"):
        runner.publish(tmp_path / "run", root=root, store=runner.Store(tmp_path / "store"))
    with pytest.raises(ValueError, match="no executed chapters"):
        runner.publish(tmp_path / "empty", root=root)


def test_readme_s_figure_is_taken_from_the_chapter_3_cell_that_draws_it(tmp_path):
    import base64

    notebook = nbformat.v4.new_notebook()
    drawn = nbformat.v4.new_code_cell('plots.image_table(..., title=f"{label}: what each layer sees")')
    drawn.outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(b"PNG!").decode()})]
    notebook.cells = [nbformat.v4.new_code_cell("x = 1"), drawn]
    nbformat.write(notebook, tmp_path / "03.ipynb")
    assert runner.figure_of(tmp_path / "03.ipynb") == b"PNG!"
    with pytest.raises(ValueError, match="has no figure"):
        runner.figure_of(tmp_path / "03.ipynb", marker="no such cell")


def test_chapter_4_says_what_one_seed_leaves_undecided():
    row = {"judge": "independent", "dataset": "mnist", "pool": "max", "method": "natural", "taps": 9,
           "spearman_rho": -0.2, "p_value": 0.6, "p_method": "exact", "min_p": 1e-4,
           "verdict": "does not support", "left_out": []}
    one = findings.information_vs_vulnerability(pd.DataFrame([row]), {"mnist": "MNIST-10k"})
    assert "one seed of each model" in one and "left undecided" in one and "chapter 6" in one
    three = pd.DataFrame([{**row, "seed": s} for s in range(3)])
    assert "left undecided" not in findings.information_vs_vulnerability(three, {"mnist": "MNIST-10k"})


def test_chapter_4_answers_in_three_plain_sentences_above_its_details():
    ranking = pd.DataFrame({"method": ["natural", "pgd", "pgd"], "pool": ["max", "max", "avg"],
                            "judge": ["independent"] * 3, "taps": [["conv4"], ["conv1", "pool2"], ["fc2"]],
                            "left_out": [[], [], []]})
    correlation = pd.DataFrame({"method": ["natural", "pgd", "pgd"], "pool": ["max", "max", "avg"],
                                "judge": ["independent"] * 3, "verdict": ["does not support", "supports", "contradicts"]})
    pooling = pd.DataFrame({"verdict": ["supports", "is inconclusive about", "contradicts"], "masked": ["", "", "avg/pgd/s0"]})
    lead = findings.diagnosis_summary(ranking, correlation, pooling)
    assert lead.startswith("**In short.**")
    assert "natural training, max pooling at conv4; adversarial (PGD) training, max pooling at conv1 and pool2, " \
           "average pooling at fc2." in lead
    assert "significantly more vulnerable in 1 of the 3 models (max pooling, adversarial (PGD) training)" in lead
    assert "significantly less in 1" in lead and "chapter 6 decides claim 4" in lead  # one seed: no verdict here
    assert "clearly less vulnerability than max pooling in 1 of 2 comparisons and clearly more in 0" in lead
    assert "Left out of that count: 1 comparison with a masked model." in lead
    withheld = pd.DataFrame({"dataset": "mnist", "method": "pgd", "pool": "max", "judge": "independent",
                             "verdict": [verdicts.UNVALIDATED], "named": [None], "n": 200, "seeds": 3,
                             "examples_needed": [None]})
    caveated = findings.diagnosis_summary(ranking, correlation, pooling, layer_rule=withheld)
    assert caveated.startswith("**In short.** With interpreters that failed the planted check (rule 13), the independent")
    assert "claim 3 reads: No layer named on mnist (rule 13)" in caveated
    text = findings.answer("A.", "B.", profile="quick", lead=lead)
    assert text == lead + "\n\n- A.\n- B."


def test_chapter_5_answers_the_paper_s_pooling_claim_in_plain_words():
    row = {"a": "avg", "b": "max", "data_label": "MNIST-10k", "evidence": "estimates"}
    comparison = pd.DataFrame([{**row, "method": "natural", "avg_mean": 0.0, "max_mean": 0.0, "winner": "none"},
                               {**row, "method": "pgd", "avg_mean": 0.906, "max_mean": 0.896, "winner": "none"}])
    lead = findings.pooling_summary(comparison)
    assert lead == ("**In short.** Natural training on MNIST-10k: average pooling 0.0%, max pooling 0.0%; no difference "
                    "beyond the interval. Adversarial (PGD) training on MNIST-10k: average pooling 90.6%, max pooling "
                    "89.6%; no difference beyond the interval, which does not bear out the paper's claim that average "
                    "pooling is more robust than max pooling.")
    won = comparison.assign(winner=["none", "max"])
    assert "max pooling is the more robust, which contradicts the paper's claim" in findings.pooling_summary(won)
    bound = comparison.assign(winner=["none", "avg"], evidence=["estimates", "bound on max"])
    assert ("average pooling is the more robust (the other's number an upper bound), which supports"
            in findings.pooling_summary(bound))
    why = "no verdict: both avg and max have masked models, so both numbers are upper bounds"
    assert f"{why}, which leaves undecided" in findings.pooling_summary(comparison.assign(winner="", verdict=why))


def test_chapter_6_answers_in_plain_words_which_way_each_measure_ranks_the_poolings():
    base = {"data_label": "MNIST-10k", "method": "pgd", "models": 15, "seeds": 3, "groups": 5, "group_min_p": 0.033,
            "rho": 0.5}
    correlation = pd.DataFrame([{**base, "measure": "il_downsampling", "group_rho": 0.62, "group_p": 0.3},
                                {**base, "measure": "linear_downsampling", "group_rho": -0.82, "group_p": 0.13},
                                {**base, "measure": "il_pool1", "group_rho": 0.56, "group_p": 0.37}])
    adversarial = pd.DataFrame({"data_label": "MNIST-10k", "method": "pgd", "pool": ["max", "max", "avg", "blur"],
                                "robust_acc": [0.87, 0.88, 0.885, 0.5], "masked": [False, False, False, True]})
    lead = findings.family_summary(correlation, adversarial=adversarial)
    assert lead.startswith("**In short.** Not decided on MNIST-10k.")
    assert "87.5% to 88.5% robust on average" in lead  # the masked blur model is left out
    assert ("Ranked by the decoder's error, the layers that lose more information give the more robust models, against "
            "the claim (ρ = +0.62 over the variants' means, p = 0.3); ranked by the affine map's, the other way "
            "(ρ = -0.82, p = 0.13).") in lead
    supported = correlation.assign(group_rho=-1.0, group_p=0.017)
    assert findings.family_summary(supported, adversarial=adversarial).startswith("**In short.** Supported")
    assert "Untested" in findings.family_summary(correlation.assign(models=2), adversarial=adversarial)
    variants = ["max", "avg", "strided", "blur", "lp"]
    assert findings.family_claim(correlation, variants=variants) == (
        "Not decided (ρ over the 5 poolings' means +0.62, permutation p = 0.3, sign against the claim; 15 unmasked "
        "models, 5 poolings × 3 seeds)")
    assert "-0.40, permutation p = 0.5, sign as the claim says;" in findings.family_claim(
        correlation.assign(group_rho=-0.4, group_p=0.5), variants=variants)
    tied = correlation.assign(group_rho=0.0, group_p=1.0)
    assert "information loss does not order the models' robustness (ρ = +0.00" in findings.family_summary(
        tied, adversarial=adversarial)
    assert "+0.00, permutation p = 1; 15" in findings.family_claim(tied, variants=variants)
    supported_claim = findings.family_claim(supported, variants=variants)
    assert supported_claim.startswith("Supported (ρ over the 5 poolings' means -1.00, permutation p = 0.017; ")


def test_the_pooling_layer_sentence_counts_verdicts_instead_of_repeating_them():
    rows = [{"tap": tap, "method": method, "judge": judge, "V_avg": -0.06, "V_max": 0.02, "masked": False,
             "verdict": "supports" if (tap, method, judge) == ("pool1", "natural", "independent") else "is inconclusive about"}
            for tap in ("pool1", "pool2") for method in ("natural", "pgd") for judge in ("independent", "self")]
    text = findings.pooling_layers(pd.DataFrame(rows), {})
    assert "Of 8 comparisons (pooling tap × training × judge), 7 decide nothing, 1 supports it." in text
    assert text.count("inconclusive") == 0 and "supports at pool1 (natural training, judge independent" in text


def test_the_plant_and_randomisation_sentences_carry_their_counts():
    rates = pd.DataFrame({"dataset": "mnist", "interpreters": ["exact", "exact", "InterpretGAN", "InterpretGAN"],
                          "kind": ["flip", "null"] * 2, "found": [10, 10, 8, 10], "plants": 10,
                          "share": [1.0, 1.0, 0.8, 1.0], "passed": [True, True, False, True]})
    text = findings.planted(rates, {"mnist": "MNIST-10k"})
    assert "with exact interpreters the diagnosis passes rule 12" in text
    assert "InterpretGAN interpreters the diagnosis fails rule 12: it finds the planted layer in 8 of 10" in text
    levels = pd.DataFrame({"dataset": "mnist", "level": [1, 2, 3], "randomised": ["logits", "fc2", "fc1"],
                           "taps_randomised": [0, 0, 1], "n": [40, 30, 20], "differs": [False, True, True],
                           "tested": [False, False, True], "passed": True})
    text = findings.randomisation(levels, {"mnist": "MNIST-10k"})
    assert "at 1 of the 1 levels judged" in text and text.endswith("so the check passes.")
    assert "cannot be judged" in findings.randomisation(levels.assign(tested=False, passed=False), {"mnist": "MNIST-10k"})
