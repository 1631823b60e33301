"""Uncertainty of compared numbers: the mean of per-image values with its standard error, paired differences on
the same test images, the spread over sample seeds or restarts, and the rule that turns a difference into a verdict.

    a = mean_se(per_image_a)                       # Estimate(value, se, n, over="images")
    d = paired_difference(values_a, values_b, images_a, images_b)   # refuses two different image sets
    verdict(d, Direction.LOWER)                    # 'better' | 'worse' | 'undecided'

Conventions (one way for the whole project, the reproduction board's too):

- standard error of a mean over n images = sample s.d. (n − 1 in the denominator) / √n;
- a difference of two models' per-image metrics is the mean of the per-image differences on the *same* images (a
  paired difference), with the standard error of that mean; values on different image sets are never compared;
- a metric of generated images (FD, precision/recall, density/coverage) or of a restarted algorithm (k-means) is
  the mean over seeds with the sample s.d. of the seeds as its spread; two such means are compared with the
  standard error sqrt(s_a²/n_a + s_b²/n_b) (Welch);
- RULE: a difference is decided ('better' / 'worse') when its magnitude exceeds `Z` = 2 standard errors; otherwise
  it is 'undecided'.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RULE", "Z", "Difference", "Estimate", "ImageSet", "Over", "Verdict", "difference", "estimate_from",
           "mean_se", "paired_difference", "seed_difference", "seed_spread", "verdict"]

Z = 2.0
"""A difference is decided when it exceeds Z standard errors."""

RULE = (f"a difference is decided (better / worse) when it exceeds {Z:g} standard errors — of the mean of the "
        "per-image differences on the same test images, or, for metrics of generated images and k-means, "
        "sqrt(s_a²/n_a + s_b²/n_b) over seeds — and undecided otherwise")


class Over(enum.StrEnum):
    """What a metric's uncertainty is taken over."""

    IMAGES = "images"  # per-image values: standard error of their mean
    SEEDS = "seeds"  # sample seeds or restarts: the s.d. of the seeds' values (spread), SE = s.d./√n


class Verdict(enum.StrEnum):
    BETTER = "better"
    WORSE = "worse"
    UNDECIDED = "undecided"


def _values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("no values to average")
    if not np.isfinite(a).all():
        raise ValueError(f"{int((~np.isfinite(a)).sum())} of {a.size} values are not finite")
    return a


@dataclass(frozen=True)
class Estimate:
    """A mean with its uncertainty: `se` the standard error of `value`, `n` the images or seeds it is over, `sd` the
    sample s.d. of the values (the spread over seeds; for images the s.d. of the per-image values)."""

    value: float
    se: float
    n: int
    over: Over = Over.IMAGES
    sd: float = 0.0

    def text(self, digits: int = 1) -> str:
        """'1427.1 ± 5.4' (SE over images) or '29.4 ± 0.6 s.d.' (spread over seeds)."""
        if self.over is Over.SEEDS:
            return f"{self.value:.{digits}f} ± {self.sd:.{digits}f} s.d."
        return f"{self.value:.{digits}f} ± {self.se:.{digits}f}"

    def to_json(self) -> dict[str, Any]:
        return {"se": self.se, "n": self.n, "over": str(self.over), "sd": self.sd}


def mean_se(values: Sequence[float] | np.ndarray) -> Estimate:
    """Mean of per-image values and its standard error s / √n (s with n − 1; 0 for one value)."""
    a = _values(values)
    n = a.size
    sd = float(a.std(ddof=1)) if n > 1 else 0.0
    return Estimate(float(a.mean()), sd / math.sqrt(n), n, Over.IMAGES, sd)


def seed_spread(values: Sequence[float] | np.ndarray) -> Estimate:
    """Mean over seeds (or restarts) with their sample s.d. as the spread; SE = s.d. / √n."""
    a = _values(values)
    n = a.size
    sd = float(a.std(ddof=1)) if n > 1 else 0.0
    return Estimate(float(a.mean()), sd / math.sqrt(n), n, Over.SEEDS, sd)


def estimate_from(value: float, stored: Mapping[str, Any] | None) -> Estimate | None:
    """An Estimate from a stored evaluation's value and its `uncertainty` entry; None without one."""
    if not stored or value is None:
        return None
    return Estimate(float(value), float(stored["se"]), int(stored["n"]), Over(stored.get("over", "images")),
                    float(stored.get("sd", 0.0)))


