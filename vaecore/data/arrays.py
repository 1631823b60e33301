"""NumPy image arrays: read `.npy`/`.npz` files without unpickling and with their sizes checked before any
memory is allocated, and validate images (uint8 0..255 or floats in [0, 1]) and labels."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

import vaecore.limits as limits

MAX_ARRAY_BYTES = 8 * 2**30  # an array file claiming more than this is refused before it is read
NPY_MAGIC = b"\x93NUMPY"


def check_images(array: np.ndarray, what: str) -> np.ndarray:
    """Validate an image array; return it as (N, C, H, W), uint8 for 8-bit data (bool as 0/255) and float32
    in [0, 1] for float data."""
    kind = array.dtype.kind
    if kind not in "buif":
        raise ValueError(
            f"{what}: unsupported dtype {array.dtype}; expected uint8 (0..255) or floats in [0, 1]"
        )
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        first, last = array.shape[1] in (1, 3), array.shape[3] in (1, 3)
        if last and not first:
            array = array.transpose(0, 3, 1, 2)
        elif not first:
            raise ValueError(
                f"{what}: cannot tell the channel axis of shape {array.shape}; expected 1 or 3 channels "
                "as (N, C, H, W) or (N, H, W, C)"
            )
    else:
        raise ValueError(
            f"{what}: expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W), "
            f"got {array.ndim}-D shape {array.shape}"
        )
    if array.shape[0] == 0 or 0 in array.shape[2:]:
        raise ValueError(f"{what}: empty image array of shape {array.shape}")
    if kind == "b":
        return np.ascontiguousarray(array, dtype=np.uint8) * np.uint8(255)
    if kind in "ui":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{what}: integer images must be 8-bit values 0..255, got range [{lo}, {hi}]")
        return np.ascontiguousarray(array, dtype=np.uint8)
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: float images contain NaN or infinite values")
    lo, hi = float(array.min()), float(array.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{what}: float images must lie in [0, 1], got range [{lo:g}, {hi:g}]; "
            "store 8-bit data as uint8 or divide it by 255"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def images_from_array(array: np.ndarray, what: str) -> np.ndarray:
    """Validate an image array and return it as float32 (N, C, H, W) in [0, 1] (8-bit data as k / 255)."""
    x = check_images(array, what)
    if x.dtype == np.uint8:
        x = x.astype(np.float32)
        x /= np.float32(255)
    return x


def labels_from_array(labels: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    """Validate labels for `n` images and return them as int64, or None."""
    if labels is None:
        return None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{what}: labels must be 1-D (N,), got shape {labels.shape}")
    if labels.shape[0] != n:
        raise ValueError(f"{what}: {labels.shape[0]} labels for {n} images")
    kind = labels.dtype.kind
    if kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise ValueError(f"{what}: labels must be whole numbers, got non-integral floats")
    elif kind not in "bui":
        raise ValueError(f"{what}: labels must be integers, got dtype {labels.dtype}")
    if n and labels.min() < 0:
        raise ValueError(f"{what}: labels must be >= 0, got {labels.min()}")
    if n and labels.max() >= limits.CLASSES.value:  # compared before the cast: a float of 1e300 cannot wrap
        raise limits.LimitError(f"{what}: labels must be class numbers 0..{limits.CLASSES.value - 1}, got "
                                f"{labels.max():,}; the limit is {limits.CLASSES.value:,} classes (environment "
                                f"variable {limits.CLASSES.env})")
    return labels.astype(np.int64)


def _npy_header(f: IO[bytes], what: str, max_bytes: int | None = MAX_ARRAY_BYTES
                ) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Shape, dtype and Fortran order from a .npy header, refusing object dtypes and sizes that cannot be real."""
    start = f.tell()
    if f.read(6) != NPY_MAGIC:
        raise ValueError(f"{what}: not a NumPy .npy array (no \\x93NUMPY header); save images with numpy.save "
                         "or numpy.savez")
    f.seek(start)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            from numpy.lib import _format_impl

            shape, fortran, dtype = _format_impl._read_array_header(f, version)
    except (ValueError, OSError, EOFError, AttributeError) as err:
        raise ValueError(f"{what}: corrupt .npy header ({err})") from err
    if dtype.hasobject:
        raise ValueError(f"{what}: object (pickled) arrays are not supported; save plain numeric arrays")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"{what}: corrupt .npy header (shape {shape})")
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{what}: header claims shape {shape} of {dtype} ({size / 2**30:.3g} GiB), over the "
                         f"{max_bytes / 2**30:.3g} GiB limit; the file is corrupt or too large to load")
    return shape, dtype, bool(fortran)


