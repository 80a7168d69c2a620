"""Per-layer vulnerability diagnosis and information loss, for any model with taps and interpreters.

On correctly classified images x whose untargeted attack succeeds (C(x') ≠ y; by default x′ is each
image's first success of a PGD screen, APGD-CE and APGD-T, :func:`successful_attacks`):

- a *judge* J labels each interpretation x̂_ℓ(x') = G_ℓ(E_ℓ(x')); ``R_ℓ`` is the fraction judged ≠ y,
  and ``R_0`` (tap ``input``) is J's error on x' itself;
- the vulnerability contributed by tap ℓ is ``V_ℓ = R_ℓ − R_{ℓ−1}``; the *first-flip* variant is the
  fraction of images whose judged label first leaves y at ℓ; both with bootstrap 95% intervals;
- the feature change at ℓ is ‖E_ℓ(x') − E_ℓ(x)‖ / ‖E_ℓ(x)‖;
- an interpretation of x' is *faithful* at ℓ when its generator reproduces the adversarial activation
  about as well as clean ones (:func:`fidelity`, within :data:`FIDELITY_FACTOR`); unfaithful taps are
  marked and left out of "most vulnerable" and of the correlation;
- the information loss ``IL_ℓ`` is the error of a decoder trained with pure MSE from z_ℓ to x, on
  held-out clean images (MSE, and 1 − SSIM as a second view), and ``ΔIL_ℓ = IL_ℓ − IL_{ℓ−1}``;
- the hypothesis "layers that lose more information are more vulnerable" is tested by the Spearman
  correlation of ΔIL_ℓ with V_ℓ over taps (``stats.spearman_test``, exact permutation p-values).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import interpretgan
from .attacks import pgd, predict
from .autoattack import Ensemble, worst_case
from .cache import ArtifactCache, fingerprint, weights_fingerprint
from .data import ImageSet
from .interpretgan import Generator, Interpreter, interpret
from .metrics import ssim
from .runtime import eval_mode, model_device, to_model
from .stats import image_bootstrap, percentile_interval
from .taps import forward_with_taps, tap_names, tap_shapes
from .validation import check_resamples

INPUT = "input"  # the row of R_0: the judge's error on the adversarial images themselves


DIAGNOSIS_ATTACKS = ("apgd-ce", "apgd-t")  # after the PGD screen: x′ that fool a masked model too (rule 6)


class Attacked(NamedTuple):
    """Successful attacks on a model (:func:`successful_attacks`, :func:`confident_attacks`): clean
    images ``x`` (N, C, H, W), their adversarial twins ``x_adv``, labels ``y`` (N,), ``made_by`` (N,)
    the attack that made each x′ (``"pgd"``, ``"apgd-ce"``, …), ``attack`` the attack's name (a
    sentence for tables), ``attacked`` the number of images attacked and ``eps`` the radius."""

    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    made_by: list[str]
    attack: str
    attacked: int
    eps: float


def default_attack(steps: int, step_size: float, *, apgd_iters: int = 100, targets: int = 9,
                   pgd_restarts: int = 1) -> Ensemble:
    """The attack the diagnosis takes x′ from (rule 6): the PGD screen (``steps``, ``step_size``,
    ``pgd_restarts``), then APGD-CE and APGD-T (:data:`DIAGNOSIS_ATTACKS`) with ``apgd_iters``
    iterations and ``targets`` target classes (default: AutoAttack's own, 100 and 9)."""
    return Ensemble(attacks=DIAGNOSIS_ATTACKS, pgd_steps=steps, pgd_step_size=step_size, apgd_iters=apgd_iters,
                    targets=targets, pgd_restarts=pgd_restarts)


def successful_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, ensemble: Ensemble,
                       seed: int = 0, store: ArtifactCache | None = None) -> Attacked:
    """(x, x', y, …) restricted to images the model classifies correctly and ``ensemble`` breaks (e.g.
    :func:`default_attack`): x′ is each image's first success in the ensemble's order, so a model whose
    gradients PGD cannot use is diagnosed on perturbations that do fool it. With ``store`` (any
    :class:`~igan_utils.method.cache.ArtifactCache`), the attack runs once per model weights, images
    and settings, and a later call reads its x′ from there."""
    def attack() -> dict:
        found = worst_case(model, x, y, eps=eps, ensemble=ensemble, seed=seed)
        keep = (found.broken_by >= 0) & ~found.robust
        return {"keep": keep.cpu(), "adv": found.adv[keep].cpu(), "broken_by": found.broken_by[keep].cpu(),
                "attacked": found.attacked}

    settings = {"attack": "first success", "eps": eps, "ensemble": dataclasses.asdict(ensemble), "seed": seed}
    made = _stored_attack(store, model, x, y, settings, attack)
    keep = made["keep"].to(x.device)
    made_by = [ensemble.order[i] for i in made["broken_by"].tolist()]
    return Attacked(x[keep], made["adv"].to(x.device), y[keep], made_by, f"{ensemble.name}, first success per image",
                    len(x), eps)


