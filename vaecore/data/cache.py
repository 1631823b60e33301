"""The on-disk dataset cache: a dataset is decoded once into `.npy` files that later runs, DDP ranks
and the app read by offset (`storage.FileStore`), with a manifest saying what it holds.

Where: `$VAECORE_CACHE`, else `$XDG_CACHE_HOME/vaecore/datasets` (`~/.cache/vaecore/datasets`); never
inside the user's data folder. One folder per (format, source, settings): `<format>-<name>-<key>/`
holds `manifest.json` (format, source, settings — the deterministic transform —, the fingerprint of
the source files: their count, total size and a hash of their relative paths, sizes and modification
times —, the parts and their shapes, what the build skipped or converted) and, per part, `images.npy`
plus small arrays (`labels.npy`, `factors.npy`, ...). A cache is used only when its manifest is there,
its fingerprint matches the files as they are now and every array file has the size the manifest
records; otherwise it is rebuilt.

Atomic and resumable: a build holds an exclusive lock (`.<folder>.lock`; a second process — another
DDP rank, the app — waits for it, then reuses its result), writes into `.<folder>.partial/` and
records its progress there (`progress.json`, written only after the arrays it counts are flushed);
the folder is renamed into place only after the manifest is written, so a half-built cache is never
read. An interrupted build resumes from its last recorded progress when the source is unchanged,
and starts over otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vaecore.data.storage import FileStore
from vaecore.utils import atomic_write_json

__all__ = ["CACHE_ENV", "CacheEntry", "CacheWriter", "ProgressBar", "cache_root", "fingerprint_files", "open_cache"]

CACHE_ENV = "VAECORE_CACHE"
CACHE_VERSION = 1
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def cache_root() -> Path:
    """The cache folder: `$VAECORE_CACHE`, else `$XDG_CACHE_HOME/vaecore/datasets` (`~/.cache/...`)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vaecore" / "datasets"


def fingerprint_files(files: Iterable[tuple[str, os.stat_result]]) -> dict[str, Any]:
    """Count, total size and a SHA-256 over (relative path, size, modification time) of source files."""
    digest = hashlib.sha256()
    count = total = 0
    for name, st in sorted(files, key=lambda item: item[0]):
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        count += 1
        total += st.st_size
    return {"files": count, "bytes": total, "sha256": digest.hexdigest()}


class ProgressBar:
    """Progress of a long task: a tqdm bar (`spec` True), calls of `spec(fraction, message)`, or nothing."""

    def __init__(self, spec: Any, total: int, desc: str) -> None:
        self.spec, self.total, self.desc, self.done = spec, max(int(total), 1), desc, 0
        self._bar = None
        if spec is True:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif callable(self.spec):
            self.spec(min(self.done / self.total, 1.0), self.desc)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class CacheEntry:
    """A complete cache folder: its manifest, its image stores and its small arrays."""

    def __init__(self, folder: Path, manifest: dict[str, Any], fresh: bool = False) -> None:
        self.folder = folder
        self.manifest = manifest
        self.fresh = fresh  # built by this call

    def summary(self) -> str:
        """One line: what the build skipped and converted (empty when nothing was)."""
        out = []
        skipped = self.manifest.get("skipped") or {}
        if skipped.get("bad"):
            out.append(f"skipped {skipped['bad']} unusable image file(s) ({skipped.get('summary', '')})")
        converted = self.manifest.get("converted") or {}
        if converted:
            out.append("converted " + ", ".join(f"{k}: {v}" for k, v in converted.items()))
        return "; ".join(out)

    @property
    def parts(self) -> dict[str, dict[str, Any]]:
        return self.manifest["parts"]

    def images(self, part: str) -> FileStore:
        return FileStore(self.folder / f"{part}.images.npy")

    def array(self, part: str, name: str) -> np.ndarray | None:
        """A small array of a part (labels, factor classes, ...), read into memory; None when absent."""
        path = self.folder / f"{part}.{name}.npy"
        if name not in self.parts[part].get("arrays", {}):
            return None
        return np.load(path, allow_pickle=False)