@dataclass(frozen=True)
class ImageSet:
    """Which images per-image values belong to: dataset, split, the indices into that split, and a fingerprint of the
    images' bytes (so a changed file or another binarization is not mistaken for the same images)."""

    dataset: str
    split: str
    indices: tuple[int, ...]
    fingerprint: str

    @classmethod
    def of(cls, dataset: str, split: str, indices: Sequence[int] | np.ndarray, images: Any) -> ImageSet:
        """The set of `images` (a tensor or array of those images, in the order of `indices`)."""
        arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
        if len(indices) != arr.shape[0]:
            raise ValueError(f"{len(indices)} indices for {arr.shape[0]} images")
        levels = np.rint(np.asarray(arr, dtype=np.float64) * 255).astype(np.uint8)  # 8-bit: stable across dtypes
        digest = hashlib.sha256(levels.tobytes()).hexdigest()[:16]
        return cls(str(dataset), str(split), tuple(int(i) for i in indices), digest)

    def describe(self) -> str:
        first, n = (self.indices[0] if self.indices else 0), len(self.indices)
        contiguous = self.indices == tuple(range(first, first + n))
        where = f"images {first}–{first + n - 1}" if contiguous else f"{n} chosen images"
        return f"{self.dataset} {self.split} {where} ({n} images, fingerprint {self.fingerprint})"

    def same_as(self, other: ImageSet) -> bool:
        return (self.dataset, self.split, self.indices, self.fingerprint) == \
            (other.dataset, other.split, other.indices, other.fingerprint)


@dataclass(frozen=True)
class Difference:
    """a − b with its standard error, over `n` paired images or seeds; `paired` says which."""

    mean: float
    se: float
    n: int
    paired: bool

    def text(self, digits: int = 1) -> str:
        return f"{self.mean:+.{digits}f} ± {self.se:.{digits}f}"

    @property
    def z(self) -> float:
        """How many standard errors the difference is (±inf for an exact nonzero difference, 0 for none)."""
        if self.se > 0:
            return self.mean / self.se
        return 0.0 if self.mean == 0 else math.copysign(math.inf, self.mean)


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                      images_a: ImageSet, images_b: ImageSet) -> Difference:
    """Mean and SE of the per-image differences a − b; ValueError unless both are on the same images."""
    if not images_a.same_as(images_b):
        raise ValueError(f"not the same test images: {images_a.describe()} vs {images_b.describe()}; per-image "
                         "values are compared only on the same images (evaluate both models on one image set)")
    va, vb = _values(a), _values(b)
    if va.size != vb.size or va.size != len(images_a.indices):
        raise ValueError(f"{va.size} and {vb.size} values for {len(images_a.indices)} images")
    e = mean_se(va - vb)
    return Difference(e.value, e.se, e.n, True)


def seed_difference(a: Estimate, b: Estimate) -> Difference:
    """Difference of two means over seeds, with the Welch standard error sqrt(s_a²/n_a + s_b²/n_b)."""
    if a.over is not Over.SEEDS or b.over is not Over.SEEDS:
        raise ValueError("seed_difference compares two spreads over seeds; per-image metrics need paired_difference")
    return Difference(a.value - b.value, math.sqrt(a.se ** 2 + b.se ** 2), min(a.n, b.n), False)


def difference(a: Estimate, b: Estimate) -> Difference:
    """The difference of two seed spreads (`seed_difference`); per-image estimates must be paired instead."""
    if a.over is Over.IMAGES or b.over is Over.IMAGES:
        raise ValueError("per-image metrics are compared by paired_difference on the same images, not by their means")
    return seed_difference(a, b)


def verdict(diff: Difference, direction: Any) -> Verdict:
    """`RULE`: 'better' / 'worse' for the first model when |diff| > Z·SE in the metric's direction, else
    'undecided'. `direction`: a registry Direction (or 'lower' / 'higher')."""
    way = str(getattr(direction, "value", direction))
    if way not in ("lower", "higher"):
        raise ValueError(f"a metric without a direction ({way!r}) has no better or worse")
    if diff.n < 2 or diff.mean == 0 or not abs(diff.mean) > Z * diff.se:  # one image or seed: no SE to judge by
        return Verdict.UNDECIDED
    good = diff.mean < 0 if way == "lower" else diff.mean > 0
    return Verdict.BETTER if good else Verdict.WORSE
