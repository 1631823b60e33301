"""The latent points of many images: what the samplers fit, the representation metrics score and the app maps.

`latent_means` encodes in batches, in eval mode without gradients, reporting (stage, batches done,
batches in all) after each batch; each image's point is `model.embed` (the posterior mean, the code
itself for a deterministic encoder). `encode` is the same on the CPU, for a progress bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from vaecore.utils import evaluating

ProgressFn = Callable[[str, int, int], None]
BarFn = Callable[[float, str], None]
__all__ = ["encode", "latent_means"]


def latent_means(model: torch.nn.Module, x: Tensor, batch_size: int = 1000, progress: ProgressFn | None = None,
                 stage: str = "encode") -> Tensor:
    """The latent point of every image, (N, d), on the model's device."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = x.shape[0]
    total = max(1, math.ceil(n / batch_size))
    out = []
    with evaluating(model):
        for i, start in enumerate(range(0, n, batch_size)):
            out.append(model.embed(x[start:start + batch_size]).float())
            if progress is not None:
                progress(stage, i + 1, total)
    return torch.cat(out)


def encode(model: torch.nn.Module, x: Tensor, batch_size: int = 500, progress: BarFn | None = None) -> Tensor:
    """`latent_means` as (N, d) on the CPU; `progress` gets (fraction done, "encoded i / n images"). No images give
    an empty (0, d)."""
    n = x.shape[0]
    if n == 0:
        return torch.zeros(0, model.capabilities.latent_size)

    def bar(stage: str, done: int, total: int) -> None:
        images = min(done * batch_size, n)
        progress(images / n, f"encoded {images:,} / {n:,} images")  # type: ignore[misc]

    return latent_means(model, x, batch_size, bar if progress is not None else None).reshape(n, -1).cpu()
