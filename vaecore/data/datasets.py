"""Datasets: three splits of images kept in their source dtype, labels, and ground-truth factors; the
one loading entry point `load_dataset`; minibatch index iteration.

Images stay as they come (uint8 for 8-bit data, float32 in [0, 1] otherwise) in an `ImageStore` —
in memory, or in the on-disk cache that formats decode into (`vaecore.data.cache`) — and become
float32 in [0, 1] per batch (`take`, `batches`), where they are used; `x_train` / `x_val` / `x_test`
and `split()` give a whole split as float32 for small data. A format is one module in
`vaecore/data/formats/` that registers itself (`register_format`); `load_dataset` looks the name up
there, applies the explicit transform (`Preprocess`: image size, channels) and records everything
needed to rebuild the same data in `Dataset.source` (written to train.json).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaecore.data.factors import Factors
from vaecore.data.preprocess import Preprocess
from vaecore.data.storage import ImageStore, as_store, to_unit
from vaecore.utils import PROJECT_ROOT

__all__ = [
    "Dataset",
    "MNIST_DIR",
    "SPLITS",
    "STORAGE",
    "epoch_permutation",
    "holdout_rows",
    "iterate_minibatches",
    "load_dataset",
]

DATA_ROOT = PROJECT_ROOT / "data"
MNIST_DIR = DATA_ROOT / "mnist"
SPLITS = ("train", "val", "test")
STORAGE = ("auto", "memory", "disk")
MNIST_VAL_SIZE = 10_000
MAX_FLOAT_BYTES = 4 * 2**30  # x_train & co. refuse to build a float32 copy of a split larger than this
AUTO_MEMORY_BYTES = 2 * 2**30  # storage="auto" reads a cached dataset into memory up to this size
Progress = Callable[[float, str], None] | bool


def __getattr__(name: str) -> Any:
    if name == "DATASETS":  # name -> description of every registered format, for help texts
        from vaecore.data.formats import FORMATS

        return {("hf://OWNER/NAME" if f.name == "hf" else f.name): f.description for f in FORMATS.values()}
    raise AttributeError(name)


class Dataset:
    """Three splits of one image dataset: images (`ImageStore`, source dtype), labels (int64 or None),
    and, for data with ground-truth factors, the factor classes of every image (`factors`)."""

    def __init__(self, name: str, x_train: Any, y_train: Any, x_val: Any, y_val: Any, x_test: Any, y_test: Any,
                 source: dict[str, Any] | None = None, *, factors: Factors | None = None,
                 factor_classes: dict[str, np.ndarray] | None = None, classes: Sequence[str] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.name = name
        self.source = source
        self.images: dict[str, ImageStore] = {}
        self.labels: dict[str, Tensor | None] = {}
        shape = None
        for split, x, y in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
            if len(getattr(x, "shape", ())) != 4:
                raise ValueError(f"Dataset {name!r}: x_{split} must be (N, C, H, W), got {tuple(x.shape)}")
            store = as_store(x)
            if shape is not None and store.image_shape != shape:
                raise ValueError(f"Dataset {name!r}: x_{split} has image shape {store.image_shape}, x_train has "
                                 f"{shape}")
            shape = store.image_shape
            labels = None if y is None else torch.as_tensor(y).to(torch.int64)
            if labels is not None and tuple(labels.shape) != (len(store),):
                raise ValueError(f"Dataset {name!r}: y_{split} has shape {tuple(labels.shape)}, expected "
                                 f"({len(store)},)")
            self.images[split], self.labels[split] = store, labels
        self.factors = factors
        self._factor_classes = dict(factor_classes or {})
        if factors is not None:
            for split in SPLITS:
                classes_ = self._factor_classes.get(split)
                if classes_ is None or classes_.shape != (len(self.images[split]), len(factors.names)):
                    raise ValueError(f"Dataset {name!r}: factor classes of {split} must be (N, {len(factors.names)})")
        self.classes = list(classes) if classes is not None else None
        self.info: dict[str, Any] = dict(info or {})

    # whole splits as float32 (small data) -------------------------------------------------------
    def _float(self, split: str) -> Tensor:
        store = self.images[split]
        need = len(store) * int(np.prod(store.image_shape)) * 4
        if need > MAX_FLOAT_BYTES:
            raise ValueError(f"the {split} split of {self.name!r} would take {need / 2**30:.1f} GiB as float32; "
                             "read it in batches (Dataset.batches / Dataset.take) instead")
        return to_unit(store.take(slice(None)))

    @property
    def x_train(self) -> Tensor:
        """The training images as float32 in [0, 1] (a new tensor for 8-bit data)."""
        return self._float("train")

    @property
    def x_val(self) -> Tensor:
        return self._float("val")

    @property
    def x_test(self) -> Tensor:
        return self._float("test")

    @property
    def y_train(self) -> Tensor | None:
        return self.labels["train"]

    @property
    def y_val(self) -> Tensor | None:
        return self.labels["val"]

    @property
    def y_test(self) -> Tensor | None:
        return self.labels["test"]

    def split(self, name: str) -> tuple[Tensor, Tensor | None]:
        """`(images as float32, labels)` of the split "train", "val" or "test"."""
        self._check_split(name)
        return self._float(name), self.labels[name]

    # batches ---------------------------------------------------------------------------------
    def take(self, split: str, rows: Any, device: torch.device | str | None = None) -> Tensor:
        """The images at `rows` of `split` as float32 in [0, 1] on `device` (moved as uint8, then converted)."""
        self._check_split(split)
        x = self.images[split].take(rows)
        if device is not None:
            x = x.to(device, non_blocking=x.device.type == "cpu" and x.is_pinned())
        return to_unit(x)

    def batches(self, split: str, batch_size: int, device: torch.device | str | None = None,
                limit: int | None = None) -> Iterator[Tensor]:
        """The images of `split` (its first `limit`) in order, as float32 batches on `device`."""
        n = len(self.images[split]) if limit is None else min(limit, len(self.images[split]))
        for start in range(0, n, batch_size):
            yield self.take(split, slice(start, min(start + batch_size, n)), device)

    def size(self, split: str) -> int:
        """Number of images in `split`."""
        self._check_split(split)
        return len(self.images[split])

    # factors ---------------------------------------------------------------------------------
    def factor_classes(self, split: str) -> Tensor:
        """(N, K) int64: the class of each ground-truth factor of each image of `split` (see `factors`)."""
        self._check_split(split)
        if self.factors is None:
            raise ValueError(f"dataset {self.name!r} has no ground-truth factors (dsprites and celeba do)")
        return torch.from_numpy(self._factor_classes[split])

    def factor_values(self, split: str) -> Tensor:
        """(N, K) float64: the value of each ground-truth factor of each image of `split`."""
        return torch.from_numpy(self.factors.to_values(self.factor_classes(split).numpy()))  # type: ignore[union-attr]

    # facts -------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape `(C, H, W)`."""
        return self.images["train"].image_shape

    @property
    def num_classes(self) -> int | None:
        """Number of classes (the class names' count, else largest label + 1), or None for unlabelled data."""
        if self.classes:
            return len(self.classes)
        labels = [y for y in self.labels.values() if y is not None and y.numel() > 0]
        if not labels:
            return None
        return int(max(int(y.max()) for y in labels)) + 1

    @property
    def nbytes(self) -> int:
        """Bytes the images of the three splits take in their source dtype."""
        return sum(s.nbytes for s in self.images.values())

    def _check_split(self, name: str) -> None:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of 'train', 'val', 'test'")

    def with_images(self, images: dict[str, ImageStore]) -> Dataset:
        """A new Dataset with other stores for the same images (e.g. read into memory or moved)."""
        return Dataset(self.name, images["train"], self.labels["train"], images["val"], self.labels["val"],
                       images["test"], self.labels["test"], self.source, factors=self.factors,
                       factor_classes=self._factor_classes, classes=self.classes, info=self.info)

    def to(self, device: torch.device | str) -> Dataset:
        """A new Dataset with every split in memory on `device` (this one is left as it is)."""
        return self.with_images({s: store.to(device) for s, store in self.images.items()})

    def in_memory(self) -> Dataset:
        """A new Dataset with every split read into memory (itself when it is in memory already)."""
        if all(store.in_memory for store in self.images.values()):
            return self
        return self.with_images({s: store.to_memory() for s, store in self.images.items()})

    def __repr__(self) -> str:
        where = "memory" if all(s.in_memory for s in self.images.values()) else "disk"
        return (f"Dataset(name={self.name!r}, shape={self.shape}, train={len(self.images['train'])}, "
                f"val={len(self.images['val'])}, test={len(self.images['test'])}, num_classes={self.num_classes}, "
                f"dtype={str(self.images['train'].dtype).replace('torch.', '')}, storage={where}, "
                f"device={self.images['train'].device})")


