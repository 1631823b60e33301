"""Image grids: turn a batch of images into one picture (for sample grids, the app and the CLI)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vaecore.utils import atomic_write_bytes


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2,
              pad_value: float = 1.0) -> np.ndarray:
    """(B, C, H, W) in [0, 1] -> uint8 array (H', W') for C = 1 or (H', W', 3) for C = 3."""
    images = images.detach().float().clamp(0, 1).cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    arr = (grid.numpy() * 255).round().astype(np.uint8)
    return arr[0] if c == 1 else np.transpose(arr, (1, 2, 0))


def to_png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """Encode a uint8 image array as PNG, optionally enlarged by an integer factor."""
    import io

    from PIL import Image

    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a PNG grid of the images (atomically)."""
    atomic_write_bytes(path, to_png_bytes(make_grid(images, nrow), scale))
    return Path(path)
