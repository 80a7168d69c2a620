"""InterpretGAN: turn the activation a classifier holds at a tap back into an image.

For a frozen classifier C and a tap ℓ, with z = E_ℓ(x) the activation at ℓ, a generator
G_ℓ: z → x̂ ∈ [0, 1]^image is trained against a discriminator D_ℓ on images with

    L_G = λ_adv·L_adv + λ_cls·KL(softmax C(x) ‖ softmax C(x̂)) + λ_lat·‖E_ℓ(x̂) − z‖²/‖z‖² + λ_rec·|x̂ − x|₁

L_adv is the hinge GAN loss with a spectrally normalised D (realism); the classification term
asks the explanation to be classified as the layer's features are; the feature term asks it to
carry the same features at ℓ (divided by the mean ‖z‖², so one weight fits every tap); the pixel
term, zero by default, would copy into x̂ what the layer discarded. The interpretation of any input
at ℓ is x̂_ℓ = G_ℓ(E_ℓ(input)). ``invert_features`` is the optimisation baseline, and
``inversion_interpreters`` puts it in the generators' place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .attacks import pgd, predict
from .cache import ArtifactCache, PartialState, fingerprint, weights_fingerprint
from .data import ImageSet
from .metrics import relative_sq_error, ssim
from .runtime import eval_mode, frozen, model_device, to_model
from .taps import forward_with_taps, tap_names, tap_shapes


class GanDivergedError(RuntimeError):
    """GAN training produced a non-finite loss; the message names the tap and the step."""


@dataclass(frozen=True)
class GanConfig:
    """Training settings of one InterpretGAN (with the classifier and the tap, the artifact store's key).

    Args:
        steps: generator updates, >= 1 (e.g. 150 in ``quick``).
        batch_size: images per update, >= 1 (default 64).
        lr: Adam's learning rate, > 0 (default 2e-4).
        lambda_adv: weight of the GAN realism loss, >= 0 (default 1).
        lambda_cls: weight of the classification-consistency loss, >= 0 (default 1).
        lambda_lat: weight of the feature-consistency loss, >= 0 (default 1).
        lambda_rec: weight of the pixel (L1) loss, >= 0 (default 0).
        width: channels of the generator and discriminator, >= 1 (default 32).
        seed: seed of the initialisation and the batches (default 0).
        adv_share: share of each batch, in [0, 1], replaced by PGD adversarial twins against the
            classifier (default 0: clean images only), so that G_ℓ also learns activations of x′.
        adv_eps: their L∞ radius, > 0 when ``adv_share`` > 0 (default 0).
        adv_steps: their PGD steps, >= 1, of 2.5·``adv_eps``/``adv_steps`` each (default 10).

    Raises:
        ValueError for a value out of range.

    Example:
        >>> GanConfig(steps=300, batch_size=32).lr
        0.0002
    """

    steps: int
    batch_size: int = 64
    lr: float = 2e-4
    lambda_adv: float = 1.0
    lambda_cls: float = 1.0
    lambda_lat: float = 1.0
    lambda_rec: float = 0.0
    width: int = 32
    seed: int = 0
    adv_share: float = 0.0
    adv_eps: float = 0.0
    adv_steps: int = 10

    def __post_init__(self):
        if not 0 <= self.adv_share <= 1:
            raise ValueError(f"adv_share must be in [0, 1], got {self.adv_share}")
        if self.adv_share > 0 and not 0 < self.adv_eps <= 1:
            raise ValueError(f"adv_share > 0 needs adv_eps in (0, 1], got {self.adv_eps}")
        for name in ("steps", "batch_size", "width", "adv_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("lambda_adv", "lambda_cls", "lambda_lat", "lambda_rec"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def key(self) -> dict:
        """The artifact store's key: every field, without the ``adv_*`` ones for clean-only interpreters
        (so the keys of interpreters trained before mixing existed still find them)."""
        key = dataclasses.asdict(self)
        return key if self.adv_share else {k: v for k, v in key.items() if not k.startswith("adv_")}


class Generator(nn.Module):
    """Activation at a tap, (N, D) or (N, C, H, W) → image (N, C_img, H_img, W_img) in [0, 1].

    A stem brings any activation to a map at half the image size with learned layers: vectors go
    through a linear layer to a (width, H/4, W/4) map and a transposed convolution; smaller maps
    through transposed convolutions (×2 each); larger maps through a strided convolution. (Fixed
    resampling of a 4×4 map, say, starves the decoder: the information-loss curve then rises and
    falls with depth, which no deterministic network can do.) Then: conv at half size, upsample ×2,
    conv, conv to the image channels, sigmoid. Sizes off by a pixel or two are fixed by resampling.
    """

    def __init__(self, z_shape: Sequence[int], image_shape: Sequence[int], width: int = 32):
        super().__init__()
        self.z_shape, self.image_shape = tuple(z_shape), tuple(image_shape)
        c_img, h, w = self.image_shape
        self.half = (h // 2, w // 2)

        def up(c_in):
            return [nn.ConvTranspose2d(c_in, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]

        if len(self.z_shape) == 1:
            stem = [nn.Linear(self.z_shape[0], width * (h // 4) * (w // 4)), nn.Unflatten(1, (width, h // 4, w // 4)),
                    nn.BatchNorm2d(width), nn.ReLU(), *up(width)]
        elif len(self.z_shape) == 3:
            size, channels, stem = self.z_shape[1], self.z_shape[0], []
            if size >= 1.5 * (h // 2):  # well above half size: learn the downsampling
                stem = [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            while size < 0.75 * (h // 2):  # well below: learn the upsampling
                stem += up(channels if not stem else width)
                size *= 2
            if not stem:
                stem = [nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
        else:
            raise ValueError(f"activations must be vectors (D,) or maps (C, H, W), got shape {self.z_shape}")
        self.stem = nn.Sequential(*stem)
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2), nn.ReLU(),
            nn.Conv2d(width // 2, c_img, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z)
        if h.shape[-2:] != self.half:
            h = F.interpolate(h, size=self.half, mode="bilinear", align_corners=False)
        out = self.body(h)
        if out.shape[-2:] != self.image_shape[1:]:
            out = F.interpolate(out, size=self.image_shape[1:], mode="bilinear", align_corners=False)
        return torch.sigmoid(out)


class Discriminator(nn.Module):
    """Images → realism score (N,): two strided spectrally normalised convs and a linear layer."""

    def __init__(self, image_shape: Sequence[int], width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        c, h, w = image_shape
        self.net = nn.Sequential(
            sn(nn.Conv2d(c, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2), nn.Flatten(),
            sn(nn.Linear(2 * width * (h // 4) * (w // 4), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


@dataclass
class Interpreter:
    """G_ℓ for one tap of one classifier: a trained generator (:func:`interpreters_for`), or feature
    inversion in its place (:func:`inversion_interpreters`)."""

    tap: str
    generator: Generator
    classifier: str          # store.weights_fingerprint of the model it was trained for
    history: list[dict]

    @property
    def z_shape(self) -> tuple[int, ...]:
        return self.generator.z_shape

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from activations (N, *z_shape), computed on the generator's
        device and returned on ``z``'s."""
        if tuple(z.shape[1:]) != self.z_shape:
            raise ValueError(f"the interpreter of tap {self.tap!r} takes activations of shape {self.z_shape}, "
                             f"got {tuple(z.shape[1:])}")
        with torch.no_grad():
            return self.generator.eval()(*to_model(self.generator, z)).to(z.device)


def train_interpreter(classifier: nn.Module, tap: str, train: ImageSet, config: GanConfig, *,
                      checkpoint: PartialState | None = None, device: torch.device | None = None,
                      progress: bool = True) -> Interpreter:
    """Train G_ℓ (and D_ℓ) for ``tap`` of the frozen ``classifier`` on ``train`` images.

    Raises :class:`GanDivergedError` naming the tap and step if a loss becomes non-finite. With
    ``checkpoint``, state is saved every quarter of the steps and a saved state is resumed; each
    step's batch is drawn from (seed, step), so a resumed run ends where an uninterrupted one does.
    Trains on ``device``, by default the classifier's.
    """
    device = device or model_device(classifier)
    tap = tap_names(classifier, [tap])[0]
    classifier = classifier.to(device)
    z_shape = tap_shapes(classifier, train.image_shape, [tap])[tap]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = Generator(z_shape, train.image_shape, config.width).to(device)
        disc = Discriminator(train.image_shape, config.width).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.5, 0.999))
    history, first = [], 0
    state = checkpoint.load() if checkpoint else None
    if state is not None:
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        history, first = state["history"], state["step"] + 1
    every = max(config.steps // 4, 1)
    images = train.images
    with frozen(classifier):
        z_scale = _mean_square(classifier, tap, train, device)
        sums = torch.zeros(5, device=device)
        bar = tqdm(range(first, config.steps), disable=not progress, leave=False, desc=f"InterpretGAN {tap}",
                   initial=first, total=config.steps)
        for step in bar:
            index = torch.randint(len(images), (config.batch_size,),
                                  generator=torch.Generator().manual_seed(config.seed * 1_000_003 + step))
            x = images[index].to(device).float().div_(255)
            if config.adv_share:
                x = _with_adversarial_twins(classifier, x, train.labels[index].to(device), config, step)
            with torch.no_grad():
                logits, acts = forward_with_taps(classifier, x, [tap])
                z, p_real = acts[tap], logits.softmax(1)
            gen.train()
            fake = gen(*to_model(gen, z))  # the generator's dtype, whatever the classifier's
            d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(fake.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

            logits_fake, acts_fake = forward_with_taps(classifier, fake, [tap])
            adv = -disc(fake).mean()
            cls = F.kl_div(logits_fake.log_softmax(1), p_real, reduction="batchmean")
            lat = F.mse_loss(acts_fake[tap], z) / z_scale
            rec = (fake - x).abs().mean()
            g_loss = (config.lambda_adv * adv + config.lambda_cls * cls + config.lambda_lat * lat
                      + config.lambda_rec * rec)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()

            terms = torch.stack([d_loss.detach(), adv.detach(), cls.detach(), lat.detach(), rec.detach()])
            if not bool(torch.isfinite(terms).all() and torch.isfinite(g_loss)):
                names = ("discriminator", "adversarial", "classification", "feature", "pixel")
                bad = [n for n, v in zip(names, terms.tolist()) if not torch.isfinite(torch.tensor(v))]
                raise GanDivergedError(f"InterpretGAN for tap {tap!r} diverged at step {step + 1}: "
                                       f"non-finite {', '.join(bad) or 'generator'} loss; lower gan_lr or "
                                       f"change the loss weights")
            sums += terms
            if (step + 1) % 10 == 0 or step + 1 == config.steps:
                n = (step % 10) + 1
                record = dict(zip(("step", "d", "adv", "cls", "lat", "rec"), [step + 1, *(sums / n).tolist()]))
                history.append(record)
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k != "step"})
                sums.zero_()
            if checkpoint is not None and (step + 1) % every == 0 and step + 1 < config.steps:
                checkpoint.save({"generator": gen.state_dict(), "discriminator": disc.state_dict(),
                                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
                                 "history": history})
    return Interpreter(tap, gen.eval(), weights_fingerprint(classifier), history)