def confident_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
                      step_size: float, seed: int = 0, store: ArtifactCache | None = None) -> Attacked:
    """Like :func:`successful_attacks`, but x′ from PGD alone (``steps``, ``step_size``), keeping the
    iterate of highest loss (confidently misclassified), not the first one across the boundary: what
    chapter 3 shows, where x′ should look as wrong to the model as it can."""
    def attack() -> dict:
        result = pgd(model, x, y, eps, steps=steps, step_size=step_size, keep="max_loss",
                     generator=torch.Generator(device=x.device).manual_seed(seed))
        keep = (predict(model, x) == y) & result.success
        return {"keep": keep.cpu(), "adv": result.adv[keep].cpu(), "attacked": {"pgd": len(x)}}

    settings = {"attack": "highest-loss PGD", "eps": eps, "steps": steps, "step_size": step_size, "seed": seed}
    made = _stored_attack(store, model, x, y, settings, attack)
    keep = made["keep"].to(x.device)
    return Attacked(x[keep], made["adv"].to(x.device), y[keep], ["pgd"] * int(keep.sum()),
                    f"PGD-{steps} (step {step_size:.3g}), highest-loss iterate", len(x), eps)


def _stored_attack(store: ArtifactCache | None, model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: dict,
                   attack) -> dict:
    """``attack()``, or with ``store`` the result stored for this model's weights, these images and
    ``settings`` (made by ``attack()`` and stored the first time)."""
    if store is None:
        return attack()
    key = {"weights": weights_fingerprint(model), "images": fingerprint(x, y), **settings}
    return store.get_or_create("diagnosis_attacks", key, attack, fmt="torch",
                               work=lambda made: {"attacked": made["attacked"]})


def made_by_text(made_by: Sequence[str]) -> str:
    """``made_by`` of :class:`Attacked` as counts in the attacks' order, e.g. ``"pgd 280 · apgd-ce 12"``."""
    return " · ".join(f"{name} {count}" for name, count in Counter(made_by).items()) or "none"


FIDELITY_FACTOR = 2.0  # pre-registered in book/method.md ("Rules of the verdicts"), before any run


