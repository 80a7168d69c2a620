"""What chapter 6's design can detect (not a test): the power of its rule for claim 4.

Chapter 6 correlates information loss at the downsampling layers with robust accuracy across
variants × seeds. This simulates two rules on synthetic studies of the same shape (per variant a true
information loss; per model a robust accuracy whose correlation with it is set by a latent ``r``, each
model's noise independent) and prints, per latent correlation, how often each says "supported",
"contradicted" or "inconclusive":

- *seed interval*: the whole 95 % seed-resampled interval of the rank correlation over all models
  negative (or positive) — the rule chapter 6 used before rule 9;
- *rule 9* (``verdicts.family_verdict``): the rank correlation of the variants' means at exact
  permutation p < 0.05.

Under r = 0 the "supported" + "contradicted" share is the rule's false-verdict rate. With
``--trend`` it prints instead the power of rule 11 (``verdicts.knob_trend``), the design of issue 49:
a knob whose order is fixed before training, tested by the rank correlation over every model
(``stats.trend_power``), and the smallest latent correlation it finds with power 0.8.

Usage: python benchmarks/family_power.py [--variants 5] [--seeds 3] [--studies 200] [--trend]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from igan_utils.book.verdicts import family_verdict
from igan_utils.method.stats import correlation_over_seeds, detectable_trend, trend_power


def simulate(r: float, variants: int, seeds: int, rng: np.random.Generator, resamples: int) -> dict[str, str]:
    """One synthetic study with latent correlation ``r`` between information loss and robust
    accuracy; each rule's verdict on it."""
    loss = np.repeat(np.arange(variants, dtype=float), seeds)  # one true loss per variant
    z = (loss - loss.mean()) / loss.std()
    robust = r * z + np.sqrt(1 - r ** 2) * rng.standard_normal(len(z))
    table = pd.DataFrame({"il": loss + 1e-6 * rng.standard_normal(len(z)), "robust": robust,
                          "seed": np.tile(np.arange(seeds), variants), "pool": np.repeat(np.arange(variants), seeds)})
    found = correlation_over_seeds(table, "il", "robust", resamples=resamples, seed=int(rng.integers(1 << 31)),
                                   group="pool")
    rule9 = family_verdict(found)
    return {"seed interval": "supported" if found["ci_hi"] < 0 else "contradicted" if found["ci_lo"] > 0
            else "inconclusive",
            "rule 9": {"supports": "supported", "contradicts": "contradicted"}.get(rule9, "inconclusive")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--studies", type=int, default=200, help="synthetic studies per true correlation")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the seed interval")
    parser.add_argument("--trend", action="store_true", help="rule 11's power over every model instead")
    args = parser.parse_args()
    if args.trend:
        studies = max(args.studies, 400)
        rows = [{"latent correlation": r, "finds it (power)": trend_power(args.variants, args.seeds, r, studies=studies)}
                for r in (0.0, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8)]
        print(f"rule 11: {args.variants} levels × {args.seeds} seeds = {args.variants * args.seeds} models, {studies} "
              f"synthetic studies per row (at 0: the false-verdict rate)")
        print(pd.DataFrame(rows).to_markdown(index=False))
        print(f"smallest latent |correlation| found with power 0.8: {detectable_trend(args.variants, args.seeds)}")
        return
    rng = np.random.default_rng(0)
    rows = []
    for r in (0.0, -0.3, -0.5, -0.7, -0.8, -0.9, -0.95):
        verdicts = pd.DataFrame([simulate(r, args.variants, args.seeds, rng, args.resamples) for _ in range(args.studies)])
        for rule in verdicts:
            rows.append({"latent correlation": r, "rule": rule, **verdicts[rule].value_counts(normalize=True).reindex(
                ["supported", "inconclusive", "contradicted"], fill_value=0.0).round(3).to_dict()})
    print(f"{args.variants} variants × {args.seeds} seeds = {args.variants * args.seeds} models, "
          f"{args.studies} synthetic studies per row")
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
