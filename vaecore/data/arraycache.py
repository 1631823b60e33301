"""Write datasets that come as arrays (CIFAR binaries, SVHN .mat files, dSprites, the procedural
generator) into the on-disk cache, chunk by chunk through the explicit transform, resumably and with a
progress bar. Each part is read by `read(start, stop) -> uint8 (k, C, H, W)`, so a source larger than
memory is never held whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vaecore.data.cache import CacheEntry, CacheWriter, ProgressBar, open_cache
from vaecore.data.preprocess import Preprocess, transform_array

__all__ = ["ArrayPart", "build_array_cache"]

CHUNK = 4096  # rows per read / write


@dataclass
class ArrayPart:
    """`n` images of shape `shape` (C, H, W) read by `read(start, stop)`, with per-image arrays (labels, ...),
    given or made by a function called only when the cache is built."""

    n: int
    shape: tuple[int, int, int]
    read: Callable[[int, int], np.ndarray]
    arrays: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]] = field(default_factory=dict)


def output_shape(shape: tuple[int, int, int], pre: Preprocess) -> tuple[int, int, int]:
    c, h, w = shape
    return (pre.channels or c, *pre.output_hw(h, w))


def build_array_cache(kind: str, source: str, fingerprint: dict[str, Any], parts: dict[str, ArrayPart],
                      pre: Preprocess, progress: Any, settings: dict[str, Any] | None = None,
                      info: dict[str, Any] | None = None) -> CacheEntry:
    """The cache of these parts under `pre`, built (or resumed) unless a valid one exists."""
    total = sum(p.n for p in parts.values())
    need = sum(p.n * int(np.prod(output_shape(p.shape, pre))) for p in parts.values())

    def build(writer: CacheWriter) -> None:
        state = writer.progress or {"next": dict.fromkeys(parts, 0)}
        bar = ProgressBar(progress, total, f"writing {kind} into the cache")
        bar.update(sum(state["next"].values()))
        try:
            for name, part in parts.items():
                arr = writer.images(name, part.n, output_shape(part.shape, pre))
                identity = pre.is_identity_for(part.shape)
                for start in range(state["next"][name], part.n, CHUNK):
                    stop = min(start + CHUNK, part.n)
                    chunk = part.read(start, stop)
                    if chunk.shape != (stop - start, *part.shape) or chunk.dtype != np.uint8:
                        raise ValueError(f"{source}: rows {start}..{stop} read as {chunk.dtype} {chunk.shape}, "
                                         f"expected uint8 {(stop - start, *part.shape)}")
                    arr[start:stop] = chunk if identity else transform_array(chunk, pre, source)
                    state["next"][name] = stop
                    writer.save_progress(state)
                    bar.update(stop - start)
                writer.finish_part(name, part.n)
                del arr
                arrays = part.arrays() if callable(part.arrays) else part.arrays
                for key, values in arrays.items():
                    if len(values) != part.n:
                        raise ValueError(f"{source}: {len(values)} {key} for {part.n} images")
                    writer.array(name, key, values)
        finally:
            bar.close()
        writer.info = dict(info or {})

    return open_cache(kind, source, {"preprocess": pre.to_dict(), **(settings or {})}, fingerprint, build,
                      estimate_bytes=need)
