"""Claims decided by the uncertainty rule (holds / fails / undecided, never "mixed" by a tolerance), the ranking of
models on the same images only, and presets declared the same model."""

from __future__ import annotations

import numpy as np
import pytest

import vaecore
from vaecore.evaluation.claims import ClaimKind, Status, check_claim, metric_of
from vaecore.evaluation.per_image import PerImage
from vaecore.evaluation.ranking import rank
from vaecore.evaluation.uncertainty import ImageSet, seed_spread

N = 500
RNG = np.random.default_rng(1)
IMAGES = ImageSet("mnist", "test", tuple(range(N)), "f00d")
SETTINGS = {"dataset": "mnist", "split": "test", "n_test": N, "first_image": 0, "fingerprint": "f00d"}


def evaluation(nll: np.ndarray, fd: list[float], images: ImageSet = IMAGES) -> tuple[dict, PerImage]:
    """An evaluation result with −log p per image and FD over seeds, and its per-image store."""
    s = seed_spread(fd)
    settings = {**SETTINGS, "first_image": images.indices[0], "fingerprint": images.fingerprint}
    result = {"nll-discrete": float(nll.mean()), "fd": s.value, "settings": settings,
              "uncertainty": {"fd": {**s.to_json(), "values": fd}}}
    return result, PerImage(images, {"nll-discrete": nll})


def test_a_claim_holds_only_when_every_metric_is_better_by_two_standard_errors() -> None:
    difficulty = RNG.normal(1400, 200, N)  # shared by both models: pairing removes it
    a, sa = evaluation(difficulty - 3 + RNG.normal(0, 5, N), [20.0, 21.0, 20.5])
    b, sb = evaluation(difficulty + RNG.normal(0, 5, N), [30.0, 29.0, 31.0])
    c = check_claim("a beats b", a, b, ["nll-discrete", "fd"], per_image=(sa, sb))
    assert c.status is Status.HOLDS and [k.verdict for k in c.checks] == ["better", "better"]
    assert "**holds**" in c.line() and "difference -3." in c.line()  # the paired difference, with its sign
    # −log p 3 nats better (SE ~0.3), FD within seed noise: undecided, not "holds" and not "mixed"
    b2, sb2 = evaluation(difficulty + RNG.normal(0, 5, N), [20.4, 19.6, 21.2])
    c2 = check_claim("a beats b", a, b2, ["nll-discrete", "fd"], per_image=(sa, sb2))
    assert c2.status is Status.UNDECIDED and [k.verdict for k in c2.checks] == ["better", "undecided"]
    assert check_claim("a matches or beats b", a, b2, ["nll-discrete", "fd"], ClaimKind.MATCHES_OR_BEATS,
                       per_image=(sa, sb2)).status is Status.HOLDS
    # one metric worse: the claim fails
    c3 = check_claim("b beats a", b, a, ["nll-discrete", "fd"], per_image=(sb, sa))
    assert c3.status is Status.FAILS


def test_per_image_metrics_on_different_images_are_not_compared() -> None:
    a, sa = evaluation(RNG.normal(1400, 20, N), [1.0, 1.1, 0.9])
    other = ImageSet("mnist", "test", tuple(range(N, 2 * N)), "beef")
    b, sb = evaluation(RNG.normal(1500, 20, N), [1.0, 1.1, 0.9], images=other)
    c = check_claim("a beats b", a, b, ["nll-discrete"], per_image=(sa, sb))
    assert c.checks[0].difference is None and "not the same test images" in c.checks[0].verdict
    assert c.status is Status.NOT_MEASURABLE
    one_seed = {**a, "uncertainty": {"fd": {**seed_spread([1.0]).to_json()}}}
    assert "one seed" in check_claim("a beats b", one_seed, b, ["fd"]).checks[0].verdict


def test_a_samplers_copy_is_judged_as_its_metric() -> None:
    assert metric_of("fd_gmm").key == "fd" and metric_of("precision_maf").key == "precision"
    with pytest.raises(ValueError):
        metric_of("mse_gmm")  # MSE does not depend on a sampler


def test_ranking_compares_only_models_on_the_same_images() -> None:
    base = RNG.normal(1400, 100, N)
    a, sa = evaluation(base, [1.0, 1.0, 1.0])
    b, sb = evaluation(base + 50 + RNG.normal(0, 3, N), [1.0, 1.0, 1.0])
    c, sc = evaluation(base + 0.01 * RNG.normal(0, 1, N), [1.0, 1.0, 1.0])
    elsewhere, se = evaluation(base - 500, [1.0, 1.0, 1.0], ImageSet("mnist", "test", tuple(range(N)), "0ther"))
    results = {"b": b, "a": a, "c": c, "elsewhere": elsewhere, "old": {"nll-discrete": 1.0},
               "ae": {"nll-discrete": None}}
    r = rank(results, "nll-discrete", per_image={"a": sa, "b": sb, "c": sc, "elsewhere": se})
    assert [row.model for row in r.rows][-1] == "b" and {row.model for row in r.rows} == {"a", "b", "c"}
    assert r.rows[-1].verdict == "worse" and r.rows[1].verdict == "undecided"
    assert "not on the ranked models' images" in r.apart["elsewhere"]  # 500 nats "better", on other images
    assert "does not record which test images" in r.apart["old"] and r.apart["ae"].startswith("undefined")
    # a mean without its per-image values (an evaluation from before they were stored) is never ranked, however good
    unpaired = {**a, "nll-discrete": 1.0}
    r2 = rank({"a": a, "b": b, "unpaired": unpaired}, "nll-discrete", per_image={"a": sa, "b": sb})
    assert [row.model for row in r2.rows] == ["a", "b"] and "no per-image values" in r2.apart["unpaired"]
    assert not rank({"a": a}, "nll-discrete").rows  # no stores: nothing ranked as if it had an SE
    with pytest.raises(ValueError, match="comparable only among"):
        rank({"a": {**a, "elbo": 1.0}}, "elbo")  # a density: one likelihood family at a time


def test_alias_presets_are_the_same_model_and_load_the_bundled_one() -> None:
    from vaecore.presets import register_preset

    aliases = {n: p.alias_of for n, p in vaecore.PRESETS.items() if p.alias_of}
    assert aliases == {"trainable-iso-i": "sigma-vae-learned", "trainable-diag-d": "sigma-vae-per-pixel"}
    for alias, same in aliases.items():
        a, b = vaecore.PRESETS[alias], vaecore.PRESETS[same]
        assert {**a.config, "preset": same} == b.config and a.train == b.train
        assert vaecore.load(alias).config.preset == same  # the bundled model of the canonical name
    with pytest.raises(ValueError, match="settings differ"):
        register_preset("not-an-alias", "x", alias_of="sigma-vae", likelihood="bernoulli")
