"""Binarized grey-level images: each pixel value p ∈ [0, 1] becomes 1 with probability p.

The likelihood literature scores VAEs on binarized MNIST in one of two ways, and both are here:

- **dynamic**: a fresh Bernoulli draw of the training images every epoch (Burda et al. 2016; the
  draw of epoch e is a function of (seed, e) only, so a resumed run sees the same images);
- **static**: one draw of the training images, reused every epoch (the fixed binarization of
  Larochelle & Murray's "binarized MNIST", here drawn from our own MNIST with a seed).

Validation and test images are binarized once each, with the fixed seeds `VAL_SEED` and `TEST_SEED`,
so every model is scored on the same binary images and scores can be compared image by image.

Every draw uses a CPU generator and the same chunking whatever the device, so a draw is the same
bits on every machine; a draw's mean is the grey level it was drawn from (E[b] = p).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BINARIZE = ("none", "dynamic", "static")
"""The values of TrainConfig.binarize."""
VAL_SEED = 1
TEST_SEED = 2
_TRAIN, _VAL, _TEST = 0, 1, 2
_CHUNK = 4096  # images per uniform draw, bounding the temporary memory

__all__ = ["BINARIZE", "TEST_SEED", "VAL_SEED", "Binarizer", "bernoulli_images", "binarized_split", "draw_seed"]


def draw_seed(*keys: int) -> int:
    """A 63-bit generator seed derived from integer keys (NumPy's SeedSequence: nearby keys, unrelated streams)."""
    if any(int(k) < 0 for k in keys):
        raise ValueError(f"binarization seeds must be >= 0, got {keys}")
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _grey(x: Tensor) -> Tensor:
    """Grey levels in [0, 1] as float32: 8-bit images are divided by 255; float images must lie in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(f"binarization needs uint8 or float images, got {x.dtype}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError("binarization needs grey levels in [0, 1]; divide 8-bit images by 255 first")
    return x.float()


def bernoulli_images(x: Tensor, seed: int) -> Tensor:
    """One Bernoulli draw per value of `x` (uint8 or [0, 1] float images), as a bool tensor on x's device.

    Pixel i is 1 when u_i < p_i with u uniform from a CPU generator seeded with `seed`, drawn in chunks of
    images of a fixed size, so the result depends on `seed` and the images only.
    """
    gen = torch.Generator().manual_seed(int(seed))
    out = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        p = _grey(x[start:start + _CHUNK])
        u = torch.rand(p.shape, generator=gen, dtype=torch.float32)
        out[start:start + _CHUNK] = u.to(p.device) < p
    return out


def binarized_split(x: Tensor, split: str) -> Tensor:
    """The validation or test images binarized once, with the fixed seed of the split, as float32 in {0, 1}."""
    keys = {"val": (VAL_SEED, _VAL), "test": (TEST_SEED, _TEST)}
    if split not in keys:
        raise ValueError(f"fixed binarization is for the 'val' and 'test' splits, got {split!r}")
    return bernoulli_images(x, draw_seed(*keys[split])).float()


class Binarizer:
    """The training images of a run, binarized per epoch ("dynamic") or once ("static").

    `batch(epoch, index)` gives the float32 {0, 1} images at `index` (a tensor of positions) in the draw of
    `epoch`; the draw is kept for the epoch in progress only (one bool per value).
    """

    def __init__(self, x_train: Tensor, mode: str, seed: int) -> None:
        if mode not in BINARIZE or mode == "none":
            raise ValueError(f"binarize must be 'dynamic' or 'static', got {mode!r}")
        self.x = x_train
        self.mode = mode
        self.seed = int(seed)
        self._draw: tuple[int, Tensor] | None = None

    def images(self, epoch: int) -> Tensor:
        """The bool draw of all training images for `epoch` (the same draw every epoch when static)."""
        key = 0 if self.mode == "static" else int(epoch)
        if self._draw is None or self._draw[0] != key:
            self._draw = None  # free the previous draw before making the next
            self._draw = (key, bernoulli_images(self.x, draw_seed(self.seed, _TRAIN, key)))
        return self._draw[1]

    def batch(self, epoch: int, index: Tensor) -> Tensor:
        return self.images(epoch)[index].float()
