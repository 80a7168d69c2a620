"""Why InterpretGAN fails rule 12's null plants: what the generator of an identity stage does to x′
(issue 48; not a speed test).

On the null plant over a profile's naturally trained model C (every stage passes the image on), the
`stage1` generator, read from the store that ``benchmarks/planted.py`` filled, interprets clean test
images and their highest-loss PGD twins x′. Prints, per λ_cls and for the generators trained with
adversarial twins (rule 13's candidates), the trusted judge's accuracy on x, on
G(x), on x′ and on G(x′), how often C labels G(x′) as it labels x′, and the mean pixel error of G.

Usage: IGAN_DATA_DIR=data IGAN_STORE_DIR=../stores/quick python benchmarks/planted_generator.py
"""

from __future__ import annotations

from igan_utils.book import configs, profiles, studies
from igan_utils.book.store import Store
from igan_utils.method import attacks, interpretgan, layers, planted


def main(images: int = 300) -> None:
    for lambda_cls, name in ((1.0, "InterpretGAN"), (0.0, "InterpretGAN"), (1.0, "InterpretGAN + twins"),
                             (1.0, "InterpretGAN + twins, λ_cls 0")):
        P = profiles.resolve("04_diagnosis", "quick", datasets=["mnist"], lambda_cls=lambda_cls)
        store, splits = Store(), configs.splits_for(P, "mnist")
        natural = configs.models_for(P, "mnist", splits, store=store, adversarial=(False,), pools=P.pools[:1],
                                     seeds=P.seeds[:1], progress=False)[0].model
        judge, _ = configs.trusted_judge(P, "mnist", splits, store=store)
        plant = planted.plant_null(natural)
        generators = interpretgan.interpreters_for(plant, ["stage1"], splits.train,
                                                   studies.diagnosis_gan(P, "mnist", P.seeds[0], name),
                                                   store=store, progress=False)
        x, y = splits.test.take(slice(0, images)).tensors()
        found = layers.confident_attacks(plant, x, y, **configs.attack_settings(P, "mnist"))
        x_hat = interpretgan.interpret(plant, generators, x)["stage1"]
        adv_hat = interpretgan.interpret(plant, generators, found.x_adv)["stage1"]

        def judged(images, labels) -> float:
            return (attacks.predict(judge.model, images) == labels).float().mean().item()

        same = (attacks.predict(natural, adv_hat) == attacks.predict(natural, found.x_adv)).float().mean().item()
        print(f"{name}{' (λ_cls 0)' if lambda_cls == 0 else ''}: judge right on x {judged(x, y):.3f}, "
              f"G(x) {judged(x_hat, y):.3f}, x′ {judged(found.x_adv, found.y):.3f}, G(x′) {judged(adv_hat, found.y):.3f} "
              f"({len(found.y)} x′); C labels G(x′) as x′ {same:.3f}; |G(x) − x| {(x_hat - x).abs().mean().item():.3f}, "
              f"|G(x′) − x′| {(adv_hat - found.x_adv).abs().mean().item():.3f}", flush=True)


if __name__ == "__main__":
    main()
