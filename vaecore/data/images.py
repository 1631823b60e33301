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


def split_grid(grid: np.ndarray, height: int, width: int, padding: int = 2) -> torch.Tensor:
    """The images (B, C, H, W) in [0, 1] of a grid `make_grid` drew (and `to_png_bytes` may have enlarged by an
    integer scale, found from the grid's size): the inverse of both, without the separators. Cells of the last row
    that hold only the padding value are dropped. ValueError when no scale fits the grid's size."""
    a = np.asarray(grid)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or height < 1 or width < 1:
        raise ValueError(f"a grid is (H, W) or (H, W, C) with positive cell sizes, got {a.shape} and {height}×{width}")
    for scale in range(1, 17):
        rows_px, cols_px = a.shape[0] / scale - padding, a.shape[1] / scale - padding
        if (a.shape[0] % scale == 0 and a.shape[1] % scale == 0 and rows_px > 0 and cols_px > 0
                and rows_px % (height + padding) == 0 and cols_px % (width + padding) == 0):
            break
    else:
        raise ValueError(f"a {a.shape[1]}×{a.shape[0]} grid is not made of {width}×{height} cells with "
                         f"{padding}-pixel separators at any integer scale")
    small = a[::scale, ::scale].astype(np.float32) / 255.0
    rows, cols = int(rows_px) // (height + padding), int(cols_px) // (width + padding)
    cells = [small[padding + r * (height + padding):padding + r * (height + padding) + height,
                   padding + c * (width + padding):padding + c * (width + padding) + width]
             for r in range(rows) for c in range(cols)]
    while len(cells) > 1 and np.all(cells[-1] == 1.0):  # an incomplete last row is filled with the padding
        cells.pop()
    return torch.from_numpy(np.stack(cells)).permute(0, 3, 1, 2).contiguous()


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP", ".gif": "GIF"}


def image_format(path: str | Path) -> str:
    """The Pillow format a file name's extension asks for (.png, .jpg, …); a ValueError for any other name."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        what = f"the extension {suffix!r}" if suffix else "no extension"
        raise ValueError(f"{path}: {what} is not an image format this writes; end the file name with one of "
                         f"{', '.join(IMAGE_FORMATS)} (e.g. grid.png)")
    return IMAGE_FORMATS[suffix]


def to_image_bytes(array: np.ndarray, scale: int = 1, fmt: str = "PNG") -> bytes:
    """Encode a uint8 image array in `fmt` (a Pillow format: PNG, JPEG, …), optionally enlarged by an integer
    factor."""
    import io

    from PIL import Image

    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def to_png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """Encode a uint8 image array as PNG, optionally enlarged by an integer factor."""
    return to_image_bytes(array, scale, "PNG")


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a grid of the images (atomically) in the format its extension names (`image_format`)."""
    fmt = image_format(path)
    atomic_write_bytes(path, to_image_bytes(make_grid(images, nrow), scale, fmt))
    return Path(path)
