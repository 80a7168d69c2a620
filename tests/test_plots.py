"""Figures: what a reader needs to read them is on them."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from igan_utils.book import plots


def test_the_pooling_plot_names_masked_models_in_its_legend():
    # masked models only under adversarial training (the second group), as in the quick study
    table = pd.DataFrame([{"data_label": "d", "method": training, "pool": pool, "seed": s, "robust_acc": 0.5,
                           "masked": training == "pgd" and pool == "avg" and s > 0}
                          for training in ("natural", "pgd") for pool in ("max", "avg") for s in range(3)])
    fig = plots.robust_points(table)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(labels) == ["avg", "avg (masked)", "max"]


def test_a_diagnosis_with_no_adversarial_example_plots_a_panel_that_says_so():
    # diagnose_model warns and returns an empty table when no image was broken; its plot must not fail
    import matplotlib.pyplot as plt
    import pandas as pd

    from igan_utils.diagnose.api import Diagnosis

    found = Diagnosis(model_name="net", taps=["a"], vulnerability=pd.DataFrame(columns=["judge", "tap", "V"]),
                      information=pd.DataFrame(), correlation=pd.DataFrame(), quality=pd.DataFrame(), judge="j",
                      settings={"eps": 0.3}, classes=[], examples={}, judge_checks=None, seconds=0.0)
    fig = found.plot_vulnerability()
    assert "no adversarial examples" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_the_gap_plot_has_a_panel_per_method_epochs_on_its_axis_and_hollow_masked_models():
    import matplotlib.pyplot as plt

    table = pd.DataFrame([{"adv_method": method, "adv_epochs": epochs, "pool": pool, "seed": s,
                           "gap": 0.3 if masked else 0.02, "masked": masked}
                          for method in ("pgd", "trades") for epochs in (4, 8, 16) for pool in ("max", "avg")
                          for s in range(2) for masked in [method == "pgd" and pool == "avg" and epochs == 4]])
    fig = plots.gap_by_epochs(table)
    assert [ax.get_title() for ax in fig.axes] == ["PGD", "TRADES"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["4", "8", "16"]
    pgd_legend = sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert pgd_legend == ["avg", "avg (masked)", "max"]  # avg at 8 and 16 epochs is not masked
    hollow = [c for c in fig.axes[0].collections if c.get_label() == "avg (masked)"][0]
    assert len(hollow.get_offsets()) == 2 and (hollow.get_facecolor()[:, 3] == 0).all()
    assert sorted(t.get_text() for t in fig.axes[1].get_legend().get_texts()) == ["avg", "max"]
    plt.close(fig)


def test_the_gap_plot_has_a_row_of_panels_per_dataset():
    import matplotlib.pyplot as plt

    table = pd.DataFrame([{"data_label": ds, "adv_method": "pgd", "adv_epochs": e, "pool": "avg", "seed": 0,
                           "gap": 0.02, "masked": False} for ds in ("MNIST-10k", "CIFAR-10") for e in (4, 8)])
    fig = plots.gap_by_epochs(table)
    assert [ax.get_title() for ax in fig.axes] == ["MNIST-10k: PGD", "CIFAR-10: PGD"]
    plt.close(fig)


def test_the_explorer_widget_redraws_into_an_image_not_an_output_widget():
    # An Output widget (as in ipywidgets.interactive) makes nbclient, papermill's executor, send
    # on the shell channel while it waits there for the cell's reply; chapter 3's runs hung on it
    # (jupyter/nbclient#312). The explorer draws into an Image widget instead.
    import ipywidgets as widgets
    import torch

    from igan_utils.book import explorer

    pair = ([torch.rand(1, 8, 8), torch.rand(1, 8, 8)], [torch.rand(1, 8, 8), torch.rand(1, 8, 8)])
    rows = {m: [[pair, pair], [pair, pair]] for m in ("max", "avg")}  # 2 examples × 2 radii
    labels = {m: [[(["1", "1"], ["1", "7"])] * 2] * 2 for m in ("max", "avg")}
    view = explorer.widget(explorer.ExplorerGrid(["max", "avg"], [0.0, 0.3], ["fc1"], rows, labels))

    def tree(w):
        yield w
        for child in getattr(w, "children", ()):
            yield from tree(child)

    parts = list(tree(view))
    assert not any(isinstance(w, widgets.Output) for w in parts)
    [image] = [w for w in parts if isinstance(w, widgets.Image)]
    assert image.value[:8] == b"\x89PNG\r\n\x1a\n"
    before = image.value
    next(w for w in parts if getattr(w, "description", "") == "model").value = "avg"
    assert image.value != before, "changing the model did not redraw"


def test_a_judge_with_nothing_to_draw_gets_no_empty_panel_but_a_note():
    # the self-judge's first flips are 0 at every tap (x′ fools it at the input already)
    rows = [{"judge": judge, "tap": tap, "pool": pool, "first_flip": 0.0 if judge == "self" else 0.1,
             "first_flip_lo": 0.0, "first_flip_hi": 0.2, "faithful": True}
            for judge in ("independent", "self") for tap in ("conv1", "fc1") for pool in ("max", "avg")]
    fig = plots.vulnerability_bars(pd.DataFrame(rows), value="first_flip", title="pgd training")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "judge: independent"
    assert "judge self: first_flip is 0 at every tap, not drawn" in fig._suptitle.get_text()


def test_the_randomisation_plot_draws_a_line_per_level_and_dashes_unjudged_levels():
    table = pd.DataFrame({"level": [0, 0, 1, 1, 2, 2], "randomised": ["none", "none", "logits", "logits", "fc1", "fc1"],
                          "taps_randomised": [0, 0, 0, 0, 1, 1], "tap": ["conv2", "fc1"] * 3, "n": 50,
                          "V": [0.1, 0.2, 0.1, 0.25, 0.4, 0.0], "V_lo": 0.0, "V_hi": 0.5, "disjoint": False})
    fig = plots.randomisation_profiles(table, title="t")
    lines = fig.axes[0].get_legend().get_texts()
    assert [t.get_text() for t in lines] == ["trained", "from logits up", "from fc1 up"]
    styles = [line.get_linestyle() for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert styles == ["-", "--", "-"]
