"""Out-of-distribution scores from a model's own likelihood, and how well they separate two image sets (AUROC).

Nalisnick et al. (2019, "Do deep generative models know what they don't know?") found that likelihood models
trained on Fashion-MNIST give MNIST digits a *higher* likelihood than their own test images. This module measures
that for any model with a posterior density instead of assuming it:

- `nll`: −log p(x) per image, the IWAE bound with K draws in the model's own likelihood — −log P of the 8-bit image
  where the decoder defines one (`nll-discrete`), else −log pdf (`nll-pdf`). Higher: less like the training data.
- `typicality`: |−log p(x) − E[−log p]| with the expectation over held-out in-distribution images (the validation
  split, never the scored test images): the typicality test of Nalisnick et al. (2019b) on one image. An image can
  be atypical by being too likely as well as too unlikely.
- `complexity`: −log P(x) − L(x) with L(x) the length of the image's PNG encoding in nats (Serrà et al. 2020,
  "Input complexity and out-of-distribution detection"): a likelihood ratio against a general-purpose compressor,
  which removes the part of −log P that says "this image is simple". Only where −log P of 8-bit images is defined.

AUROC is the probability that an out-of-distribution image scores higher than an in-distribution one (ties count
half; Mann–Whitney U / (n_in·n_out)), with the Hanley–McNeil (1982) standard error. 0.5: no separation; below 0.5:
the score ranks the other data as *more* in-distribution ("the likelihood prefers the wrong data").
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vaecore.evaluation.metrics.likelihood import iwae_log_likelihood
from vaecore.evaluation.registry import undefined_reason
from vaecore.evaluation.runtime import ProgressFn, generator_for

__all__ = ["SCORES", "Auroc", "OODResult", "auroc", "nll_per_image", "ood_scores", "percentile", "png_nats"]

SCORES = {
    "nll": "−log p(x): the model's own likelihood (IWAE bound); higher = less like the training data",
    "typicality": "|−log p(x) − E[−log p]| over held-out in-distribution images (typicality test)",
    "complexity": "−log P(x) − PNG length of x in nats (input complexity, a likelihood ratio against a compressor)",
}
IWAE_K = 16
MAX_IMAGES = 5000


@dataclass(frozen=True)
class Auroc:
    """AUROC of a score (out-of-distribution positive) with its Hanley–McNeil standard error."""

    value: float
    se: float
    n_in: int
    n_out: int

    def text(self) -> str:
        return f"{self.value:.3f} ± {self.se:.3f}"


def auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> Auroc:
    """P(score_out > score_in) + ½ P(equal), from the ranks of the pooled scores; Hanley–McNeil SE."""
    a, b = np.asarray(scores_in, np.float64).ravel(), np.asarray(scores_out, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("AUROC needs at least one in-distribution and one out-of-distribution score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("AUROC of non-finite scores")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b]))
    u = ranks[a.size:].sum() - b.size * (b.size + 1) / 2
    value = float(u / (a.size * b.size))
    q1, q2 = value / (2 - value), 2 * value ** 2 / (1 + value)
    var = (value * (1 - value) + (b.size - 1) * (q1 - value ** 2) + (a.size - 1) * (q2 - value ** 2)) \
        / (a.size * b.size)
    return Auroc(value, math.sqrt(max(var, 0.0)), int(a.size), int(b.size))


def nll_per_image(model: torch.nn.Module, x: Tensor, k: int = IWAE_K, seed: int = 0,
                  progress: ProgressFn | None = None, stage: str = "scoring images") -> tuple[np.ndarray, str]:
    """(−log p of each image in nats, which measure: 'nll-discrete' or 'nll-pdf'); ValueError where neither is
    defined for the model (the engine's reason)."""
    if x.shape[0] > MAX_IMAGES:
        raise ValueError(f"{x.shape[0]:,} images; score at most {MAX_IMAGES:,} at a time")
    discrete = undefined_reason(model, "nll-discrete") is None
    if not discrete and (why := undefined_reason(model, "nll-pdf")) is not None:
        raise ValueError(f"no likelihood to score images with: {why}")

    def staged(_: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    # a discrete likelihood's own nll already is −log P of the 8-bit image; a density's needs the bin integral
    values = -iwae_log_likelihood(model, x, k=k, batch_size=100, generator=generator_for(model, seed),
                                  progress=staged, discrete=discrete and not model.likelihood.discrete)
    return values.numpy(), ("nll-discrete" if discrete else "nll-pdf")


def png_nats(x: Tensor) -> np.ndarray:
    """Length of each image's lossless PNG encoding (8-bit, zlib level 9) in nats: L(x) of Serrà et al. (2020)."""
    from PIL import Image

    pixels = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty(len(pixels))
    for i, p in enumerate(pixels):
        buf = io.BytesIO()
        Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p).save(buf, format="PNG", compress_level=9)
        out[i] = 8 * len(buf.getvalue()) * math.log(2)
    return out


def percentile(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Where each value falls among the reference values: the fraction of them that are lower (ties count half)."""
    ref = np.sort(np.asarray(reference, np.float64))
    v = np.asarray(values, np.float64)
    return (np.searchsorted(ref, v, "left") + np.searchsorted(ref, v, "right")) / (2 * ref.size)


@dataclass
class OODResult:
    """Per-image scores of in-distribution (`inside`) and other (`outside`) images, and each score's AUROC."""

    measure: str
    nll_reference: float
    inside: dict[str, np.ndarray] = field(default_factory=dict)
    outside: dict[str, np.ndarray] = field(default_factory=dict)
    aurocs: dict[str, Auroc] = field(default_factory=dict)
    not_computed: dict[str, str] = field(default_factory=dict)


def _scores(nll: np.ndarray, x: Tensor, reference: float, discrete: bool) -> dict[str, np.ndarray]:
    out = {"nll": nll, "typicality": np.abs(nll - reference)}
    if discrete:
        out["complexity"] = nll - png_nats(x)
    return out


def ood_scores(model: torch.nn.Module, x_in: Tensor, x_out: Tensor, x_reference: Tensor, k: int = IWAE_K,
               seed: int = 0, progress: ProgressFn | None = None) -> OODResult:
    """SCORES of in-distribution test images `x_in` and other images `x_out`, with `x_reference` (held-out
    in-distribution images, e.g. the validation split) for the typicality test's E[−log p]; AUROC of each score."""
    ref, measure = nll_per_image(model, x_reference, k, seed, progress, "−log p of the reference images")
    nll_in, _ = nll_per_image(model, x_in, k, seed + 1, progress, "−log p of the in-distribution images")
    nll_out, _ = nll_per_image(model, x_out, k, seed + 2, progress, "−log p of the other images")
    discrete = measure == "nll-discrete"
    result = OODResult(measure, float(ref.mean()))
    result.inside = _scores(nll_in, x_in, result.nll_reference, discrete)
    result.outside = _scores(nll_out, x_out, result.nll_reference, discrete)
    if not discrete:
        result.not_computed["complexity"] = ("needs −log P of 8-bit images (a density's −log pdf is not in the "
                                             "compressor's units)")
    result.aurocs = {s: auroc(result.inside[s], result.outside[s]) for s in result.inside}
    return result
