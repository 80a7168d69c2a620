"""Several classifiers that differ only in their seed, trained as one computation.

On a GPU the small CNNs of the book leave the device waiting on the host: one training step costs
about the same at batch 128 as at batch 1,024 (issue 37). Stacking the models' weights
(``torch.func.stack_module_state``) and running them with ``vmap`` over ``functional_call`` makes
one step of M models as many kernel launches as one step of one model. Each model keeps its own
initialisation (its seed), its own shuffle of the training images (the one ``train_classifier``
draws) and its own Adam state (Adam is elementwise, so one optimizer over the stacked weights is M
independent ones). What is shared is the random stream of the attack's starting noise, so a batched
model is close to, not equal to, the model trained alone; the store keeps the two apart
(``TrainConfig.batched``).

Example:
    >>> configs = [TrainConfig("mnist", "small_cnn", "max", s, "pgd", 40, 128, 1e-3, 0.3, 8, 0.1)
    ...            for s in (0, 1, 2)]  # doctest: +SKIP
    >>> trained = get_or_train_many(configs, splits.train, splits.val, store=store)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from . import training, validation
from .cache import ArtifactCache, PartialState
from .data import ImageSet
from .runtime import default_device, eval_mode
from .training import TrainConfig, TrainedModel, as_trained_model, get_or_train, passes_per_image


class StackedModels(nn.Module):
    """M models of one architecture run as one: ``forward`` takes the images of all M models in
    model-major order, (M·B, C, H, W) — model m's B images at rows m·B … (m+1)·B − 1 — and returns
    their logits (M·B, classes), each image seen by its own model only. Being an ordinary module that
    returns logits per image, it can be attacked (``attacks.pgd``) and optimised as one model.

    Args:
        nets: M ≥ 1 modules with the same parameter names and shapes (e.g. ``models.build`` with
            different seeds); their weights are copied, the modules are left as they were.

    Example:
        >>> stacked = StackedModels([models.build("small_cnn") for _ in range(3)])  # doctest: +SKIP
        >>> stacked(torch.rand(3 * 8, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([24, 10])
    """

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        if not nets:
            raise ValueError("StackedModels needs at least one model")
        params, buffers = stack_module_state(nets)
        self.count = len(nets)
        self._param_names, self._buffer_names = list(params), list(buffers)
        self.weights = nn.ParameterList(nn.Parameter(params[k].detach().clone()) for k in self._param_names)
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"buffer{i}", buffers[k].clone())
        self.input_shape = getattr(nets[0], "input_shape", None)
        # A weightless copy (on the meta device) gives the layer structure; kept out of the module's
        # children so that it is neither moved nor saved.
        object.__setattr__(self, "_template", copy.deepcopy(nets[0]).to("meta"))

    def _buffers_list(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f"buffer{i}") for i in range(len(self._buffer_names)))

    def _one(self, weights, buffers, x):
        state = dict(zip(self._param_names, weights)) | dict(zip(self._buffer_names, buffers))
        return functional_call(self._template, state, (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.count:
            raise ValueError(f"{x.shape[0]} images cannot be split evenly over {self.count} models")
        per_model = x.view(self.count, -1, *x.shape[1:])
        logits = vmap(self._one)(tuple(self.weights), self._buffers_list(), per_model)
        return logits.flatten(0, 1)

    def unstack_into(self, nets: list[nn.Module]) -> list[nn.Module]:
        """Copy model m's weights into ``nets[m]`` (modules of the same architecture) and return them."""
        for m, net in enumerate(nets):
            state = {k: w[m] for k, w in zip(self._param_names, self.weights)}
            state |= {k: b[m] for k, b in zip(self._buffer_names, self._buffers_list())}
            net.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return nets


def check_group(configs: list[TrainConfig]) -> None:
    """ValueError unless ``configs`` is a non-empty list of distinct seeds of one training recipe."""
    if not configs:
        raise ValueError("no training configurations given")
    first = dataclasses.replace(configs[0], seed=0)
    for config in configs[1:]:
        other = dataclasses.replace(config, seed=0)
        if other != first:
            differing = [f.name for f in dataclasses.fields(first) if getattr(first, f.name) != getattr(other, f.name)]
            raise ValueError(f"models trained together may differ only in their seed; {configs[0].label} and "
                             f"{config.label} also differ in {', '.join(differing)}")
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"models trained together need distinct seeds, got {seeds}")


def train_classifiers(configs: list[TrainConfig], train: ImageSet, val: ImageSet | None = None, *,
                      checkpoint: PartialState | None = None, device: torch.device | None = None,
                      progress: bool = True) -> list[tuple[nn.Module, list[dict]]]:
    """Train one classifier per config — configs that differ only in ``seed`` — as one batched
    computation, and return [(model, history)] in the order of ``configs``.

    Each model starts from the weights its seed gives (as ``train_classifier``'s) and sees its own
    shuffle of ``train``; histories are as ``train_classifier``'s. With ``checkpoint``, the state of
    all models is saved after every epoch and a saved state is resumed.

    Raises:
        ValueError, before any work, when the configs differ in more than the seed (naming the field).
    """
    check_group(configs)
    config, count = configs[0], len(configs)
    device = device or default_device()
    nets = [training.initial_model(c) for c in configs]
    with torch.no_grad(), eval_mode(nets[0]):  # labels must fit the model before any training
        first_logits = validation.logits_of(nets[0], train.take(slice(0, 1)).tensors()[0])
        validation.check_labels(train.labels, first_logits.shape[1])
    stacked = StackedModels(nets).to(device)
    optimizer = torch.optim.Adam(stacked.parameters(), lr=config.lr)
    histories: list[list[dict]] = [[] for _ in configs]
    first_epoch = 0
    state = checkpoint.load() if checkpoint else None
    if state is not None:
        stacked.load_state_dict(state["models"])
        optimizer.load_state_dict(state["optimizer"])
        histories, first_epoch = state["histories"], state["epoch"] + 1
    steps_per_epoch = -(-len(train) // config.batch_size)
    total = config.epochs * steps_per_epoch
    images, labels = train.images.to(device), train.labels.to(device)
    monitor = training.monitor_images(val, device)
    seeds = "+".join(str(c.seed) for c in configs)

    for epoch in range(first_epoch, config.epochs):
        generator = torch.Generator(device=device).manual_seed(training.epoch_seed(config, epoch))
        # Each model's shuffle is the one train_classifier draws for its seed and epoch.
        orders = torch.stack([train.shuffled(training.epoch_seed(c, epoch)) for c in configs]).to(device)
        loss_sum = torch.zeros(count, device=device)
        right = torch.zeros(count, device=device)
        bar = tqdm(range(steps_per_epoch), disable=not progress, leave=False,
                   desc=f"{config.dataset} {config.pool}/{config.method}/s{seeds} epoch {epoch + 1}/{config.epochs}")
        for i in bar:
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = training._lr_at(step, total, config.lr)
            idx = orders[:, i * config.batch_size:(i + 1) * config.batch_size].flatten()
            x, y = images[idx].float().div_(255), labels[idx]
            eps = training._eps_at(step, total, config.eps)
            x_train = training._training_inputs(stacked, x, y, config, eps, generator)
            stacked.train()
            per_model = (count, -1)
            if config.method == "trades":
                both = torch.cat([x.view(count, -1, *x.shape[1:]), x_train.view(count, -1, *x.shape[1:])], 1)
                out = stacked(both.flatten(0, 1))
                logits, logits_adv = out.view(count, 2, -1, out.shape[-1]).unbind(1)
                logits, logits_adv = logits.flatten(0, 1), logits_adv.flatten(0, 1)
                kl = F.kl_div(logits_adv.log_softmax(1), logits.softmax(1), reduction="none").sum(1)
                losses = (F.cross_entropy(logits, y, reduction="none").view(per_model).mean(1)
                          + config.beta * kl.view(per_model).mean(1))
            else:
                logits = stacked(x_train)
                losses = F.cross_entropy(logits, y, reduction="none").view(per_model).mean(1)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # the sum of independent models' losses: each gets its own gradient
            optimizer.step()
            loss_sum += losses.detach() * (len(y) // count)
            right += (logits.argmax(1) == y).view(per_model).sum(1)
        stacked.unstack_into(nets)
        for m, net in enumerate(nets):
            histories[m].append(training._epoch_record(net.to(device).eval(), configs[m], epoch, loss_sum[m], right[m],
                                                       len(train), monitor, progress, " (batched)"))
        if checkpoint is not None and epoch + 1 < config.epochs:
            checkpoint.save({"models": stacked.state_dict(), "optimizer": optimizer.state_dict(),
                             "epoch": epoch, "histories": histories})
    return [(net.to(device).eval(), history) for net, history in zip(nets, histories)]


def get_or_train_many(configs: list[TrainConfig], train: ImageSet, val: ImageSet | None = None, *,
                      store: ArtifactCache, device: torch.device | None = None, progress: bool = True,
                      batched: bool | None = None) -> list[TrainedModel]:
    """The classifiers for ``configs`` from ``store``, the missing ones trained and stored: with
    ``batched``, the missing seeds of each recipe together (:func:`train_classifiers`), else one at a
    time (:func:`~igan_utils.method.training.get_or_train`).

    ``batched`` defaults to True on CUDA, where it multiplies throughput, and False elsewhere. A model
    trained batched is stored under its own key (``TrainConfig.batched``), never mistaken for one
    trained alone. Returns models in the order of ``configs``.
    """
    device = device or default_device()
    batched = device.type == "cuda" if batched is None else batched
    if not batched:
        return [get_or_train(c, train, val, store=store, device=device, progress=progress) for c in configs]
    if any(c.data and c.data != train.fingerprint() for c in configs):
        raise ValueError("a config's data is not the fingerprint of the training images given")
    configs = [dataclasses.replace(c, batched=True, data=train.fingerprint()) for c in configs]
    found: dict[TrainConfig, TrainedModel] = {}
    groups: dict[TrainConfig, list[TrainConfig]] = {}  # the missing seeds of each recipe
    for c in dict.fromkeys(configs):
        try:
            store.metadata("classifier", c.key())
        except KeyError:
            groups.setdefault(dataclasses.replace(c, seed=0), []).append(c)
        else:
            found[c] = get_or_train(c, train, val, store=store, device=device, progress=progress)
    for group in groups.values():
        found |= _train_and_store(group, train, val, store=store, device=device, progress=progress)
    return [found[c] for c in configs]


def _train_and_store(group: list[TrainConfig], train: ImageSet, val: ImageSet | None, *, store: ArtifactCache,
                     device: torch.device, progress: bool) -> dict[TrainConfig, TrainedModel]:
    """Train ``group`` together and store each model. The first model's partial state holds the whole
    group's, so an interrupted group resumes; a model another process stored meanwhile is reused."""
    made: dict[TrainConfig, dict] = {}

    def create_all(checkpoint: PartialState) -> dict:
        start = time.perf_counter()
        trained = train_classifiers(group, train, val, checkpoint=checkpoint, device=device, progress=progress)
        share = (time.perf_counter() - start) / len(group)
        for c, (model, history) in zip(group, trained):
            made[c] = {"state_dict": model.state_dict(), "history": history,
                       "batch": {"models": len(group), "seconds_each": share}}
        return made.pop(group[0])

    def create_one(c: TrainConfig) -> dict:
        # Made with the group above, unless another process stored the group's first model first.
        if c in made:
            return made.pop(c)
        (model, history), = train_classifiers([c], train, val, device=device, progress=progress)
        return {"state_dict": model.state_dict(), "history": history, "batch": {"models": 1}}

    work = {"epochs": group[0].epochs, "images": len(train), "passes_per_image": passes_per_image(group[0])}
    trained = {}
    for i, c in enumerate(group):
        create = create_all if i == 0 else (lambda c=c: create_one(c))
        stored = store.get_or_create("classifier", c.key(), create, resumable=i == 0,
                                     about={"model": c.label, "batched": len(group)}, work=lambda _: work)
        trained[c] = as_trained_model(c, stored, store.metadata("classifier", c.key())["seconds"], device)
    return trained
