import pytest
import torch

from igan_utils.book.store import Checkpoint, Store
from igan_utils.method import interpretgan, metrics, models
from igan_utils.method.cache import weights_fingerprint
from igan_utils.method.interpretgan import GanConfig, GanDivergedError, Generator
from igan_utils.method.taps import forward_with_taps

CPU = torch.device("cpu")


@pytest.mark.parametrize("z_shape, image_shape", [((200,), (1, 28, 28)), ((32, 26, 26), (1, 28, 28)),
                                                   ((64, 4, 4), (1, 28, 28)), ((128, 8, 8), (3, 32, 32)),
                                                   ((10,), (3, 32, 32))])
def test_generator_maps_any_activation_to_an_image_in_range(z_shape, image_shape):
    images = Generator(z_shape, image_shape)(torch.randn(3, *z_shape))
    assert images.shape == (3, *image_shape) and images.min() >= 0 and images.max() <= 1


def test_interpreters_learn_and_report_quality(natural_model, mnist):
    found = {tap: interpretgan.train_interpreter(natural_model, tap, mnist.train, GanConfig(steps=60, batch_size=32),
                                                 progress=False, device=CPU) for tap in ("conv2", "logits")}
    x, _ = mnist.test.take(slice(0, 100)).tensors()
    rows = {r["tap"]: r for r in interpretgan.quality(natural_model, found, x)}
    assert rows["logits"]["label_agreement"] > 0.5  # far above chance after 60 steps
    assert all(0 <= r["pixel_l1"] <= 1 and -1 <= r["ssim"] <= 1 for r in rows.values())
    assert found["logits"].history[-1]["step"] == 60


def test_resuming_gan_training_ends_where_an_uninterrupted_run_does(natural_model, mnist, tmp_path):
    config = GanConfig(steps=8, batch_size=8)
    whole = interpretgan.train_interpreter(natural_model, "fc2", mnist.train, config, progress=False, device=CPU)

    class Killed(Checkpoint):
        def save(self, state):
            super().save(state)
            raise KeyboardInterrupt  # killed right after the first periodic checkpoint

    with pytest.raises(KeyboardInterrupt):
        interpretgan.train_interpreter(natural_model, "fc2", mnist.train, config, progress=False, device=CPU,
                                       checkpoint=Killed(tmp_path / "partial.pt"))
    resumed = interpretgan.train_interpreter(natural_model, "fc2", mnist.train, config, progress=False, device=CPU,
                                             checkpoint=Checkpoint(tmp_path / "partial.pt"))
    for a, b in zip(whole.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)


def test_divergence_is_reported_with_tap_and_step(natural_model, mnist):
    with pytest.raises(GanDivergedError, match=r"tap 'fc1' diverged at step 1"):
        interpretgan.train_interpreter(natural_model, "fc1", mnist.train, GanConfig(steps=3, lr=float("inf")),
                                       progress=False, device=CPU)


def test_store_round_trip_and_wrong_classifier(natural_model, mnist, tmp_path):
    store = Store(tmp_path)
    config = GanConfig(steps=2, batch_size=4)
    first = interpretgan.get_or_train_interpreter(natural_model, "pool2", mnist.train, config, store=store, progress=False)
    again = interpretgan.get_or_train_interpreter(natural_model, "pool2", mnist.train, config, store=store, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.generator.state_dict().values(),
                                                 again.generator.state_dict().values()))
    stored = store.load("interpreter", {"classifier_id": weights_fingerprint(natural_model), "tap": "pool2",
                                        "gan": config.key(), "data": mnist.train.fingerprint()})
    with pytest.raises(ValueError, match="trained for another classifier"):
        interpretgan.load_interpreter(stored, models.small_cnn("avg"))


def test_bad_input_is_a_clear_error(natural_model, mnist):
    interpreter = interpretgan.train_interpreter(natural_model, "fc1", mnist.train, GanConfig(steps=1, batch_size=4),
                                                 progress=False, device=CPU)
    with pytest.raises(ValueError, match=r"tap 'fc1' takes activations of shape \(200,\), got \(64, 4, 4\)"):
        interpreter(torch.zeros(2, 64, 4, 4))
    x, _ = mnist.test.take(slice(0, 2)).tensors()
    with pytest.raises(ValueError, match="no interpreter for tap.*'conv1'.*interpreted taps: fc1"):
        interpretgan.interpret(natural_model, {"fc1": interpreter}, x, ["conv1", "fc1"])
    with pytest.raises(ValueError, match="unknown tap.*'conv7'"):
        interpretgan.train_interpreter(natural_model, "conv7", mnist.train, GanConfig(steps=1), progress=False)
    with pytest.raises(ValueError, match="trained for another classifier"):
        interpretgan.interpret(models.small_cnn(), {"fc1": interpreter}, x)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        GanConfig(steps=0)
    with pytest.raises(ValueError, match="lambda_cls must be >= 0"):
        GanConfig(steps=1, lambda_cls=-1)


def test_feature_inversion_matches_the_target_activation(natural_model, mnist):
    x, _ = mnist.test.take(slice(0, 2)).tensors()
    start = metrics.relative_sq_error(*[forward_with_taps(natural_model, t, ["conv2"])[1]["conv2"]
                                        for t in (torch.full_like(x, 0.5), x)])
    inverted = interpretgan.invert_features(natural_model, "conv2", x, steps=100)
    with torch.no_grad():
        end = metrics.relative_sq_error(forward_with_taps(natural_model, inverted, ["conv2"])[1]["conv2"],
                                        forward_with_taps(natural_model, x, ["conv2"])[1]["conv2"])
    assert inverted.shape == x.shape and (end < 0.5 * start).all()
    assert all(p.requires_grad for p in natural_model.parameters())  # frozen only while inverting


def test_ssim_is_one_for_equal_images_and_lower_for_noise():
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(4), atol=1e-5)
    assert (metrics.ssim(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)) < 0.9).all()
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim(x, x[:2])
