"""Image storage: images kept in their source dtype (uint8, or float32 for data that is not 8-bit),
in memory or in a `.npy` file on disk, and turned into float32 in [0, 1] per batch.

The one conversion every batch goes through is `to_unit`: uint8 `k` becomes `k / 255` in float32,
bit-identical to NumPy's `astype(float32) / 255`. A store answers `take(rows)` with the rows in the
order asked, in its source dtype; `FileStore` reads them by offset from a `.npy` file (`os.preadv`
into the output buffer), so the operating system's page cache is shared by every process and rank
that reads the file while each process's resident memory stays at the batches it holds. Stores are
picklable (a `FileStore` reopens its file in each process), so DataLoader workers can read them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ArrayStore", "FileStore", "ImageStore", "SubsetStore", "as_store", "to_unit"]

Index = Tensor | np.ndarray | Sequence[int] | slice
_MAX_IOV = 512  # buffers per preadv call (the system limit is 1024)


def to_unit(x: Tensor) -> Tensor:
    """uint8 `k` → float32 `k / 255`; float32 stays as it is (a new tensor only where converted)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255)
    if x.dtype == torch.bool:
        return x.to(torch.float32)
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def _rows(index: Index, n: int) -> np.ndarray | slice:
    """A slice stays a slice; anything else becomes int64 row numbers, checked against `n`."""
    if isinstance(index, slice):
        return index
    if isinstance(index, Tensor):
        index = index.detach().cpu().numpy()
    rows = np.asarray(index, dtype=np.int64).reshape(-1)
    if rows.size and (int(rows.min()) < -n or int(rows.max()) >= n):
        raise IndexError(f"row index out of range for {n} images")
    return np.where(rows < 0, rows + n, rows)


