"""The traversal grid per latent dimension: one row per dimension, that dimension swept from −3 to 3
around an image's posterior mean with the others fixed, and each row's KL from eval.json. No Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from explorer.catalog import local_folder, read_json_file
from vaecore import PretrainedModel
from vaecore.components.kinds import Geometry
from vaecore.files import EVAL
from vaecore.latent import interpolation as interp

DISENTANGLEMENT = ("beta-tc-vae", "disentangled-beta-vae", "factor-vae")
MAX_ROWS = 32
VALUES = (-3.0, 3.0)


def why_no_traversal(model: PretrainedModel) -> str:
    """'' when the model has a continuous latent vector (one Euclidean coordinate per dimension), else why
    moving one coordinate is not defined for it."""
    c = model.capabilities
    if c.geometry is Geometry.DISCRETE:
        return "its latents are codebook entries (discrete codes), not a continuous vector"
    if c.geometry is Geometry.SPHERE:
        return "its latents lie on a sphere: moving one coordinate leaves the sphere"
    if c.geometry is Geometry.POINCARE_BALL:
        return "its latents lie in the Poincaré ball: moving one coordinate by ±3 leaves the ball"
    if len(tuple(c.latent_shape)) != 1:
        return f"its latent is a {tuple(c.latent_shape)} map, not a vector"
    return ""


def is_disentanglement(model: PretrainedModel) -> bool:
    """Whether the model belongs to a disentanglement family (β-TC-VAE, disentangled β-VAE, FactorVAE)."""
    return model.model_type in DISENTANGLEMENT or str(getattr(model.config, "preset", "")) in DISENTANGLEMENT


def stored_kl_per_dim(spec: str, latent_dim: int) -> list[float] | None:
    """The model folder's eval.json "kl-per-dim" (nats per dimension) when it has one value per dimension."""
    folder = local_folder(spec)
    kl = read_json_file(folder / EVAL).get("kl-per-dim") if folder is not None else None
    if isinstance(kl, list) and len(kl) == latent_dim and all(isinstance(v, int | float) for v in kl):
        return [float(v) for v in kl]
    return None


def row_order(latent_dim: int, kl: Sequence[float] | None, limit: int = MAX_ROWS) -> list[int]:
    """The dimensions shown as rows: all of them in order when they fit, else the `limit` with most KL."""
    if latent_dim <= limit:
        return list(range(latent_dim))
    if kl is None:
        return list(range(limit))
    return sorted(sorted(range(latent_dim), key=lambda j: -kl[j])[:limit])


def traversal_grid(model: PretrainedModel, z: torch.Tensor, dims: Sequence[int], steps: int = 11,
                   span: tuple[float, float] = VALUES) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded images (len(dims), steps, C, H, W): row r sweeps dimension dims[r] over `span` (absolute
    values of that coordinate), the other coordinates fixed at z; and the swept values."""
    values = torch.linspace(span[0], span[1], steps)
    if not dims:
        return torch.zeros(0, steps, *model.config.input_shape), values
    zs = z.reshape(1, 1, -1).repeat(len(dims), steps, 1)
    for r, d in enumerate(dims):
        zs[r, :, int(d)] = values
    images = interp.decode(model, zs.reshape(len(dims) * steps, -1))
    return images.reshape(len(dims), steps, *images.shape[1:]), values


def row_caption(dim: int, z_value: float, kl: Sequence[float] | None) -> str:
    """'z3 · KL 3.13 nats · encoded 0.42' for one row of the grid."""
    kl_text = f" · KL {kl[dim]:.3g} nats" if kl is not None else ""
    return f"z{dim}{kl_text} · encoded {z_value:+.2f}"