def _with_adversarial_twins(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, config: GanConfig,
                            step: int) -> torch.Tensor:
    """``x`` with its first ``adv_share`` × batch images replaced by PGD twins (seeded by the step, so a
    resumed run draws the same ones). The targets of every loss then come from x′ itself: G_ℓ learns
    to draw what the layer holds of x′, which is what the diagnosis reads."""

    k = round(config.adv_share * len(x))
    if k == 0:
        return x
    twins = pgd(classifier, x[:k], y[:k], config.adv_eps, steps=config.adv_steps,
                step_size=2.5 * config.adv_eps / config.adv_steps, keep="max_loss",
                generator=torch.Generator(device=x.device).manual_seed(config.seed * 1_000_003 + step)).adv
    return torch.cat([twins.to(x.dtype), x[k:]])


def _mean_square(classifier: nn.Module, tap: str, train: ImageSet, device, n: int = 512) -> torch.Tensor:
    """Mean square of the activation at ``tap`` over ``n`` training images: the feature-loss scale."""
    x = train.images[:n].to(device).float().div_(255)
    with torch.no_grad():
        z = forward_with_taps(classifier, x, [tap])[1][tap]
    return z.pow(2).mean().clamp_min(1e-12)


def get_or_train_interpreter(classifier: nn.Module, tap: str, train: ImageSet, config: GanConfig, *,
                             store: ArtifactCache, progress: bool = True) -> Interpreter:
    """The interpreter of ``tap`` for ``classifier`` (any ``nn.Module``) from ``store``, trained
    (resumably) if missing. The store's key is the classifier's weights, the tap, the GAN settings
    and the training images, so another model, tap or data never reuses it."""
    key = {"classifier_id": weights_fingerprint(classifier), "tap": tap, "gan": config.key(),
           "data": train.fingerprint()}

    def create(checkpoint: PartialState) -> dict:
        found = train_interpreter(classifier, tap, train, config, checkpoint=checkpoint, progress=progress)
        return {"generator": found.generator.state_dict(), "z_shape": list(found.z_shape),
                "image_shape": list(train.image_shape), "tap": tap, "classifier": found.classifier,
                "width": config.width, "history": found.history}

    stored = store.get_or_create("interpreter", key, create, resumable=True)
    return load_interpreter(stored, classifier)


