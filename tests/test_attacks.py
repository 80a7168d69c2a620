import pytest
import torch
from conftest import KernelCounter

from igan_utils.method import attacks, models


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("norm", attacks.NORMS)
def test_pgd_stays_in_the_ball_and_in_range(natural_model, test_batch, norm):
    x, y = test_batch
    eps = 0.3 if norm == "linf" else 2.0
    result = attacks.pgd(natural_model, x, y, eps, norm=norm, steps=10, generator=_gen())
    delta = (result.adv - x).flatten(1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert result.adv.min() >= 0 and result.adv.max() <= 1


def test_success_matches_the_models_predictions(natural_model, test_batch):
    x, y = test_batch
    result = attacks.pgd(natural_model, x, y, 0.1, steps=10, generator=_gen())
    assert torch.equal(result.success, attacks.predict(natural_model, result.adv) != y)


def test_the_attack_works_and_pgd_beats_fgsm(natural_model, test_batch):
    x, y = test_batch
    clean = attacks.accuracy(natural_model, x, y)
    fgsm = attacks.accuracy(natural_model, attacks.fgsm(natural_model, x, y, 0.1).adv, y)
    pgd = attacks.robust_accuracy(natural_model, x, y, eps=0.1, steps=20, seed=0).robust
    assert clean > 0.85  # the fixture model learned something
    assert pgd <= fgsm < clean
    assert attacks.robust_accuracy(natural_model, x, y, eps=0.3, steps=20).robust < 0.05


def test_early_exit_gives_the_same_result_for_less_work(natural_model, test_batch):
    x, y = test_batch
    full = attacks.pgd(natural_model, x, y, 0.1, steps=20, restarts=2, generator=_gen(1))
    early = attacks.pgd(natural_model, x, y, 0.1, steps=20, restarts=2, early_exit=True, generator=_gen(1))
    assert torch.equal(full.success, early.success)
    a = attacks.robust_accuracy(natural_model, x, y, eps=0.1, steps=20, early_exit=False, seed=2)
    b = attacks.robust_accuracy(natural_model, x, y, eps=0.1, steps=20, early_exit=True, seed=2)
    assert a.robust == b.robust and a.clean == b.clean


class _SyncCounter(torch.overrides.TorchFunctionMode):
    """Counts the calls that make the host wait for the device on CUDA (``item``, ``bool``, ``nonzero``,
    ``tolist``, boolean-mask indexing), on any device: where they are, not what they cost here."""

    SYNCING = {"item", "__bool__", "nonzero", "tolist"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        index = args[1] if name == "__getitem__" and len(args) > 1 else None
        masks = index if isinstance(index, tuple) else (index,)
        if name in self.SYNCING or any(isinstance(m, torch.Tensor) and m.dtype == torch.bool for m in masks):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_pgd_s_bookkeeping_per_step_is_a_fixed_few_kernels(natural_model, test_batch):
    """Kernels per PGD step beyond the forward, loss and input gradient that any PGD needs: the step,
    the projection, the fooled test and the best-iterate record. 13 since they were fused (16 before);
    torchattacks' PGD spends 7 (it keeps no best iterate)."""
    x, y = test_batch[0][:8], test_batch[1][:8]

    def per_step(fn):
        counts = []
        for steps in (4, 8):
            with KernelCounter() as counter:
                fn(steps)
            counts.append(counter.count)
        return (counts[1] - counts[0]) / 4

    def floor(steps):
        for _ in range(steps):
            xa = x.detach().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(natural_model(xa), y, reduction="none")
            torch.autograd.grad(loss.sum(), xa)

    bookkeeping = per_step(lambda steps: attacks.pgd(natural_model, x, y, 0.1, steps=steps, generator=_gen(5))) \
        - per_step(floor)
    assert bookkeeping <= 13, bookkeeping


@pytest.mark.parametrize("early_exit", [False, True])
def test_pgd_s_host_syncs_do_not_grow_with_the_steps(natural_model, test_batch, early_exit):
    """PGD decides early exit at a fixed few steps, so 8 steps and 48 make the same number of
    sync-prone calls (the input checks once, then per restart one mask and at most 4 looks)."""
    x, y = test_batch[0][:8], test_batch[1][:8]
    counts = []
    for steps in (8, 48):
        with _SyncCounter() as counter:
            attacks.pgd(natural_model, x, y, 0.02, steps=steps, restarts=2, early_exit=early_exit, generator=_gen(4))
        counts.append(counter.count)
    assert counts[1] <= counts[0], counts  # 6× the steps, no more syncs
    # the input checks once (pixel range, labels: 4 calls), then per restart one mask and one per look
    assert counts[1] <= 4 + (2 * (1 + len(attacks.EARLY_EXIT_AT)) if early_exit else 0), counts
    assert attacks.early_exit_steps(40) == {5, 10, 20, 30} and attacks.early_exit_steps(2) == {1}


def test_fgsm_and_trades_inner_steps_make_no_sync_per_step(natural_model, test_batch):
    from igan_utils.method import training

    x, y = test_batch[0][:8], test_batch[1][:8]
    with _SyncCounter() as counter:
        attacks.fgsm(natural_model, x, y, 0.1, random_start=True, generator=_gen(2))
    assert counter.count <= 4  # the input checks, once
    counts = []
    for steps in (2, 12):
        with _SyncCounter() as counter:
            training._trades_inputs(natural_model, x, 0.1, steps, 0.01, _gen(3))
        counts.append(counter.count)
    assert counts[0] == counts[1], counts


def test_restarts_keep_the_strongest_result_per_sample(natural_model, test_batch):
    x, y = test_batch
    one = attacks.pgd(natural_model, x, y, 0.05, steps=5, restarts=1, generator=_gen(3))
    three = attacks.pgd(natural_model, x, y, 0.05, steps=5, restarts=3, generator=_gen(3))
    assert (three.success | ~one.success).all()  # every sample broken once stays broken
    assert three.success.sum() >= one.success.sum()


def test_targeted_attack_reaches_its_target(natural_model, test_batch):
    x, y = test_batch
    target = (y + 1) % 10
    result = attacks.pgd(natural_model, x, target, 0.3, steps=20, targeted=True, generator=_gen())
    assert torch.equal(result.success, attacks.predict(natural_model, result.adv) == target)
    assert result.success.float().mean() > 0.5


def test_no_parameter_gradients_and_mode_restored(natural_model, test_batch):
    x, y = test_batch
    assert all(p.grad is None for p in natural_model.parameters())
    natural_model.train()
    attacks.pgd(natural_model, x[:10], y[:10], 0.1, steps=3)
    attacks.fgsm(natural_model, x[:10], y[:10], 0.1, random_start=True)
    assert natural_model.training
    natural_model.eval()
    assert all(p.grad is None for p in natural_model.parameters())


def test_same_seed_same_attack(natural_model, test_batch):
    x, y = test_batch
    a = attacks.pgd(natural_model, x[:20], y[:20], 0.1, steps=3, generator=_gen(7)).adv
    b = attacks.pgd(natural_model, x[:20], y[:20], 0.1, steps=3, generator=_gen(7)).adv
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"x": torch.rand(4, 28, 28)}, "x must be a tensor of shape \\(N, C, H, W\\)"),
    ({"x": torch.rand(4, 3, 28, 28)}, "per-image shape \\(3, 28, 28\\).*expects \\(1, 28, 28\\)"),
    ({"x": torch.rand(4, 1, 28, 28) * 2}, "x must lie in \\[0, 1\\]"),
    ({"y": torch.zeros(3, dtype=torch.long)}, "labels must be an integer tensor of shape \\(4,\\)"),
    ({"eps": -0.1}, "eps must be a finite number >= 0"),
    ({"norm": "l1"}, "unknown norm 'l1'; valid: linf, l2"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"restarts": 0}, "restarts must be an integer >= 1"),
    ({"step_size": 0.0}, "step_size must be > 0"),
    ({"x": torch.full((4, 1, 28, 28), float("nan"))}, "3136 NaN or infinite values in x"),
])
def test_bad_input_is_a_clear_value_error(kwargs, message):
    model = models.small_cnn()
    args = {"x": torch.rand(4, 1, 28, 28), "y": torch.zeros(4, dtype=torch.long), "eps": 0.1, **kwargs}
    x, y, eps = args.pop("x"), args.pop("y"), args.pop("eps")
    with pytest.raises(ValueError, match=message):
        attacks.pgd(model, x, y, eps, **args)


