"""Attack speed benchmark (not a test): prints ratios measured in one run, on CPU and CUDA if present.

(a) our PGD-k ÷ (k × one forward-and-input-gradient pass): the floor; target <= 1.10
(b) our PGD-k ÷ torchattacks PGD-k with the same settings; target <= 1.0
(c) early-exit speed-up of robust-accuracy evaluation on a naturally trained model
(d) images per second of PGD-k

Usage: python benchmarks/attacks.py [--steps 20] [--batch 256] [--repeats 7]
The model is small_cnn trained naturally for one epoch on MNIST(-10k) from $IGAN_DATA_DIR.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from igan_utils.book.runner import hardware
from igan_utils.method import attacks, data, training


def timed(fns: dict, device, repeats: int) -> dict[str, float]:
    """Median wall time of each function, run interleaved (a, b, c, a, b, c, ...) after one warm-up
    each, so that drift in the machine's speed affects all of them alike."""
    times = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench(device: torch.device, model, x, y, steps: int, repeats: int, eps: float) -> dict:
    import torchattacks

    model = model.to(device).eval()
    x, y = x.to(device), y.to(device)
    step_size = 2.5 * eps / steps

    def floor_pass():
        xa = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="none")
        torch.autograd.grad(loss.sum(), xa)

    generator = torch.Generator(device=device).manual_seed(0)
    reference = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=True)
    t = timed({
        "floor": lambda: [floor_pass() for _ in range(steps)],
        "ours": lambda: attacks.pgd(model, x, y, eps, steps=steps, step_size=step_size, generator=generator),
        "torchattacks": lambda: reference(x, y),
        "full": lambda: attacks.robust_accuracy(model, x, y, eps=eps, steps=steps, step_size=step_size,
                                                early_exit=False),
        "early": lambda: attacks.robust_accuracy(model, x, y, eps=eps, steps=steps, step_size=step_size,
                                                 early_exit=True),
    }, device, repeats)
    one_pass, ours, theirs, full, early = (t[k] for k in ("floor", "ours", "torchattacks", "full", "early"))
    one_pass /= steps
    return {"device": device.type, "batch": len(x), "steps": steps,
            "pass_ms": 1000 * one_pass, "pgd_s": ours, "torchattacks_s": theirs,
            "a_pgd_over_floor": ours / (steps * one_pass), "b_ours_over_torchattacks": ours / theirs,
            "c_early_exit_speedup": full / early, "d_images_per_s": len(x) / ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--eps", type=float, default=0.3)
    args = parser.parse_args()

    splits = data.load_splits("mnist", train_size=2000, test_size=args.batch, split_seed=0)
    config = training.TrainConfig(dataset="mnist", arch="small_cnn", pool="max", seed=0, method="natural",
                                  epochs=1, batch_size=50, lr=5e-3)
    model, _ = training.train_classifier(config, splits.train, progress=False, device=torch.device("cpu"))
    x, y = splits.test.tensors()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"# {time.strftime('%Y-%m-%d')}, {hardware()}")
    print(f"# small_cnn (natural, 1 epoch), PGD-{args.steps} L-inf eps={args.eps}, median of {args.repeats}")
    rows = [bench(d, model, x, y, args.steps, args.repeats, args.eps) for d in devices]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
