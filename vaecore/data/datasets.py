"""Datasets held as in-memory tensors, and minibatch index iteration.

Every loader returns a `Dataset` of float32 images `(N, C, H, W)` in `[0, 1]` (8-bit data is `k / 255`)
with int64 labels or `None`. Sources: the bundled MNIST IDX files (md5-checked), Fashion-MNIST and any
other folder of the four MNIST-style IDX files, sklearn's 8x8 digits, `.npz`/`.npy` arrays, and Hugging
Face Hub dataset repos (`hf://owner/name`, through the hub cache so they work offline once cached).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaecore.data.arrays import images_from_array as _images_from_array
from vaecore.data.arrays import labels_from_array as _labels_from_array
from vaecore.data.arrays import read_arrays as _read_arrays
from vaecore.utils import PROJECT_ROOT

__all__ = [
    "DATASETS",
    "Dataset",
    "MNIST_DIR",
    "epoch_permutation",
    "iterate_minibatches",
    "load_dataset",
    "read_idx",
]

DATA_ROOT = PROJECT_ROOT / "data"
MNIST_DIR = DATA_ROOT / "mnist"

DATASETS: dict[str, str] = {
    "mnist": "MNIST digits, 28x28 grayscale, bundled in data/mnist (50k train / 10k val / 10k test)",
    "fashion-mnist": "Fashion-MNIST, 28x28 grayscale; needs --data-dir with the four IDX files",
    "digits": "sklearn's 8x8 digits, 16 gray levels (1197 train / 300 val / 300 test)",
    "idx": "any folder (--data-dir) of the four MNIST-style IDX files, e.g. KMNIST, EMNIST",
    "array": "a .npz/.npy file (name it directly, or 'array' with --data-dir FILE): uint8 or [0,1] floats",
    "hf://OWNER/NAME": "a Hugging Face Hub dataset repo holding the four IDX files or one .npz/.npy",
}

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}

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
MNIST_VAL_SIZE = 10_000
DIGITS_VAL_SIZE = 300
DIGITS_TEST_SIZE = 300

_GZIP_MAGIC = b"\x1f\x8b"
_HUB_PATTERNS = ["*-ubyte", "*-ubyte.gz", "*.npz", "*.npy"]
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(repr=False)
class Dataset:
    """Three splits of one image dataset, as tensors already in memory."""

    name: str
    x_train: Tensor
    y_train: Tensor | None
    x_val: Tensor
    y_val: Tensor | None
    x_test: Tensor
    y_test: Tensor | None
    source: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        shape = None
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise ValueError(
                    f"Dataset {self.name!r}: x_{split} must be (N, C, H, W), got {tuple(x.shape)}"
                )
            if shape is not None and tuple(x.shape[1:]) != shape:
                raise ValueError(
                    f"Dataset {self.name!r}: x_{split} has image shape {tuple(x.shape[1:])}, "
                    f"x_train has {shape}"
                )
            shape = tuple(x.shape[1:])
            if y is not None and tuple(y.shape) != (x.shape[0],):
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} has shape {tuple(y.shape)}, expected ({x.shape[0]},)"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape `(C, H, W)`."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int | None:
        """Number of classes (largest label + 1 over all splits), or None for unlabelled data."""
        labels = [y for y in (self.y_train, self.y_val, self.y_test) if y is not None and y.numel() > 0]
        if not labels:
            return None
        return int(max(int(y.max()) for y in labels)) + 1

    def split(self, name: str) -> tuple[Tensor, Tensor | None]:
        """`(images, labels)` of the split "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected one of 'train', 'val', 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def to(self, device: torch.device | str) -> Dataset:
        """A new Dataset with every tensor on `device` (this one is left as it is)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Dataset(**{k: v.to(device) if isinstance(v, Tensor) else v for k, v in values.items()})

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, shape={self.shape}, train={len(self.x_train)}, "
            f"val={len(self.x_val)}, test={len(self.x_test)}, num_classes={self.num_classes}, "
            f"device={self.x_train.device})"
        )


def load_dataset(name: str, data_dir: str | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by name (see `DATASETS`), a `.npz`/`.npy` path, or `hf://owner/name`.

    `data_dir` points at the files where a dataset is not bundled; `limit` keeps the first `limit` training
    images (after the validation split); `seed` fixes every permutation used to split.
    """
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    key = str(name).strip()
    low = _ALIASES.get(key.lower(), key.lower())
    path = None
    if low.endswith((".npz", ".npy")) and not low.startswith("hf://"):
        path = Path(key).expanduser()
        if data_dir is not None and not path.is_absolute() and not path.exists():
            path = Path(data_dir).expanduser() / path
    dataset = _load_named(key, low, path, data_dir, limit, seed)
    folder = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    recorded = str(path.resolve()) if path is not None else (key if low.startswith("hf://") else low)
    dataset.source = {"name": recorded, "data_dir": folder, "limit": limit, "seed": seed}
    return dataset


