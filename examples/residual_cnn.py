"""A user's model, trained the way users train: a small residual CNN (BatchNorm, functional ReLUs,
nested module names) and a plain PyTorch loop. Nothing here comes from igan_utils but the data.

    python examples/residual_cnn.py --weights my_cnn.pt        # ~1 min on 2 CPU cores
    igan-diagnose --model examples/residual_cnn.py:ResidualCNN --weights my_cnn.pt --data mnist --list-taps
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU (He et al. 2016); the ReLUs are functional."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResidualCNN(nn.Module):
    """(N, channels, size, size) images in [0, 1] → logits (N, classes); size divisible by 4."""

    def __init__(self, channels: int = 1, size: int = 28, width: int = 16, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.stage1 = nn.Sequential(Block(width), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(nn.Conv2d(width, 2 * width, 1), Block(2 * width), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x):
        return self.head(self.stage2(self.stage1(F.relu(self.stem(x)))))


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 1, seed: int = 0) -> nn.Module:
    """A plain loop: Adam, cross-entropy, batches of 64."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(images)).split(64):
            loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


if __name__ == "__main__":
    from igan_utils.method import data

    parser = argparse.ArgumentParser(description="train the example residual CNN on MNIST(-10k)")
    parser.add_argument("--weights", default="my_cnn.pt", help="where to save the state dict")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    images, labels = data.load_splits("mnist", download=False).train.tensors()
    torch.manual_seed(0)  # the initial weights too, so that a run is repeatable
    model = train(ResidualCNN(), images, labels, epochs=args.epochs)
    torch.save(model.state_dict(), args.weights)
    print(f"saved {args.weights}")
