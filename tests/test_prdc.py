"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020): closed-form toy
cases and agreement with the authors' `prdc` package (pip install --no-deps prdc==0.2)."""

from __future__ import annotations

import numpy as np
import pytest

from vaecore.evaluation.metrics import prdc


def line(n: int, offset: float = 0.0) -> np.ndarray:
    """n points spaced 1 apart on a line (in 3-d)."""
    x = np.zeros((n, 3))
    x[:, 0] = np.arange(n) + offset
    return x


def test_the_same_points_are_fully_precise_recalled_and_covered() -> None:
    r = line(20)
    # k = 1: every ball has radius 1 (strict <), so a point lies only in its own ball: density 1
    assert prdc(r, r.copy(), k=1) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    # k = 2: interior radii are 1, the two ends' are 2 and reach one neighbour each: density (20 + 2) / (2 · 20)
    out = prdc(r, r.copy(), k=2)
    assert out["density"] == pytest.approx(22 / 40)
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0


def test_far_away_samples_score_zero_and_half_of_them_half() -> None:
    r = line(20)
    far = line(20, offset=1000.0)
    assert prdc(r, far, k=3) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    half = np.concatenate([r[::2], far[:10]])  # 10 samples on the real points, 10 far away
    out = prdc(r, half, k=1)
    assert out["precision"] == 0.5
    assert out["coverage"] == 0.5  # the even real points hold a sample at distance 0, the odd ones none within 1


def test_refuses_too_few_points_and_mismatched_features() -> None:
    with pytest.raises(ValueError, match="more than k"):
        prdc(line(5), line(5), k=5)
    with pytest.raises(ValueError, match="same F"):
        prdc(line(10), np.zeros((10, 2)), k=2)


@pytest.mark.parametrize("k", [1, 5])
def test_agrees_with_the_reference_package(k: int) -> None:
    ref = pytest.importorskip("prdc", reason="the reference package: pip install --no-deps prdc==0.2")
    rng = np.random.default_rng(k)
    real = rng.normal(size=(300, 8))
    fake = rng.normal(0.3, 1.2, size=(250, 8))
    ours = prdc(real, fake, k=k, block=64)  # several blocks
    theirs = ref.compute_prdc(real, fake, nearest_k=k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-12), key
