"""Collapse diagnostics the pages show as warnings, from the engine's checks (`vaecore.evaluation.checks`): KL per
latent dimension, reconstructions against the mean image, generated samples that are blank, faint or all alike.
No Streamlit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.models import facts
from vaecore import PretrainedModel
from vaecore.data.images import split_grid
from vaecore.evaluation import checks, metrics
from vaecore.evaluation.checks import Flag
from vaecore.evaluation.registry import undefined_reason

ACTIVE_KL = metrics.COLLAPSED_KL  # the engine's: less KL is a collapsed dimension (eval's kl-per-dim_collapsed)


@dataclass
class Collapse:
    """The numbers behind a collapse warning and the warnings themselves (empty when healthy)."""

    kl_per_dim: list[float] | None
    active: int | None
    latent_dim: int
    recon_mse: float
    mean_mse: float
    warnings: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return bool(self.warnings)

    def as_dict(self) -> dict[str, Any]:
        return {"kl_per_dim": self.kl_per_dim, "active": self.active, "recon_mse": self.recon_mse,
                "mean_mse": self.mean_mse, "warnings": self.warnings}


def kl_undefined_reason(model: PretrainedModel) -> str:
    """Why the engine does not define KL per latent dimension for this model ('' when it does): it needs a
    diagonal-Gaussian posterior and the N(0, I) prior (a VampPrior's KL does not split over dimensions)."""
    return undefined_reason(model, "kl-per-dim") or ""


USAGE_IMAGES = 2000
"""Test images the latent-usage numbers are computed on (the bundled evaluations' n_test)."""


@dataclass
class LatentUsage:
    """How much of its latent a model uses on some images, as the engine computes it."""

    active: int
    latent_size: int
    kl: list[float] | None
    collapsed: int | None
    kl_why_not: str


def latent_usage(model: PretrainedModel, x: torch.Tensor) -> LatentUsage:
    """The engine's active units (`metrics.active_units`, eval's `active-units`) and KL per dimension on x, with the
    count of dimensions under COLLAPSED_KL nats (eval's `kl-per-dim_collapsed`), or why KL per dimension is
    undefined."""
    x = x.to(model.device)
    active = int(metrics.active_units(model, x, metrics.ACTIVE_THRESHOLD)) if len(x) >= 2 else 0
    kl = kl_per_dimension(model, x)
    return LatentUsage(active, facts(model).latent_dim, kl, None if kl is None else sum(k < ACTIVE_KL for k in kl),
                       kl_undefined_reason(model))


def kl_per_dimension(model: PretrainedModel, x: torch.Tensor) -> list[float] | None:
    """The engine's E_x KL(q(z_j|x) ‖ N(0, 1)) per latent dimension over x, in nats (`metrics.kl_per_dimension`);
    None where the engine leaves it undefined (`kl_undefined_reason` says why)."""
    if kl_undefined_reason(model):
        return None
    return [float(v) for v in metrics.kl_per_dimension(model, x.to(model.device))]


@torch.no_grad()
def diagnose(model: PretrainedModel, x: torch.Tensor, mean_image: torch.Tensor,
             samples: torch.Tensor | None = None) -> Collapse:
    """Collapse diagnostics of a model on images x (B, C, H, W), with the training data's mean image: the engine's
    checks (`vaecore.evaluation.checks`) of its KL per dimension, its reconstructions against the mean image and
    its samples against x."""
    model.eval()
    x = x.to(model.device)
    recon = model.reconstruct(x)
    recon_mse = float(((recon - x) ** 2).flatten(1).sum(1).mean())
    mean_mse = float(((mean_image.to(x.device) - x) ** 2).flatten(1).sum(1).mean())
    kl = kl_per_dimension(model, x)
    active = None if kl is None else sum(k > ACTIVE_KL for k in kl)
    out = Collapse(kl, active, facts(model).latent_dim, recon_mse, mean_mse)
    flags = checks.evaluation_flags({"kl-per-dim": kl}) if kl is not None else []
    if kl is not None and not flags and active is not None and active < max(1, len(kl) // 8):
        out.warnings.append(f"Only {active} of {len(kl)} latent dimensions are active (KL > {ACTIVE_KL} nats).")
    flags += checks.reconstruction_flags(recon_mse, mean_mse)
    if samples is not None:
        flags += checks.sample_flags(samples.cpu(), x.cpu())
    out.warnings = [f.message for f in flags] + out.warnings
    return out


def stored_sample_flags(grid_png: Path, image_shape: tuple[int, int, int], reference: torch.Tensor) -> list[Flag]:
    """The engine's sample checks on the images of a stored sample grid (its cells, without the separators, which
    are its brightest pixels); [] when the file is missing or is not a grid of such images."""
    from PIL import Image

    try:
        with Image.open(grid_png) as img:
            pixels = np.asarray(img.convert("L" if image_shape[0] == 1 else "RGB"))
        cells = split_grid(pixels, image_shape[1], image_shape[2])
    except (OSError, ValueError):
        return []
    if tuple(cells.shape[1:]) != tuple(reference.shape[1:]) or len(cells) < 2:
        return []
    return checks.sample_flags(cells, reference)


def collapse_from_eval(eval_result: dict[str, Any]) -> list[str]:
    """Warnings from a stored evaluation (eval.json): the engine's `evaluation_flags`."""
    return [f.message for f in checks.evaluation_flags(eval_result)]
