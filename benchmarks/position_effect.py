"""Why is a model's robust accuracy higher on MNIST-10k test images 501–1,000 than on 1–500? (issue 47)

Not a speed benchmark: a check of the data. The published max/pgd seed-0 model scored 87.4 % on the
first 500 test images and 91.3 % on the first 1,000, so about 95 % on images 501–1,000, a gap larger
than the pooling effect chapter 5 tests. This script asks two questions, each with its answer printed:

1. Class balance by position: the class counts of images 1–500 and 501–1,000 and a χ² test of
   "same class mix".
2. Difficulty by position, class mix aside: quickly trained models (natural, and PGD-trained at the
   book's ε), several seeds, scored on each half; and how large a gap random halves of the same
   1,000 images give (a permutation test on the per-image results, pooled over seeds).

Usage: IGAN_DATA_DIR=data python benchmarks/position_effect.py [--seeds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import stats as scipy_stats

from igan_utils.method import attacks, data, training


def random_half_gaps(per_image: np.ndarray, half: int, permutations: int) -> np.ndarray:
    """Second-half minus first-half mean of ``per_image`` under random orders of the images."""
    rng = np.random.default_rng(0)
    gaps = np.empty(permutations)
    for i in range(permutations):
        order = rng.permutation(len(per_image))
        gaps[i] = per_image[order[half:]].mean() - per_image[order[:half]].mean()
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=10000)
    args = parser.parse_args()
    splits = data.load_splits("mnist", val_size=500, split_seed=0)  # quick's split: every training image
    x, y = splits.test.take(slice(0, args.images)).tensors()
    half = args.images // 2
    first, second = np.bincount(y[:half].numpy(), minlength=10), np.bincount(y[half:].numpy(), minlength=10)
    chi2, p, _, _ = scipy_stats.chi2_contingency(np.vstack([first, second]))
    print(f"{splits.label}, test images 1–{args.images} in the book's order (the official MNIST test images "
          f"8,000–{7999 + args.images})")
    print(f"class counts 1–{half}:   {first.tolist()}\nclass counts {half + 1}–{args.images}: {second.tolist()}")
    print(f"χ² test of one class mix: χ² = {chi2:.1f}, p = {p:.2g}")

    print("\n| model | seeds | accuracy 1–500 | accuracy 501–1,000 | second − first, points |")
    print("| --- | --: | --: | --: | --: |")
    for method in ("natural", "pgd"):
        right = []
        for seed in range(args.seeds):
            config = training.TrainConfig("mnist", "small_cnn", "max", seed, method, args.epochs, 100, 5e-3,
                                          **({"eps": 0.3, "steps": 5, "step_size": 2.5 * 0.3 / 5} if method == "pgd" else {}))
            model, _ = training.train_classifier(config, splits.train, device=torch.device("cpu"), progress=False)
            if method == "pgd":
                generator = torch.Generator().manual_seed(0)
                broken = torch.cat([attacks.pgd(model, x[i:i + 250], y[i:i + 250], 0.3, steps=40, restarts=2,
                                                generator=generator).success for i in range(0, len(x), 250)])
                right.append((~broken & (attacks.predict(model, x) == y)).numpy())
            else:
                right.append((attacks.predict(model, x) == y).numpy())
        right = np.array(right, dtype=float)  # seeds × images
        a, b = right[:, :half].mean(), right[:, half:].mean()
        gaps = random_half_gaps(right.mean(0), half, args.permutations)
        p_value = ((np.abs(gaps) >= abs(b - a)).sum() + 1) / (len(gaps) + 1)  # the observed order is one of them
        label = f"natural, {args.epochs} epochs" if method == "natural" else \
            f"PGD-5 at ε = 0.3, {args.epochs} epochs; attacked by PGD-40×2"
        print(f"| {label} | {args.seeds} | {100 * a:.1f} % | {100 * b:.1f} % | {100 * (b - a):+.1f} "
              f"(random halves: 95 % within ±{100 * np.quantile(np.abs(gaps), 0.95):.1f}; p = {p_value:.2g}) |",
              flush=True)


if __name__ == "__main__":
    main()
