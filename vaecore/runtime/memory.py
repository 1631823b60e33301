"""How the process allocates the memory of CPU tensors: reuse freed blocks instead of asking the kernel for fresh,
zeroed pages on every batch.

glibc's malloc serves a large block (an activation of a batch) with a fresh `mmap` once the block is above its
dynamic threshold and gives it back on free, so every batch page-faults its activations in again: measured on
this project's machine, 60,000-1,300,000 page faults per 2,000 images of inference, 25-40 % of the time (the σ-VAE
small conv after a training loop: 3,400 vs 4,900 images/s; Pythae's ConvNet: 110 vs 185). Which state malloc
is in depends on what ran before in the process, so the same `reconstruct` ran 15-25 % slower after a
Trainer than after a bare loop. `keep_freed_memory()` serves large blocks from the heap and keeps up to
`KEEP_BYTES` of freed memory there for the next batch (no page faults after the first); `release()` gives the
kept memory back at the end of a long task (training, an evaluation). Only glibc is tuned (elsewhere both are
no-ops); numerics are untouched. `VAECORE_MALLOC=system` leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

__all__ = ["KEEP_BYTES", "keep_freed_memory", "kept", "release"]

KEEP_BYTES = 512 * 2**20  # freed memory kept for reuse before glibc trims the heap's top
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)
_state = {"kept": False}


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Tune this process's malloc once (idempotent): large blocks from the heap, freed memory kept for reuse.
    Returns whether it is (now or already) in effect."""
    if _state["kept"]:
        return True
    libc = _glibc()
    if libc is None or os.environ.get("VAECORE_MALLOC", "").lower() == "system":
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    _state["kept"] = ok
    return ok


def kept() -> bool:
    """Whether `keep_freed_memory` is in effect."""
    return _state["kept"]


def release() -> None:
    """Give the freed memory kept for reuse back to the system (after a long task); a no-op unless kept."""
    libc = _glibc()
    if _state["kept"] and libc is not None:
        libc.malloc_trim(0)
