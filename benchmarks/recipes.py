"""Adversarial-training recipes for the `quick` profile, judged by AutoAttack (not a test).

For each recipe (PGD steps, epochs, learning rate) and each pooling, it trains seed 0 on MNIST(-10k)
with the quick profile's data, then measures on the first ``--images`` test images: clean accuracy,
PGD alone, the worst case over the quick ensemble (PGD screen, APGD-CE, APGD-T, Square), Square alone,
and the masking checks. Recipes are chosen by the worst case among the models that pass the checks,
never by PGD. Trained models go to the artifact store, so the chosen recipe is reused by the book.

Usage: IGAN_DATA_DIR=../shared/data python benchmarks/recipes.py [--images 200] [--recipe 3,4,5e-3 ...]
A recipe is "train_steps,adv_epochs,lr".
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from igan_utils import data, evaluation, profiles, training
from igan_utils.book import hardware
from igan_utils.store import Store

DEFAULT_RECIPES = ["3,4,5e-3", "7,4,5e-3", "10,4,5e-3", "10,6,5e-3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--recipe", action="append", help="train_steps,adv_epochs,lr (repeatable)")
    parser.add_argument("--pools", default="max,avg")
    args = parser.parse_args()
    store = Store()
    rows = []
    for recipe in args.recipe or DEFAULT_RECIPES:
        steps, epochs, lr = recipe.split(",")
        P = profiles.resolve("02_adversarial", "quick", train_steps=int(steps), adv_epochs=int(epochs), lr=float(lr))
        splits = data.splits_for(P, "mnist")
        x, y = splits.test.take(slice(0, args.images)).tensors()
        ensemble = evaluation.ensemble_for(P, "mnist")
        eps = profiles.attack_settings(P, "mnist")["eps"]
        for pool in args.pools.split(","):
            start = time.perf_counter()
            model = training.get_or_train(training.config_for(P, "mnist", pool, 0, adversarial=True),
                                          splits.train, splits.val, store=store)
            train_seconds = time.perf_counter() - start
            start = time.perf_counter()
            table = evaluation.robust_table([model], x, y, eps=eps, ensemble=ensemble, store=store).iloc[0]
            checks = evaluation.masking_checks(model, x, y, eps=eps, large_eps=profiles.large_eps(P, "mnist"),
                                               ensemble=ensemble, store=store).set_index("check")
            rows.append({"recipe": f"PGD-{steps} x {epochs} ep, lr {lr}", "pool": pool,
                         "clean": table["clean_acc"], "PGD": table["acc_after_pgd"],
                         "worst case": table["robust_acc"],
                         "Square alone": checks.loc["black-box vs white-box", "accuracy"],
                         "white-box": checks.loc["black-box vs white-box", "baseline_accuracy"],
                         "large eps": checks.loc["large eps", "accuracy"],
                         "failed checks": ", ".join(checks.index[~checks["passed"]]) or "none",
                         "train s": round(train_seconds), "eval s": round(time.perf_counter() - start)})
            print(pd.DataFrame(rows).tail(1).to_string(index=False), flush=True)
    print(f"\n{hardware()}; MNIST-10k, first {args.images} test images, eps 0.3")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
