"""Metrics of generated images: the Fréchet distance to the test images, improved precision and recall
(Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) and the classifier score, all in the feature
space of the bundled small classifier (`vaecore.evaluation.features`), NOT Inception-v3: their values are
comparable between models, never with FID/IS/precision numbers in papers. They depend on where z is drawn (the
model's prior or a fitted sampler), so `compare` computes them once per sampler, and on the draw: each is the
mean over `sample_seeds` sets of generated images (seeds seed + 3, seed + 4, …) with their s.d. as its spread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

import vaecore.limits as limits
from vaecore.evaluation.features import available_classifiers, canonical_dataset, load_feature_classifier
from vaecore.evaluation.registry import (
    Direction,
    EvalContext,
    Metric,
    Subject,
    register_metric,
    register_pass,
)
from vaecore.evaluation.runtime import batches, device_of, generator_for
from vaecore.utils import evaluating

GROUP = "generation"


def needs_decoder(s: Subject) -> str | None:
    if not hasattr(s.model, "decode"):
        return "the model has no decoder"
    return None


def needs_feature_classifier(s: Subject) -> str | None:
    if s.dataset is None:
        return None
    have = available_classifiers()
    if canonical_dataset(s.dataset.name) not in have or tuple(s.dataset.shape) != (1, 28, 28):
        return (f"no bundled feature classifier for dataset {s.dataset.name!r} {s.dataset.shape} "
                f"(bundled: {', '.join(have) or 'none'})")
    return None


def needs_samples(s: Subject) -> str | None:
    """Generated images need the model's own prior, or a sampler fitted to its latents."""
    if s.sampler is None and not s.caps.prior_samples:
        return ("the model has no prior to sample: pass a sampler fitted to its latents (--sampler gmm, maf or "
                "two-stage; pixelcnn for VQ models)")
    return None


SAMPLE_RULES = (needs_decoder, needs_feature_classifier, needs_samples)

PRDC_K = 5  # nearest neighbours of the manifold balls (Naeem et al.'s default)

FD = register_metric(Metric(
    "fd", "Fréchet distance, small classifier", "FD", "squared feature units", Direction.LOWER, GROUP,
    "Fréchet distance between features of generated and test images under the bundled small classifier "
    "(fd_features names it); squared feature units; NOT comparable with Inception-FID; mean ± s.d. over sample "
    "seeds",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True, seeded=True,
    extras={"fd_features": "the feature network of fd (e.g. 'MNIST-classifier')"},
    when_undefined={"fd_features": None}))
PRECISION = register_metric(Metric(
    "precision", "improved precision", "precision", "fraction", Direction.HIGHER, GROUP,
    f"fraction of generated images inside the test images' manifold (the union of balls reaching each test image's "
    f"{PRDC_K}th nearest test neighbour) in the classifier's features (Kynkäänniemi et al. 2019): fidelity; mean ± "
    "s.d. over sample seeds",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True, seeded=True))
RECALL = register_metric(Metric(
    "recall", "improved recall", "recall", "fraction", Direction.HIGHER, GROUP,
    f"fraction of test images inside the generated images' manifold ({PRDC_K}th-neighbour balls) in the classifier's "
    "features (Kynkäänniemi et al. 2019): diversity; mean ± s.d. over sample seeds",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True, seeded=True))
DENSITY = register_metric(Metric(
    "density", "density", "density", "expected balls per sample", Direction.HIGHER, GROUP,
    f"how many test images' {PRDC_K}-NN balls contain a generated image on average, divided by {PRDC_K} (Naeem et "
    "al. 2020): fidelity robust to outliers, 1 for samples distributed as the test images, can exceed 1; mean ± s.d. "
    "over sample seeds",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True, seeded=True))
COVERAGE = register_metric(Metric(
    "coverage", "coverage", "coverage", "fraction", Direction.HIGHER, GROUP,
    f"fraction of test images whose {PRDC_K}-NN ball contains at least one generated image (Naeem et al. 2020): "
    "diversity robust to outliers; mean ± s.d. over sample seeds",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True, seeded=True))
CLASSIFIER_SCORE = register_metric(Metric(
    "classifier-score", "classifier score", "CS", "effective classes", Direction.HIGHER, GROUP,
    "exp(E_x KL(p(y|x) ‖ p(y))) of generated images under the bundled classifier, in [1, classes]; the "
    "Inception-Score formula, NOT comparable with the Inception Score; mean ± s.d. over sample seeds",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True, seeded=True))
