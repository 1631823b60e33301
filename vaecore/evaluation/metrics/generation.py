"""Metrics of generated images: the Fréchet distance to the test images and the classifier score, both in the
feature space of the bundled small classifier (`vaecore.evaluation.features`), NOT Inception-v3: their values
are comparable between models, never with FID/IS in papers. They depend on where z is drawn (the model's prior
or a fitted sampler), so `compare` computes them once per sampler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

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

FD = register_metric(Metric(
    "fd", "Fréchet distance, small classifier", "FD", "squared feature units", Direction.LOWER, GROUP,
    "Fréchet distance between features of generated and test images under the bundled small classifier "
    "(fd_features names it); squared feature units; NOT comparable with Inception-FID",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True,
    extras={"fd_features": "the feature network of fd (e.g. 'MNIST-classifier')"},
    when_undefined={"fd_features": None}))
CLASSIFIER_SCORE = register_metric(Metric(
    "classifier-score", "classifier score", "CS", "effective classes", Direction.HIGHER, GROUP,
    "exp(E_x KL(p(y|x) ‖ p(y))) of generated images under the bundled classifier, in [1, classes]; the "
    "Inception-Score formula, NOT comparable with the Inception Score",
    pass_name="generation", undefined=SAMPLE_RULES, per_sampler=True))


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
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = device_of(model)
    g = generator_for(model, seed)
    with evaluating(model):
        z = sampler.sample_latents(n, g) if sampler is not None else model.sample_latents(n, g)
        z = torch.as_tensor(z, dtype=torch.float32).to(device)
        return torch.cat([model.decode(z[s]).float().cpu() for s in batches(n, batch_size, "generate", None)])


@register_pass("generation")
def _generation_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    """fd and the classifier score of the same `n_samples` generated images."""
    clf = load_feature_classifier(ctx.dataset.name).to(ctx.device)
    images = generate(ctx.model, ctx.n_samples, ctx.sampler, ctx.seed + 3, ctx.batch_size)
    if "fd" in wanted:
        ctx.out["fd"] = frechet_distance(clf.features(images), clf.features(ctx.x))
        ctx.out["fd_features"] = clf.name
    if "classifier-score" in wanted:
        ctx.out["classifier-score"] = clf.classifier_score(images)