def load_interpreter(stored: dict, classifier: nn.Module | None = None) -> Interpreter:
    """An :class:`Interpreter` from its stored dict; with ``classifier``, check it is the model it
    was trained for (raises ValueError otherwise)."""
    if classifier is not None and weights_fingerprint(classifier) != stored["classifier"]:
        raise ValueError(f"this interpreter of tap {stored['tap']!r} was trained for another classifier "
                         f"(weights {stored['classifier']}, given {weights_fingerprint(classifier)})")
    gen = Generator(stored["z_shape"], stored["image_shape"], stored["width"])
    gen.load_state_dict(stored["generator"])
    device = model_device(classifier) if classifier is not None else torch.device("cpu")
    return Interpreter(stored["tap"], gen.to(device).eval(), stored["classifier"], stored["history"])


def interpreters_for(classifier: nn.Module, taps: Sequence[str] | None, train: ImageSet, config: GanConfig, *,
                     store: ArtifactCache | None = None, progress: bool = True) -> dict[str, Interpreter]:
    """One InterpretGAN interpreter per tap of ``classifier``, trained on ``train`` or loaded from the store.

    Args:
        classifier: an ``nn.Module`` returning logits; frozen while the interpreters train (its mode and
            ``requires_grad`` flags come back as they were). They train on its device.
        taps: names of its submodules in depth order; None: all taps of the model (``model.taps``).
        train: an :class:`~igan_utils.method.data.ImageSet` (``data.as_image_set`` converts a Dataset or tensors).
        config: a :class:`GanConfig` (``gan_config_for(params, seed)`` builds the book's).
        store: the artifact store (default: none, train every time); keyed by the classifier's weights,
            the tap, ``train`` and ``config``.
        progress: show bars (default True).

    Returns:
        a dict tap → :class:`Interpreter`, in tap order.

    Raises:
        ValueError for unknown, reused or non-tensor taps.

    Example:
        >>> found = interpreters_for(model, ["conv2", "fc1"], splits.train, GanConfig(steps=150), store=Store())  # doctest: +SKIP
    """
    taps = tap_names(classifier, taps)
    def interpreter(tap: str) -> Interpreter:
        if store is None:
            return train_interpreter(classifier, tap, train, config, progress=progress)
        return get_or_train_interpreter(classifier, tap, train, config, store=store, progress=progress)

    return {tap: interpreter(tap) for tap in tqdm(taps, desc="interpreters", disable=not progress, leave=False)}


