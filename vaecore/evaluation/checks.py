"""Health checks: is a model broken in a way its metrics alone do not say? Each check looks at the images themselves
(generated samples against test images) or at a stored evaluation, and returns `Flag`s that state the rule that
fired and the numbers it measured, so a page or a table can show them as they are.

    sample_flags(samples, test_images)      # blank, faint or all-alike samples
    evaluation_flags(eval_result)           # posterior collapse (every dimension's KL under COLLAPSED_KL)
    reconstruction_flags(mse, mean_mse)     # reconstructions no closer than the data's mean image

The thresholds are module constants, named in every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaecore.evaluation.metrics.latent import COLLAPSED_KL

BLANK = 0.02
"""Samples whose brightest pixel is below this (of 1) are blank."""
FAINT = 0.6
"""Samples whose bright pixels (their 99.9th percentile) reach less than this fraction of the test images' never
draw a full-intensity stroke: washed-out noise or flat grey blobs."""
ALIKE = 0.1
"""Samples whose per-pixel spread across images is under this fraction of the test images' are all one image."""
MEAN_LIKE = 0.9
"""Reconstructions whose squared error exceeds this fraction of the mean image's are no better than it."""
BRIGHT_QUANTILE = 0.999


@dataclass(frozen=True)
class Flag:
    """One failed check: a stable key ('blank-samples', 'faint-samples', 'alike-samples', 'posterior-collapse',
    'mean-image'), a short label for a table, and a message with the rule and the measured numbers."""

    key: str
    label: str
    message: str


def _bright(images: Tensor) -> float:
    return float(np.quantile(images.detach().float().cpu().numpy().reshape(-1), BRIGHT_QUANTILE))


@torch.no_grad()
def sample_flags(samples: Tensor, reference: Tensor) -> list[Flag]:
    """Checks of generated images (B, C, H, W) in [0, 1] against test images of the same shape: blank (brightest
    pixel under BLANK), faint (their 99.9th-percentile pixel under FAINT × the test images'), all alike (per-pixel
    s.d. across samples under ALIKE × the test images'). At most one flag: the first that fires."""
    if samples.ndim != 4 or reference.ndim != 4 or samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"samples {tuple(samples.shape)} and test images {tuple(reference.shape)} must be "
                         "(B, C, H, W) batches of one image shape")
    if samples.shape[0] < 2 or reference.shape[0] < 2:
        raise ValueError("need at least 2 samples and 2 test images")
    s, r = samples.detach().float().cpu(), reference.detach().float().cpu()
    brightest = float(s.max())
    if brightest < BLANK:
        return [Flag("blank-samples", "blank samples",
                     f"Its samples are blank: the brightest pixel of {len(s)} samples is {brightest:.3f} "
                     f"(rule: under {BLANK}).")]
    ours, theirs = _bright(s), _bright(r)
    if ours < FAINT * theirs:
        return [Flag("faint-samples", "faint samples",
                     f"Its samples never draw a full stroke: their bright pixels (99.9th percentile) reach {ours:.2f} "
                     f"where the test images' reach {theirs:.2f} (rule: under {FAINT:.0%} of the test images'), "
                     "so they are washed-out noise or flat blobs — look at them before trusting its numbers.")]
    spread = float(s.std(0).mean() / r.std(0).mean().clamp_min(1e-8))
    if spread < ALIKE:
        return [Flag("alike-samples", "samples all alike",
                     f"Its samples are all nearly the same image: their pixel spread is {spread:.1%} of the test "
                     f"images' (rule: under {ALIKE:.0%}).")]
    return []


def evaluation_flags(eval_result: Mapping[str, Any]) -> list[Flag]:
    """Checks of a stored evaluation (eval.json): posterior collapse when every latent dimension's KL (`kl-per-dim`)
    is under COLLAPSED_KL nats."""
    kl = eval_result.get("kl-per-dim")
    if (isinstance(kl, list) and kl and all(isinstance(v, int | float) for v in kl)
            and max(kl) < COLLAPSED_KL):
        return [Flag("posterior-collapse", "posterior collapse",
                     f"Posterior collapse: every latent dimension carries under {COLLAPSED_KL} nats of KL (largest "
                     f"{max(kl):.2g}), so z says nothing about the image.")]
    return []


def mean_image_mse(train: Tensor, test: Tensor) -> float:
    """The squared error (summed over pixels, mean over the test images) of predicting every test image by the
    training images' mean image: the error a model that ignores its input can reach."""
    mean = train.detach().double().mean(0, keepdim=True)
    return float(((test.detach().double() - mean) ** 2).flatten(1).sum(1).mean())


def reconstruction_flags(mse: float | None, mean_mse: float) -> list[Flag]:
    """A flag when the reconstructions' squared error is over MEAN_LIKE × the mean image's (`mean_image_mse` on
    the same test images)."""
    if mse is None or mean_mse <= 0 or mse <= MEAN_LIKE * mean_mse:
        return []
    return [Flag("mean-image", "reconstructs the mean",
                 f"Its reconstructions are no better than the mean image: squared error {mse:.3g} against "
                 f"{mean_mse:.3g} for the training mean (rule: over {MEAN_LIKE:.0%} of it).")]


__all__ = ["ALIKE", "BLANK", "FAINT", "MEAN_LIKE", "Flag", "evaluation_flags", "mean_image_mse",
           "reconstruction_flags", "sample_flags"]
