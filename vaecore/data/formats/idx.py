"""MNIST-style IDX files: the bundled MNIST (md5-checked), Fashion-MNIST and any folder of the four IDX
files (KMNIST, EMNIST, ...). Validation is the last 10,000 training images (10% for small sets);
the test split is the t10k files. Images stay uint8 (decoded files are cached per process by md5)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from vaecore.data.datasets import MNIST_DIR, Dataset, holdout_size
from vaecore.data.formats.registry import LoadRequest, register_format

__all__ = ["IDX_FILES", "KNOWN_MD5", "MAX_IDX_BYTES", "decode_idx_cached", "file_md5", "read_idx"]

IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# role -> (md5 of the .gz file, md5 of the decompressed file)
KNOWN_MD5: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        "train_images": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train_labels": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "test_images": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "test_labels": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        "train_images": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train_labels": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
        "test_images": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
        "test_labels": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 8 * 2**30  # the data an IDX header may claim (the arrays' limit)
_FILES = ", ".join(IDX_FILES.values())


def read_idx(path: str | Path) -> np.ndarray:
    """Decode one IDX file (gzip or raw) to uint8: images `(N, rows, cols)` or labels `(N,)`. The header is
    read first and the size it claims checked (at most `MAX_IDX_BYTES`) before the data is read or
    decompressed, so a forged header or a gzip bomb allocates nothing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{path}: too short for an IDX header ({len(head)} bytes)")
            magic, n = (int(v) for v in np.frombuffer(head, dtype=">i4", count=2))
            if magic == IDX_IMAGES_MAGIC:
                more = f.read(8)
                if len(more) < 8:
                    raise ValueError(f"{path}: too short for an IDX image header ({8 + len(more)} bytes)")
                rows, cols = (int(v) for v in np.frombuffer(more, dtype=">i4", count=2))
                dims, header = (n, rows, cols), 16
            elif magic == IDX_LABELS_MAGIC:
                dims, header = (n,), 8
            else:
                raise ValueError(
                    f"{path}: bad IDX magic number {magic} (expected {IDX_IMAGES_MAGIC} for images or "
                    f"{IDX_LABELS_MAGIC} for labels); is this an uncompressed or .gz IDX file?"
                )
            if any(d < 0 for d in dims) or (len(dims) == 3 and (rows < 1 or cols < 1)):
                raise ValueError(f"{path}: invalid IDX sizes {dims}")
            size = 1
            for d in dims:
                size *= d
            if size > MAX_IDX_BYTES:
                raise ValueError(f"{path}: the IDX header claims {dims} ({size / 2**30:.3g} GiB), over the "
                                 f"{MAX_IDX_BYTES // 2**30} GiB limit; the file is corrupt or not an image set")
            raw = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) != size:
        what = "truncated" if len(raw) < size else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {what}: header says {dims} -> {header + size} bytes, file has "
            f"{header + len(raw)}{' or more' if len(raw) > size else ''}"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


@functools.lru_cache(maxsize=64)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def file_md5(path: Path) -> str:
    """md5 of a file, cached per (path, size, modification time)."""
    stat = path.stat()
    return _md5_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=12)
