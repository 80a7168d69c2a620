from pathlib import Path

import pandas as pd
import pytest

from igan_utils.book import studies, sweep
from igan_utils.method import masking

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_grid_points_and_names():
    points = sweep.grid_points({"pool": ["max", "avg"], "seed": [0, 1]})
    assert points == [{"pool": "max", "seed": 0}, {"pool": "max", "seed": 1},
                      {"pool": "avg", "seed": 0}, {"pool": "avg", "seed": 1}]
    assert sweep.point_name({"pool": "max", "eps": 0.3}) == "pool=max_eps=0.3"
    assert sweep.point_name({"path": "a/b c"}) == "path=a-b-c"


@pytest.mark.parametrize("grid, parameters, message", [
    ({}, None, "the grid is empty"),
    ({"a": []}, None, "grid parameter\\(s\\) a have no values"),
    ({"epsilon": [1]}, None, "has no parameter\\(s\\) epsilon; it has: a, b, results_path"),
    ({"a": [1]}, {"c": 2}, "has no parameter\\(s\\) c"),
    ({"a": [1]}, {"a": 2}, "given both in the grid and as fixed parameters"),
    ({"results_path": ["x"]}, None, "set by the sweep"),
])
def test_bad_grids_fail_before_any_work(tmp_path, sweepable, grid, parameters, message):
    notebook = sweepable(tmp_path)
    with pytest.raises(ValueError, match=message):
        sweep.run_sweep(notebook, grid, tmp_path / "out", parameters=parameters)
    assert not (tmp_path / "out").exists()


def test_notebook_without_results_is_refused(tmp_path, sweepable):
    with pytest.raises(ValueError, match="records no results"):
        sweep.validate(sweepable(tmp_path, results=False), {"a": [1]})


def test_unreachable_scheduler_fails_before_any_work(tmp_path, sweepable):
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        sweep.run_sweep(sweepable(tmp_path), {"a": [1]}, tmp_path / "out", scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "out").exists()


def test_sweep_runs_collects_reports_failures_and_resumes(tmp_path, sweepable):
    notebook = sweepable(tmp_path)
    grid = {"a": ["1", "bad", "3"], "b": ["x", "y"]}
    first = sweep.run_sweep(notebook, grid, tmp_path / "out", workers=2, progress=False)
    assert sorted(first.table["value"]) == ["1-x", "1-y", "3-x", "3-y"]
    assert set(first.table.columns) == {"value", "a", "b"}
    assert len(first.failures) == 2 and all("bad point" in f["error"] for f in first.failures)
    assert all(Path(f["notebook"]).exists() for f in first.failures)  # the executed copy shows the traceback
    written = pd.read_csv(tmp_path / "out" / "results.csv", dtype=str)
    assert written.to_dict("records") == first.table.astype(str).to_dict("records")
    second = sweep.run_sweep(notebook, grid, tmp_path / "out", workers=2, progress=False)
    assert second.skipped == 4 and len(second.failures) == 2  # finished points are not run again


def test_command_line(tmp_path, sweepable, capsys):
    notebook = sweepable(tmp_path)
    code = sweep.main([str(notebook), "--grid", "a=1,2", "-p", "b=z", "--out", str(tmp_path / "cli"), "--workers", "1"])
    assert code == 0
    assert sorted(pd.read_csv(tmp_path / "cli" / "results.csv")["value"]) == ["1-z", "2-z"]
    assert sweep.main([str(notebook), "--grid", "nope=1", "--out", str(tmp_path / "x")]) == 2
    assert "has no parameter(s) nope" in capsys.readouterr().err


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_of_the_book_is_sweepable(notebook):
    assert sweep.validate(notebook, {"profile": ["smoke", "quick"]}) == [{"profile": "smoke"}, {"profile": "quick"}]


def test_a_study_judges_masked_on_read_so_a_changed_rule_needs_no_rerun(tmp_path, monkeypatch):
    # each point stores the masking checks' numbers; `masked` comes from today's thresholds
    from igan_utils.book import profiles
    from igan_utils.method import masking

    monkeypatch.setenv("IGAN_STORE_DIR", str(tmp_path))
    folders = []
    checks = pd.DataFrame({"model": ["avg/pgd/s0"] * 2, "check": ["AutoAttack vs PGD", "large eps"],
                           "accuracy": [0.70, 0.0], "baseline_accuracy": [0.80, 0.9]})  # 10 points below PGD
    point = masking.with_check_numbers(pd.DataFrame({"dataset": ["mnist"], "model": ["avg/pgd/s0"]}), checks)

    def fake_sweep(notebook, grid, out, **kwargs):
        folders.append(Path(out))
        assert Path(notebook).name == "robustness_point.ipynb" and grid["pool"] == ["max", "avg"]
        assert kwargs["parameters"]["profile"] == "smoke" and "pool" not in kwargs["parameters"]
        return sweep.SweepResult(point)

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    params = profiles.resolve("05_sweeps", "smoke")
    table, _ = studies.robustness_study(params, "pooling", ["max", "avg"])
    assert "masked" not in point and table["masked"].tolist() == [True]
    monkeypatch.setattr(masking, "MAX_BELOW_PGD", 0.2)
    again, _ = studies.robustness_study(params, "pooling", ["max", "avg"])
    assert again["masked"].tolist() == [False] and folders[0] == folders[1]  # same points, today's rule
    assert folders[0].parent == tmp_path / "sweeps" and folders[0].name.startswith("pooling-")
    assert table["data_label"].tolist() == ["MNIST-10k"]  # the label of the offline data beside the checkout


