"""Uncertainty of compared numbers: the SE formulas against a direct computation, paired differences that refuse
different image sets, the seeds' spread, the verdict rule, and the per-image file beside eval.json."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaecore.evaluation.per_image import PerImage, load_per_image, save_per_image
from vaecore.evaluation.registry import Direction, State, outcome
from vaecore.evaluation.uncertainty import (
    Difference,
    ImageSet,
    Over,
    Verdict,
    Z,
    mean_se,
    paired_difference,
    seed_difference,
    seed_spread,
    verdict,
)

RNG = np.random.default_rng(0)


def images(n: int, first: int = 0, dataset: str = "mnist") -> ImageSet:
    x = torch.arange(first, first + n, dtype=torch.float64).reshape(n, 1, 1, 1).remainder(256) / 255
    return ImageSet.of(dataset, "test", range(first, first + n), x)


def test_standard_error_is_the_sample_sd_over_root_n() -> None:
    v = RNG.normal(3.0, 2.0, size=57)
    e = mean_se(v)
    direct_mean = sum(v) / len(v)
    direct_var = sum((x - direct_mean) ** 2 for x in v) / (len(v) - 1)
    assert e.value == pytest.approx(direct_mean, rel=1e-13)
    assert e.se == pytest.approx(math.sqrt(direct_var / len(v)), rel=1e-12)
    assert e.sd == pytest.approx(math.sqrt(direct_var), rel=1e-12)
    assert e.n == 57 and e.over is Over.IMAGES
    one = mean_se([4.0])
    assert (one.value, one.se, one.n) == (4.0, 0.0, 1)
    with pytest.raises(ValueError, match="not finite"):
        mean_se([1.0, math.inf])
    with pytest.raises(ValueError, match="no values"):
        mean_se([])


def test_paired_difference_is_the_se_of_the_per_image_differences() -> None:
    common = RNG.normal(0, 10, size=400)  # image difficulty shared by both models
    a = common + RNG.normal(1.0, 1.0, size=400)
    b = common + RNG.normal(0.0, 1.0, size=400)
    s = images(400)
    d = paired_difference(a, b, s, s)
    diffs = a - b
    assert d.mean == pytest.approx(diffs.mean(), rel=1e-12)
    assert d.se == pytest.approx(diffs.std(ddof=1) / math.sqrt(400), rel=1e-12)
    assert d.paired and d.n == 400
    # pairing removes the shared image difficulty: the unpaired SE would be about 10x larger
    unpaired = math.hypot(mean_se(a).se, mean_se(b).se)
    assert d.se < unpaired / 5
    assert verdict(d, Direction.HIGHER) is Verdict.BETTER and verdict(d, Direction.LOWER) is Verdict.WORSE


@pytest.mark.parametrize("other", [images(400, first=1), images(399), images(400, dataset="fashion-mnist")])
def test_paired_comparisons_refuse_different_image_sets(other: ImageSet) -> None:
    with pytest.raises(ValueError, match="not the same test images"):
        paired_difference(np.zeros(400), np.zeros(len(other.indices)), images(400), other)


def test_the_same_indices_of_other_pixels_are_other_images() -> None:
    s = images(10)
    x = torch.zeros(10, 1, 1, 1)
    binarized = ImageSet.of("mnist", "test", range(10), x)
    assert binarized.indices == s.indices and binarized.fingerprint != s.fingerprint
    with pytest.raises(ValueError, match="not the same test images"):
        paired_difference(np.zeros(10), np.zeros(10), s, binarized)


def test_seed_spread_and_welch_difference() -> None:
    a, b = [29.4, 30.1, 28.6, 29.9], [29.0, 27.5, 30.2]
    ea, eb = seed_spread(a), seed_spread(b)
    assert ea.over is Over.SEEDS and ea.sd == pytest.approx(float(np.std(a, ddof=1)), rel=1e-12)
    d = seed_difference(ea, eb)
    direct = math.sqrt(np.var(a, ddof=1) / 4 + np.var(b, ddof=1) / 3)
    assert d.mean == pytest.approx(np.mean(a) - np.mean(b)) and d.se == pytest.approx(direct, rel=1e-12)
    assert not d.paired
    assert verdict(d, Direction.LOWER) is Verdict.UNDECIDED  # 0.4 apart with ~0.8 SE: sampling noise
    with pytest.raises(ValueError, match="paired"):
        seed_difference(mean_se([1.0, 2.0]), eb)


def test_the_verdict_rule_is_two_standard_errors() -> None:
    assert Z == 2.0
    assert verdict(Difference(-2.01, 1.0, 50, True), Direction.LOWER) is Verdict.BETTER
    assert verdict(Difference(-1.99, 1.0, 50, True), Direction.LOWER) is Verdict.UNDECIDED
    assert verdict(Difference(2.01, 1.0, 50, True), Direction.LOWER) is Verdict.WORSE
    assert verdict(Difference(0.0, 0.0, 50, True), Direction.LOWER) is Verdict.UNDECIDED
    assert verdict(Difference(5.0, 0.0, 1, False), Direction.HIGHER) is Verdict.UNDECIDED  # one seed: no spread
    with pytest.raises(ValueError, match="direction"):
        verdict(Difference(1.0, 0.1, 5, True), Direction.NONE)


def test_per_image_file_round_trips_and_compares_only_the_same_images(tmp_path) -> None:
    s = images(300)
    a = PerImage(s, {"nll-discrete": RNG.normal(1400, 50, 300), "mse": RNG.random(300)}, {"iwae_k": 100})
    (tmp_path / "a").mkdir()
    path = save_per_image(tmp_path / "a", a)
    assert path.stat().st_size < 20_000
    back = load_per_image(tmp_path / "a")
    assert back.images == s and back.settings == {"iwae_k": 100}
    np.testing.assert_array_equal(back.values["nll-discrete"], a.values["nll-discrete"])
    e = back.estimate("nll-discrete")
    assert e.se == pytest.approx(mean_se(a.values["nll-discrete"]).se, rel=1e-15)
    b = PerImage(images(300, first=300), {"nll-discrete": np.zeros(300)})
    with pytest.raises(ValueError, match="not the same test images"):
        back.difference(b, "nll-discrete")
    assert load_per_image(tmp_path / "missing") is None


def test_a_bad_per_image_file_is_refused_in_one_line(tmp_path) -> None:
    from safetensors.numpy import save_file

    (tmp_path / "per_image.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="not a valid per-image file"):
        load_per_image(tmp_path)
    save_file({"__indices__": np.arange(3), "mse": np.zeros(4)}, str(tmp_path / "per_image.safetensors"),
              metadata={"format": "vaecore-per-image/1"})
    with pytest.raises(ValueError, match="vector of the 3 images"):
        load_per_image(tmp_path)
    with pytest.raises(ValueError, match="not finite"):
        save_per_image(tmp_path, PerImage(images(2), {"mse": np.array([1.0, math.nan])}))


def test_outcome_reads_the_stored_uncertainty() -> None:
    result = {"nll-discrete": 1427.1, "fd": 29.4, "elbo": None, "notes": {"elbo": "why"},
              "uncertainty": {"nll-discrete": {"se": 5.4, "n": 2000, "over": "images", "sd": 241.5},
                              "fd": {"se": 0.35, "n": 3, "over": "seeds", "sd": 0.6}}}
    o = outcome(result, "nll-discrete")
    assert o.state is State.VALUE and o.estimate.se == 5.4 and o.estimate.n == 2000
    assert o.text(lambda v: f"{v:.1f}") == "1427.1 ± 5.4"
    assert outcome(result, "fd").text(lambda v: f"{v:.1f}") == "29.4 ± 0.6 s.d."
    assert outcome(result, "elbo").text() == "undefined: why"
    assert outcome(result, "mse").text() == "not run"
