"""The CIFAR-10 path of the `paper` profile, end to end at toy size on a generated CIFAR-10 folder:
the calls each chapter makes, with cifar_cnn and CIFAR-10's reference threat model."""

import pytest

from igan_utils.book import configs, profiles
from igan_utils.book.store import Store
from igan_utils.method import autoattack, interpretgan, layers, masking

TOY = dict(datasets=["cifar10"], train_size=None, val_size=20, test_size=None, epochs=1, adv_epochs=1,
           train_steps=1, batch_size=20, eps=0.5, eval_steps=10, restarts=1, eval_size=10, taps=["pool1", "fc2"],
           gan_steps=3, gan_batch_size=8, decoder_steps=3, diag_size=20, bootstrap=20, pools=["max", "avg"], seeds=[0])


def test_every_chapter_step_runs_on_cifar10(cifar_dir, tmp_path):
    store = Store(tmp_path)
    P = profiles.resolve("04_diagnosis", "paper", data_dir=str(cifar_dir),
                         **{k: v for k, v in TOY.items() if k in profiles.NOTEBOOK_PARAMS["04_diagnosis"]})
    splits = configs.splits_for(P, "cifar10")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 20)

    trained = configs.models_for(P, "cifar10", splits, store=store, progress=False)  # chapter 1
    assert {(m.config.arch, m.config.method) for m in trained} == {("cifar_cnn", "natural"), ("cifar_cnn", "pgd")}
    attack = configs.attack_settings(P, "cifar10")
    assert attack["step_size"] == pytest.approx(0.5 * (20 * 2 / 255) / (8 / 255) / 10)  # CIFAR path ratio

    x, y = splits.test.tensors()
    ensemble = configs.ensemble_for(P, "cifar10")  # chapter 2: AutoAttack standard + PGD screen
    assert ensemble.attacks == ("apgd-ce", "apgd-t", "fab-t", "square")
    ensemble = autoattack.Ensemble(ensemble.attacks, apgd_iters=3, targets=2, square_queries=5,
                                   pgd_steps=ensemble.pgd_steps, pgd_step_size=ensemble.pgd_step_size)
    robust = autoattack.robust_table(trained, x, y, eps=attack["eps"], ensemble=ensemble, store=store)
    assert (robust["robust_acc"] <= robust["clean_acc"]).all()
    natural = next(m for m in trained if m.config.method == "natural")
    adversarial = next(m for m in trained if m.config.method == "pgd")
    checks = masking.masking_checks(adversarial, x, y, eps=attack["eps"], large_eps=configs.large_eps(P, "cifar10"),
                                       ensemble=ensemble, store=store)
    assert len(checks) == 4

    gan = interpretgan.GanConfig(steps=P.gan_steps, batch_size=P.gan_batch_size)  # chapter 3
    found = interpretgan.interpreters_for(natural.model, P.taps, splits.train, gan, store=store, progress=False)
    images = interpretgan.interpret(natural.model, found, x)
    assert all(v.shape == (20, 3, 32, 32) for v in images.values())

    attacked = layers.successful_attacks(natural.model, x, y, eps=attack["eps"],  # chapter 4
                                         ensemble=layers.default_attack(attack["steps"], attack["step_size"]))
    table = layers.vulnerability_table(natural.model, found, {"self": natural.model}, attacked, bootstrap=P.bootstrap)
    assert table["tap"].tolist() == ["input", "pool1", "fc2"] and (table["n"] > 0).all()
    il = layers.information_loss(natural.model, P.taps, splits.train, splits.test, steps=P.decoder_steps,
                                    store=store, progress=False)
    assert (il["IL"] > 0).all()
