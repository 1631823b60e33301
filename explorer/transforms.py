"""Affine transformations of the T-VAE page (the matrices and their powers)."""

from __future__ import annotations

import torch

TRANSFORM_AMOUNTS: dict[str, tuple[float, float, float, float, str]] = {
    "rotation": (-45.0, 45.0, 20.0, 1.0, "degrees, counter-clockwise"),
    "translation": (-0.25, 0.25, 0.1, 0.01, "fraction of the width (x) and height (y)"),
    "scale": (0.6, 1.5, 1.2, 0.01, "zoom factor (> 1 enlarges)"),
    "shear": (-40.0, 40.0, 20.0, 1.0, "degrees (positive slants like italics)"),
}


def transform_matrix(kind: str, amount: float, amount_y: float = 0.0) -> torch.Tensor:
    """The forward matrix (1, 3, 3) of one transformation kind (see vaecore.transforms for the signs)."""
    from vaecore.data.transforms import affine_matrix

    if kind == "rotation":
        return affine_matrix(rotation=amount)
    if kind == "translation":
        return affine_matrix(translation_x=amount, translation_y=amount_y)
    if kind == "scale":
        return affine_matrix(scale=amount)
    if kind == "shear":
        return affine_matrix(shear=amount)
    raise ValueError(f"unknown transformation {kind!r}; choose one of {list(TRANSFORM_AMOUNTS)}")


def apply_power(images: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
    """images under f^k (k may be negative or 0): the ground truth that z + k·T should decode to."""
    from vaecore.data.transforms import apply_affine

    if k == 0:
        return images
    return apply_affine(images, torch.linalg.matrix_power(theta[0], k)[None])
