"""Training throughput benchmark (not a test): M seeds of one recipe trained one at a time
(``training.train_classifier``) and as one computation (``batched_training.train_classifiers``),
on CPU and on CUDA if present. Prints, per method and device, the median seconds of each way over
``--repeats`` interleaved runs, model-images per second and the ratio sequential ÷ batched (above 1:
batching is faster), with the machine's pass time beside them.

Usage: python benchmarks/training.py [--models 3] [--images 1024] [--batch 128] [--repeats 3]
MNIST(-10k) from $IGAN_DATA_DIR; one epoch of each; PGD training at the book's 8 steps.
"""

from __future__ import annotations

import argparse

import torch
from attacks import timed  # benchmarks/attacks.py

from igan_utils.book.runner import hardware, pass_seconds
from igan_utils.method import batched_training, data, training

RECIPES = {"natural": {}, "pgd": {"eps": 0.3, "steps": 8, "step_size": 0.1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="natural,pgd")
    args = parser.parse_args()
    splits = data.load_splits("mnist", train_size=args.images, val_size=0, test_size=10, split_seed=0)
    print(f"machine: {hardware()}; pass {1e3 * pass_seconds()[0]:.1f} ms (forward + input gradient, 250 images)")
    print(f"{args.models} models × {args.images} MNIST-10k images, batch {args.batch}, one epoch, "
          f"median of {args.repeats}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print("| device | method | sequential s | batched s | model-images/s batched | sequential ÷ batched |")
    print("| --- | --- | --- | --- | --- | --- |")
    for device in devices:
        for method in args.methods.split(","):
            configs = [training.TrainConfig("mnist", "small_cnn", "max", seed, method, 1, args.batch, 1e-3,
                                            **RECIPES[method]) for seed in range(args.models)]
            t = timed({
                "sequential": lambda: [training.train_classifier(c, splits.train, device=device, progress=False)
                                       for c in configs],
                "batched": lambda: batched_training.train_classifiers(configs, splits.train, device=device,
                                                                      progress=False),
            }, device, args.repeats)
            rate = args.models * args.images / t["batched"]
            print(f"| {device.type} | {method} | {t['sequential']:.2f} | {t['batched']:.2f} | {rate:,.0f} | "
                  f"{t['sequential'] / t['batched']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
