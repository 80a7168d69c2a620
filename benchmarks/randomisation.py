"""Does V measure the model? Rule 12's cascading randomisation on a profile's adversarially trained
model, with one of rule 13's interpreter candidates (issue 48; not a speed test).

Builds what chapter 4 builds for one dataset (its adversarially and naturally trained models of the
first pool, seed ``seeds[0]``, and its trusted judge, from the store or trained now) and prints:

- ``studies.randomisation_checks``: V per tap at every level of the cascade and the rule's verdict
  (fixed before the first run, ``method.randomisation``: every tested level differs);
- ``studies.judge_accuracy``: how often the judge recognises the candidate's interpretations of
  *clean* test images, per model and tap; where it fails, V there counts the interpreter's errors too.

Usage: IGAN_DATA_DIR=data IGAN_STORE_DIR=../stores/quick python benchmarks/randomisation.py --profile quick
       [--interpreters "feature inversion"] [--judge-images 500]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from igan_utils.book import configs, profiles, studies, verdicts
from igan_utils.book.store import Store
from igan_utils.method import randomisation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=profiles.PROFILE_NAMES)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--interpreters", default=verdicts.FEATURE_INVERSION, choices=verdicts.INTERPRETER_CANDIDATES,
                        help="rule 13's candidate whose interpreters the check uses (default: feature inversion)")
    parser.add_argument("--judge-images", type=int, default=500,
                        help="clean test images whose interpretations the judge labels (default 500)")
    args = parser.parse_args()
    P = profiles.resolve("04_diagnosis", args.profile, datasets=[args.dataset])
    started = time.perf_counter()
    store = Store()
    ds = args.dataset
    splits = configs.splits_for(P, ds)
    trained = configs.models_for(P, ds, splits, store=store, pools=P.pools[:1], seeds=P.seeds[:1])
    models = {(ds, m.config.method, m.config.pool): m for m in trained}
    judge, checks = configs.trusted_judge(P, ds, splits, store=store)
    print(f"{splits.label}: {', '.join(m.config.label for m in trained)}; judge {judge.config.label} "
          f"(masking checks passed: {bool(checks['passed'].all())}); interpreters: {args.interpreters}; "
          f"{time.perf_counter() - started:.0f} s", flush=True)

    table = studies.randomisation_checks(P, models, {ds: judge}, {ds: splits}, store=store,
                                         interpreters={ds: args.interpreters})
    levels, passed = randomisation.randomisation_verdict(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print(table.drop(columns="dataset").round(3).to_string())
        print(levels.to_string())
    print(f"randomisation check passed: {passed}; {time.perf_counter() - started:.0f} s", flush=True)

    taps = list(P.taps or trained[0].model.taps)
    interpreters = {key: studies.diagnosis_interpreters(P, ds, P.seeds[0], args.interpreters, m.model, taps,
                                                        splits.train, store=store, progress=False)
                    for key, m in models.items()}
    fewer = profiles.resolve("04_diagnosis", args.profile, datasets=[ds], diag_size=args.judge_images)
    accuracy = studies.judge_accuracy(fewer, models, interpreters, {ds: judge}, {ds: splits})
    print(accuracy.pivot_table(index="tap", columns="method", values="judge_accuracy", sort=False).round(3).to_string())
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
