"""Figures: what a reader needs to read them is on them."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from igan_utils import plots  # noqa: E402


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

    from igan_utils.checkup.api import Diagnosis

    found = Diagnosis(model_name="net", taps=["a"], vulnerability=pd.DataFrame(columns=["judge", "tap", "V"]),
                      information=pd.DataFrame(), correlation=pd.DataFrame(), quality=pd.DataFrame(), judge="j",
                      settings={"eps": 0.3}, classes=[], examples={}, judge_checks=None, seconds=0.0)
    fig = found.plot_vulnerability()
    assert "no adversarial examples" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