def _load_named(key: str, low: str, path: Path | None, data_dir: str | None, limit: int | None,
                seed: int) -> Dataset:
    if low.startswith("hf://"):
        return _load_hub(key, data_dir, limit, seed)
    if path is not None:
        return _load_array_file(path, key, limit, seed)
    if low == "array":
        if data_dir is None:
            raise FileNotFoundError("dataset 'array' needs --data-dir pointing at a .npz or .npy file")
        return _load_array_file(Path(data_dir).expanduser(), str(data_dir), limit, seed)
    if low == "mnist":
        folder = Path(data_dir).expanduser() if data_dir is not None else MNIST_DIR
        return _load_idx_folder(folder, "mnist", limit, KNOWN_MD5["mnist"])
    if low == "fashion-mnist":
        if data_dir is None:
            bundled = DATA_ROOT / "fashion-mnist"
            if not bundled.is_dir():
                raise FileNotFoundError(
                    "Fashion-MNIST is not bundled: pass --data-dir pointing at a folder with the four IDX "
                    f"files ({', '.join(n + '.gz' for n in IDX_FILES.values())}), or put them in {bundled}"
                )
            data_dir = str(bundled)
        return _load_idx_folder(
            Path(data_dir).expanduser(), "fashion-mnist", limit, KNOWN_MD5["fashion-mnist"]
        )
    if low == "idx":
        if data_dir is None:
            raise FileNotFoundError(
                "dataset 'idx' needs --data-dir pointing at a folder with the four IDX files "
                f"({', '.join(IDX_FILES.values())}, optionally .gz)"
            )
        return _load_idx_folder(Path(data_dir).expanduser(), "idx", limit, None)
    if low == "digits":
        return _load_digits(limit, seed)
    raise ValueError(
        f"unknown dataset {key!r}; valid names: {', '.join(DATASETS)} "
        "(or a path ending in .npz/.npy, or hf://owner/name)"
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Decode one IDX file (gzip or raw) to uint8: images `(N, rows, cols)` or labels `(N,)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic, n = (int(v) for v in np.frombuffer(raw, dtype=">i4", count=2))
    if magic == IDX_IMAGES_MAGIC:
        if len(raw) < 16:
            raise ValueError(f"{path}: too short for an IDX image header ({len(raw)} bytes)")
        rows, cols = (int(v) for v in np.frombuffer(raw, dtype=">i4", count=2, offset=8))
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
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {what}: header says {dims} -> {expected} bytes, file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def iterate_minibatches(
    x: Tensor | int,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[Tensor]:
    """Yield index tensors (on x's device) covering `range(len(x))` once, in batches of `batch_size`.

    Index into the in-memory tensors with them (`x[idx]`): no per-item Dataset/DataLoader overhead.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, device = (x, torch.device("cpu")) if isinstance(x, int) else (x.shape[0], x.device)
    if shuffle:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=gen_device).to(device)
    else:
        order = torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The permutation of `range(n)` for epoch `epoch` of a run seeded `seed` (CPU int64).

    It depends only on (n, seed, epoch), so a resumed trainer can rebuild it and skip the batches done.
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch)]).generate_state(1, np.uint64)
    generator = torch.Generator().manual_seed(int(state[0]))
    return torch.randperm(n, generator=generator)


def _holdout_size(n: int) -> int:
    """Validation (or test) hold-out: 10,000 for MNIST-sized sets, 10% for smaller ones."""
    return MNIST_VAL_SIZE if n >= 5 * MNIST_VAL_SIZE else max(1, n // 10)


@functools.lru_cache(maxsize=64)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _file_md5(path: Path) -> str:
    stat = path.stat()
    return _md5_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=12)
def _decode_idx_cached(path: str, md5: str) -> np.ndarray:
    """Decoded IDX file, cached per (path, md5) so reloading the same data in-process is fast."""
    array = read_idx(path)
    array.flags.writeable = False
    return array


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _find_idx_files(folder: Path) -> dict[str, Path]:
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
            f"the four IDX files ({', '.join(IDX_FILES.values())}, optionally .gz)"
        )
    return found


def _load_idx_folder(
    folder: Path, name: str, limit: int | None, md5s: dict[str, tuple[str, str]] | None
) -> Dataset:
    paths = _find_idx_files(folder)
    digests = {role: _file_md5(path) for role, path in paths.items()}
    if md5s is not None:
        for role, path in paths.items():
            expected = md5s[role][0 if _is_gzip(path) else 1]
            if digests[role] != expected:
                raise ValueError(
                    f"{path}: md5 mismatch for {name} (expected {expected}, got {digests[role]}); "
                    "the file is corrupt or not the original"
                )
    arrays = {role: _decode_idx_cached(str(path), digests[role]) for role, path in paths.items()}
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
    cut = n - _holdout_size(n)
    stop = cut if limit is None else min(cut, limit)
    return Dataset(
        name=name,
        x_train=_u8_images(arrays["train_images"][:stop]),
        y_train=_labels(arrays["train_labels"][:stop]),
        x_val=_u8_images(arrays["train_images"][cut:]),
        y_val=_labels(arrays["train_labels"][cut:]),
        x_test=_u8_images(arrays["test_images"]),
        y_test=_labels(arrays["test_labels"]),
    )


def _u8_images(array: np.ndarray) -> Tensor:
    x = array[:, None].astype(np.float32)
    x /= np.float32(255)
    return torch.from_numpy(x)


def _labels(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array.astype(np.int64))


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None]
    x.flags.writeable = False
    return x, bunch.target.astype(np.int64)


def _load_digits(limit: int | None, seed: int) -> Dataset:
    x, y = _digits_arrays()
    perm = np.random.default_rng(seed).permutation(len(x))
    n_train = len(x) - DIGITS_VAL_SIZE - DIGITS_TEST_SIZE
    train, val, test = (
        perm[:n_train],
        perm[n_train : n_train + DIGITS_VAL_SIZE],
        perm[n_train + DIGITS_VAL_SIZE :],
    )
    if limit is not None:
        train = train[:limit]
    return Dataset(
        name="digits",
        x_train=torch.from_numpy(x[train]),
        y_train=torch.from_numpy(y[train]),
        x_val=torch.from_numpy(x[val]),
        y_val=torch.from_numpy(y[val]),
        x_test=torch.from_numpy(x[test]),
        y_test=torch.from_numpy(y[test]),
    )


def _pick_splits(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray | None]:
    """Map the arrays of a file onto x/y for train, val, test (val and test may be None)."""
    for x_key, y_key in (("x_train", "y_train"), ("x", "y"), ("images", "labels")):
        if x_key in arrays:
            suffix = x_key[1:] if x_key.startswith("x_") else ""
            picked = {"x_train": arrays[x_key], "y_train": arrays.get(y_key)}
            if suffix:
                for split in ("val", "test"):
                    picked[f"x_{split}"] = arrays.get(f"x_{split}")
                    picked[f"y_{split}"] = arrays.get(f"y_{split}")
            return picked
    if len(arrays) == 1:
        return {"x_train": next(iter(arrays.values())), "y_train": None}
    raise ValueError(
        f"{path}: cannot find the images among keys {sorted(arrays)}; use x_train/y_train/x_test/y_test, "
        "x/y, images/labels, or a file holding a single array"
    )


def _load_array_file(path: Path, name: str, limit: int | None, seed: int) -> Dataset:
    picked = _pick_splits(_read_arrays(path), path)
    splits: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for split in ("train", "val", "test"):
        x = picked.get(f"x_{split}")
        if x is None:
            if picked.get(f"y_{split}") is not None:
                raise ValueError(f"{path}: y_{split} given without x_{split}")
            continue
        images = _images_from_array(x, f"{path} [x_{split}]")
        splits[split] = (
            images,
            _labels_from_array(picked.get(f"y_{split}"), len(images), f"{path} [y_{split}]"),
        )
    labelled = {split: y is not None for split, (_, y) in splits.items()}
    if len(set(labelled.values())) > 1:
        raise ValueError(f"{path}: labels must be given for every split or none (labelled: {labelled})")
    shapes = {split: x.shape[1:] for split, (x, _) in splits.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{path}: splits have different image shapes {shapes}")

    rng = np.random.default_rng(seed)
    x_train, y_train = splits["train"]
    if "test" not in splits:
        if len(x_train) < 3:
            raise ValueError(
                f"{path}: need at least 3 images to hold out validation and test, got {len(x_train)}"
            )
        perm = rng.permutation(len(x_train))
        n_test = _holdout_size(len(x_train))
        test, rest = perm[:n_test], perm[n_test:]
        splits["test"] = x_train[test], None if y_train is None else y_train[test]
        x_train, y_train = x_train[rest], None if y_train is None else y_train[rest]
    if "val" not in splits:
        if len(x_train) < 2:
            raise ValueError(f"{path}: need at least 2 training images to hold out a validation split")
        cut = len(x_train) - _holdout_size(len(x_train))
        splits["val"] = x_train[cut:], None if y_train is None else y_train[cut:]
        x_train, y_train = x_train[:cut], None if y_train is None else y_train[:cut]
    if limit is not None and limit < len(x_train):
        x_train, y_train = x_train[:limit], None if y_train is None else y_train[:limit]

    def tensor(a: np.ndarray | None) -> Tensor | None:
        return None if a is None else torch.from_numpy(np.array(a, copy=True))

    return Dataset(
        name=name,
        x_train=tensor(x_train),
        y_train=tensor(y_train),
        x_val=tensor(splits["val"][0]),
        y_val=tensor(splits["val"][1]),
        x_test=tensor(splits["test"][0]),
        y_test=tensor(splits["test"][1]),
    )


def _parse_hub_name(spec: str) -> tuple[str, str]:
    """`hf://owner/name[/subfolder]` -> (repo_id, subfolder)."""
    parts = spec[len("hf://") :].split("/")
    if len(parts) < 2 or not all(_REPO_PART.fullmatch(p) for p in parts[:2]):
        raise ValueError(f"bad Hub dataset name {spec!r}; expected hf://owner/name (optionally /subfolder)")
    subfolder = "/".join(p for p in parts[2:] if p)
    if ".." in subfolder.split("/"):
        raise ValueError(f"bad Hub dataset name {spec!r}: '..' is not allowed in the subfolder")
    return f"{parts[0]}/{parts[1]}", subfolder


def _hub_cache_dir() -> str | None:
    """The hub cache as the environment says now (huggingface_hub reads it only once, at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.path.expandvars(os.environ[var]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return None


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _load_hub(spec: str, data_dir: str | None, limit: int | None, seed: int) -> Dataset:
    repo_id, subfolder = _parse_hub_name(spec)
    if data_dir is not None:
        return _load_folder(Path(data_dir).expanduser(), spec, limit, seed)
    from huggingface_hub import snapshot_download

    patterns = [f"{subfolder}/{p}" for p in _HUB_PATTERNS] if subfolder else _HUB_PATTERNS
    try:
        root = snapshot_download(
            repo_id,
            repo_type="dataset",
            cache_dir=_hub_cache_dir(),
            local_files_only=_hub_offline(),
            allow_patterns=patterns,
        )
    except Exception as err:  # the hub raises HTTP, offline, validation and OS errors alike
        raise FileNotFoundError(
            f"could not reach the Hugging Face Hub for {spec!r} and it is not in the local cache "
            f"({type(err).__name__}: {err}); pass a local folder with --data-dir"
        ) from err
    return _load_folder(Path(root) / subfolder, spec, limit, seed)


def _load_folder(folder: Path, name: str, limit: int | None, seed: int) -> Dataset:
    """Load a folder holding the four IDX files (at any depth) or a single .npz/.npy file."""
    if folder.is_file() and folder.suffix in (".npz", ".npy"):
        return _load_array_file(folder, name, limit, seed)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data folder not found: {folder}; pass --data-dir pointing at an existing folder"
        )
    idx_dirs = sorted({p.parent for p in folder.rglob(f"*{IDX_FILES['train_images']}*") if p.is_file()})
    if len(idx_dirs) == 1:
        return _load_idx_folder(idx_dirs[0], name, limit, None)
    arrays = sorted(p for p in folder.rglob("*") if p.suffix in (".npz", ".npy") and p.is_file())
    if not idx_dirs and len(arrays) == 1:
        return _load_array_file(arrays[0], name, limit, seed)
    found = [str(p.relative_to(folder)) for p in idx_dirs + arrays]
    if found:
        raise ValueError(
            f"{folder}: several candidate datasets ({', '.join(found)}); "
            "name one with hf://owner/name/subfolder or pass its path with --data-dir"
        )
    raise FileNotFoundError(f"{folder}: no IDX files and no .npz/.npy file found")
