"""Collapse diagnostics the pages show as warnings: KL per latent dimension, reconstructions against
the mean image, and generated samples that are all alike or blank. No Streamlit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from explorer.models import facts
from vaecore import PretrainedModel
from vaecore.evaluation import metrics
from vaecore.evaluation.registry import undefined_reason

ACTIVE_KL = metrics.COLLAPSED_KL  # the engine's: less KL is a collapsed dimension (eval's kl-per-dim_collapsed)
MEAN_LIKE = 0.9
FLAT_SAMPLES = 0.1
BLANK = 0.02


@dataclass
class Collapse:
    """The numbers behind a collapse warning and the warnings themselves (empty when healthy)."""

    kl_per_dim: list[float] | None
    active: int | None
    latent_dim: int
    recon_mse: float
    mean_mse: float
    sample_spread: float | None = None
    sample_max: float | None = None
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


def kl_per_dimension(model: PretrainedModel, x: torch.Tensor) -> list[float] | None:
    """The engine's E_x KL(q(z_j|x) ‖ N(0, 1)) per latent dimension over x, in nats (`metrics.kl_per_dimension`);
    None where the engine leaves it undefined (`kl_undefined_reason` says why)."""
    if kl_undefined_reason(model):
        return None
    return [float(v) for v in metrics.kl_per_dimension(model, x.to(model.device))]


@torch.no_grad()
def sample_stats(samples: torch.Tensor, data: torch.Tensor) -> tuple[float, float]:
    """(spread, max): the samples' pixel s.d. across images relative to the data's, and their brightest pixel."""
    spread = float(samples.std(0).mean() / data.std(0).mean().clamp_min(1e-8))
    return spread, float(samples.max())


@torch.no_grad()
def diagnose(model: PretrainedModel, x: torch.Tensor, mean_image: torch.Tensor,
             samples: torch.Tensor | None = None) -> Collapse:
    """Collapse diagnostics of a model on images x (B, C, H, W), with the training data's mean image.

    Warns when every dimension's KL is below ACTIVE_KL nats (posterior collapse), when the
    reconstructions are no closer to the images than the mean image is, and when generated samples
    are all alike or blank.
    """
    model.eval()
    x = x.to(model.device)
    recon = model.reconstruct(x)
    recon_mse = float(((recon - x) ** 2).flatten(1).sum(1).mean())
    mean_mse = float(((mean_image.to(x.device) - x) ** 2).flatten(1).sum(1).mean())
    kl = kl_per_dimension(model, x)
    active = None if kl is None else sum(k > ACTIVE_KL for k in kl)
    out = Collapse(kl, active, facts(model).latent_dim, recon_mse, mean_mse)
    if kl is not None and active == 0:
        out.warnings.append(f"Posterior collapse: the KL of every latent dimension is below {ACTIVE_KL} nats "
                            f"(largest {max(kl):.3g}), so z carries no information about the image.")
    elif kl is not None and active is not None and active < max(1, len(kl) // 8):
        out.warnings.append(f"Only {active} of {len(kl)} latent dimensions are active (KL > {ACTIVE_KL} nats).")
    if mean_mse > 0 and recon_mse > MEAN_LIKE * mean_mse:
        out.warnings.append(f"Reconstructions are no better than the mean image: squared error {recon_mse:.3g} "
                            f"against {mean_mse:.3g} for the mean image.")
    if samples is not None:
        out.sample_spread, out.sample_max = sample_stats(samples.cpu(), x.cpu())
        if out.sample_max < BLANK:
            out.warnings.append(f"Samples are blank: the brightest pixel of any sample is {out.sample_max:.3f}.")
        elif out.sample_spread < FLAT_SAMPLES:
            out.warnings.append(f"Samples are all nearly the same image: their pixel spread is "
                                f"{out.sample_spread:.1%} of the data's.")
    return out


def collapse_from_eval(eval_result: dict[str, Any]) -> list[str]:
    """Warnings from a stored evaluation (eval.json): no active dimension by its KL per dimension."""
    kl = eval_result.get("kl-per-dim")
    if isinstance(kl, list) and kl and all(isinstance(v, int | float) for v in kl) and max(kl) < ACTIVE_KL:
        return [f"Posterior collapse: every latent dimension has KL below {ACTIVE_KL} nats."]
    return []


def image_stats_warning(png_pixels: torch.Tensor) -> str | None:
    """A warning for a stored sample grid that is blank (every pixel dark), else None."""
    if png_pixels.numel() and float(png_pixels.max()) < BLANK:
        return f"The stored samples are blank (brightest pixel {float(png_pixels.max()):.3f})."
    return None
