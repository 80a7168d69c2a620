"""The cost of trust (not a test): seconds and robust accuracy of the `quick` evaluation, per attack.

On the `quick` adversarially trained small_cnn (seed 0, from the artifact store or trained now) and
the first ``--images`` MNIST(-10k) test images, at the reference ε = 0.3:

- the ensemble as the book runs it (PGD screen, then APGD-CE, APGD-T, Square on the images still
  unbroken): seconds of each attack and of the whole, accuracy after each;
- each attack alone on every image: its seconds and its robust accuracy.

Usage: IGAN_DATA_DIR=../shared/data python benchmarks/evaluation.py [--images 200] [--pools max,avg]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from igan_utils import data, evaluation, profiles, training
from igan_utils.book import hardware
from igan_utils.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--pools", default="max,avg")
    args = parser.parse_args()
    P = profiles.resolve("02_adversarial", "quick")
    splits = data.splits_for(P, "mnist")
    x, y = splits.test.take(slice(0, args.images)).tensors()
    ensemble = evaluation.ensemble_for(P, "mnist")
    eps = profiles.attack_settings(P, "mnist")["eps"]
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}; {splits.label}, first {args.images} test images, "
          f"eps {eps}; ensemble: {ensemble.name}")
    rows = []
    for pool in args.pools.split(","):
        model = training.get_or_train(training.config_for(P, "mnist", pool, 0, adversarial=True), splits.train,
                                      splits.val, store=Store())
        chain = evaluation.worst_case(model.model, x, y, eps=eps, ensemble=ensemble)
        for name in ensemble.order:
            alone = evaluation.worst_case(model.model, x, y, eps=eps, ensemble=ensemble.only(name))
            rows.append({"model": model.config.label, "attack": name, "in ensemble s": chain.seconds[name],
                         "accuracy after it": chain.after[name], "alone s": alone.seconds[name],
                         "accuracy alone": alone.accuracy})
        rows.append({"model": model.config.label, "attack": "whole ensemble",
                     "in ensemble s": sum(chain.seconds.values()), "accuracy after it": chain.accuracy,
                     "alone s": float("nan"), "accuracy alone": float("nan")})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