def decode_idx_cached(path: str, md5: str) -> np.ndarray:
    """Decoded IDX file, cached per (path, md5) so reloading the same data in-process is fast (read-only)."""
    array = read_idx(path)
    array.flags.writeable = False
    return array


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files in `folder` (names as in MNIST, .gz or not; '.idx' and prefixed variants too)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data folder not found: {folder}; pass --data-dir pointing at a folder with the four IDX files"
        )
    found: dict[str, Path] = {}
    missing = []
    for role, base in IDX_FILES.items():
        dotted = base.replace("-idx", ".idx")
        candidates = [folder / n for n in (base + ".gz", base, dotted + ".gz", dotted)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            prefixed = sorted(folder.glob(f"*-{base}.gz")) or sorted(folder.glob(f"*-{base}"))
            path = prefixed[0] if len(prefixed) == 1 else None
        if path is None:
            missing.append(base + "[.gz]")
        else:
            found[role] = path
    if missing:
        raise FileNotFoundError(
            f"{folder}: missing IDX file(s) {', '.join(missing)}; pass --data-dir pointing at a folder with "
            f"the four IDX files ({_FILES}, optionally .gz)"
        )
    return found


def load_idx_folder(folder: Path, name: str, limit: int | None,
                    md5s: dict[str, tuple[str, str]] | None) -> Dataset:
    """The four IDX files of `folder` as a Dataset (md5-checked against `md5s` when given)."""
    paths = find_idx_files(folder)
    digests = {role: file_md5(path) for role, path in paths.items()}
    if md5s is not None:
        for role, path in paths.items():
            expected = md5s[role][0 if _is_gzip(path) else 1]
            if digests[role] != expected:
                raise ValueError(
                    f"{path}: md5 mismatch for {name} (expected {expected}, got {digests[role]}); "
                    "the file is corrupt or not the original"
                )
    arrays = {role: decode_idx_cached(str(path), digests[role]) for role, path in paths.items()}
    for role, path in paths.items():
        want = 3 if role.endswith("images") else 1
        if arrays[role].ndim != want:
            kind, magic = ("images", IDX_IMAGES_MAGIC) if want == 3 else ("labels", IDX_LABELS_MAGIC)
            raise ValueError(f"{path}: expected IDX {kind} (magic {magic}) for {IDX_FILES[role]}")
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise ValueError(f"{folder}: {split} has {n_img} images but {n_lab} labels")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise ValueError(
            f"{folder}: train images are {arrays['train_images'].shape[1:]}, "
            f"test images {arrays['test_images'].shape[1:]}"
        )
    n = len(arrays["train_images"])
    if n < 2:
        raise ValueError(f"{folder}: need at least 2 training images to hold out a validation split, got {n}")
    cut = n - holdout_size(n)
    stop = cut if limit is None else min(cut, limit)
    images, labels = arrays["train_images"][:, None], arrays["train_labels"].astype(np.int64)
    return Dataset(
        name,
        images[:stop], labels[:stop],
        images[cut:], labels[cut:],
        arrays["test_images"][:, None], arrays["test_labels"].astype(np.int64),
    )


def _load_mnist(req: LoadRequest) -> Dataset:
    folder = Path(req.data_dir).expanduser() if req.data_dir is not None else MNIST_DIR
    return load_idx_folder(folder, "mnist", req.limit, KNOWN_MD5["mnist"])


def _load_fashion(req: LoadRequest) -> Dataset:
    data_dir = req.data_dir
    if data_dir is None:
        from vaecore.data import datasets

        bundled = datasets.DATA_ROOT / "fashion-mnist"
        if not bundled.is_dir():
            raise FileNotFoundError(
                "Fashion-MNIST is not bundled: pass --data-dir pointing at a folder with the four IDX "
                f"files ({', '.join(n + '.gz' for n in IDX_FILES.values())}), or put them in {bundled}"
            )
        data_dir = str(bundled)
    return load_idx_folder(Path(data_dir).expanduser(), "fashion-mnist", req.limit, KNOWN_MD5["fashion-mnist"])


def _load_idx(req: LoadRequest) -> Dataset:
    if req.data_dir is None:
        raise FileNotFoundError(
            f"dataset 'idx' needs --data-dir pointing at a folder with the four IDX files ({_FILES}, optionally .gz)"
        )
    return load_idx_folder(Path(req.data_dir).expanduser(), "idx", req.limit, None)


register_format("mnist", "MNIST digits, 28x28 grayscale, bundled in data/mnist "
                "(50k train / 10k val / 10k test)", _load_mnist)
register_format("fashion-mnist", "Fashion-MNIST, 28x28 grayscale; needs --data-dir with the four IDX files",
                _load_fashion, aliases=("fashion_mnist", "fashionmnist", "fmnist"))
register_format("idx", "any folder (--data-dir) of the four MNIST-style IDX files, e.g. KMNIST, EMNIST", _load_idx)
