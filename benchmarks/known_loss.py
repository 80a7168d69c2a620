"""Does an information-loss estimator rank layers whose loss is known? (issue 49; not a speed test)

Runs both of the book's estimators, the decoder (``layers.information_loss``, its raw ``decoder_mse``
per tap) and the affine map (``layers.linear_information_loss``), on the chains of
``igan_utils.method.known_loss`` (average and max pooling windows, projection ranks, noise levels),
each a chain whose order of information is known by construction, and prints per chain and estimator
the loss at each tap and whether it ranked the chain strictly. The decoder runs with two seeds, so
that each rise can be set against the seed-to-seed spread at that tap.

The rule, fixed before the first run (2026-12-07): an estimator *passes* a chain when, for every
tap, its loss is larger than at the tap before by more than twice the larger seed-to-seed spread of
the two taps (the affine map has no seed: spread 0).

Usage: IGAN_DATA_DIR=data python benchmarks/known_loss.py [--steps 100] [--train 4000] [--test 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd

from igan_utils.book.store import Store
from igan_utils.method import data, known_loss, layers


def passes(losses: pd.DataFrame) -> bool:
    """The rule above, on a table of one chain and estimator with columns ``loss`` and ``spread``."""
    rise = losses["loss"].diff().iloc[1:]
    margin = 2 * pd.concat([losses["spread"], losses["spread"].shift()], axis=1).max(axis=1).iloc[1:]
    return bool((rise > margin).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="decoder steps (quick's decoder_steps)")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    splits = data.load_splits("mnist", train_size=args.train, val_size=0, test_size=args.test)
    store = Store(tempfile.mkdtemp())
    chains = [known_loss.pooling_chain("avg"), known_loss.pooling_chain("max"),
              known_loss.projection_chain(splits.train), known_loss.noise_chain()]
    print(f"{splits.label}: {len(splits.train):,} training and {len(splits.test):,} test images; decoders of "
          f"{args.steps} steps, seeds 0–{args.seeds - 1}")
    verdicts = []
    for chain in chains:
        start = time.perf_counter()
        linear = layers.linear_information_loss(chain, chain.taps, splits.train, splits.test)
        decoders = pd.concat([layers.information_loss(chain, chain.taps, splits.train, splits.test, steps=args.steps,
                                                      store=store, seed=seed, progress=False,
                                                      config={"chain": chain.kind}).assign(seed=seed)
                              for seed in range(args.seeds)])
        decoder = decoders.groupby("tap", sort=False)["decoder_mse"].agg(loss="mean", spread=lambda v: v.max() - v.min())
        table = pd.DataFrame({"tap": chain.taps}).merge(decoder.reset_index(), on="tap")
        table["linear"] = linear.set_index("tap").reindex(chain.taps)["linear_mse"].to_numpy()
        ok_decoder, ok_linear = passes(table), passes(pd.DataFrame({"loss": table["linear"], "spread": 0.0}))
        verdicts.append({"chain": chain.kind, "decoder passes": ok_decoder, "affine map passes": ok_linear})
        print(f"\n{chain.kind} ({time.perf_counter() - start:.0f} s)")
        print(table.rename(columns={"loss": "decoder MSE (mean of seeds)", "spread": "decoder seed spread",
                                    "linear": "affine-map MSE"}).to_markdown(index=False, floatfmt=".5f"), flush=True)
    print("\n" + pd.DataFrame(verdicts).to_markdown(index=False))


if __name__ == "__main__":
    main()