class CacheWriter:
    """What a build function writes through: image arrays (memory-mapped), small arrays, progress."""

    def __init__(self, folder: Path, progress: dict[str, Any]) -> None:
        self.folder = folder
        self.progress: dict[str, Any] = progress.get("state", {})
        self._fingerprint = progress.get("fingerprint")
        self._maps: dict[str, RowWriter] = {}
        self.parts: dict[str, dict[str, Any]] = progress.get("parts", {})
        self.info: dict[str, Any] = {}

    def check_space(self, need: int) -> None:
        """ValueError when the cache folder's disk has less than `need` bytes free (checked before writing)."""
        _check_space(self.folder.parent, need)

    def images(self, part: str, n: int, shape: tuple[int, int, int], dtype: Any = np.uint8) -> RowWriter:
        """The (n, C, H, W) image array of `part`, created empty or reopened to resume."""
        path = self.folder / f"{part}.images.npy"
        want = (int(n), *(int(s) for s in shape))
        writer = RowWriter.reopen(path, want, np.dtype(dtype)) if path.is_file() else \
            RowWriter.create(path, want, np.dtype(dtype))
        self._maps[part] = writer
        self.parts.setdefault(part, {"arrays": {}})
        return writer

    def array(self, part: str, name: str, data: np.ndarray) -> None:
        """Write a small array of `part` whole (labels, factor classes, ...)."""
        data = np.ascontiguousarray(data)
        if data.dtype.hasobject:
            raise TypeError("object arrays are never cached")
        path = self.folder / f"{part}.{name}.npy"
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, data, allow_pickle=False)
        os.replace(tmp, path)
        self.parts.setdefault(part, {"arrays": {}})["arrays"][name] = [list(data.shape), str(data.dtype)]

    def save_progress(self, state: dict[str, Any]) -> None:
        """Flush the image arrays, then record `state` (what the build needs to resume)."""
        for arr in self._maps.values():
            arr.flush()
        self.progress = state
        atomic_write_json(self.folder / PROGRESS, {"fingerprint": self._fingerprint, "state": state,
                                                   "parts": self.parts})

    def finish_part(self, part: str, rows: int) -> None:
        """Close the image array of `part`, keeping its first `rows` rows (the rest is dropped)."""
        arr = self._maps.pop(part)
        arr.flush()
        shape = arr.shape
        arr.close()
        path = self.folder / f"{part}.images.npy"
        if rows < shape[0]:
            _shrink_npy(path, rows)
        self.parts[part]["images"] = [int(rows), *(int(s) for s in shape[1:])]


