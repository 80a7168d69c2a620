"""Classifier training: natural, Madry PGD adversarial training, and fast FGSM adversarial training.

Adam with a one-cycle learning rate (linear up for the first 40% of steps, then down). Adversarial
training ramps ε up linearly over those same first 40% of steps, which keeps ε = 0.3 MNIST training
from stalling at chance. Every epoch draws its shuffle and attack noise from (seed, epoch), so a run
resumed from its last checkpoint ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import attacks, models, validation
from .cache import ArtifactCache, PartialState
from .data import ImageSet
from .runtime import default_device, eval_mode

METHODS = ("natural", "pgd", "fgsm", "trades")
_WARMUP = 0.4          # fraction of steps for the learning-rate rise and the ε ramp
_MONITOR_IMAGES = 200  # validation images attacked after every epoch
_MONITOR_STEPS = 10


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained classifier (the artifact store's key)."""

    dataset: str
    arch: str
    pool: str
    seed: int
    method: str           # natural | pgd | fgsm | trades
    epochs: int
    batch_size: int
    lr: float
    eps: float = 0.0      # adversarial training radius (L-inf)
    steps: int = 0        # PGD steps of adversarial training
    step_size: float = 0.0
    data: str = ""        # fingerprint of the training images
    beta: float = 0.0     # TRADES: weight of the robustness (KL) term
    batched: bool = False  # trained with other seeds as one computation (``batched_training``)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown training method {self.method!r}; valid: {', '.join(METHODS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.method != "natural" and not self.eps > 0:
            raise ValueError(f"adversarial training ({self.method}) needs eps > 0, got {self.eps}")
        if self.method in ("pgd", "trades") and (self.steps < 1 or not self.step_size > 0):
            raise ValueError(f"{self.method} training needs steps >= 1 and step_size > 0, got {self.steps}, "
                             f"{self.step_size}")
        if self.method == "trades" and not self.beta > 0:
            raise ValueError(f"TRADES training needs beta > 0, got {self.beta}")

    def key(self) -> dict:
        """The artifact store's key: every field, without ``beta`` outside TRADES and without
        ``batched`` when false (so the keys of models trained before these fields existed still find
        them)."""
        key = dataclasses.asdict(self)
        if self.method != "trades":
            del key["beta"]
        if not self.batched:
            del key["batched"]
        return key

    @property
    def label(self) -> str:
        """Short name for tables and legends, e.g. ``max/fgsm/s0``."""
        return f"{self.pool}/{self.method}/s{self.seed}"


@dataclass
class TrainedModel:
    """A trained classifier (eval mode) with its per-epoch history and training time."""

    model: nn.Module
    config: TrainConfig
    history: list[dict]
    seconds: float


def _lr_at(step: int, total: int, peak: float) -> float:
    frac = step / max(total, 1)
    return peak * max(min(frac / _WARMUP, (1 - frac) / (1 - _WARMUP)), 1e-3)


def _eps_at(step: int, total: int, eps: float) -> float:
    return eps * min(1.0, (step + 1) / max(_WARMUP * total, 1))


def initial_model(config: TrainConfig) -> nn.Module:
    """The untrained ``config.arch`` with ``config.pool``, its weights drawn from ``config.seed`` alone
    (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return models.build(config.arch, config.pool)


def epoch_seed(config: TrainConfig, epoch: int) -> int:
    """The seed of an epoch's shuffle and attack noise: fixed by (seed, epoch), so a resumed training
    draws what an uninterrupted one does."""
    return config.seed * 100_003 + epoch


def monitor_images(val: ImageSet | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The held-out images (and labels) monitored after every epoch: the first :data:`_MONITOR_IMAGES`."""
    return val.take(slice(0, _MONITOR_IMAGES)).tensors(device) if val is not None and len(val) else None


