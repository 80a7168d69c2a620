import json
from pathlib import Path

import pytest

from igan_utils.book import configs, profiles

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("profile", profiles.PROFILE_NAMES)
@pytest.mark.parametrize("notebook", list(profiles.NOTEBOOK_PARAMS))
def test_every_profile_gives_every_notebook_a_complete_valid_set(notebook, profile):
    params = profiles.resolve(notebook, profile)
    assert set(params) == set(profiles.NOTEBOOK_PARAMS[notebook])
    assert params.profile == profile


def test_overrides_apply_and_are_converted():
    params = profiles.resolve("02_adversarial", "quick", eps="0.1", seeds="0,1,2", eval_size=7.0,
                              train_size="None")
    assert params.eps == 0.1 and params.seeds == [0, 1, 2] and params.eval_size == 7
    assert params.train_size is None


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid: smoke, quick, paper"):
        profiles.resolve("01_classification", "fast")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'epsilon'.*valid: .*eps"):
        profiles.resolve("02_adversarial", "smoke", epsilon=0.1)


@pytest.mark.parametrize("name, value, message", [
    ("eps", -0.1, "'eps' must be >= 0"),
    ("epochs", 0, "'epochs' must be >= 1"),
    ("batch_size", 0, "'batch_size' must be >= 1"),
    ("lr", 0.0, "'lr' must be > 0"),
    ("eps", "abc", "'eps' must be of type float"),
    ("epochs", 1.5, "'epochs' must be of type int"),
    ("epochs", True, "'epochs' must be of type int"),
    ("pools", ["max", "median"], "'pools' must be one of 'max', 'avg'"),
    ("seeds", [], "'seeds' must not be an empty list"),
    ("adv_method", None, "'adv_method' must not be None"),
])
def test_bad_values_name_the_parameter(name, value, message):
    with pytest.raises(ValueError, match=message):
        profiles.resolve("01_classification", "smoke", **{name: value})


def test_from_namespace_reads_parameters_and_rejects_injected_unknown_names():
    fresh = lambda: {"profile": "quick", "eps": None, "epochs": 2, "In": [], "_": None, "profiles": profiles,
                     "print": print}
    params = profiles.from_namespace("01_classification", fresh())
    assert params.epochs == 2 and params.eps is None and params.profile == "quick"
    with pytest.raises(ValueError, match="unknown parameter.*'epoch'"):  # papermill -p epoch 3: a fresh kernel
        profiles.from_namespace("01_classification", {**fresh(), "epoch": 3})


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_parameters_cell_is_the_one_generated_from_the_registry(notebook):
    """Names *and* comments come from profiles.PARAMS: a parameter is documented in one place."""
    assert profiles.notebook_parameters(notebook) == ["profile", *profiles.NOTEBOOK_PARAMS[notebook.stem]]
    cell = next(c for c in json.loads(notebook.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "".join(cell["source"]) == profiles.parameters_cell(notebook.stem), \
        "run `python -m igan_utils.book --write-parameters` after changing profiles.PARAMS"


def test_writing_the_parameters_cells_fixes_a_stale_comment(tmp_path):
    from igan_utils.book import runner

    (tmp_path / "notebooks").mkdir()
    source = NOTEBOOKS / "01_classification.ipynb"
    stale = source.read_text().replace("# training seeds", "# the seeds")
    (tmp_path / "notebooks" / source.name).write_text(stale)
    assert runner.write_parameters_cells(tmp_path) == [tmp_path / "notebooks" / source.name]
    test_parameters_cell_is_the_one_generated_from_the_registry(tmp_path / "notebooks" / source.name)
    assert runner.write_parameters_cells(tmp_path) == []


def test_attack_settings_follow_the_reference_and_keep_the_path_ratio():
    smoke = profiles.resolve("02_adversarial", "smoke")
    paper = profiles.resolve("02_adversarial", "paper")
    # MNIST evaluation: a path of 2.5ε (40 × 0.01875), not the published 40 × 0.01 (see REFERENCE)
    assert configs.attack_settings(paper, "mnist") == {"eps": 0.3, "steps": 40, "step_size": pytest.approx(0.01875)}
    assert configs.large_eps(paper, "mnist") == 0.5
    short = configs.attack_settings(smoke, "mnist")
    assert short["steps"] == 5 and short["steps"] * short["step_size"] == pytest.approx(2.5 * 0.3)
    assert configs.attack_settings(paper, "mnist", training=True)["step_size"] == pytest.approx(0.01)
    cifar = configs.attack_settings(paper, "cifar10", training=True)
    assert cifar == {"eps": pytest.approx(8 / 255), "steps": 10, "step_size": pytest.approx(2 / 255)}
    assert configs.attack_settings(paper, "mnist", eps=0.15)["step_size"] == pytest.approx(0.01875 / 2)


def test_a_chapter_shows_one_line_with_the_profile_and_what_differs_from_it():
    P = profiles.resolve("02_adversarial", "quick", eps=0.2, eval_size="1000")  # 1000 is quick's own value
    assert P.changed == {"eps": 0.2}
    assert P.summary() == "Profile 'quick'; parameters that differ from it: eps = 0.2."
    folded = P._repr_markdown_()
    assert folded.startswith(P.summary()) and "<details>" in folded and "| `eval_size` | `1000` |" in folded
    assert profiles.resolve("02_adversarial", "smoke").summary().endswith("differ from it: none.")


def test_running_a_notebook_again_in_the_same_kernel_ignores_the_names_its_cells_defined():
    namespace = {"profile": "smoke", "eps": None, "epochs": 2}
    profiles.from_namespace("01_classification", namespace)
    namespace.update(P="params", table=[1], ds="mnist", epochs=3)  # later cells; the parameters cell again
    assert profiles.from_namespace("01_classification", namespace).epochs == 3


def test_a_chapter_budget_changes_only_its_chapter_and_is_stated(monkeypatch):
    same = profiles.PROFILES["quick"]["family_pools"]  # a value equal to the book's is no cut
    monkeypatch.setitem(profiles.CHAPTER_BUDGETS, "quick", {"06_pooling_family": {"eval_size": 200, "family_pools": same}})
    family = profiles.resolve("06_pooling_family", "quick")
    assert family.eval_size == 200 and profiles.resolve("05_sweeps", "quick").eval_size == 1000
    assert family.cuts == {"eval_size": (200, 1000)} and family.changed == {}
    assert family.summary() == ("Profile 'quick' with this chapter's own budget (eval_size = 200 (book: 1000)); "
                                "parameters that differ from it: none.")
    assert profiles.resolve("06_pooling_family", "quick", eval_size=1000).changed == {"eval_size": 1000}


def test_chapter_budgets_name_real_profiles_notebooks_and_parameters():
    for profile, chapters in profiles.CHAPTER_BUDGETS.items():
        for notebook, budget in chapters.items():
            assert set(budget) <= set(profiles.NOTEBOOK_PARAMS[notebook]), (profile, notebook)
            profiles.resolve(notebook, profile)  # the values pass the parameters' checks
