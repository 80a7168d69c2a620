"""An independent ensemble on the book's stored models (not a test): does every robust accuracy the book
quotes survive attacks that the book's code did not write?

For each adversarially trained model of a profile's pooling study (``--pools`` × ``--seeds``, with any
``-p`` overrides such as ``adv_epochs=8``), taken from the artifact store (never trained here), on the
first ``--images`` test images at the reference ε:

- the book's number: its worst case (PGD screen, then AutoAttack's APGD-CE, APGD-T, Square) read from the
  store, and its masking checks (also stored) judged by today's rules;
- the independent number: torchattacks' APGD-CE, APGD-T and Square (a separate implementation, run on
  every correctly classified image, each later attack on the images the earlier ones left), per image;
- the bar of issue #22, fixed before the run: an **unmasked** model's book number must lie within 1.5
  points of the independent one (``agrees``, else ``DISAGREES``); a **masked** model's number is an upper
  bound, which a stronger attack may lower (``upper bound, lowered``: by more than 1.5 points) but cannot
  flip a one-sided verdict, which only gets more certain. ``both`` is the worst case over the two per image.

Usage: IGAN_DATA_DIR=../shared/data python benchmarks/crosscheck.py --profile quick [--images 200]
       [--pools max,avg] [--seeds 0,1] [-p adv_epochs=8] [--targets 9] [--queries 5000]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd
import torch

from igan_utils.book import configs, profiles
from igan_utils.book.runner import hardware, parameter_pair
from igan_utils.book.store import Store
from igan_utils.method import autoattack, masking, training

BAR = 0.015  # issue #22: an independent ensemble must agree with every unmasked number within 1.5 points


def independent_robust(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, iters: int,
                       targets: int, queries: int, seed: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-image robustness (N,) under torchattacks' APGD-CE, APGD-T (``targets`` classes) and Square
    (``queries``), run in that order on the images still unbroken, and each attack's seconds."""
    import torchattacks

    attacks = {"apgd-ce": torchattacks.APGD(model, eps=eps, steps=iters, loss="ce", seed=seed),
               "apgd-t": torchattacks.APGDT(model, eps=eps, steps=iters, seed=seed),
               "square": torchattacks.Square(model, eps=eps, n_queries=queries, seed=seed)}
    attacks["apgd-t"].n_target_classes = targets
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    seconds = {}
    for name, attack in attacks.items():
        start = time.perf_counter()
        left = robust.nonzero().flatten()
        if len(left):
            adv = attack(x[left], y[left])
            assert (adv - x[left]).abs().amax() <= eps + 1e-5 and adv.min() >= 0 and adv.max() <= 1
            with torch.no_grad():
                robust[left] = model(adv).argmax(1) == y[left]
        seconds[name] = time.perf_counter() - start
    return robust, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=profiles.PROFILE_NAMES)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--pools", default="max,avg")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("-p", "--parameter", action="append", type=parameter_pair, default=[], metavar="NAME=VALUE",
                        help="override a parameter of the study's points (e.g. adv_epochs=8)")
    parser.add_argument("--iters", type=int, default=100, help="APGD iterations (default 100)")
    parser.add_argument("--targets", type=int, default=9, help="APGD-T target classes (default 9, AutoAttack's standard)")
    parser.add_argument("--queries", type=int, default=5000, help="Square queries (default 5000, AutoAttack's standard)")
    args = parser.parse_args()
    P = profiles.resolve("robustness_point", args.profile, **dict(args.parameter))
    store = Store()
    splits = configs.splits_for(P, "mnist")
    x, y = splits.test.take(slice(0, args.images)).tensors()
    eps, ensemble = configs.attack_settings(P, "mnist")["eps"], configs.ensemble_for(P, "mnist")
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}; {splits.label}, first {args.images} test images, eps {eps}; "
          f"book: {ensemble.name}; independent: torchattacks APGD-CE-{args.iters}, APGD-T-{args.iters}×{args.targets}, "
          f"Square-{args.queries}", flush=True)
    rows = []
    for pool in args.pools.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            config = configs.train_config_for(P, "mnist", pool, seed, adversarial=True)
            config = dataclasses.replace(config, data=splits.train.fingerprint())
            if not store.exists("classifier", config.key()):
                raise SystemExit(f"{config.label} ({config.epochs} epochs) is not in the store {store.root}: "
                                 f"this check attacks stored models only")
            trained = training.get_or_train(config, splits.train, splits.val, store=store, progress=False)
            book = autoattack.stored_worst_case(trained, x, y, eps=eps, ensemble=ensemble, store=store, progress=False)
            checks = masking.masking_checks(trained, x, y, eps=eps, large_eps=configs.large_eps(P, "mnist"),
                                               ensemble=ensemble, store=store, check_size=P.check_size)
            table = masking.with_check_numbers(pd.DataFrame([{"model": config.label}]), checks)
            masked = bool(masking.masked_from_numbers(table).iloc[0])
            robust, seconds = independent_robust(trained.model, x, y, eps=eps, iters=args.iters,
                                                 targets=args.targets, queries=args.queries)
            ours, theirs = book.robust.float().mean().item(), robust.float().mean().item()
            row = {"model": f"{config.label} ×{config.epochs}", "masked": masked, "book": ours, "independent": theirs,
                   "book − independent": ours - theirs, "both": (book.robust & robust).float().mean().item(),
                   "only book robust": int((book.robust & ~robust).sum()),
                   "only independent robust": int((robust & ~book.robust).sum()),
                   "verdict": ("upper bound, lowered" if ours - theirs > BAR else "upper bound, not lowered") if masked
                   else ("agrees" if abs(ours - theirs) <= BAR else "DISAGREES"),
                   **{f"{k} s": v for k, v in seconds.items()}}
            rows.append(row)
            print(row, flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