def load_dataset(name: str, data_dir: str | None = None, limit: int | None = None, seed: int = 0, *,
                 image_size: int | None = None, channels: int | None = None, storage: str = "auto",
                 progress: Progress = True) -> Dataset:
    """Load a dataset by format name (`vaecore.data.formats.FORMATS`), a `.npz`/`.npy` path, or `hf://owner/name`.

    `data_dir` points at the files where a dataset is not bundled; `limit` keeps the first `limit` training
    images (after the validation split); `seed` fixes every permutation used to split; `image_size` resizes
    (shorter side) and centre-crops to a square; `channels` converts to 1 (grey) or 3 (RGB) — without it,
    data of mixed channels is refused; `storage` keeps a cached dataset on disk ("disk"), reads it into
    memory ("memory"), or picks by size ("auto"); `progress` shows tqdm bars (True) or calls
    `progress(fraction, message)`.
    """
    from vaecore.data.formats import LoadRequest, resolve_format

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float) or int(limit) != limit
                              or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {list(STORAGE)}, got {storage!r}")
    pre = Preprocess(image_size=image_size, channels=channels)
    fmt, request = resolve_format(str(name).strip(), data_dir)
    request = LoadRequest(**{**request.__dict__, "limit": None if limit is None else int(limit), "seed": int(seed),
                             "preprocess": pre, "progress": progress})
    dataset = fmt.load(request)
    if not dataset.info.get("preprocessed"):
        dataset = _preprocess_in_memory(dataset, pre)
    dataset = _place(dataset, storage)
    dataset.source = {"name": request.recorded_name, "data_dir": request.recorded_dir, "limit": request.limit,
                      "seed": request.seed, "image_size": image_size, "channels": channels}
    return dataset


