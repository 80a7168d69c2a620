"""CPU speed-up study (not a test): do ``channels_last``, bf16 autocast or ``torch.compile`` make the
attack pass and the PGD training step faster on this CPU, and do they leave attack results unchanged?

fp32 eager (the code as it is) is the reference. For each variant the script prints, from one run:

- the median seconds of one *attack pass* (forward + input gradient in eval mode, ``--batch`` images)
  and of one *PGD-k training step* (k attack passes, then forward, backward and Adam on
  ``--train-batch`` images), all variants interleaved so that drift in the machine's speed hits each
  alike, and the speed-up over fp32 (fp32 ÷ variant: above 1 is faster);
- its agreement with fp32 on an adversarially trained model: PGD-40 robust accuracy on ``--images``
  test images from the same random starts, the difference in points, and the images that one of the
  two breaks and the other does not.

The adoption rule was fixed before the first run (issue 50): a variant is adopted only if it is at
least 1.10× faster on both passes *and* its robust accuracy is within 0.2 points of fp32's with at most
0.2 % of the images broken differently. The last column applies it.

Usage: python benchmarks/cpu_speedups.py [--dataset fashion] [--repeats 7] [--images 1000]
Data from $IGAN_DATA_DIR (Fashion-MNIST is laid out from Debian's package on first use). torch.compile
needs a C++ compiler; its first call (compilation) is the warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import copy as copy_module
import time

import torch
import torch.nn.functional as F
from attacks import timed  # benchmarks/attacks.py
from torch import nn

from igan_utils.book.configs import REFERENCE
from igan_utils.book.runner import hardware, pass_seconds
from igan_utils.method import attacks, data, training

SPEEDUP_BAR, POINTS_BAR, DIFFERENT_BAR = 1.10, 0.2, 0.002  # the adoption rule, fixed before the run


class Autocast(nn.Module):
    """Runs ``model`` under CPU bf16 autocast and returns fp32 logits (the attacks' loss stays fp32)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def variants(model: nn.Module) -> dict[str, nn.Module]:
    """The ways to run one set of weights, each on its own copy of ``model`` (equal values)."""
    def copy():
        return copy_module.deepcopy(model)
    return {"fp32": copy(), "channels_last": copy().to(memory_format=torch.channels_last),
            "bf16 autocast": Autocast(copy()),
            "channels_last + bf16": Autocast(copy().to(memory_format=torch.channels_last)), "torch.compile": torch.compile(copy(), dynamic=False),
            "compile + bf16": torch.compile(Autocast(copy()), dynamic=False)}


def attack_pass(model, x, y):
    xa = x.detach().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(xa), y), xa)


def training_step(model, optimizer, x, y, eps, steps, generator):
    adv = attacks.pgd(model, x, y, eps, steps=steps, step_size=2.5 * eps / steps, generator=generator).adv
    model.train()
    loss = F.cross_entropy(model(adv), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.eval()


def broken(model, x, y, eps, batch) -> torch.Tensor:
    """Which images PGD-40 (one random start, seed 0, no early exit) breaks: fooled or misclassified."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for i in range(0, len(x), batch):
        result = attacks.pgd(model, x[i:i + batch], y[i:i + batch], eps, steps=40, generator=generator)
        out.append(result.success | (attacks.predict(model, x[i:i + batch]) != y[i:i + batch]))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion", choices=("mnist", "fashion"))
    parser.add_argument("--batch", type=int, default=250, help="images per attack pass")
    parser.add_argument("--train-batch", type=int, default=100, help="images per training step (the book's)")
    parser.add_argument("--train-steps", type=int, default=10, help="PGD steps per training step (the book's)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=1000, help="test images of the agreement check")
    parser.add_argument("--fit-images", type=int, default=10000, help="training images of the checked model")
    args = parser.parse_args()
    torch.manual_seed(0)
    eps = REFERENCE[args.dataset]["eps"]
    splits = data.load_splits(args.dataset, train_size=args.fit_images, val_size=0, test_size=args.images)
    print(f"machine: {hardware()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"pass {1e3 * pass_seconds()[0]:.1f} ms (forward + input gradient, 250 MNIST images)", flush=True)

    # The checked model: PGD-trained on the dataset's ε, 2 epochs (a robust model, so that the attack has work).
    config = training.TrainConfig(args.dataset, "small_cnn", "max", 0, "pgd", 2, args.train_batch, 5e-3, eps=eps,
                                  steps=args.train_steps, step_size=2.5 * eps / args.train_steps)
    start = time.perf_counter()
    trained, _ = training.train_classifier(config, splits.train, device=torch.device("cpu"), progress=False)
    print(f"checked model: {config.label}, PGD-{args.train_steps} ε = {eps} on {len(splits.train):,} "
          f"{splits.label} images × 2 epochs, {time.perf_counter() - start:.0f} s", flush=True)

    x, y = splits.test.tensors()
    ways = variants(trained.eval())
    reference = broken(ways["fp32"], x, y, eps, args.batch)
    agreement = {}
    for name, model in ways.items():
        start = time.perf_counter()
        found = reference if name == "fp32" else broken(model, x, y, eps, args.batch)
        agreement[name] = (1 - found.float().mean().item(), int((found != reference).sum()))
        print(f"  agreement of {name}: robust accuracy {100 * agreement[name][0]:.1f} %, {agreement[name][1]} "
              f"images broken differently ({time.perf_counter() - start:.0f} s with compilation)", flush=True)

    xb, yb = splits.train.take(slice(0, args.batch)).tensors()
    xt, yt = splits.train.take(slice(0, args.train_batch)).tensors()
    # The training steps train fresh copies (each its own Adam), so the checked model stays as it was.
    train_ways = variants(training.initial_model(config))
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in train_ways.items()}
    generator = torch.Generator().manual_seed(1)
    passes = timed({name: (lambda m=m: attack_pass(m, xb, yb)) for name, m in ways.items()},
                   torch.device("cpu"), args.repeats)
    steps = timed({name: (lambda m=m, o=optimizers[name]: training_step(m, o, xt, yt, eps, args.train_steps, generator))
                   for name, m in train_ways.items()}, torch.device("cpu"), args.repeats)
    base_rate = 1 - reference.float().mean().item()
    print(f"\n{args.dataset}, median of {args.repeats} interleaved rounds; attack pass on {args.batch} images, "
          f"PGD-{args.train_steps} training step on {args.train_batch}; agreement on {len(x)} test images")
    print("| variant | attack pass ms | speed-up | training step ms | speed-up | robust acc % | Δ points | "
          "broken differently | adopted |")
    print("| --- | --: | --: | --: | --: | --: | --: | --: | --- |")
    for name in ways:
        up_pass, up_step = passes["fp32"] / passes[name], steps["fp32"] / steps[name]
        rate, different = agreement[name]
        delta = 100 * (rate - base_rate)
        adopted = ("reference" if name == "fp32" else
                   "yes" if min(up_pass, up_step) >= SPEEDUP_BAR and abs(delta) <= POINTS_BAR
                   and different <= DIFFERENT_BAR * len(x) else "no")
        print(f"| {name} | {1e3 * passes[name]:.1f} | {up_pass:.2f} | {1e3 * steps[name]:.0f} | {up_step:.2f} | "
              f"{100 * rate:.1f} | {delta:+.1f} | {different} | {adopted} |")
    epoch = steps["fp32"] * -(-60000 // args.train_batch)
    print(f"\ncost of one PGD-{args.train_steps} epoch over 60,000 images at fp32 (steps × the median step): "
          f"{epoch / 60:.1f} min")


if __name__ == "__main__":
    main()
