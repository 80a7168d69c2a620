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
