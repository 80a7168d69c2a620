"""Layers whose information loss is known by construction, and the estimators checked on them."""

import pytest
import torch

from igan_utils.method import known_loss, layers, taps


@pytest.fixture(scope="module")
def small(mnist):
    return mnist.train.take(slice(0, 600)), mnist.test.take(slice(0, 200))


def test_each_chain_is_a_chain_of_its_taps(small):
    train, _ = small
    x = train.take(slice(0, 8)).tensors()[0]
    for chain in (known_loss.pooling_chain("avg"), known_loss.pooling_chain("max"),
                  known_loss.projection_chain(train, ranks=(784, 50, 5)), known_loss.noise_chain((0.0, 0.3))):
        found = taps.activations(chain, x, chain.taps)
        assert list(found) == chain.taps
    pooled = taps.activations(known_loss.pooling_chain("avg"), x)
    assert torch.allclose(pooled["k28"].flatten(), x.mean((1, 2, 3)), atol=1e-6)  # one number: the mean
    projected = taps.activations(known_loss.projection_chain(train, ranks=(784, 50)), x)
    assert projected["r784"].shape == (8, 784) and projected["r50"].shape == (8, 50)
    noisy = known_loss.noise_chain((0.0, 0.5))
    assert not torch.equal(noisy(x), noisy(x))  # fresh noise each pass: the loss is real
    assert torch.equal(taps.activations(noisy, x)["s0"], x)


def test_the_affine_estimator_ranks_every_known_chain(small):
    train, test = small
    for chain in (known_loss.pooling_chain("avg"), known_loss.pooling_chain("max"),
                  known_loss.projection_chain(train), known_loss.noise_chain()):
        table = known_loss.check_estimator(lambda t: layers.linear_information_loss(chain, t, train, test),
                                           chain, column="linear_mse")
        assert table["monotone"].all(), table
    full = layers.linear_information_loss(known_loss.projection_chain(train), ["r784"], train, test)
    assert full["linear_mse"].iloc[0] < 1e-3  # a full-rank projection loses nothing


def test_check_estimator_catches_an_estimator_that_misranks():
    chain = known_loss.pooling_chain()
    backwards = known_loss.check_estimator(
        lambda t: __import__("pandas").DataFrame({"tap": t, "loss": [3.0, 2.0, 2.5, 4.0]}), chain, column="loss")
    assert not backwards["monotone"].any() and backwards["rises"].tolist() == [True, False, True, True]


def test_bad_chains_are_refused(small):
    with pytest.raises(ValueError, match="decrease strictly"):
        known_loss.projection_chain(small[0], ranks=(10, 50))
    with pytest.raises(ValueError, match="increase strictly"):
        known_loss.noise_chain((0.5, 0.1))
    with pytest.raises(ValueError, match="'avg' or 'max'"):
        known_loss.pooling_chain("lp")
