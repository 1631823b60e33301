"""SVHN, the cropped-digits format (`train_32x32.mat`, `test_32x32.mat` from http://ufldl.stanford.edu/housenumbers/):
MATLAB v5 files read with scipy.io, `X` of shape (32, 32, 3, N) uint8 and `y` of shape (N, 1) with
digit 0 stored as 10 (mapped back to 0). The layout is checked from the file's variable table before
any array is read. Validation is the last 10,000 training images; test is the official test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaecore.data.arraycache import ArrayPart, build_array_cache
from vaecore.data.cache import fingerprint_files
from vaecore.data.datasets import Dataset, holdout_size
from vaecore.data.formats.registry import LoadRequest, register_format
from vaecore.data.storage import SubsetStore

__all__ = ["mat_layout", "read_svhn_mat"]

HOME = "http://ufldl.stanford.edu/housenumbers/"
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
MAX_IMAGES = 1_000_000


def mat_layout(path: Path) -> int:
    """Number of images of an SVHN .mat file, from its variable table; ValueError for another layout."""
    import scipy.io

    try:
        table = {name: (tuple(shape), kind) for name, shape, kind in scipy.io.whosmat(path)}
    except NotImplementedError as err:
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file; SVHN's {FILES['train']} and {FILES['test']} are "
                         f"MATLAB v5 files from {HOME}") from err
    except (ValueError, TypeError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({err})") from err
    want = "X of shape (32, 32, 3, N) uint8 and y of shape (N, 1)"
    if "X" not in table or "y" not in table:
        cut = " (the file may be truncated: download it again)" if "X" in table else ""
        raise ValueError(f"{path}: expected the SVHN variables {want}, found {sorted(table) or 'none'}{cut}")
    (shape_x, kind_x), (shape_y, _) = table["X"], table["y"]
    if len(shape_x) != 4 or shape_x[:3] != (32, 32, 3) or kind_x != "uint8":
        raise ValueError(f"{path}: X is {kind_x} of shape {shape_x}; expected {want} (the cropped-digits format)")
    n = shape_x[3]
    if not 1 <= n <= MAX_IMAGES or tuple(shape_y) not in ((n, 1), (1, n)):
        raise ValueError(f"{path}: X holds {n} images and y has shape {shape_y}; expected {want}")
    return int(n)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,) with 10 → 0) of one SVHN .mat file."""
    import scipy.io

    n = mat_layout(path)
    data = scipy.io.loadmat(path, variable_names=["X", "y"])
    x, y = data["X"], np.asarray(data["y"]).reshape(-1)
    if x.shape != (32, 32, 3, n) or y.shape != (n,):
        raise ValueError(f"{path}: read X {x.shape} and y {y.shape}, the table said {n} images")
    labels = y.astype(np.int64)
    if labels.min() < 0 or labels.max() > 10:
        raise ValueError(f"{path}: labels must be 1..10 (10 for the digit 0), got {labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def _part(path: Path) -> ArrayPart:
    n = mat_layout(path)
    loaded: dict[str, np.ndarray] = {}

    def load() -> dict[str, np.ndarray]:
        if not loaded:
            loaded["x"], loaded["labels"] = read_svhn_mat(path)
        return loaded

    return ArrayPart(n, (3, 32, 32), lambda a, b: load()["x"][a:b], lambda: {"labels": load()["labels"]})


def _load(req: LoadRequest) -> Dataset:
    folder = req.folder("svhn", f"the folder holding {FILES['train']} and {FILES['test']} (from {HOME})")
    if folder.is_file():
        folder = folder.parent
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; download the cropped-digits files "
                                f"{FILES['train']} and {FILES['test']} from {HOME} into one folder")
    fingerprint = fingerprint_files([(name, (folder / name).stat()) for name in FILES.values()])
    parts = {part: _part(folder / name) for part, name in FILES.items()}
    entry = build_array_cache("svhn", str(folder.resolve()), fingerprint, parts, req.preprocess, req.progress)
    train, test = entry.images("train"), entry.images("test")
    y_train, y_test = entry.array("train", "labels"), entry.array("test", "labels")
    cut = len(train) - holdout_size(len(train))
    stop = cut if req.limit is None else min(cut, req.limit)
    return Dataset("svhn", SubsetStore(train, np.arange(stop)), y_train[:stop],
                   SubsetStore(train, np.arange(cut, len(train))), y_train[cut:], test, y_test,
                   classes=[str(d) for d in range(10)], info={"preprocessed": True, "cache": str(entry.folder)})


register_format("svhn", f"SVHN cropped digits (--data-dir with {FILES['train']}, {FILES['test']}), 32x32 RGB",
                _load, defaults={"arch": "sigma-conv", "latent_dim": 20})  # the σ-VAE paper on SVHN
