"""The method layer: everything a researcher needs without the book, as plain functions over plain
arguments (configs, tensors, models). It never imports :mod:`igan_utils.book` or
:mod:`igan_utils.diagnose`; a function that can reuse earlier work takes any artifact store
(:mod:`~igan_utils.method.cache`).

One concept per module: ``data`` (image sets and splits), ``models`` (the CNNs and pooling variants),
``taps`` (layer outputs), ``attacks`` (FGSM, PGD), ``autoattack`` (the per-image worst case over
AutoAttack), ``masking`` (gradient-masking checks, attack-failure indicators), ``training``
(natural and adversarial), ``batched_training`` (seeds of one recipe as one computation),
``interpretgan`` (InterpretGAN), ``layers`` (the per-layer diagnosis: R, V, fidelity, information
loss), ``known_loss`` (layers whose information loss is known, to check its estimators), ``planted`` (models whose
vulnerable layer is known, to check the diagnosis), ``randomisation`` (cascading weight randomisation), ``stats`` (intervals, rank correlations), ``metrics`` (SSIM), ``validation`` (input checks at
the public entry points), ``runtime`` (devices, modes), ``cache``.
"""