def test_fgsm_rejects_bad_input_too():
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        attacks.fgsm(models.small_cnn(), torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), -1.0)


def test_eps_of_the_wrong_type_is_a_type_error_naming_it():
    x, y = torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)
    for bad in ("0.3", None, True):
        with pytest.raises(TypeError, match="eps must be a number"):
            attacks.pgd(models.small_cnn(), x, y, bad)


class _Wrapped(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.inner, self.kind, self.calls = models.small_cnn(), kind, 0

    def forward(self, x):
        self.calls += 1
        logits = self.inner(x)
        return (logits, x) if self.kind == "tuple" else {"logits": logits}


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_a_model_that_does_not_return_logits_is_refused_at_its_first_call(kind):
    model = _Wrapped(kind)
    x, y = torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)
    for attack in (lambda: attacks.pgd(model, x, y, 0.1), lambda: attacks.robust_accuracy(model, x, y, eps=0.1)):
        model.calls = 0
        with pytest.raises(TypeError, match="must return a logits tensor.*wrap it"):
            attack()
        assert model.calls == 1  # refused at the first forward pass, before any attack step


def test_agrees_with_torchattacks(natural_model, test_batch):
    import torchattacks

    x, y = test_batch
    ours = attacks.robust_accuracy(natural_model, x, y, eps=0.05, steps=20, step_size=0.005, seed=0).robust
    theirs = attacks.accuracy(natural_model, torchattacks.PGD(natural_model, eps=0.05, alpha=0.005, steps=20)(x, y), y)
    assert abs(ours - theirs) <= 0.03, (ours, theirs)  # 200 images: 3 points is 6 images