def train_classifier(config: TrainConfig, train: ImageSet, val: ImageSet | None = None, *,
                     model: nn.Module | None = None, checkpoint: PartialState | None = None,
                     device: torch.device | None = None, progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train a fresh ``config.arch`` (or the given untrained ``model``, e.g. your own) on ``train``
    and return (model, history).

    History has one dict per epoch: training loss and accuracy (on the training inputs, adversarial
    ones in adversarial training) and, with ``val``, clean and PGD-10 accuracy on up to 200 held-out
    images. With ``checkpoint``, state is saved after every epoch and a saved state is resumed.
    """
    device = device or default_device()
    model = (initial_model(config) if model is None else model).to(device)
    with torch.no_grad(), eval_mode(model):  # labels must fit the model before any training
        validation.check_labels(train.labels, validation.logits_of(model, train.take(slice(0, 1)).tensors(device)[0]).shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history: list[dict] = []
    first_epoch = 0
    state = checkpoint.load() if checkpoint else None
    if state is not None:
        models.load_state(model, state["model"], f"partial checkpoint {checkpoint.path}")
        optimizer.load_state_dict(state["optimizer"])
        history, first_epoch = state["history"], state["epoch"] + 1
    steps_per_epoch = -(-len(train) // config.batch_size)
    total = config.epochs * steps_per_epoch
    monitor = monitor_images(val, device)

    for epoch in range(first_epoch, config.epochs):
        generator = torch.Generator(device=device).manual_seed(epoch_seed(config, epoch))
        bar = tqdm(train.batches(config.batch_size, shuffle=True, seed=epoch_seed(config, epoch), device=device),
                   total=steps_per_epoch, disable=not progress, leave=False,
                   desc=f"{config.dataset} {config.label} epoch {epoch + 1}/{config.epochs}")
        loss_sum = torch.zeros((), device=device)
        right = torch.zeros((), device=device)
        for i, (x, y) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, config.lr)
            x_train = _training_inputs(model, x, y, config, _eps_at(step, total, config.eps), generator)
            model.train()
            if config.method == "trades":  # Zhang et al.: fit x, and keep f(x') close to f(x)
                logits, logits_adv = model(torch.cat([x, x_train])).split(len(y))
                loss = F.cross_entropy(logits, y) + config.beta * F.kl_div(
                    logits_adv.log_softmax(1), logits.softmax(1), reduction="batchmean")
            else:
                logits = model(x_train)
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            right += (logits.argmax(1) == y).sum()
        history.append(_epoch_record(model, config, epoch, loss_sum, right, len(train), monitor, progress))
        if checkpoint is not None and epoch + 1 < config.epochs:
            checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "epoch": epoch, "history": history})
    optimizer.zero_grad(set_to_none=True)  # a finished model carries no stale gradients
    model.eval()
    return model, history


def _epoch_record(model, config: TrainConfig, epoch: int, loss_sum: torch.Tensor, right: torch.Tensor, images: int,
                  monitor, progress: bool, how: str = "") -> dict:
    """One epoch's history entry: training loss and accuracy over its ``images`` (from their sums), and
    the monitor's figures on ``monitor`` (validation images and labels, or None); printed with ``progress``."""
    record = {"epoch": epoch + 1, "train_loss": loss_sum.item() / images, "train_acc": right.item() / images}
    if monitor is not None:
        record.update(_monitor(model, *monitor, config))
    if progress:
        tqdm.write(f"{config.dataset} {config.label}{how} epoch {epoch + 1}: " +
                   ", ".join(f"{k} {v:.3f}" for k, v in record.items() if k != "epoch"), file=sys.stderr)
    return record


def _training_inputs(model, x, y, config: TrainConfig, eps: float, generator) -> torch.Tensor:
    if config.method == "natural":
        return x
    if config.method == "fgsm":
        return attacks.fgsm(model, x, y, eps, random_start=True, generator=generator).adv
    step_size = config.step_size * eps / config.eps  # keep the path length proportional to ε
    if config.method == "trades":
        return _trades_inputs(model, x, eps, config.steps, step_size, generator)
    return attacks.pgd(model, x, y, eps, steps=config.steps, step_size=step_size,
                       generator=generator).adv


def _trades_inputs(model, x, eps: float, steps: int, step_size: float, generator) -> torch.Tensor:
    """TRADES' inner maximisation (Zhang et al. 2019): from x plus small Gaussian noise, L∞ PGD steps
    up KL(f(x) ‖ f(x′)), the distance of the prediction on x′ from the one on x (no label needed)."""
    with eval_mode(model):
        with torch.no_grad():
            target = model(x).softmax(1)
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        xa = (x + 0.001 * noise).clamp(0, 1)
        for _ in range(steps):
            xa = xa.detach().requires_grad_(True)
            loss = F.kl_div(model(xa).log_softmax(1), target, reduction="sum")
            grad, = torch.autograd.grad(loss, xa)
            xa = attacks._project(xa.detach() + step_size * grad.sign(), x, eps, "linf")
    return xa.detach()


def _monitor(model, x, y, config: TrainConfig) -> dict:
    record = {"val_clean_acc": attacks.accuracy(model, x, y)}
    if config.eps > 0:
        result = attacks.robust_accuracy(model, x, y, eps=config.eps, steps=_MONITOR_STEPS,
                                         seed=config.seed)
        record["val_pgd_acc"] = result.robust
    return record


def get_or_train(config: TrainConfig, train: ImageSet, val: ImageSet | None = None, *,
                 store: ArtifactCache, device: torch.device | None = None, progress: bool = True) -> TrainedModel:
    """The classifier for ``config`` from ``store`` (e.g. the book's ``Store()``), trained (resumably)
    and stored if missing."""
    if config.data and config.data != train.fingerprint():
        raise ValueError("config.data is not the fingerprint of the training images given")
    config = dataclasses.replace(config, data=train.fingerprint())
    key = config.key()

    def create(checkpoint: PartialState) -> dict:
        if config.batched:  # its key promises the batched computation, which this loop is not
            raise ValueError(f"{config.label} is a batched model: train it with "
                             f"batched_training.get_or_train_many")
        model, history = train_classifier(config, train, val, checkpoint=checkpoint, device=device,
                                          progress=progress)
        return {"state_dict": model.state_dict(), "history": history}

    stored = store.get_or_create("classifier", key, create, resumable=True, about={"model": config.label},
                                 work=lambda _: {"epochs": config.epochs, "images": len(train),
                                                 "passes_per_image": passes_per_image(config)})
    return as_trained_model(config, stored, store.metadata("classifier", key)["seconds"], device)


def as_trained_model(config: TrainConfig, stored: dict, seconds: float,
                     device: torch.device | None = None) -> TrainedModel:
    """The :class:`TrainedModel` of a stored classifier artifact (``state_dict``, ``history``) that
    took ``seconds`` to make; a model trained with others (``batch``) carries its share of their time."""
    model = models.build(config.arch, config.pool)
    models.load_state(model, stored["state_dict"], f"classifier artifact of {config.label}")
    seconds = stored.get("batch", {}).get("seconds_each", seconds)
    return TrainedModel(model.to(device or default_device()).eval(), config, stored["history"], seconds)


def passes_per_image(config: TrainConfig) -> int:
    """Forward+backward passes per image and epoch: one, plus one per attack step of adversarial training."""
    return 1 + {"natural": 0, "fgsm": 1}.get(config.method, config.steps)


