"""Invertible affine image transformations and triplet batches for the T-VAE (paper 004).

Conventions
-----------
* Images are ``(B, C, H, W)`` tensors, row 0 at the top. Transformations run batched with
  :func:`torch.nn.functional.affine_grid` / :func:`~torch.nn.functional.grid_sample`
  (bilinear, ``align_corners=False``) on the images' device.
* A transformation is a ``(B, 3, 3)`` homogeneous matrix ``A`` in the *forward* (content)
  convention: the content found at input location ``u`` appears at output location ``A @ u``.
  So ``apply_affine(apply_affine(x, A), B) ~= apply_affine(x, B @ A)`` and the inverse
  transformation is exactly ``invert(A)``. :func:`apply_affine` inverts ``A`` internally,
  because ``affine_grid`` wants the opposite (output -> input) map.
* Coordinates are normalised: ``x`` runs from -1 (left edge) to +1 (right edge), ``y`` from
  -1 (top edge) to +1 (bottom edge). For square images (MNIST is 28x28) these are exactly
  ``affine_grid``'s coordinates, so a rotation matrix is a rigid rotation. For non-square
  images the longer side spans [-1, 1] and the shorter one proportionally less, so rotations
  stay rigid in pixel space and translations are fractions of the longer side.
* Composition order of :func:`affine_matrix`: ``A = Translate @ Rotate @ Shear @ Scale``,
  i.e. scale about the centre, then shear, then rotate, then translate.
* Signs: positive rotation turns the content counter-clockwise as displayed; positive
  ``translation_x`` moves it right, positive ``translation_y`` moves it down (towards larger
  row indices); ``scale > 1`` enlarges it; positive shear slants it like italics (the top
  moves right, the bottom left).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

TRANSFORM_KINDS: dict[str, str] = {
    "rotation": "rotation about the image centre, counter-clockwise for positive degrees",
    "translation": "shift along x and y, as a fraction of the image width / height",
    "scale": "isotropic zoom about the image centre (> 1 enlarges)",
    "shear": "x-shear by an angle in degrees (positive slants the content like italics)",
}

Number = float | int | Tensor


@dataclass
class TransformRange:
    """The ranges random transformations are drawn from; a kind is off when its range is zero.

    Every parameter is drawn uniformly and independently per example: rotation in
    ``[-rotation, rotation]`` degrees, each translation axis in ``[-translation, translation]``,
    scale in ``[scale[0], scale[1]]``, shear in ``[-shear, shear]`` degrees. Only the kinds
    listed in ``kinds`` are composed.
    """

    rotation: float = 30.0
    translation: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 0.0
    kinds: tuple[str, ...] = ("rotation", "translation", "scale", "shear")

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in TRANSFORM_KINDS]
        if unknown:
            raise ValueError(f"unknown transform kinds {unknown}; known: {list(TRANSFORM_KINDS)}")
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale range must satisfy 0 < low <= high, got {self.scale}")
        if self.rotation < 0 or self.translation < 0 or self.shear < 0:
            raise ValueError("rotation, translation and shear ranges must be non-negative")
        if abs(self.shear) >= 90:
            raise ValueError("shear must be below 90 degrees")

    def active_kinds(self) -> tuple[str, ...]:
        """The kinds that are both selected and have a non-zero range."""
        nonzero = {
            "rotation": self.rotation > 0,
            "translation": self.translation > 0,
            "scale": self.scale != (1.0, 1.0),
            "shear": self.shear > 0,
        }
        return tuple(k for k in self.kinds if nonzero[k])


def _as_batch(values: list[Number], device: torch.device | str | None) -> list[Tensor]:
    """Turn floats / 0-d / (B,) tensors into float32 (B,) tensors of one common batch size."""
    if device is None:
        device = next((v.device for v in values if isinstance(v, Tensor)), torch.device("cpu"))
    tensors = [torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1) for v in values]
    return list(torch.broadcast_tensors(*tensors))


def affine_matrix(
    rotation: Number = 0.0,
    translation_x: Number = 0.0,
    translation_y: Number = 0.0,
    scale: Number = 1.0,
    shear: Number = 0.0,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """Batched forward matrices ``Translate @ Rotate @ Shear @ Scale`` of shape (B, 3, 3).

    Each argument is a float or a (B,) tensor (broadcast together; B = 1 for all floats).
    Angles are in degrees, translations are fractions of the image width / height (see the
    module docstring for the signs).
    """
    rot, tx, ty, s, sh = _as_batch([rotation, translation_x, translation_y, scale, shear], device)
    a = torch.deg2rad(rot)
    cos, sin = torch.cos(a), torch.sin(a)
    k = -torch.tan(torch.deg2rad(sh))
    # y points down, so a counter-clockwise turn as displayed is R = [[cos, sin], [-sin, cos]];
    # the shear is [[1, k], [0, 1]] and the linear part is s * R @ shear, written out.
    theta = torch.zeros(rot.shape[0], 3, 3, dtype=torch.float32, device=rot.device)
    theta[:, 0, 0] = s * cos
    theta[:, 0, 1] = s * (cos * k + sin)
    theta[:, 1, 0] = -s * sin
    theta[:, 1, 1] = s * (cos - sin * k)
    theta[:, 0, 2] = 2.0 * tx
    theta[:, 1, 2] = 2.0 * ty
    theta[:, 2, 2] = 1.0
    return theta


def random_affine(
    n: int,
    rng: TransformRange,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` random forward matrices (n, 3, 3) from the ranges in ``rng``.

    The same five uniforms per example are drawn whatever kinds are on, so switching a kind
    off leaves the other kinds' values for a given generator state unchanged. Sampling runs
    on the generator's device (CPU by default); the result is moved to ``device``.
    """
    sample_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, 5, generator=generator, device=sample_device) * 2.0 - 1.0
    on = rng.active_kinds()
    zero = torch.zeros(n, device=sample_device)
    rot = u[:, 0] * rng.rotation if "rotation" in on else zero
    tx = u[:, 1] * rng.translation if "translation" in on else zero
    ty = u[:, 2] * rng.translation if "translation" in on else zero
    lo, hi = rng.scale
    s = lo + (u[:, 3] + 1.0) * 0.5 * (hi - lo) if "scale" in on else zero + 1.0
    sh = u[:, 4] * rng.shear if "shear" in on else zero
    theta = affine_matrix(rot, tx, ty, s, sh)
    return theta.to(device) if device is not None else theta