def fidelity(model: nn.Module, interpreters: Mapping[str, Interpreter], x: torch.Tensor, x_adv: torch.Tensor,
             taps: Sequence[str], *, factor: float = FIDELITY_FACTOR) -> pd.DataFrame:
    """Can the interpretation of x′ be read at each tap? Each generator learnt clean activations; an
    adversarial one may lie off that distribution, and then x̂_ℓ(x′) shows the generator failing, not
    what the layer holds. Per tap, the feature-consistency error ‖E_ℓ(G_ℓ(z)) − z‖² / ‖z‖² of the
    clean images ``x`` and of their adversarial twins ``x_adv`` (medians over images).

    Returns one row per tap: ``feature_error_clean``, ``feature_error_adv``, ``fidelity_ratio`` (adv /
    clean), ``faithful_share`` (the share of x′ whose error is within ``factor`` of the clean median)
    and ``faithful``: the median error on x′ is at most ``factor`` × the median on x. With no x′ the
    rows have no numbers (NaN)."""
    if len(x_adv) == 0:
        return pd.DataFrame({"tap": list(taps), "feature_error_clean": np.nan, "feature_error_adv": np.nan,
                             "fidelity_ratio": np.nan, "faithful_share": np.nan, "faithful": np.nan})
    clean, _ = interpretgan.feature_errors(model, dict(interpreters), x, taps)
    adversarial, _ = interpretgan.feature_errors(model, dict(interpreters), x_adv, taps)
    rows = []
    for tap in taps:
        reference = clean[tap].median().clamp_min(1e-12)
        median = adversarial[tap].median()
        rows.append({"tap": tap, "feature_error_clean": reference.item(), "feature_error_adv": median.item(),
                     "fidelity_ratio": (median / reference).item(),
                     "faithful_share": (adversarial[tap] <= factor * reference).float().mean().item(),
                     "faithful": bool(median <= factor * reference)})
    return pd.DataFrame(rows)


def judged_errors(model: nn.Module, interpreters: Mapping[str, Interpreter], judge: nn.Module,
                  x_adv: torch.Tensor, y: torch.Tensor, taps: Sequence[str]) -> torch.Tensor:
    """(N, 1 + len(taps)) bool: column 0 is J(x') ≠ y, column ℓ is J(x̂_ℓ(x')) ≠ y."""
    columns = [predict(judge, x_adv) != y]
    for x_hat in interpret(model, dict(interpreters), x_adv, taps).values():
        columns.append(predict(judge, x_hat) != y)
    return torch.stack(columns, 1).cpu()


