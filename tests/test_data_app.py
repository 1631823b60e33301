"""The app on colour data: uploads keep colour for a colour model and say what they converted for a grey one."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from explorer.uploads import parse_uploads


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_keep_colour_and_note_every_conversion() -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 40  # red-ish, dark border: not inverted
    files = [("red.png", _png(rgb))]
    colour = parse_uploads(files, (3, 32, 32))
    assert colour.notes == {} and colour.images.shape == (1, 3, 32, 32)
    assert torch.allclose(colour.images[0, :, 5, 5], torch.tensor([200, 0, 40]) / 255.0)
    grey = parse_uploads(files, (1, 28, 28))
    assert grey.images.shape == (1, 1, 28, 28)
    assert grey.notes == {"colour → grey": 1, "resized 32×32 → 28×28": 1}
    arrays = io.BytesIO()
    np.save(arrays, np.full((3, 1, 32, 32), 9, np.uint8))
    both = parse_uploads([*files, ("g.npy", arrays.getvalue())], (3, 32, 32))
    assert both.notes == {"grey → colour (RGB)": 3} and len(both) == 4