def invert(theta: Tensor) -> Tensor:
    """Exact inverse of (B, 3, 3) (or (3, 3)) affine matrices: the matrix of f^-1."""
    return torch.linalg.inv(theta)


def _frame_to_normalised(theta: Tensor, height: int, width: int) -> Tensor:
    """Conjugate forward matrices from the isotropic frame to affine_grid's coordinates."""
    if height == width:
        return theta
    side = max(height, width)
    d = torch.tensor([width / side, height / side, 1.0], dtype=theta.dtype, device=theta.device)
    return theta * d[:, None].reciprocal() * d[None, :]


def apply_affine(images: Tensor, theta: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Apply forward matrices ``theta`` (B, 3, 3) or (3, 3) to images (B, C, H, W).

    ``theta`` maps input to output coordinates (the content convention of the module
    docstring, the opposite of ``affine_grid``'s); it is inverted here before sampling.
    Bilinear interpolation with ``align_corners=False``; areas that come from outside the
    image are filled according to ``padding_mode`` ("zeros", "border" or "reflection").
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    b, _, h, w = images.shape
    theta = theta.to(device=images.device, dtype=torch.float32)
    if theta.dim() == 2:
        theta = theta.unsqueeze(0)
    if theta.shape[0] == 1 and b != 1:
        theta = theta.expand(b, 3, 3)
    if theta.shape != (b, 3, 3):
        raise ValueError(f"theta must be ({b}, 3, 3), got shape {tuple(theta.shape)}")
    sampling = invert(_frame_to_normalised(theta, h, w))[:, :2, :]
    grid = F.affine_grid(sampling, [b, images.shape[1], h, w], align_corners=False)
    out = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
    return out.to(images.dtype)


def triplet(
    x: Tensor, rng: TransformRange, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The T-VAE triplet ``(x, f(x), f^-1(x), theta)`` with a fresh random f per example.

    ``theta`` (B, 3, 3) is the forward matrix of f; f^-1 uses ``invert(theta)`` exactly, so
    ``f(f^-1(x))`` differs from ``x`` only by interpolation and cropping.
    """
    theta = random_affine(x.shape[0], rng, generator=generator, device=x.device)
    both = apply_affine(torch.cat([x, x]), torch.cat([theta, invert(theta)]))
    x1, x2 = both.chunk(2)
    return x, x1, x2, theta


AFFINE_TEST_RANGE = TransformRange(rotation=20.0, translation=0.1, scale=(0.8, 1.2), shear=20.0)


def affine_test_set(
    x: Tensor, seed: int = 0, rng: TransformRange | None = None, chunk_size: int = 2000
) -> Tensor:
    """A deterministic affine-transformed copy of ``x``: a local stand-in for AffNIST.

    Defaults (``AFFINE_TEST_RANGE``): rotation +-20 deg, translation +-0.1, scale 0.8-1.2,
    shear +-20 deg, moderate enough that MNIST digits (with their 4-pixel empty border) stay
    mostly in the frame. All matrices come from one CPU generator seeded with ``seed``, so
    the output depends on the seed only (not on ``chunk_size`` or the device); the images
    are transformed ``chunk_size`` at a time to bound memory.
    """
    rng = rng if rng is not None else AFFINE_TEST_RANGE
    generator = torch.Generator().manual_seed(seed)
    theta = random_affine(x.shape[0], rng, generator=generator)
    out = torch.empty_like(x)
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            stop = start + chunk_size
            out[start:stop] = apply_affine(x[start:stop], theta[start:stop])
    return out


def _apply_single(images: Tensor, theta: Tensor, padding_mode: str) -> Tensor:
    if theta.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"got {theta.shape[0]} parameters for {images.shape[0]} images")
    return apply_affine(images, theta, padding_mode=padding_mode)


def rotation(images: Tensor, degrees: Number, padding_mode: str = "zeros") -> Tensor:
    """Rotate the content counter-clockwise (as displayed) by ``degrees`` (float or (B,))."""
    return _apply_single(images, affine_matrix(rotation=degrees, device=images.device), padding_mode)


def translation(images: Tensor, dx: Number, dy: Number = 0.0, padding_mode: str = "zeros") -> Tensor:
    """Shift the content right by ``dx`` and down by ``dy`` (fractions of width / height)."""
    theta = affine_matrix(translation_x=dx, translation_y=dy, device=images.device)
    return _apply_single(images, theta, padding_mode)


def scale(images: Tensor, s: Number, padding_mode: str = "zeros") -> Tensor:
    """Zoom the content about the centre by ``s`` (> 1 enlarges; float or (B,))."""
    return _apply_single(images, affine_matrix(scale=s, device=images.device), padding_mode)


def shear(images: Tensor, degrees: Number, padding_mode: str = "zeros") -> Tensor:
    """X-shear the content by ``degrees`` (positive slants it like italics; float or (B,))."""
    return _apply_single(images, affine_matrix(shear=degrees, device=images.device), padding_mode)


__all__ = [
    "AFFINE_TEST_RANGE",
    "TRANSFORM_KINDS",
    "TransformRange",
    "affine_matrix",
    "affine_test_set",
    "apply_affine",
    "invert",
    "random_affine",
    "rotation",
    "scale",
    "shear",
    "translation",
    "triplet",
]