def vulnerability(errors: torch.Tensor, taps: Sequence[str], *, bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """R, V = ΔR and first-flip fractions per position (input, then taps) with bootstrap 95% intervals.

    ``errors`` is (N, 1 + len(taps)) from :func:`judged_errors`. With N = 0 the table has its rows and
    columns but no numbers (NaN), so that callers can still concatenate and plot it.
    """
    check_resamples(bootstrap)
    names = [INPUT, *taps]
    if errors.shape[1] != len(names):
        raise ValueError(f"errors has {errors.shape[1]} columns, expected 1 + {len(taps)} taps")
    e = errors.numpy().astype(float)
    n = len(e)
    frame = pd.DataFrame({"tap": names, "depth": range(len(names)), "n": n})
    if n == 0:
        for column in ("R", "V", "V_lo", "V_hi", "first_flip", "first_flip_lo", "first_flip_hi"):
            frame[column] = np.nan
        return frame

    r, v, flip = _rates(e)
    _, v_boot, flip_boot = image_bootstrap(e, _rates, resamples=bootstrap, seed=seed)
    frame["R"], frame["V"], frame["first_flip"] = r, v, flip
    frame["V_lo"], frame["V_hi"] = percentile_interval(v_boot)
    frame["first_flip_lo"], frame["first_flip_hi"] = percentile_interval(flip_boot)
    return frame


def _rates(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R, V and first-flip fractions of judged errors (..., N images, positions), reduced over images."""
    r = errors.mean(-2)
    v = np.diff(r, axis=-1, prepend=0.0)  # V_input = R_0; V_ℓ = R_ℓ − R_{ℓ−1}
    flipped = errors.astype(bool)
    first = np.where(flipped.any(-1), flipped.argmax(-1), -1)
    flip = np.stack([(first == j).mean(-1) for j in range(errors.shape[-1])], -1)
    return r, v, flip


def margins(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How far past the decision boundary each x′ lies: max_{c≠y} logit_c − logit_y, (N,), > 0 when
    misclassified (in the model's logit units; compare attacks on one model, not models)."""
    with torch.no_grad(), eval_mode(model):
        logits = model(*to_model(model, x_adv)).float()
    y = y.to(logits.device)
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return (other - true).to(x_adv.device)


def feature_change(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, taps: Sequence[str]) -> pd.DataFrame:
    """Mean relative change ‖E_ℓ(x') − E_ℓ(x)‖ / ‖E_ℓ(x)‖ per tap, with its standard error."""
    taps = tap_names(model, taps)
    with torch.no_grad(), eval_mode(model):
        clean = forward_with_taps(model, x, taps)[1]
        adv = forward_with_taps(model, x_adv, taps)[1]
    rows = []
    for tap in taps:
        change = ((adv[tap] - clean[tap]).flatten(1).norm(dim=1)
                  / clean[tap].flatten(1).norm(dim=1).clamp_min(1e-12))
        rows.append({"tap": tap, "feature_change": change.mean().item(),
                     "feature_change_se": (change.std() / max(len(change), 1) ** 0.5).item() if len(change) > 1 else np.nan})
    return pd.DataFrame(rows)


def train_decoder(model: nn.Module, tap: str, train: ImageSet, *, steps: int, batch_size: int = 64,
                  lr: float = 1e-3, width: int = 32, seed: int = 0, device: torch.device | None = None,
                  progress: bool = False) -> Generator:
    """A decoder z_ℓ → x trained with pure MSE (the InterpretGAN generator's architecture, no other
    loss): what can be recovered of the image from the layer alone. Trains on ``device``, by default
    the model's."""
    device = device or model_device(model)
    z_shape = tap_shapes(model, train.image_shape, [tap])[tap]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        decoder = Generator(z_shape, train.image_shape, width).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    with eval_mode(model):
        for step in tqdm(range(steps), disable=not progress, leave=False, desc=f"decoder {tap}"):
            index = torch.randint(len(train), (batch_size,),
                                  generator=torch.Generator().manual_seed(seed * 1_000_003 + step))
            x = train.images[index].to(device).float().div_(255)
            with torch.no_grad():
                z = forward_with_taps(model, x, [tap])[1][tap]
            loss = F.mse_loss(decoder.train()(*to_model(decoder, z)), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return decoder.eval()


def decoder_interpreters(model: nn.Module, taps: Sequence[str], train: ImageSet, *, steps: int,
                         seed: int = 0) -> dict[str, Interpreter]:
    """Interpreters made of :func:`train_decoder`'s pure-MSE decoders, one per tap: cheaper than
    InterpretGAN's (no discriminator), for checks that train interpreters for many models."""
    model_id = weights_fingerprint(model)
    return {tap: Interpreter(tap, train_decoder(model, tap, train, steps=steps, seed=seed), model_id, [])
            for tap in tap_names(model, taps)}


def information_loss(model: nn.Module, taps: Sequence[str], train: ImageSet, test: ImageSet, *, steps: int,
                     store: ArtifactCache, config: Mapping | None = None, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Information loss per tap, with its increment over the previous tap (the input loses nothing).

    ``decoder_mse`` and ``decoder_1_minus_ssim`` are the errors of each tap's decoder on ``test``. A
    decoder's error bounds the true loss from above, and what a layer has lost no later layer can
    regain, so the loss at a tap is also bounded by the decoder errors of every later tap: ``IL`` and
    ``one_minus_ssim`` are the tightest such bounds (running minima from the last tap backwards),
    non-decreasing with depth as information loss must be. ``taps`` must be in depth order along a
    chain (each a function of the one before). Decoders are cached in ``store``; ``config`` (e.g.
    the classifier's training config) goes into the cache key."""
    taps = tap_names(model, taps)
    device = model_device(model)
    x, _ = test.tensors(device)
    rows = []
    for tap in tqdm(taps, desc="information loss", disable=not progress, leave=False):
        key = {"classifier": dict(config or {}), "classifier_id": weights_fingerprint(model), "tap": tap, "steps": steps,
               "seed": seed, "train": train.fingerprint(), "test": test.fingerprint()}

        def compute(tap=tap):
            decoder = train_decoder(model, tap, train, steps=steps, seed=seed, device=device)
            with torch.no_grad():
                x_hat = decoder(*to_model(decoder, forward_with_taps(model, x, [tap])[1][tap]))
            return {"decoder_mse": F.mse_loss(x_hat, x).item(),
                    "decoder_1_minus_ssim": 1 - ssim(x_hat, x).mean().item()}

        found = store.get_or_create("information_loss", key, compute, fmt="json")
        rows.append({"tap": tap, **found})  # the decoder's raw errors; IL is the bound made from them below
    frame = pd.DataFrame(rows)
    for raw, bound in (("decoder_mse", "IL"), ("decoder_1_minus_ssim", "one_minus_ssim")):
        frame[bound] = frame[raw][::-1].cummin()[::-1]
    frame["dIL"] = frame["IL"].diff().fillna(frame["IL"])
    frame["d_one_minus_ssim"] = frame["one_minus_ssim"].diff().fillna(frame["one_minus_ssim"])
    return frame


def linear_information_loss(model: nn.Module, taps: Sequence[str], train: ImageSet, test: ImageSet, *,
                            ridge: float = 1e-3, max_train: int = 4000) -> pd.DataFrame:
    """A model-free information loss per tap: the mean squared error, on ``test``, of the best affine
    map from the activation at the tap back to the image, fitted in closed form by ridge regression
    on (at most ``max_train``) ``train`` images. No decoder is trained, so nothing depends on a
    training budget or seed; it measures what a layer keeps *linearly* (an upper bound on the loss,
    like the decoder's, and a looser one where the information is there but non-linearly coded).
    The ridge is ``ridge`` times the mean activation variance, so one value fits every tap.
    Columns: tap, ``linear_mse``."""
    taps = tap_names(model, taps)
    device = model_device(model)
    x_train = train.take(slice(0, max_train)).tensors(device)[0]
    x_test = test.tensors(device)[0]
    with torch.no_grad(), eval_mode(model):
        z_train = forward_with_taps(model, x_train, taps)[1]
        z_test = forward_with_taps(model, x_test, taps)[1]
    rows = []
    for tap in taps:
        z, zt = z_train[tap].flatten(1).double(), z_test[tap].flatten(1).double()
        mean_z, mean_x = z.mean(0), x_train.flatten(1).double().mean(0)
        z, zt, target = z - mean_z, zt - mean_z, x_train.flatten(1).double() - mean_x
        penalty = ridge * z.pow(2).mean().clamp_min(1e-12) * max(z.shape)
        if z.shape[1] <= z.shape[0]:  # primal: (ZᵀZ + λI) W = ZᵀX
            weights = torch.linalg.solve(z.T @ z + penalty * torch.eye(z.shape[1], dtype=z.dtype, device=device),
                                         z.T @ target)
            estimate = zt @ weights
        else:  # dual, when there are more features than images: W = Zᵀ (ZZᵀ + λI)⁻¹ X
            alpha = torch.linalg.solve(z @ z.T + penalty * torch.eye(z.shape[0], dtype=z.dtype, device=device), target)
            estimate = (zt @ z.T) @ alpha
        error = (estimate + mean_x).clamp(0, 1) - x_test.flatten(1).double()
        rows.append({"tap": tap, "linear_mse": error.pow(2).mean().item()})
    return pd.DataFrame(rows)


TABLE_COLUMNS = ("judge", "tap", "depth", "n", "R", "V", "V_lo", "V_hi", "first_flip", "first_flip_lo",
                 "first_flip_hi", "feature_change", "feature_change_se", "feature_error_clean", "feature_error_adv",
                 "fidelity_ratio", "faithful_share", "faithful", "margin", "attacked", "attack", "made_by")


def vulnerability_table(model: nn.Module, interpreters: Mapping[str, Interpreter], judges: Mapping[str, nn.Module],
                        attacked: Attacked, *, taps: Sequence[str] | None = None, bootstrap: int = 1000,
                        seed: int = 0) -> pd.DataFrame:
    """The tidy diagnosis table of one model on its successful attacks ``attacked``
    (:func:`successful_attacks` or :func:`confident_attacks`; one :class:`Attacked` serves several
    tables of a model, e.g. two sets of interpreters): one row per (judge, tap) with R, V, first flip
    (with intervals), the feature change and the fidelity of the interpretations of x′ at the tap;
    ``n`` is the number of successful attacks used, ``margin`` their median :func:`margins`,
    ``attacked`` the images attacked, ``attack`` how x′ was found and ``made_by`` which attack made how many.

    ``taps`` default to the interpreted ones, in ``model.taps`` order (else the interpreters' order).
    Raises ValueError naming taps without interpreters, or for fewer than ``validation.MIN_RESAMPLES``
    bootstrap resamples. With no successful attack it warns and returns a table with the columns
    :data:`TABLE_COLUMNS` and no rows.
    """
    check_resamples(bootstrap)  # before the attack, not after it
    taps = tap_names(model, taps if taps is not None else [t for t in _model_order(model, interpreters)])
    missing = [t for t in taps if t not in interpreters]
    if missing:
        raise ValueError(f"taps without interpreters: {', '.join(missing)}; train them first "
                         f"(interpretgan.interpreters_for)")
    found = attacked
    if len(found.x_adv) == 0:
        warnings.warn(f"no successful adversarial examples among {found.attacked} images at eps={found.eps:.3g} "
                      f"({found.attack}): nothing to diagnose, the table has no rows", stacklevel=2)
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    change = feature_change(model, found.x, found.x_adv, taps).merge(
        fidelity(model, interpreters, found.x, found.x_adv, taps), on="tap")
    frames = []
    for name, judge in judges.items():
        errors = judged_errors(model, interpreters, judge, found.x_adv, found.y, taps)
        frame = vulnerability(errors, taps, bootstrap=bootstrap, seed=seed)
        frame.insert(0, "judge", name)
        frames.append(frame.merge(change, on="tap", how="left"))
    table = pd.concat(frames, ignore_index=True)
    table["margin"] = margins(model, found.x_adv, found.y).median().item()
    table["attacked"], table["attack"], table["made_by"] = found.attacked, found.attack, made_by_text(found.made_by)
    return table[list(TABLE_COLUMNS)]


def most_vulnerable(table: pd.DataFrame, by: Sequence[str], k: int = 2) -> pd.DataFrame:
    """Per group of ``by`` (e.g. model and judge) of a diagnosis table: ``taps``, the ``k`` taps of
    largest V among those whose interpretations of x′ are faithful, and ``left_out``, the unfaithful
    ones (lists, in depth order for ``left_out``)."""
    rows = []
    for key, part in table[table["tap"] != INPUT].groupby(list(by), sort=False):
        faithful = part["faithful"].eq(True) if "faithful" in part else pd.Series(True, index=part.index)
        top = part[faithful].dropna(subset=["V"]).sort_values("V", ascending=False, kind="stable")["tap"].head(k)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "taps": top.tolist(),
                     "left_out": part.loc[~faithful, "tap"].tolist()})
    return pd.DataFrame(rows, columns=[*by, "taps", "left_out"])


def _model_order(model: nn.Module, interpreters: Mapping[str, Interpreter]) -> list[str]:
    """The interpreted taps in ``model.taps`` order, else in the interpreters' own order (module
    registration order would put a container before the layers inside it, which run first)."""
    order = list(getattr(model, "taps", None) or interpreters)
    return sorted(interpreters, key=lambda t: order.index(t) if t in order else len(order))