def _preprocess_in_memory(dataset: Dataset, pre: Preprocess) -> Dataset:
    """Apply the transform to a dataset a format loaded into memory without it (IDX, arrays, digits, Hub)."""
    if pre.is_identity_for(dataset.shape):
        return dataset
    from vaecore.data.preprocess import transform_array

    images = {}
    for split, store in dataset.images.items():
        array = store.take(slice(None)).numpy()
        images[split] = as_store(transform_array(array, pre, what=f"{dataset.name} [{split}]"))
    out = dataset.with_images(images)
    out.info = {**dataset.info, "transform": pre.to_dict()}
    return out


def _place(dataset: Dataset, storage: str) -> Dataset:
    """Read a cached dataset into memory when asked, or ("auto") when it is small and this is one process."""
    if storage == "disk" or all(store.in_memory for store in dataset.images.values()):
        return dataset
    if storage == "memory" or (dataset.nbytes <= min(AUTO_MEMORY_BYTES, _available_memory() // 4)
                               and int(os.environ.get("WORLD_SIZE", "1")) == 1):
        return dataset.in_memory()
    return dataset


def _available_memory() -> int:
    """Bytes this process may still take: the least of the system's available memory, its memory cgroup's
    room (limit − usage, cgroup v2 or v1) and its address-space limit (RLIMIT_AS − VmSize)."""
    room = [_meminfo_available()]
    cgroup = cgroup_room()
    if cgroup is not None:
        room.append(cgroup)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        room.append(soft - _status_bytes("VmSize:"))
    return max(0, min(room))


def cgroup_room(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`);
    None when it has no limit or none can be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":
            folders, files = (root / rel, root / "unified" / rel), ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            folders, files = (root / "memory" / rel,), ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        for folder in folders:
            try:
                limit = (folder / files[0]).read_text().strip()
                if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as a huge number
                    break
                return int(limit) - int((folder / files[1]).read_text())
            except (OSError, ValueError):
                continue
    return None


def _meminfo_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def _status_bytes(key: str) -> int:
    """A field of /proc/self/status in bytes (0 when unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def holdout_size(n: int) -> int:
    """Validation (or test) hold-out: 10,000 for MNIST-sized sets, 10% for smaller ones."""
    return MNIST_VAL_SIZE if n >= 5 * MNIST_VAL_SIZE else max(1, n // 10)


def holdout_rows(n: int, seed: int, *, test: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of (train, val, test) for a pool of `n` images split by seed: a random test hold-out (when
    `test`), then the validation hold-out from the end of what remains."""
    perm = np.arange(n)
    test_rows = np.zeros(0, dtype=np.int64)
    if test:
        if n < 3:
            raise ValueError(f"need at least 3 images to hold out validation and test, got {n}")
        perm = np.random.default_rng(seed).permutation(n)
        n_test = holdout_size(n)
        test_rows, perm = perm[:n_test], perm[n_test:]
    if len(perm) < 2:
        raise ValueError(f"need at least 2 training images to hold out a validation split, got {len(perm)}")
    cut = len(perm) - holdout_size(len(perm))
    return perm[:cut].astype(np.int64), perm[cut:].astype(np.int64), test_rows.astype(np.int64)


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
