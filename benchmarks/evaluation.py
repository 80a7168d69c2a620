"""The cost of trust (not a test): seconds and robust accuracy of the `quick` evaluation, per attack.

On the `quick` adversarially trained small_cnn (seed 0, from the artifact store or trained now) and
the first ``--images`` MNIST(-10k) test images, at the reference ε = 0.3:

- the ensemble as the book runs it (PGD screen, then APGD-CE, APGD-T, Square on the images still
  unbroken): seconds of each attack and of the whole, accuracy after each;
- each attack alone on every image: its seconds and its robust accuracy;
- with ``--standard``, AutoAttack's own pipeline (``AutoAttack(version="standard").run_standard_evaluation``:
  APGD-CE, APGD-T×9, FAB-T×9, Square-5000) on the same images, as an independent check that the
  book's cheaper worst case agrees with the full standard evaluation (bar: within 1.5 points).

Usage: IGAN_DATA_DIR=../shared/data python benchmarks/evaluation.py [--images 200] [--pools max,avg] [--standard]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from igan_utils.book import configs, profiles
from igan_utils.book.runner import hardware
from igan_utils.book.store import Store
from igan_utils.method import autoattack, training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--pools", default="max,avg")
    parser.add_argument("--standard", action="store_true", help="also run AutoAttack standard on the same images")
    parser.add_argument("--no-alone", action="store_true", help="skip running each attack alone")
    args = parser.parse_args()
    P = profiles.resolve("02_adversarial", "quick")
    splits = configs.splits_for(P, "mnist")
    x, y = splits.test.take(slice(0, args.images)).tensors()
    ensemble = configs.ensemble_for(P, "mnist")
    eps = configs.attack_settings(P, "mnist")["eps"]
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}; {splits.label}, first {args.images} test images, "
          f"eps {eps}; ensemble: {ensemble.name}")
    rows = []
    for pool in args.pools.split(","):
        model = training.get_or_train(configs.train_config_for(P, "mnist", pool, 0, adversarial=True), splits.train,
                                      splits.val, store=Store())
        chain = autoattack.worst_case(model.model, x, y, eps=eps, ensemble=ensemble)
        for name in ([] if args.no_alone else ensemble.order):
            alone = autoattack.worst_case(model.model, x, y, eps=eps, ensemble=ensemble.only(name))
            rows.append({"model": model.config.label, "attack": name, "in ensemble s": chain.seconds[name],
                         "accuracy after it": chain.after[name], "alone s": alone.seconds[name],
                         "accuracy alone": alone.accuracy})
        rows.append({"model": model.config.label, "attack": "whole ensemble",
                     "in ensemble s": sum(chain.seconds.values()), "accuracy after it": chain.accuracy,
                     "alone s": float("nan"), "accuracy alone": float("nan")})
        if args.standard:
            standard, seconds = autoattack_standard(model.model, x, y, eps)
            rows.append({"model": model.config.label, "attack": "AutoAttack standard (their pipeline)",
                         "in ensemble s": seconds, "accuracy after it": standard.float().mean().item(),
                         "alone s": float("nan"), "accuracy alone": float("nan")})
            print(f"{model.config.label}: book's worst case {chain.accuracy:.3f}, AutoAttack standard "
                  f"{standard.float().mean().item():.3f}; images robust for one and not the other: "
                  f"{int((chain.robust != standard).sum())} of {len(x)}", flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


def autoattack_standard(model, x, y, eps: float):
    """Per-image robustness (N,) under AutoAttack's own standard evaluation, and its seconds."""
    from pyautoattack import AutoAttack

    model.eval()
    start = time.perf_counter()
    adversary = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=0, device=x.device)
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=250)
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    return robust, time.perf_counter() - start


if __name__ == "__main__":
    main()