class RowWriter:
    """Rows of a .npy file written in place by offset (`os.pwrite`, so the writer's resident memory stays at the
    rows it is given): `w[i] = image`, `w[a:b] = images`; `flush()` makes them durable."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
        self.path, self.shape, self.dtype, self.offset = path, shape, dtype, offset
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._fd = os.open(path, os.O_RDWR)

    @classmethod
    def create(cls, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> RowWriter:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            offset = f.tell()
            f.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        return cls(path, shape, dtype, offset)

    @classmethod
    def reopen(cls, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> RowWriter:
        from vaecore.data.arrays import npy_layout

        have, have_dtype, offset = npy_layout(path)
        if have != shape or have_dtype != dtype:
            raise RuntimeError(f"{path}: a partial build of another shape ({have}); delete {path.parent}")
        return cls(path, shape, dtype, offset)

    def __setitem__(self, key: int | slice, value: np.ndarray) -> None:
        start = key if isinstance(key, int) else (key.start or 0)
        data = np.ascontiguousarray(value, dtype=self.dtype)
        rows = 1 if isinstance(key, int) else (key.stop - start)
        if data.size * self.dtype.itemsize != rows * self.row_bytes or not 0 <= start <= start + rows <= self.shape[0]:
            raise ValueError(f"{self.path}: {data.shape} does not fit rows {start}..{start + rows} of {self.shape}")
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], self.offset + start * self.row_bytes + written)

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def open_cache(kind: str, source: str, settings: dict[str, Any], fingerprint: dict[str, Any],
               build: Callable[[CacheWriter], None], *, estimate_bytes: int = 0) -> CacheEntry:
    """The cache of `kind` data from `source` with `settings`, built by `build(writer)` unless a complete
    one with the same fingerprint exists. `estimate_bytes` (an upper bound, when known up front) is checked
    against free disk space before anything is written; `build` checks what it learns later itself."""
    root = cache_root()
    key = hashlib.sha256(json.dumps([CACHE_VERSION, kind, source, settings], sort_keys=True).encode()).hexdigest()
    name = f"{kind}-{_SLUG.sub('_', Path(source).name)[:40] or 'data'}-{key[:16]}"
    folder = root / name
    entry = _valid(folder, fingerprint)
    if entry is not None:
        return entry
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the dataset cache folder {root} ({err}); set {CACHE_ENV} to a writable "
                         "folder") from err
    with _lock(root / f".{name}.lock", name):
        entry = _valid(folder, fingerprint)  # another process may have built it while we waited
        if entry is not None:
            return entry
        _check_space(root, estimate_bytes)
        partial = root / f".{name}.partial"
        progress = _read_json(partial / PROGRESS) if partial.is_dir() else None
        if progress is None or progress.get("fingerprint") != fingerprint:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            progress = {"fingerprint": fingerprint}
        elif progress.get("state"):
            print(f"resuming the interrupted cache build in {partial}", file=sys.stderr)
        writer = CacheWriter(partial, progress)
        build(writer)
        manifest = {"version": CACHE_VERSION, "format": kind, "source": source, "settings": settings,
                    "fingerprint": fingerprint, "parts": writer.parts, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    **writer.info}
        manifest["file_bytes"] = {p.name: p.stat().st_size for p in partial.glob("*.npy")}
        atomic_write_json(partial / MANIFEST, manifest)
        (partial / PROGRESS).unlink(missing_ok=True)
        _fsync_folder(partial)
        old = root / f".{name}.old-{os.getpid()}"
        if folder.exists():
            os.replace(folder, old)
        os.replace(partial, folder)
        shutil.rmtree(old, ignore_errors=True)
        entry = _valid(folder, fingerprint)
        if entry is None:
            raise RuntimeError(f"the cache just built in {folder} does not validate; delete it and retry")
        entry.fresh = True
        return entry


def _valid(folder: Path, fingerprint: dict[str, Any]) -> CacheEntry | None:
    """The cache in `folder` when it is complete and matches `fingerprint`, else None."""
    manifest = _read_json(folder / MANIFEST)
    if manifest is None or manifest.get("version") != CACHE_VERSION or manifest.get("fingerprint") != fingerprint:
        return None
    for file, size in (manifest.get("file_bytes") or {}).items():
        path = folder / file
        if not path.is_file() or path.stat().st_size != size:
            return None
    return CacheEntry(folder, manifest)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _lock(path: Path, name: str) -> Iterator[None]:
    """An exclusive lock on `path`; says once on stderr when it waits for another process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish building the dataset cache {name} …", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _check_space(root: Path, need: int) -> None:
    free = shutil.disk_usage(root).free
    if need > free - 256 * 2**20:
        raise ValueError(f"building this dataset's cache needs up to {need / 2**30:.2f} GiB in {root}, which has "
                         f"{free / 2**30:.2f} GiB free; free some space or set {CACHE_ENV} to a folder with room")


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _shrink_npy(path: Path, rows: int) -> None:
    """Keep the first `rows` rows of a .npy file: rewrite the shape in its header (same length), truncate."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
        new_shape = (int(rows), *shape[1:])
        text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": new_shape})
        prefix = 10 if version == (1, 0) else 12
        room = offset - prefix - 1
        if len(text) > room:
            raise RuntimeError(f"{path}: cannot rewrite the header in place")
        header = (text + " " * (room - len(text)) + "\n").encode("latin1")
        f.seek(prefix)
        f.write(header)
        f.truncate(offset + int(rows) * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
