"""CIFAR-10 and CIFAR-100, the **binary** versions (`cifar-10-batches-bin/`, `cifar-100-binary/`), as
downloaded from https://www.cs.toronto.edu/~kriz/cifar.html: records of label byte(s) + 3,072 pixel bytes
(R, G, B planes of 32 × 32). Validation is the last 10,000 training images (10% of a smaller set) and
test the official test set (Pythae's protocol). The python versions are pickles and are refused, never unpickled.
CIFAR-100 labels are the 100 fine classes (the 20 coarse ones are cached as `coarse`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaecore.data.arraycache import ArrayPart, build_array_cache
from vaecore.data.cache import fingerprint_files
from vaecore.data.datasets import Dataset, holdout_size
from vaecore.data.formats.registry import LoadRequest, register_format
from vaecore.data.storage import SubsetStore

__all__ = ["LAYOUTS", "count_records", "find_folder", "read_cifar_file"]

PIXELS = 3 * 32 * 32
MAX_RECORDS = 1_000_000  # per file; a file claiming more is not CIFAR
HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"
LAYOUTS = {
    "cifar10": {"folder": "cifar-10-batches-bin", "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
                "test": ["test_batch.bin"], "labels": 1, "classes": 10, "names": "batches.meta.txt",
                "archive": "cifar-10-binary.tar.gz", "python": ("cifar-10-batches-py", "data_batch_1")},
    "cifar100": {"folder": "cifar-100-binary", "train": ["train.bin"], "test": ["test.bin"], "labels": 2,
                 "classes": 100, "names": "fine_label_names.txt", "archive": "cifar-100-binary.tar.gz",
                 "python": ("cifar-100-python", "train")},
}


def _refuse_python(folder: Path, kind: str) -> None:
    """The pickled python version: refused, naming the binary archive to download instead."""
    layout = LAYOUTS[kind]
    py_folder, py_file = layout["python"]
    candidates = [folder, folder / py_folder]
    for c in candidates:
        if (c / py_file).is_file() or c.name == py_folder and c.is_dir():
            raise ValueError(f"{c} holds the CIFAR python version (pickled files), which vaecore never unpickles; "
                             f"download the binary version {layout['archive']} from {HOME}, extract it and pass its "
                             f"{layout['folder']} folder with --data-dir")


def find_folder(folder: Path, kind: str) -> Path:
    layout = LAYOUTS[kind]
    if folder.is_file():
        raise ValueError(f"{folder} is a file; extract {layout['archive']} and pass its {layout['folder']} folder")
    for c in (folder, folder / layout["folder"]):
        if all((c / n).is_file() for n in layout["train"] + layout["test"]):
            return c
    _refuse_python(folder, kind)
    raise FileNotFoundError(f"{folder}: the {kind} binary files ({', '.join(layout['train'] + layout['test'])}) are "
                            f"not there; download {layout['archive']} from {HOME}, extract it and pass its "
                            f"{layout['folder']} folder with --data-dir")


def count_records(path: Path, label_bytes: int) -> int:
    """Number of records of a binary file, from its size (refusing pickles and sizes that are not CIFAR)."""
    record = label_bytes + PIXELS
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1)
    if head == b"\x80":
        raise ValueError(f"{path} is a Python pickle (the CIFAR python version), which vaecore never unpickles; "
                         f"use the binary version from {HOME}")
    if size == 0 or size % record or size // record > MAX_RECORDS:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {record}-byte CIFAR records "
                         f"({label_bytes} label byte(s) + {PIXELS} pixels); is it the right CIFAR version?")
    return size // record


def read_cifar_file(path: Path, label_bytes: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels uint8 (N, label_bytes)) of one binary file, sizes checked first."""
    count_records(path, label_bytes)
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, label_bytes + PIXELS)
    labels = raw[:, :label_bytes]
    if int(labels[:, -1].max()) >= classes:
        raise ValueError(f"{path}: label {int(labels[:, -1].max())} is out of range for {classes} classes; is it "
                         "the right CIFAR version (CIFAR-10 vs CIFAR-100)?")
    return np.ascontiguousarray(raw[:, label_bytes:]).reshape(-1, 3, 32, 32), np.ascontiguousarray(labels)


def _part(folder: Path, names: list[str], label_bytes: int, classes: int) -> ArrayPart:
    """A part of one or more binary files, read only when the cache is built."""
    n = sum(count_records(folder / name, label_bytes) for name in names)
    loaded: dict[str, np.ndarray] = {}

    def load() -> dict[str, np.ndarray]:
        if not loaded:
            read = [read_cifar_file(folder / name, label_bytes, classes) for name in names]
            loaded["x"] = np.concatenate([x for x, _ in read])
            labels = np.concatenate([y for _, y in read])
            loaded["labels"] = labels[:, -1].astype(np.int64)
            if label_bytes == 2:
                loaded["coarse"] = labels[:, 0].astype(np.int64)
        return loaded

    return ArrayPart(n, (3, 32, 32), lambda a, b: load()["x"][a:b],
                     lambda: {k: v for k, v in load().items() if k != "x"})


def _class_names(folder: Path, name: str, classes: int) -> list[str] | None:
    path = folder / name
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return names if len(names) == classes else None


def _load(req: LoadRequest, kind: str) -> Dataset:
    layout = LAYOUTS[kind]
    folder = find_folder(req.folder(kind, f"the extracted {layout['folder']} folder ({layout['archive']} from {HOME})"),
                   kind)
    files = layout["train"] + layout["test"]
    fingerprint = fingerprint_files([(n, (folder / n).stat()) for n in files])
    parts = {part: _part(folder, layout[part], layout["labels"], layout["classes"]) for part in ("train", "test")}
    entry = build_array_cache(kind, str(folder.resolve()), fingerprint, parts, req.preprocess, req.progress)
    train, test = entry.images("train"), entry.images("test")
    y_train, y_test = entry.array("train", "labels"), entry.array("test", "labels")
    cut = len(train) - holdout_size(len(train))
    stop = cut if req.limit is None else min(cut, req.limit)
    return Dataset(kind, SubsetStore(train, np.arange(stop)), y_train[:stop], SubsetStore(train, np.arange(cut,
                   len(train))), y_train[cut:], test, y_test, classes=_class_names(folder, layout["names"],
                   layout["classes"]), info={"preprocessed": True, "cache": str(entry.folder)})


_SIGMA_CIFAR = {"arch": "sigma-conv-wide", "latent_dim": 20}  # the σ-VAE paper on CIFAR (App. B)
register_format("cifar10", "CIFAR-10 binary version (--data-dir cifar-10-batches-bin), 32x32 RGB, 40k/10k/10k",
                lambda req: _load(req, "cifar10"), aliases=("cifar-10", "cifar"), defaults=_SIGMA_CIFAR)
register_format("cifar100", "CIFAR-100 binary version (--data-dir cifar-100-binary), 32x32 RGB, 100 fine classes",
                lambda req: _load(req, "cifar100"), aliases=("cifar-100",), defaults=_SIGMA_CIFAR)