def interpret(classifier: nn.Module, interpreters: dict[str, Interpreter], x: torch.Tensor,
              taps: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Interpretations x̂_ℓ = G_ℓ(E_ℓ(x)) of a batch ``x`` at each tap.

    Args:
        classifier: the ``nn.Module`` the interpreters were trained for (checked by its weights).
        interpreters: tap → :class:`Interpreter` (from :func:`interpreters_for`).
        x: images (N, C, H, W) in [0, 1].
        taps: the taps to interpret (default None: every interpreted tap).

    Returns:
        a dict tap → images (N, C, H, W) in [0, 1], on ``x``'s device.

    Raises:
        ValueError naming taps without an interpreter, or an interpreter trained for another classifier.

    Example:
        >>> x_hat = interpret(model, found, x_adv)["fc1"]  # doctest: +SKIP
    """
    taps = list(interpreters) if taps is None else tap_names(classifier, taps)
    missing = [t for t in taps if t not in interpreters]
    if missing:
        raise ValueError(f"no interpreter for tap(s) {', '.join(map(repr, missing))}; "
                         f"interpreted taps: {', '.join(interpreters) or 'none'}")
    model_id = weights_fingerprint(classifier)
    for tap in taps:
        if interpreters[tap].classifier != model_id:
            raise ValueError(f"the interpreter of tap {tap!r} was trained for another classifier")
    with torch.no_grad(), eval_mode(classifier):
        acts = forward_with_taps(classifier, x, taps)[1]
    return {tap: interpreters[tap](acts[tap]) for tap in taps}


INVERSION_STEPS, INVERSION_LR = 200, 0.05  # rule 13 fixed feature inversion at these (method page)


def _descend(classifier: nn.Module, tap: str, target: torch.Tensor, image_shape: Sequence[int], *,
             steps: int, lr: float, seed: int) -> torch.Tensor:
    """Images (N, *image_shape) whose activation at ``tap`` approaches ``target`` (N, ...), by Adam on
    the image from grey plus a little noise; pixels stay in [0, 1] through a sigmoid."""
    with torch.enable_grad(), frozen(classifier):
        generator = torch.Generator(device=target.device).manual_seed(seed)
        u = 0.1 * torch.randn((len(target), *image_shape), generator=generator, device=target.device)
        u.requires_grad_(True)
        optimizer = torch.optim.Adam([u], lr=lr)
        for _ in range(steps):
            estimate = forward_with_taps(classifier, torch.sigmoid(u), [tap])[1][tap]
            loss = relative_sq_error(estimate, target).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return torch.sigmoid(u.detach())


def invert_features(classifier: nn.Module, tap: str, x: torch.Tensor, *, steps: int = INVERSION_STEPS,
                    lr: float = INVERSION_LR, seed: int = 0) -> torch.Tensor:
    """Baseline: images whose activation at ``tap`` matches that of ``x``, found by gradient descent
    on the image (Mahendran & Vedaldi) from grey plus a little noise; pixels stay in [0, 1] through a
    sigmoid. Returns (N, C, H, W), computed on the classifier's device, on ``x``'s device and dtype."""
    tap = tap_names(classifier, [tap])[0]
    given = x
    x, = to_model(classifier, x)
    with torch.no_grad(), eval_mode(classifier):
        target = forward_with_taps(classifier, x, [tap])[1][tap]
    found = _descend(classifier, tap, target, x.shape[1:], steps=steps, lr=lr, seed=seed)
    return found.to(device=given.device, dtype=given.dtype)


class _Inversion(nn.Module):
    """Feature inversion in a generator's place: activation z at ``tap`` → the image found by
    :func:`invert_features`'s descent towards z, so the diagnosis reads it as it reads a G_ℓ."""

    def __init__(self, classifier: nn.Module, tap: str, z_shape: Sequence[int], image_shape: Sequence[int], *,
                 steps: int, lr: float, seed: int, store: ArtifactCache | None = None, model_id: str = ""):
        super().__init__()
        self.classifier, self.tap = classifier, tap
        self.z_shape, self.image_shape = tuple(z_shape), tuple(image_shape)
        self.steps, self.lr, self.seed = steps, lr, seed
        self.store, self.model_id = store, model_id
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def train(self, mode: bool = True) -> "_Inversion":
        self.training = mode  # never the classifier's mode: it is the caller's model
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # the diagnosis asks for x′'s interpretations twice (fidelity, then the judge): descend once
        if self._last is None or self._last[0].shape != z.shape or not torch.equal(self._last[0], z):
            descend = lambda: _descend(self.classifier, self.tap, z, self.image_shape, steps=self.steps, lr=self.lr,
                                       seed=self.seed)
            if self.store is None:
                found = descend()
            else:  # keyed by the exact activations: a rerun that computes them bit for bit reads the store
                key = {"classifier": self.model_id, "tap": self.tap, "activations": fingerprint(z),
                       "image_shape": list(self.image_shape), "steps": self.steps, "lr": self.lr, "seed": self.seed}
                found = self.store.get_or_create("inversion", key, lambda: descend().cpu(),
                                                 about={"tap": self.tap, "images": len(z)}).to(z.device)
            self._last = (z.detach().clone(), found)
        return self._last[1]


def inversion_interpreters(classifier: nn.Module, taps: Sequence[str] | None, image_shape: Sequence[int], *,
                           steps: int = INVERSION_STEPS, lr: float = INVERSION_LR, seed: int = 0,
                           store: ArtifactCache | None = None) -> dict[str, Interpreter]:
    """Feature inversion as interpreters: per tap, an :class:`Interpreter` that turns an activation
    into an image by ``steps`` Adam steps at rate ``lr`` on the image (:func:`invert_features`), with
    nothing trained. Each call optimises on the classifier's device, seeded by
    ``seed`` (the same activations give the same images); the same activations asked for twice in a
    row are optimised once, and with a ``store`` each batch's images are kept there, keyed by the
    classifier's weights, the tap, the activations and the settings.

    Args:
        classifier: an ``nn.Module`` returning logits (its mode and ``requires_grad`` flags are kept).
        taps: names of its submodules; None: ``classifier.taps``.
        image_shape: (C, H, W) of its inputs.
        steps: Adam steps per call, >= 1 (default 200, rule 13's).
        lr: Adam's learning rate on the image's logits, > 0 (default 0.05, rule 13's).
        seed: seed of the starting noise (default 0).
        store: an artifact store for the images found (default None: descend on every new batch).

    Returns:
        a dict tap → :class:`Interpreter` (``history`` empty: nothing was trained), in tap order.

    Raises:
        ValueError for unknown taps, ``steps`` < 1 or ``lr`` <= 0.

    Example:
        >>> found = inversion_interpreters(model, ["conv2"], (1, 28, 28))  # doctest: +SKIP
        >>> interpret(model, found, x_adv)["conv2"].shape  # doctest: +SKIP
        torch.Size([N, 1, 28, 28])
    """
    if steps < 1 or not lr > 0:
        raise ValueError(f"steps must be >= 1 and lr > 0, got {steps} and {lr}")
    taps = tap_names(classifier, taps)
    shapes = tap_shapes(classifier, image_shape, taps)
    model_id = weights_fingerprint(classifier)
    return {tap: Interpreter(tap, _Inversion(classifier, tap, shapes[tap], image_shape, steps=steps, lr=lr, seed=seed,
                                             store=store, model_id=model_id), model_id, []) for tap in taps}


def feature_errors(classifier: nn.Module, interpreters: dict[str, Interpreter], x: torch.Tensor,
                   taps: Sequence[str] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """How well each interpreter reproduces the activation it was given: per tap and per image, the
    feature-consistency error ‖E_ℓ(G_ℓ(z)) − z‖² / ‖z‖² with z = E_ℓ(x). Returns (errors, interpretations):
    tap → (N,) errors on ``x``'s device, and tap → the interpretations x̂_ℓ (N, C, H, W)."""
    found = interpret(classifier, interpreters, x, taps)
    errors = {}
    with torch.no_grad(), eval_mode(classifier):
        z = forward_with_taps(classifier, x, list(found))[1]
        for tap, x_hat in found.items():
            errors[tap] = relative_sq_error(forward_with_taps(classifier, x_hat, [tap])[1][tap], z[tap])
    return errors, found


def quality(classifier: nn.Module, interpreters: dict[str, Interpreter], x: torch.Tensor) -> list[dict]:
    """Per tap, on clean images ``x``: how often C labels x̂ as it labels x (``label_agreement``),
    the feature-consistency error ‖E_ℓ(x̂) − E_ℓ(x)‖²/‖E_ℓ(x)‖² (mean), the pixel L1 error and the SSIM to x."""

    labels = predict(classifier, x)
    errors, found = feature_errors(classifier, interpreters, x)
    return [{"tap": tap, "label_agreement": (predict(classifier, x_hat) == labels).float().mean().item(),
             "feature_error": errors[tap].mean().item(), "pixel_l1": (x_hat - x).abs().mean().item(),
             "ssim": ssim(x_hat, x).mean().item()} for tap, x_hat in found.items()]


def interpretation_rows(classifier: nn.Module, interpreters: dict[str, Interpreter], x: torch.Tensor,
                        classes: Sequence[str], taps: Sequence[str] | None = None):
    """For each image of ``x``: the row [x, x̂_tap1, x̂_tap2, ...] and the row of labels the classifier
    gives those images. Returns (images, captions), lists of rows, for ``plots.image_table``."""

    found = interpret(classifier, interpreters, x, taps)
    columns = [x, *found.values()]
    labels = [predict(classifier, c).tolist() for c in columns]
    images = [[c[i] for c in columns] for i in range(len(x))]
    captions = [[classes[lab[i]] for lab in labels] for i in range(len(x))]
    return images, captions