class _LossAndSuccessApart(torch.nn.Module):
    """Three classes over a one-pixel image, flat (zero gradient) on either side of 0.5: below it the
    true class 0 still wins with a high loss (1.09), from 0.5 up class 1 wins with a lower loss (0.97).
    A first success can then have less loss than an earlier failure, which the max-loss rule drops."""

    def forward(self, x):
        fooling = x.flatten(1)[:, :1] >= 0.5
        a = torch.where(fooling, 0.5, -0.01)
        b = torch.where(fooling, -10.0, -0.01)
        return torch.cat([torch.zeros_like(a), a, b], 1) + 0 * x.flatten(1)[:, :1]  # differentiable, flat


@pytest.mark.parametrize("restarts", [2, 3])
def test_restarts_count_every_first_success_with_and_without_early_exit(restarts):
    # The bug this guards against: early exit reused the name of `keep` for its mask of active
    # samples, so from the second restart on PGD kept max-loss iterates and lost such successes.
    model = _LossAndSuccessApart()
    x, y = torch.full((256, 1, 1, 1), 0.25), torch.zeros(256, dtype=torch.long)
    runs = [attacks.pgd(model, x, y, 0.5, steps=8, restarts=restarts, early_exit=early,
                        generator=_gen(5)) for early in (False, True)]
    assert torch.equal(runs[0].success, runs[1].success)
    # every sample that any random start put at or above 0.5 is a success (the gradient is zero there)
    generator, anywhere = _gen(5), torch.zeros(256, dtype=torch.bool)
    for _ in range(restarts):
        start = (x + (torch.rand(x.shape, generator=generator) * 2 - 1) * 0.5).clamp(0, 1)
        anywhere |= start.flatten() >= 0.5
    assert 0 < int(anywhere.sum()) < 256
    assert torch.equal(runs[1].success, anywhere)


@pytest.mark.parametrize("call, error, message", [
    # label -100 is cross-entropy's ignore_index: loss 0, and every image was counted fooled
    (lambda m, x, y: attacks.pgd(m, x, y - 100, 0.1, steps=2), ValueError, "labels must be >= 0"),
    (lambda m, x, y: attacks.robust_accuracy(m, x, y - 100, eps=0.1, steps=2), ValueError, "labels must be >= 0"),
    (lambda m, x, y: attacks.pgd(m, x, y + 10, 0.1, steps=2), ValueError, "labels must lie in 0..9"),
    (lambda m, x, y: attacks.fgsm(m, x, y + 10, 0.1), ValueError, "labels must lie in 0..9"),
    (lambda m, x, y: attacks.pgd(m, x, y, 8, steps=2), ValueError, "divide by 255"),
    (lambda m, x, y: attacks.pgd(m, x, y, float("inf"), steps=2), ValueError, "finite number >= 0"),
    (lambda m, x, y: attacks.fgsm(m, x, y, 0.3, alpha=-0.3), ValueError, "alpha must be a finite number >= 0"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, step_size="0.01"), TypeError, "step_size must be a number"),
    (lambda m, x, y: attacks.robust_accuracy(m, x[:0], y[:0], eps=0.1), ValueError, "no images to evaluate"),
    (lambda m, x, y: attacks.pgd(m, x.permute(0, 2, 3, 1), y, 0.1), ValueError, "looks like \\(N, H, W, C\\)"),
])
def test_mistakes_get_one_clear_sentence_before_any_work(call, error, message):
    model = models.small_cnn()
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    with pytest.raises(error, match=message):
        call(model, x, y)


def test_taps_given_as_one_string_are_refused_with_a_hint():
    from igan_utils.method import taps

    with pytest.raises(ValueError, match="did you mean \\['conv1', 'conv2'\\]"):
        taps.tap_names(models.small_cnn(), "conv1,conv2")
