"""Ground-truth factors of variation: their names, how many classes each has, the value of each class,
and — for data that is the full factor grid, as dSprites is — the image of any factor combination.

This is what disentanglement metrics read (`Dataset.factors`, `Dataset.factor_classes(split)`):
classes are int64 in `[0, size)` per factor, in the order of `names`; `values[k][c]` is the value
class `c` of factor `k` stands for. With a `grid` store the images are in the grid's row-major
order (the last factor varies fastest), so `images(classes)` renders any combination, e.g. the
pairs with one factor held fixed that the β-VAE and FactorVAE scores draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vaecore.data.storage import ImageStore, to_unit

__all__ = ["Factors"]


@dataclass(frozen=True)
class Factors:
    """Factor names, class counts and class values; the full grid of images when the data is one."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]
    grid: ImageStore | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.sizes) == len(self.values)):
            raise ValueError("factor names, sizes and values must have one entry per factor")
        for name, size, values in zip(self.names, self.sizes, self.values, strict=True):
            if size < 1 or len(values) != size:
                raise ValueError(f"factor {name!r}: {len(values)} values for {size} classes")
        if self.grid is not None and len(self.grid) != int(np.prod(self.sizes, dtype=np.int64)):
            raise ValueError(f"a factor grid of sizes {self.sizes} needs {int(np.prod(self.sizes))} images, "
                             f"got {len(self.grid)}")

    @property
    def varying(self) -> tuple[int, ...]:
        """Indices of the factors with more than one class (dSprites' colour has one)."""
        return tuple(k for k, s in enumerate(self.sizes) if s > 1)

    def to_values(self, classes: np.ndarray) -> np.ndarray:
        """(N, K) classes → (N, K) float64 values."""
        classes = self._check(classes)
        return np.stack([np.asarray(v, dtype=np.float64)[classes[:, k]] for k, v in enumerate(self.values)], axis=1)

    def index(self, classes: np.ndarray) -> np.ndarray:
        """Rows of the grid holding the images with these (N, K) classes."""
        return np.ravel_multi_index(tuple(self._check(classes).T), self.sizes).astype(np.int64)

    def classes_of(self, rows: np.ndarray) -> np.ndarray:
        """(N, K) classes of grid rows (the inverse of `index`)."""
        return np.stack(np.unravel_index(np.asarray(rows, dtype=np.int64), self.sizes), axis=1).astype(np.int64)

    def sample_classes(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """(n, K) classes drawn uniformly and independently per factor."""
        return np.stack([generator.integers(0, s, n) for s in self.sizes], axis=1).astype(np.int64)

    def images(self, classes: np.ndarray, device: torch.device | str | None = None) -> Tensor:
        """The images with these (N, K) classes, float32 in [0, 1] (needs the grid)."""
        if self.grid is None:
            raise ValueError("these factors come without the full image grid; images of chosen factors need "
                             "a grid dataset (dsprites)")
        x = self.grid.take(self.index(classes))
        return to_unit(x if device is None else x.to(device))

    def _check(self, classes: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        classes = np.asarray(classes, dtype=np.int64)
        if classes.ndim != 2 or classes.shape[1] != len(self.sizes):
            raise ValueError(f"factor classes must be (N, {len(self.sizes)}), got {classes.shape}")
        if classes.size and ((classes < 0).any() or (classes >= np.asarray(self.sizes)).any()):
            raise ValueError(f"factor classes out of range for sizes {self.sizes}")
        return classes

    def describe(self) -> dict[str, object]:
        """Names, sizes and values as JSON-ready lists (for manifests and run records)."""
        return {"names": list(self.names), "sizes": list(self.sizes), "values": [list(v) for v in self.values]}