PRDC_KEYS = ("precision", "recall", "density", "coverage")


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance ‖μa − μb‖² + tr(Σa + Σb − 2(Σa Σb)^½) between Gaussians fitted to two feature sets.

    float64 throughout. tr (Σa Σb)^½ is computed as tr (Σa^½ Σb Σa^½)^½ (the same value: the matrices
    are similar) from symmetric eigendecompositions, so it is real and stable even for singular
    covariances; scipy.linalg.sqrtm(Σa Σb) agrees where it is well conditioned. Rounding below 0 is
    reported as 0.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, F) feature arrays with the same F, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("need at least 2 samples in each feature set")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(_symmetrise(root_a @ cov_b @ root_a))
    tr_cross = float(np.sqrt(np.clip(cross, 0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_cross)
    return max(fd, 0.0)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = PRDC_K, block: int = 1024) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) of `fake`
    features against `real` ones, Euclidean, with k-th nearest-neighbour balls (a point is not its own neighbour).

    precision = mean over fake f of [f lies in some real ball B(r, NN_k(r))]; recall = mean over real r of [r lies
    in some fake ball]; density = (1/k) · mean over fake f of the number of real balls containing f; coverage =
    mean over real r of [its ball contains some fake]. float64, blocks of `block` rows: memory O(block · N).
    """
    r = np.asarray(real, dtype=np.float64)
    f = np.asarray(fake, dtype=np.float64)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"need two (N, F) feature arrays with the same F, got {r.shape} and {f.shape}")
    if not 1 <= k < min(r.shape[0], f.shape[0]):
        raise ValueError(f"k = {k} needs more than k points in each set ({r.shape[0]} real, {f.shape[0]} fake)")
    r_radius, f_radius = _knn_radius(r, k, block), _knn_radius(f, k, block)
    in_real = np.zeros(f.shape[0], dtype=bool)
    balls = np.zeros(f.shape[0], dtype=np.int64)
    recalled = np.zeros(r.shape[0], dtype=bool)
    covered = np.zeros(r.shape[0], dtype=bool)
    for start in range(0, r.shape[0], block):
        rows = slice(start, start + block)
        d = _distances(r[rows], f)
        inside = d < r_radius[rows, None]
        in_real |= inside.any(axis=0)
        balls += inside.sum(axis=0)
        recalled[rows] = (d < f_radius[None, :]).any(axis=1)
        covered[rows] = d.min(axis=1) < r_radius[rows]
    return {"precision": float(in_real.mean()), "recall": float(recalled.mean()),
            "density": float(balls.mean() / k), "coverage": float(covered.mean())}


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a and b, (len(a), len(b))."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _knn_radius(x: np.ndarray, k: int, block: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], block):
        d = _distances(x[start:start + block], x)
        out[start:start + block] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)
    return out


def _symmetrise(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + m.T)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(_symmetrise(m))
    return _symmetrise((v * np.sqrt(np.clip(w, 0, None))) @ v.T)


def generate(model: torch.nn.Module, n: int, sampler: Any = None, seed: int = 0, batch_size: int = 500) -> Tensor:
    """n images (decoder means) on the CPU, from the model's prior or a post-hoc `sampler`.

    All n latents are drawn first with a generator seeded `seed` on the model's device (passed to
    `sampler.sample_latents(n, generator)`), so the images do not depend on `batch_size`.
    """
    n = limits.check_count(n, "n")
    shape = getattr(getattr(model, "config", None), "input_shape", None)
    if shape:
        limits.check_tensor_bytes(n * math.prod(shape), f"n={n:,} generated images")
    device = device_of(model)
    g = generator_for(model, seed)
    with evaluating(model):
        z = sampler.sample_latents(n, g) if sampler is not None else model.sample_latents(n, g)
        z = torch.as_tensor(z, dtype=torch.float32).to(device)
        return torch.cat([model.decode(z[s]).float().cpu() for s in batches(n, batch_size, "generate", None)])


SEED_OFFSET = 3  # generated images of sample seed i are drawn with seed + SEED_OFFSET + i


@register_pass("generation")
def _generation_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    """fd, precision/recall, density/coverage and the classifier score of the same `n_samples` generated images,
    for each of `sample_seeds` seeds; each value is the mean over the seeds."""
    if ctx.sample_seeds < 1:
        raise ValueError(f"sample_seeds must be >= 1, got {ctx.sample_seeds}")
    clf = load_feature_classifier(ctx.dataset.name).to(ctx.device)
    real = clf.features(ctx.x) if {"fd", *PRDC_KEYS} & set(wanted) else None
    values: dict[str, list[float]] = {m: [] for m in wanted}
    for i in range(ctx.sample_seeds):
        images = generate(ctx.model, ctx.n_samples, ctx.sampler, ctx.seed + SEED_OFFSET + i, ctx.batch_size)
        feats = clf.features(images) if real is not None else None
        if "fd" in wanted:
            values["fd"].append(frechet_distance(feats, real))
        if set(PRDC_KEYS) & set(wanted):
            scores = prdc(real, feats, PRDC_K)
            for m in PRDC_KEYS:
                if m in wanted:
                    values[m].append(scores[m])
        if "classifier-score" in wanted:
            values["classifier-score"].append(clf.classifier_score(images))
        if ctx.progress is not None:
            ctx.progress("generation (seeds)", i + 1, ctx.sample_seeds)
    for m, vals in values.items():
        ctx.out[m], ctx.seeds[m] = float(np.mean(vals)), vals
    if "fd" in wanted:
        ctx.out["fd_features"] = clf.name