def _read_npy(f: IO[bytes], what: str) -> np.ndarray:
    start = f.tell()
    shape, dtype, _ = _npy_header(f, what)
    if isinstance(f, io.BufferedReader):
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        have = os.fstat(f.fileno()).st_size - f.tell()
        if have < need:
            raise ValueError(f"{what}: truncated .npy file: its header says shape {shape} of {dtype} ({need} bytes), "
                             f"but only {have} bytes follow")
    f.seek(start)
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{what}: truncated or corrupt .npy data ({err})") from err


def npy_layout(path: Path, max_bytes: int | None = None) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a .npy file, from its header alone (C order only)."""
    with open(path, "rb") as f:
        shape, dtype, fortran = _npy_header(f, str(path), max_bytes)
        offset = f.tell()
    if fortran:
        raise ValueError(f"{path}: Fortran-ordered arrays are not supported here; save it in C order")
    return shape, dtype, offset


def npz_member_names(path: Path) -> list[str]:
    """The array names a .npz archive holds (without reading any of them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [n[:-4] if n.endswith(".npy") else n for n in archive.namelist()]
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: corrupt .npz archive ({err})") from err


class NpzMember:
    """One array of a .npz archive opened for sequential reading: `shape`, `dtype`, `read(rows)`; its header
    is checked (no object dtype, size within `max_bytes`) before any data is read."""

    def __init__(self, path: Path, key: str, max_bytes: int | None = MAX_ARRAY_BYTES) -> None:
        self.path, self.key = path, key
        try:
            self._zip = zipfile.ZipFile(path)
            self._member = self._zip.open(key + ".npy")
        except KeyError as err:
            raise ValueError(f"{path}: no array {key!r} in the archive") from err
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"{path}: corrupt .npz archive ({err})") from err
        self.shape, self.dtype, fortran = _npy_header(self._member, f"{path} [{key}]", max_bytes)
        if fortran or not self.shape:
            self.close()
            raise ValueError(f"{path} [{key}]: expected a C-ordered array with at least one dimension")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.position = 0

    def read(self, rows: int) -> np.ndarray:
        """The next `rows` rows (C order)."""
        want = rows * self.row_bytes
        data = self._member.read(want)
        if len(data) != want:
            raise ValueError(f"{self.path} [{self.key}]: truncated array data at row {self.position}")
        self.position += rows
        return np.frombuffer(data, dtype=self.dtype).reshape(rows, *self.shape[1:])

    def skip_to(self, row: int) -> None:
        while self.position < row:
            self.read(min(4096, row - self.position))

    def close(self) -> None:
        self._member.close()
        self._zip.close()


def read_arrays(path: Path, keys: set[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a .npy file (as {"x": ...}) or a .npz file, each checked as `_read_npy` does;
    with `keys`, only those members of a .npz are read (the others, pickled or not, are never touched)."""
    if not path.is_file():
        raise FileNotFoundError(f"array file not found: {path}; pass the path of an existing .npz or .npy file")
    with open(path, "rb") as f:
        magic = f.read(6)
        f.seek(0)
        if magic == NPY_MAGIC:
            return {"x": _read_npy(f, str(path))}
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: neither a NumPy .npy array nor a .npz archive (it starts with {magic!r}); "
                         "save images with numpy.save or numpy.savez")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            limits.ARCHIVE_MEMBERS.check(len(infos), f"{path}: the number of arrays in the archive")
            total = 0
            for info in infos:  # every header first: names, count and sizes before any array is read
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.filename.endswith("/") or info.is_dir():
                    raise ValueError(f"{path}: member {info.filename[:80]!r} is a folder entry, not an array; a .npz "
                                     "holds only .npy arrays (save it with numpy.savez)")
                if keys is not None and key not in keys:
                    continue
                with archive.open(info) as member:
                    shape, dtype, _ = _npy_header(member, f"{path} [{key[:80]}]")
                total += int(np.prod(shape, dtype=object)) * dtype.itemsize
                if total > MAX_ARRAY_BYTES:
                    raise ValueError(f"{path}: its arrays hold {total / 2**30:.3g} GiB, over the "
                                     f"{MAX_ARRAY_BYTES / 2**30:.0f} GiB limit; the file is corrupt or too large")
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if keys is not None and key not in keys:
                    continue
                with archive.open(info) as member:
                    out[key] = _read_npy(member, f"{path} [{key[:80]}]")
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path}: corrupt .npz archive ({err})") from err
    return out
