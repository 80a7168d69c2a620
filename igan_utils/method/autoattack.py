"""Robust accuracy as the per-image worst case over AutoAttack: the evaluation engine.

Every robust accuracy the book quotes comes from ``worst_case``: an ensemble of attacks run one after
the other, each on the images that every earlier attack failed to break, so an image counts as
robust only if it survives them all (the per-image worst case). The attacks are AutoAttack's own
(Croce & Hein, the ``pyautoattack`` package): APGD-CE, APGD-T (targeted DLR loss), FAB-T and the
black-box Square attack. Our PGD may run first as a cheap screen: it only removes images that it
provably breaks, so it can lower the number, never raise it.

Whether a number can be trusted at all is :mod:`igan_utils.method.masking`'s question: a model
that fails a masking check is *masked*, and its robust accuracy is only an upper bound.

Results are tidy DataFrames; :func:`stored_worst_case` keeps them in any artifact store.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm import tqdm

from . import attacks, validation
from .cache import ArtifactCache, fingerprint, weights_fingerprint
from .runtime import eval_mode, to_model
from .training import TrainedModel

AUTOATTACK = ("apgd-ce", "apgd-t", "fab-t", "square")
BLACK_BOX = ("square",)


@dataclass(frozen=True)
class Ensemble:
    """The attacks of one evaluation, run in this order: our PGD screen first (when ``pgd_steps`` > 0),
    then the AutoAttack attacks in ``attacks``, each on the images the earlier ones left unbroken.

    Args:
        attacks: names from :data:`AUTOATTACK` (``"apgd-ce"``, ``"apgd-t"``, ``"fab-t"``, ``"square"``),
            in order (default: all four, AutoAttack's ``standard`` version).
        apgd_iters: iterations of APGD-CE and APGD-T, >= 1 (default 100).
        targets: target classes of APGD-T and FAB-T, >= 1 (default 9).
        square_queries: queries of the black-box Square attack, >= 1 (default 5000).
        pgd_steps: steps of the PGD screen, 0 for none (default 0).
        pgd_step_size: its step (default: 2.5·ε/``pgd_steps``).
        pgd_restarts: its random restarts, >= 1 (default 1).

    Raises:
        ValueError for an unknown attack, no attack at all, or a budget below 1.

    Example:
        >>> Ensemble(attacks=("apgd-ce", "apgd-t", "square"), targets=3, square_queries=1000, pgd_steps=40).name
        'AutoAttack (APGD-CE, APGD-T×3, Square-1000) + PGD-40×1'
    """

    attacks: tuple[str, ...] = AUTOATTACK
    apgd_iters: int = 100
    targets: int = 9
    square_queries: int = 5000
    pgd_steps: int = 0
    pgd_step_size: float | None = None
    pgd_restarts: int = 1

    def __post_init__(self):
        unknown = [a for a in self.attacks if a not in AUTOATTACK]
        if unknown or not self.attacks and not self.pgd_steps:
            raise ValueError(f"unknown or no attacks {unknown or list(self.attacks)}; valid: {', '.join(AUTOATTACK)}")
        for name in ("apgd_iters", "targets", "square_queries", "pgd_restarts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def order(self) -> tuple[str, ...]:
        return (("pgd",) if self.pgd_steps else ()) + tuple(self.attacks)

    @property
    def name(self) -> str:
        """How tables and figures name this evaluation, e.g. ``AutoAttack (APGD-CE, APGD-T×3, Square-1000) + PGD-40×2``."""
        parts = {"apgd-ce": "APGD-CE" + (f"-{self.apgd_iters}" if self.apgd_iters != 100 else ""),
                 "apgd-t": f"APGD-T×{self.targets}", "fab-t": f"FAB-T×{self.targets}",
                 "square": f"Square-{self.square_queries}"}
        if tuple(self.attacks) == AUTOATTACK and (self.apgd_iters, self.targets, self.square_queries) == (100, 9, 5000):
            name = "AutoAttack standard"
        else:
            name = "AutoAttack (" + ", ".join(parts[a] for a in self.attacks) + ")" if self.attacks else ""
        if self.pgd_steps:
            pgd = f"PGD-{self.pgd_steps}×{self.pgd_restarts}"
            name = f"{name} + {pgd}" if name else pgd
        return name

    def only(self, *names: str) -> "Ensemble":
        """The same budgets with only the attacks ``names`` (``"pgd"`` keeps the PGD screen)."""
        return dataclasses.replace(self, attacks=tuple(a for a in AUTOATTACK if a in names),
                                   pgd_steps=self.pgd_steps if "pgd" in names else 0)


@dataclass
class WorstCase:
    """Outcome of an ensemble on N images: ``clean`` (N,) bool; ``broken_by`` (N,) int, the position
    in the ensemble's order of the attack that broke each image (-1: misclassified already, len(order):
    robust); ``after`` the accuracy after each attack in order (``clean`` first); ``seconds`` per
    attack; ``flags``, the warnings of AutoAttack's own checks; ``adv`` (N, C, H, W), the example that
    broke each image (the image itself where none did; None when read from the store, which keeps
    per-image outcomes only); ``attacked``, how many images each attack ran on (its workload)."""

    clean: torch.Tensor
    broken_by: torch.Tensor
    after: dict[str, float]
    seconds: dict[str, float]
    flags: list[str]
    adv: torch.Tensor | None = None
    attacked: dict[str, int] | None = None

    @property
    def robust(self) -> torch.Tensor:
        """(N,) bool: correctly classified and unbroken by every attack."""
        return self.broken_by == len(self.seconds)

    def robust_before(self, position: int) -> torch.Tensor:
        """(N,) bool: correctly classified and unbroken by the attacks before ``position`` in the order."""
        return self.broken_by >= position

    @property
    def accuracy(self) -> float:
        return robust_share(self.robust)


def robust_share(flags: torch.Tensor) -> float:
    """Exact fraction of True in ``flags`` (a float32 mean is off in the 8th digit, which decides
    comparisons at a threshold)."""
    return int(flags.sum()) / max(len(flags), 1)


def _accuracies_after(clean: torch.Tensor, broken_by: torch.Tensor, order) -> dict[str, float]:
    """Accuracy on clean images, then after each attack of ``order`` (the ensemble's run)."""
    return {"clean": robust_share(clean), **{name: robust_share(broken_by > i) for i, name in enumerate(order)}}


class _Flags(logging.Handler):
    """Collects the warnings that AutoAttack's checks send to their logger."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.logger = logging.getLogger(f"igan_utils.autoattack.{id(self)}")
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record):
        if record.getMessage() not in self.messages:
            self.messages.append(record.getMessage())


class _InModelDtype(torch.nn.Module):
    """``model`` as AutoAttack sees it: AutoAttack hands it float32 images, which this casts to the
    model's own dtype (a float16 or float64 model would refuse them)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(*to_model(self.model, x))


def _runners(model, eps: float, ensemble: Ensemble, seed: int, device, logger) -> dict:
    """name -> function (x, y) -> adversarial x, for every attack of ``ensemble``."""
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack

    ours, model = model, _InModelDtype(model)

    generator = torch.Generator(device=device).manual_seed(seed)
    make = {
        "pgd": lambda: lambda x, y: attacks.pgd(
            ours, x, y, eps, steps=ensemble.pgd_steps, step_size=ensemble.pgd_step_size,
            restarts=ensemble.pgd_restarts, early_exit=True, generator=generator).adv,
        "apgd-ce": lambda: APGDAttack(model, n_iter=ensemble.apgd_iters, eps=eps, seed=seed, loss="ce",
                                      device=device, logger=logger).perturb,
        "apgd-t": lambda: APGDAttack_targeted(model, n_iter=ensemble.apgd_iters, eps=eps, seed=seed,
                                              n_target_classes=ensemble.targets, device=device,
                                              logger=logger).perturb,
        "fab-t": lambda: FABAttack_PT(model, n_iter=100, eps=eps, seed=seed, targeted=True,
                                      n_target_classes=ensemble.targets, device=device).perturb,
        "square": lambda: SquareAttack(model, n_queries=ensemble.square_queries, eps=eps, p_init=0.8, seed=seed,
                                       resc_schedule=False, device=device).perturb,
    }
    return {name: make[name]() for name in ensemble.order}


# Images attacked together. An image's result depends only on the chunk of CHUNK images it falls in
# (counted from the first image of the request), never on how many images were asked for: so the
# results of the first k·CHUNK images of a request are exactly those of a request for k·CHUNK images,
# and the store reuses them (a later chapter asking for a prefix, or for more, of the same images).
CHUNK = 100


def worst_case(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, ensemble: Ensemble,
               seed: int = 0, progress: bool | str = False) -> WorstCase:
    """The worst case over ``ensemble`` (L∞, radius ``eps``): per image, the first attack that breaks it.

    Each attack sees only the images still unbroken; every adversarial example is checked to lie in
    the ε-ball and in [0, 1] before it counts. Images are attacked in chunks of :data:`CHUNK`, each
    with the same seed, so an image's result does not depend on how many images follow it. The model
    runs in eval mode (restored after), on its own device. The global random state is left as it was
    (AutoAttack reseeds it).

    Args:
        model: an ``nn.Module`` returning logits (N, classes), deterministic in eval mode.
        x: images (N, C, H, W), floats in [0, 1], N >= 1.
        y: labels (N,), integers in 0..classes-1.
        eps: the L∞ radius, in (0, 1].
        ensemble: an :class:`Ensemble` (``ensemble_for(params, dataset)`` gives the book's).
        seed: seed of every attack (default 0).
        progress: show a bar over the images (default False; a string is used as its label).

    Returns:
        a :class:`WorstCase` (per-image results on ``x``'s device; ``accuracy``, ``after`` each attack,
        AutoAttack's ``flags``, and ``adv``, the first successful example of each image).

    Raises:
        ValueError or TypeError, before any attack, for images or labels the attacks refuse, ``eps`` of 0
        or above 1, an ensemble that is not an :class:`Ensemble`, or a randomised model.

    Example:
        >>> worst_case(model, x, y, eps=0.3, ensemble=Ensemble(attacks=("apgd-ce", "apgd-t"))).accuracy  # doctest: +SKIP
    """
    _check_attack_inputs(model, x, y, eps, ensemble)
    given = x.device
    outcomes = [_chunk_outcome(model, x[part], y[part], eps=eps, ensemble=ensemble, seed=seed)
                for part in _chunks(len(x), progress)]
    result = _combined(outcomes, ensemble)
    adv = torch.cat([o["adv"] for o in outcomes]).to(given)
    return dataclasses.replace(result, clean=result.clean.to(given), broken_by=result.broken_by.to(given), adv=adv)


def _check_attack_inputs(model, x, y, eps, ensemble) -> None:
    eps = validation.check_eps(eps)
    validation.check_module(model)
    validation.check_images(model, x, y)
    check_ensemble(ensemble)
    if eps == 0:
        raise ValueError("eps must be > 0 for an attack; at eps = 0 robust accuracy is clean accuracy")
    if int(x.shape[0]) == 0:
        raise ValueError("no images to evaluate")
    with eval_mode(model):  # once per call, not per chunk: AutoAttack's own check in each chunk only warns
        validation.check_deterministic(model, to_model(model, x[:8])[0])


def _chunks(n: int, progress: bool | str = False):
    """Slices of consecutive :data:`CHUNK` images covering ``n`` images, with a bar when ``progress``."""
    label = progress if isinstance(progress, str) else "worst case"
    bar = tqdm(total=n, disable=not progress, leave=False, desc=label, unit="image")
    for start in range(0, n, CHUNK):
        yield slice(start, min(start + CHUNK, n))
        bar.update(min(CHUNK, n - start))
    bar.close()


def _chunk_outcome(model, x: torch.Tensor, y: torch.Tensor, *, eps: float, ensemble: Ensemble, seed: int) -> dict:
    """The ensemble on one chunk (at most :data:`CHUNK` images): per-image ``clean`` and ``broken_by``
    (lists), ``seconds`` and ``attacked`` (images each attack ran on), ``flags`` of AutoAttack's model
    checks, and ``adv`` (a tensor, not stored)."""
    x, y = to_model(model, x, y)
    from pyautoattack import checks as autoattack_checks

    flags = _Flags()
    with eval_mode(model), torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        clean = attacks.predict(model, x) == y  # also refuses a model that does not return logits
        autoattack_checks.check_randomized(model, x, y, logger=flags.logger)
        n_classes = autoattack_checks.check_range_output(model, x, logger=flags.logger)
        validation.check_labels(y, n_classes)
        autoattack_checks.check_dynamic(model, x, False, logger=flags.logger)
        autoattack_checks.check_n_classes(n_classes, list(ensemble.attacks), ensemble.targets, ensemble.targets,
                                          logger=flags.logger)
        broken_by = torch.where(clean, len(ensemble.order), -1)  # -1: misclassified already
        found = x.clone()
        seconds, attacked = {}, {}
        for position, (name, run) in enumerate(_runners(model, eps, ensemble, seed, x.device, flags.logger).items()):
            start = time.perf_counter()
            idx = (broken_by == len(ensemble.order)).nonzero().flatten()
            attacked[name] = len(idx)
            if len(idx):
                adv, = to_model(model, run(x[idx], y[idx]).detach())  # AutoAttack answers in float32
                # An attack's example counts only if it is a valid one: a bug must not lower accuracy.
                valid = ((adv - x[idx]).flatten(1).abs().amax(1) <= eps + 1e-6) & (adv.flatten(1).amin(1) >= 0) \
                    & (adv.flatten(1).amax(1) <= 1)
                with torch.no_grad():
                    broken = (validation.logits_of(model, adv).argmax(1) != y[idx]) & valid
                broken_by[idx[broken]] = position
                found[idx[broken]] = adv[broken]
            seconds[name] = time.perf_counter() - start
    return {"clean": clean.tolist(), "broken_by": broken_by.tolist(), "seconds": seconds, "attacked": attacked,
            "flags": flags.messages, "adv": found}


def _combined(outcomes: list[dict], ensemble: Ensemble) -> WorstCase:
    """The chunks' outcomes as one :class:`WorstCase` (seconds summed, flags merged). AutoAttack's
    check that Square adds little after the white-box attacks is applied to the whole, not per chunk."""
    from pyautoattack import checks as autoattack_checks

    clean = torch.tensor([c for o in outcomes for c in o["clean"]], dtype=torch.bool)
    broken_by = torch.tensor([b for o in outcomes for b in o["broken_by"]], dtype=torch.long)
    after = _accuracies_after(clean, broken_by, ensemble.order)
    seconds = {name: sum(o["seconds"].get(name, 0.0) for o in outcomes) for name in ensemble.order}
    attacked = {name: sum(o["attacked"].get(name, 0) for o in outcomes) for name in ensemble.order}
    flags = _Flags()
    for message in (m for o in outcomes for m in o["flags"]):
        flags.logger.warning(message)
    autoattack_checks.check_square_sr(after, logger=flags.logger)
    return WorstCase(clean, broken_by, after, seconds, flags.messages, attacked=attacked)


def passes_per_image(ensemble: Ensemble) -> dict[str, float]:
    """Nominal forward+gradient passes per attacked image of each attack of ``ensemble`` (the ledger's
    unit of work; early stopping makes the true count lower): PGD steps × restarts, APGD iterations (×
    targets for APGD-T), FAB-T 100 × targets; Square's queries are forward passes only, and are
    counted as such under ``square`` (``benchmarks/book.py`` converts them with a measured ratio)."""
    return {"pgd": ensemble.pgd_steps * ensemble.pgd_restarts, "apgd-ce": ensemble.apgd_iters,
            "apgd-t": ensemble.apgd_iters * ensemble.targets, "fab-t": 100 * ensemble.targets,
            "square": ensemble.square_queries}


def check_ensemble(ensemble) -> None:
    """``ensemble`` must be an :class:`Ensemble` (a list of attack names is one's ``attacks``)."""
    if not isinstance(ensemble, Ensemble):
        hint = (f" (for those attacks: Ensemble(attacks={tuple(ensemble)!r}))"
                if isinstance(ensemble, (list, tuple)) else "")
        raise TypeError(f"ensemble must be an autoattack.Ensemble, got {type(ensemble).__name__}{hint}; "
                        f"the book's: book.configs.ensemble_for(params, dataset)")


def check_trained(trained) -> None:
    """``trained`` must be a :class:`~igan_utils.method.training.TrainedModel` (its config names the rows)."""
    if not isinstance(trained, TrainedModel):
        hint = (" For your own nn.Module, worst_case(model, x, y, eps=..., ensemble=...) gives the same attacks "
                "without the book's bookkeeping" if isinstance(trained, torch.nn.Module) else "")
        raise TypeError(f"expected a TrainedModel (what training.get_or_train returns), got "
                        f"{type(trained).__name__}.{hint}")


def model_columns(trained: TrainedModel) -> dict:
    c = trained.config
    return {"dataset": c.dataset, "pool": c.pool, "method": c.method, "seed": c.seed, "model": c.label}


def worst_case_key(trained: TrainedModel, x: torch.Tensor, y: torch.Tensor, **settings) -> dict:
    return {"model": trained.config.key(), "weights": weights_fingerprint(trained.model),
            "images": fingerprint(x, y), **settings}


def stored_worst_case(trained: TrainedModel, x: torch.Tensor, y: torch.Tensor, *, eps: float, ensemble: Ensemble,
                      store: ArtifactCache, seed: int = 0, progress: bool = True) -> WorstCase:
    """:func:`worst_case` of ``trained`` on ``x``, ``y``, each chunk of :data:`CHUNK` images from the
    artifact store or attacked now and stored (per image, so that the robust table, the masking checks
    and any later request for a prefix of these images, or for more, share the work exactly)."""
    check_trained(trained)
    _check_attack_inputs(trained.model, x, y, eps, ensemble)
    outcomes = []
    for part in _chunks(len(x), trained.config.label if progress else False):
        def compute(part=part):
            outcome = _chunk_outcome(trained.model, x[part], y[part], eps=eps, ensemble=ensemble, seed=seed)
            outcome.pop("adv")
            return outcome
        key = worst_case_key(trained, x[part], y[part], eps=eps, ensemble=dataclasses.asdict(ensemble), seed=seed)
        outcomes.append(store.get_or_create("worst_case", key, compute, fmt="json", work=lambda stored: {
            "attacked": stored["attacked"], "passes": passes_per_image(ensemble)}, about={"model": trained.config.label}))
    return _combined(outcomes, ensemble)


def robust_table(models: list[TrainedModel], x: torch.Tensor, y: torch.Tensor, *, eps: float,
                 ensemble: Ensemble, store: ArtifactCache, seed: int = 0) -> pd.DataFrame:
    """Clean and worst-case robust accuracy of each trained model on ``x``, ``y``: one row each.

    Args:
        models: :class:`~igan_utils.method.training.TrainedModel` objects (``training.get_or_train``).
        x: images (N, C, H, W), floats in [0, 1].
        y: labels (N,), integers.
        eps: the L∞ radius, in (0, 1].
        ensemble: an :class:`Ensemble`.
        store: the artifact store; each model's per-image results are kept there and shared with
            :func:`masking_checks` on the same images.
        seed: seed of the attacks (default 0).

    Returns:
        a DataFrame with the model's columns (dataset, pool, method, seed, model), ``eps``, ``attack``
        (the ensemble's name), ``n``, ``clean_acc``, ``robust_acc``, ``acc_after_<attack>`` and
        ``seconds_<attack>`` for each attack in order, ``autoattack_flags`` ("; "-joined) and
        ``robust_images`` (one character per image, ``r`` robust or ``x`` broken, for intervals over test
        images; letters survive a CSV round trip).

    Example:
        >>> robust_table(models, x, y, eps=0.3, ensemble=ensemble_for(P, "mnist"), store=Store())  # doctest: +SKIP
    """
    rows = []
    for trained in models:
        result = stored_worst_case(trained, x, y, eps=eps, ensemble=ensemble, store=store, seed=seed)
        rows.append({**model_columns(trained), "eps": eps, "attack": ensemble.name, "n": len(x),
                     "clean_acc": result.after["clean"], "robust_acc": result.accuracy,
                     **{f"acc_after_{k}": v for k, v in result.after.items() if k != "clean"},
                     **{f"seconds_{k}": v for k, v in result.seconds.items()},
                     "autoattack_flags": "; ".join(result.flags),
                     "robust_images": "".join("r" if r else "x" for r in result.robust.tolist())})
    return pd.DataFrame(rows)


def robustness_curve(models: list[TrainedModel], x: torch.Tensor, y: torch.Tensor, *, eps_grid: list[float],
                     ensemble: Ensemble, store: ArtifactCache, seed: int = 0) -> pd.DataFrame:
    """Robust accuracy of each model at each ε of ``eps_grid`` (ε = 0: clean accuracy)."""
    frames = []
    for eps in eps_grid:
        if eps == 0:
            clean = [{**model_columns(m), "eps": 0.0, "attack": "none", "n": len(x),
                      "clean_acc": attacks.accuracy(m.model, x, y)} for m in models]
            frames.append(pd.DataFrame(clean).assign(robust_acc=lambda t: t["clean_acc"]))
        else:
            frames.append(robust_table(models, x, y, eps=eps, ensemble=ensemble, store=store, seed=seed))
    return pd.concat(frames, ignore_index=True)


