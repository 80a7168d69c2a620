"""Does the diagnosis find the layer where one is planted? Rule 12 on a profile's models (issue 48;
not a speed test).

Builds what chapter 4 builds for one dataset (its naturally trained model of the first pool and its
trusted judge, from the store or trained now) and runs ``studies.planted_checks``: ten flip and ten
null plants, with exact interpreters and with each of rule 13's candidates (InterpretGAN's three
settings, feature inversion). Prints the
rule's verdict and every plant's outcome. The rule (method page, rule 12) was fixed before the first
run: at least 9 of 10 plants of each kind found.

Usage: IGAN_DATA_DIR=data IGAN_STORE_DIR=../stores/quick python benchmarks/planted.py --profile quick
       [--lambda-cls 0]  (interpreters without their classification-consistency loss)
       [--lambda-adv 0]  (without their realism loss: plain decoders)
       [--interpreters "feature inversion"]  (only some of the interpreters)
benchmarks/planted_generator.py then reads the generators it stored.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from igan_utils.book import configs, profiles, studies
from igan_utils.book.store import Store
from igan_utils.method import planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=profiles.PROFILE_NAMES)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--lambda-cls", type=float, default=None,
                        help="weight of InterpretGAN's classification-consistency loss (default: the profile's)")
    parser.add_argument("--lambda-adv", type=float, default=None,
                        help="weight of InterpretGAN's realism loss (default: the profile's; 0: a plain decoder)")
    parser.add_argument("--interpreters", nargs="+", default=None,
                        help="run only these of exact and rule 13's interpreters (default: all)")
    args = parser.parse_args()
    overrides = {name: value for name, value in (("lambda_cls", args.lambda_cls), ("lambda_adv", args.lambda_adv))
                 if value is not None}
    P = profiles.resolve("04_diagnosis", args.profile, datasets=[args.dataset], **overrides)
    started = time.perf_counter()
    store = Store()
    splits = configs.splits_for(P, args.dataset)
    natural = configs.models_for(P, args.dataset, splits, store=store, adversarial=(False,), pools=P.pools[:1],
                                 seeds=P.seeds[:1])[0]
    judge, checks = configs.trusted_judge(P, args.dataset, splits, store=store)
    print(f"{splits.label}: plants over {natural.config.label}, judge {judge.config.label}, "
          f"λ_cls {P.lambda_cls}, λ_adv {P.lambda_adv} (masking checks passed: {bool(checks['passed'].all())}); "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    table = studies.planted_checks(P, {(args.dataset, "natural", P.pools[0]): natural}, {args.dataset: judge},
                                   {args.dataset: splits}, store=store,
                                   interpreters=args.interpreters)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns="dataset").round(3).to_string())
        print(planted.pass_rates(table, ["dataset", "interpreters"]).to_string())
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