def test_only_chapter_6_points_measure_the_information_loss(tmp_path, monkeypatch):
    # chapter 5 reads robust accuracies only: its points (every look, the recipe study) skip the decoders
    from igan_utils.book import profiles

    monkeypatch.setenv("IGAN_STORE_DIR", str(tmp_path))
    asked = []

    def fake_sweep(notebook, grid, out, **kwargs):
        asked.append(kwargs["parameters"].get("information_loss", profiles.PROFILES["smoke"]["information_loss"]))
        return sweep.SweepResult(pd.DataFrame({"dataset": []}))

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    monkeypatch.setattr("igan_utils.book.verdicts.sequential_comparison",
                        lambda evaluate, looks, compare: (evaluate(looks[0]), pd.DataFrame(), pd.DataFrame()))
    chapter5 = profiles.resolve("05_sweeps", "smoke")
    studies.pooling_study(chapter5)
    studies.recipe_study(chapter5)
    assert asked == [False, False, False]  # natural, adversarial, recipes
    studies.robustness_study(profiles.resolve("06_pooling_family", "smoke"), "family", ["max"])
    assert asked[-1] is True


def test_the_recipe_study_adds_the_book_s_own_recipe_when_its_grid_lacks_it(tmp_path, monkeypatch):
    from igan_utils.book import profiles

    monkeypatch.setenv("IGAN_STORE_DIR", str(tmp_path))
    grids = []

    def fake_sweep(notebook, grid, out, **kwargs):
        grids.append({axis: grid[axis] for axis in ("adv_method", "adv_epochs")})
        rows = [{"dataset": "mnist", "adv_method": m, "adv_epochs": e, "acc_after_pgd": 0.9, "robust_acc": 0.8}
                for m in grid["adv_method"] for e in grid["adv_epochs"]]
        return sweep.SweepResult(pd.DataFrame(rows), failures=[{"point": len(grids)}], skipped=1, seconds=2.0)

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    monkeypatch.setattr(masking, "masked_from_numbers", lambda table: False)
    outside = profiles.resolve("05_sweeps", "smoke", adv_epochs=2)  # the grid tries 1 epoch only
    table, result = studies.recipe_study(outside)
    assert grids == [{"adv_method": ["pgd", "trades"], "adv_epochs": [1]}, {"adv_method": ["pgd"], "adv_epochs": [2]}]
    assert studies.recipes_of(outside) == [("pgd", 1), ("trades", 1), ("pgd", 2)]
    assert list(zip(table["adv_method"], table["adv_epochs"])) == studies.recipes_of(outside)
    assert table["gap"].round(6).tolist() == [0.1] * 3
    assert (result.skipped, result.seconds, result.failures) == (2, 4.0, [{"point": 1}, {"point": 2}])
    grids.clear()
    inside = profiles.resolve("05_sweeps", "smoke")  # 1 epoch of PGD: already in the grid
    assert studies.recipes_of(inside) == [("pgd", 1), ("trades", 1)]
    assert len(studies.recipe_study(inside)[0]) == 2 and len(grids) == 1


def test_a_sweep_runs_on_an_existing_dask_cluster_on_loopback(tmp_path, sweepable):
    """The path beyond one machine: a `dask scheduler` and a `dask worker` started as a user would, on
    loopback, and a small sweep handed to them by address."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    dask = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
    with socket.socket() as probe:  # a free port for the scheduler
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", ":0", "--no-show"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                               "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:  # wait until the worker has joined the scheduler
            try:
                with Client(address, timeout="5s") as client:
                    if client.scheduler_info()["workers"]:
                        break
            except (OSError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the Dask worker did not join the scheduler within 60 s"
            time.sleep(1)
        result = sweep.run_sweep(sweepable(tmp_path), {"a": ["1", "2"]}, tmp_path / "out", scheduler=address,
                                 progress=False)
        assert not result.failures and sorted(result.table["value"]) == ["1-x", "2-x"]
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)
