"""Adversarial-training recipes for the `quick` profile, judged by AutoAttack (not a test).

For each recipe (method, PGD steps, epochs, learning rate, TRADES β), each pooling and each seed, it
trains on MNIST(-10k) with the quick profile's data, then measures on the first ``--images`` test
images: clean accuracy, PGD alone, the worst case over the quick ensemble (PGD screen, APGD-CE,
APGD-T, Square), Square alone, the gap between PGD and the worst case, and the masking checks.
Recipes are chosen by the worst case among the models that pass the checks, never by PGD. Trained
models go to the artifact store, so the chosen recipe is reused by the book.

Usage: IGAN_DATA_DIR=../shared/data python benchmarks/recipes.py [--images 200] [--seeds 0,1]
       [--recipe pgd,10,4,5e-3 --recipe trades,10,4,5e-3,6 ...]
A recipe is "method,train_steps,adv_epochs,lr[,beta]" (beta for TRADES only).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from igan_utils.book import configs, profiles
from igan_utils.book.runner import hardware
from igan_utils.book.store import Store
from igan_utils.method import autoattack, masking, training

DEFAULT_RECIPES = ["pgd,3,4,5e-3", "pgd,7,4,5e-3", "pgd,10,4,5e-3", "pgd,10,6,5e-3"]


def parse_recipe(text: str) -> dict:
    """``"method,steps,epochs,lr[,beta]"`` → the profile overrides of that recipe."""
    parts = text.split(",")
    if len(parts) not in (4, 5) or parts[0] not in training.METHODS[1:]:
        raise SystemExit(f"error: a recipe is method,train_steps,adv_epochs,lr[,beta] with method one of "
                         f"{', '.join(training.METHODS[1:])}; got {text!r}")
    overrides = {"adv_method": parts[0], "train_steps": int(parts[1]), "adv_epochs": int(parts[2]),
                 "lr": float(parts[3])}
    if len(parts) == 5:
        overrides["trades_beta"] = float(parts[4])
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--recipe", action="append", help="method,train_steps,adv_epochs,lr[,beta] (repeatable)")
    parser.add_argument("--pools", default="max,avg")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    store = Store()
    rows = []
    for recipe in args.recipe or DEFAULT_RECIPES:
        overrides = parse_recipe(recipe)
        P = profiles.resolve("02_adversarial", "quick", **overrides)
        splits = configs.splits_for(P, "mnist")
        x, y = splits.test.take(slice(0, args.images)).tensors()
        ensemble = configs.ensemble_for(P, "mnist")
        eps = configs.attack_settings(P, "mnist")["eps"]
        for pool in args.pools.split(","):
            for seed in map(int, args.seeds.split(",")):
                start = time.perf_counter()
                model = training.get_or_train(configs.train_config_for(P, "mnist", pool, seed, adversarial=True),
                                              splits.train, splits.val, store=store)
                train_seconds = time.perf_counter() - start
                start = time.perf_counter()
                table = autoattack.robust_table([model], x, y, eps=eps, ensemble=ensemble, store=store).iloc[0]
                checks = masking.masking_checks(model, x, y, eps=eps, large_eps=configs.large_eps(P, "mnist"),
                                                   ensemble=ensemble, store=store).set_index("check")
                beta = f", β {P.trades_beta:g}" if P.adv_method == "trades" else ""
                rows.append({"recipe": f"{P.adv_method}-{P.train_steps} × {P.adv_epochs} ep, lr {P.lr:g}{beta}",
                             "pool": pool, "seed": seed, "clean": table["clean_acc"], "PGD": table["acc_after_pgd"],
                             "worst case": table["robust_acc"],
                             "PGD − worst": table["acc_after_pgd"] - table["robust_acc"],
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
