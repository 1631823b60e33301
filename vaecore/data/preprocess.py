"""The explicit, deterministic transform every image of a dataset gets before it is cached or used:
an optional centre crop (a format's protocol, e.g. CelebA's 140 × 140), resizing to a size, and a
channel conversion only when asked.

Geometry: with `image_size` S the image is resized (bilinear, Pillow's antialiased resampling) so its
shorter side is S, then centre-cropped to S × S (offsets rounded down). Without it, images already of
the dataset's size are kept as they are and others are resized to cover that size and centre-cropped.
Channels: grey → RGB repeats the grey value; RGB → grey is Pillow's ITU-R 601-2 luma (L = 0.299 R +
0.587 G + 0.114 B, rounded). `Preprocess` is recorded in the cache manifest and in train.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["MAX_IMAGE_SIZE", "Preprocess", "resize_cover", "transform_array"]

MAX_IMAGE_SIZE = 1024
MIN_IMAGE_SIZE = 4


@dataclass(frozen=True)
class Preprocess:
    """`image_size`: square side to resize and centre-crop to (None: keep); `channels`: 1 or 3 to convert
    to (None: keep, and refuse mixed data); `crop`: square centre crop before resizing (a format's protocol)."""

    image_size: int | None = None
    channels: int | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        for name, lo in (("image_size", MIN_IMAGE_SIZE), ("crop", 1)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer)
                                      or not lo <= value <= MAX_IMAGE_SIZE):
                raise ValueError(f"{name} must be a whole number from {lo} to {MAX_IMAGE_SIZE}, got {value!r}")
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels not in (1, 3)):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def is_identity_for(self, shape: tuple[int, int, int]) -> bool:
        """Whether images of shape (C, H, W) pass unchanged."""
        c, h, w = shape
        size_ok = self.image_size is None or (h == w == self.image_size)
        return size_ok and self.crop is None and self.channels in (None, c)

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) of an image of h × w after the transform."""
        if self.crop is not None:
            h, w = min(h, self.crop), min(w, self.crop)
        return (self.image_size, self.image_size) if self.image_size is not None else (h, w)


def _pil():
    from PIL import Image

    return Image


def resize_cover(img: Any, height: int, width: int) -> Any:
    """A Pillow image resized (bilinear) to cover height × width, then centre-cropped to it."""
    Image = _pil()
    w, h = img.size
    if (w, h) != (width, height):
        scale = max(height / h, width / w)
        new = (max(width, round(w * scale)), max(height, round(h * scale)))
        if new != (w, h):
            img = img.resize(new, Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - width) // 2, (h - height) // 2
        img = img.crop((left, top, left + width, top + height))
    return img


def centre_crop(img: Any, side: int) -> Any:
    """A square centre crop of at most `side` (offsets rounded down)."""
    w, h = img.size
    cw, ch = min(w, side), min(h, side)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch)) if (cw, ch) != (w, h) else img


def geometry(img: Any, pre: Preprocess, target_hw: tuple[int, int] | None) -> Any:
    """Crop and resize a Pillow image per `pre` (to `target_hw` when no image_size is given)."""
    if pre.crop is not None:
        img = centre_crop(img, pre.crop)
    if pre.image_size is not None:
        return resize_cover(img, pre.image_size, pre.image_size)
    if target_hw is not None:
        return resize_cover(img, *target_hw)
    return img


def transform_array(images: np.ndarray, pre: Preprocess, what: str) -> np.ndarray:
    """Apply `pre` to (N, C, H, W) uint8 or float32 images (C = 1 or 3), image by image through Pillow."""
    Image = _pil()
    n, c, h, w = images.shape
    out_c = pre.channels or c
    oh, ow = pre.output_hw(h, w)
    if c not in (1, 3):
        raise ValueError(f"{what}: images with {c} channels cannot be transformed; expected 1 or 3")
    if n * out_c * oh * ow * images.dtype.itemsize > 16 * 2**30:
        raise ValueError(f"{what}: the transformed images would take over 16 GiB in memory")
    floats = images.dtype != np.uint8
    converted = _channels(images, out_c, floats)
    if (pre.crop, pre.image_size) == (None, None) or (oh, ow) == (h, w) and pre.crop is None:
        return converted
    out = np.empty((n, out_c, oh, ow), dtype=images.dtype)
    for i in range(n):
        x = converted[i]
        if floats:
            out[i] = np.stack([np.asarray(geometry(Image.fromarray(np.ascontiguousarray(p, dtype=np.float32)), pre,
                                                   None)) for p in x])
        else:
            mode_img = Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0) if out_c == 3 else x[0]))
            arr = np.asarray(geometry(mode_img, pre, None))
            out[i] = arr.transpose(2, 0, 1) if out_c == 3 else arr[None]
    if floats:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def _channels(x: np.ndarray, out_c: int, floats: bool) -> np.ndarray:
    """(N, C, H, W) → (N, out_c, H, W): grey repeated to RGB, RGB to luma as Pillow computes it."""
    c = x.shape[1]
    if c == out_c:
        return x
    if c == 1:
        return np.repeat(x, 3, axis=1)
    if floats:
        return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].astype(np.float32)
    r, g, b = (x[:, k].astype(np.uint32) for k in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[:, None]