class ImageStore:
    """Images `(N, C, H, W)` in their source dtype; `take(rows)` returns them as a tensor."""

    shape: tuple[int, int, int, int]
    dtype: torch.dtype

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.shape[1:])  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes the images take in their source dtype."""
        return int(np.prod(self.shape, dtype=np.int64)) * torch.empty((), dtype=self.dtype).element_size()

    @property
    def in_memory(self) -> bool:
        return True

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def take(self, rows: Index) -> Tensor:
        """The images at `rows` (a slice, or row numbers in any order), in the source dtype."""
        raise NotImplementedError

    def subset(self, rows: Index) -> ImageStore:
        """A view of the rows `rows` (nothing is read or copied)."""
        picked = _rows(rows, len(self))
        if isinstance(picked, slice):
            picked = np.arange(len(self), dtype=np.int64)[picked]
        return SubsetStore(self, picked)

    def to_memory(self) -> ArrayStore:
        """The whole store read into memory (itself when it is in memory already)."""
        return ArrayStore(self.take(slice(None)))

    def to(self, device: torch.device | str) -> ImageStore:
        """The store in memory on `device`."""
        return ArrayStore(self.to_memory().tensor.to(device))


class ArrayStore(ImageStore):
    """Images held in one tensor (CPU or a device), uint8 or float32."""

    def __init__(self, images: Tensor | np.ndarray) -> None:
        if isinstance(images, np.ndarray):
            if not images.flags.writeable:  # torch cannot wrap read-only memory; copy once
                images = np.array(images, copy=True)
            images = torch.from_numpy(np.ascontiguousarray(images))
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if images.dtype not in (torch.uint8, torch.float32):
            images = images.to(torch.float32)
        self.tensor = images
        self.shape = tuple(int(s) for s in images.shape)  # type: ignore[assignment]
        self.dtype = images.dtype

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def take(self, rows: Index) -> Tensor:
        picked = _rows(rows, len(self))
        if isinstance(picked, slice):
            return self.tensor[picked]
        return self.tensor[torch.from_numpy(picked).to(self.tensor.device)]

    def to_memory(self) -> ArrayStore:
        return self

    def to(self, device: torch.device | str) -> ArrayStore:
        return self if self.tensor.device == torch.device(device) else ArrayStore(self.tensor.to(device))


class FileStore(ImageStore):
    """Images in a `.npy` file (C order, uint8 or float32), read row by row by offset."""

    def __init__(self, path: str | Path, *, rows: int | None = None) -> None:
        from vaecore.data.arrays import npy_layout

        self.path = Path(path)
        shape, dtype, offset = npy_layout(self.path)
        if len(shape) != 4 or dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
            raise ValueError(f"{self.path}: expected uint8 or float32 images (N, C, H, W), got {dtype} {shape}")
        n = shape[0] if rows is None else min(int(rows), shape[0])
        self.shape = (int(n), *(int(s) for s in shape[1:]))  # type: ignore[assignment]
        self._np_dtype = dtype
        self.dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
        self.offset = offset
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        need = offset + shape[0] * self.row_bytes
        have = self.path.stat().st_size
        if have < need:
            raise ValueError(f"{self.path}: truncated: its header says {shape} ({need} bytes), the file has {have}")
        self._local = threading.local()
        self._opened: list[tuple[int, int]] = []

    @property
    def in_memory(self) -> bool:
        return False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_local", None)
        state["_opened"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _fd(self) -> int:
        """This process's (and thread's) descriptor of the file, opened on first use."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.fd = os.open(self.path, os.O_RDONLY)
            local.pid = os.getpid()
            self._opened.append((local.pid, local.fd))
        return local.fd

    def close(self) -> None:
        """Close the descriptors this process opened (reads reopen the file)."""
        pid = os.getpid()
        for owner, fd in [item for item in self._opened if item[0] == pid]:
            with contextlib.suppress(OSError):
                os.close(fd)
            self._opened.remove((owner, fd))
        self._local = threading.local()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def take(self, rows: Index) -> Tensor:
        picked = _rows(rows, len(self))
        if isinstance(picked, slice):
            picked = np.arange(len(self), dtype=np.int64)[picked]
        out = np.empty((len(picked), *self.shape[1:]), dtype=self._np_dtype)
        if len(picked):
            self._read_into(out, picked)
        return torch.from_numpy(out)

    def _read_into(self, out: np.ndarray, rows: np.ndarray) -> None:
        """Fill `out[i]` with row `rows[i]`: rows sorted, contiguous runs read in one call each."""
        fd, size = self._fd(), self.row_bytes
        flat = out.reshape(len(rows), -1).view(np.uint8)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        for whole in np.split(np.arange(len(rows)), breaks):
            for start in range(0, len(whole), _MAX_IOV):
                run = whole[start:start + _MAX_IOV]
                first, targets = int(sorted_rows[run[0]]), order[run]
                if len(run) > 1 and np.all(np.diff(targets) == 1):  # the run lands contiguously in out
                    buffers = [memoryview(flat[targets[0]:targets[-1] + 1]).cast("B")]
                else:
                    buffers = [memoryview(flat[t]) for t in targets]
                want = size * len(run)
                got = os.preadv(fd, buffers, self.offset + first * size)
                if got != want:
                    raise OSError(f"{self.path}: short read ({got} of {want} bytes at row {first}); "
                                  "the cache file changed or was truncated: delete it to rebuild")


class SubsetStore(ImageStore):
    """The rows `rows` of another store, in that order."""

    def __init__(self, parent: ImageStore, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= len(parent)):
            raise IndexError(f"subset rows out of range for {len(parent)} images")
        if isinstance(parent, SubsetStore):
            rows, parent = parent.rows[rows], parent.parent
        self.parent, self.rows = parent, rows
        self.shape = (len(rows), *parent.shape[1:])  # type: ignore[assignment]
        self.dtype = parent.dtype

    @property
    def in_memory(self) -> bool:
        return self.parent.in_memory

    @property
    def device(self) -> torch.device:
        return self.parent.device

    def take(self, rows: Index) -> Tensor:
        picked = _rows(rows, len(self))
        return self.parent.take(self.rows[picked])


def as_store(images: Tensor | np.ndarray | ImageStore) -> ImageStore:
    """A store for images given as a store, a tensor or an array (uint8 kept, others float32)."""
    if isinstance(images, ImageStore):
        return images
    if isinstance(images, np.ndarray) and images.dtype == np.bool_:
        images = images.astype(np.uint8) * np.uint8(255)
    elif isinstance(images, Tensor) and images.dtype == torch.bool:
        images = images.to(torch.uint8) * 255
    return ArrayStore(images)
