"""The one switch between the fastest exact-enough path and bit-for-bit reproducibility.

By default vaecore computes on this machine's fastest kernels whose results differ from PyTorch's reference
kernels only in float rounding: convolution kernels and the activations' memory format chosen by measurement
(`conv_autotune`, `layout`), cached per machine. Two runs on one machine then read the same cached choices and
agree bit for bit, but a run on another machine (or with another thread count, or after the cache is cleared)
may pick other kernels and agree only to rounding. `deterministic` turns every measured choice off: PyTorch's own
kernels in its default memory format, and on CUDA `torch.use_deterministic_algorithms`, so the same inputs give
the same bits whatever was measured or cached. A training run takes it from `TrainConfig.deterministic`
(`--deterministic`, recorded in train.json); everything else (evaluation, the app, maps) from the environment,
`VAECORE_DETERMINISTIC=1`, or from `set_deterministic(True)`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["ENV", "deterministic", "deterministic_mode", "set_deterministic"]

ENV = "VAECORE_DETERMINISTIC"
_override: dict[str, bool | None] = {"on": None}


def deterministic() -> bool:
    """Whether this process computes bit for bit (no measured kernel or layout choices)."""
    if _override["on"] is not None:
        return bool(_override["on"])
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_deterministic(on: bool | None) -> None:
    """Switch bit-for-bit computation on or off for this process (None: follow `VAECORE_DETERMINISTIC` again)."""
    _override["on"] = None if on is None else bool(on)


@contextlib.contextmanager
def deterministic_mode(on: bool = True) -> Iterator[None]:
    """`set_deterministic(on)` for the block, the previous setting restored after."""
    before = _override["on"]
    _override["on"] = bool(on)
    try:
        yield
    finally:
        _override["on"] = before
