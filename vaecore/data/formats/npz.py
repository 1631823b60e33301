"""`.npz` / `.npy` image arrays (read without unpickling, sizes checked before allocation): uint8 kept as
uint8, floats in [0, 1] as float32. Keys x_train/y_train/x_val/…, x/y, images/labels, or one array;
missing test and validation splits are held out by seed (test at random, validation from the end)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaecore.data.arrays import check_images, labels_from_array, read_arrays
from vaecore.data.datasets import Dataset, holdout_size
from vaecore.data.formats.registry import LoadRequest, register_format

__all__ = ["load_array_file", "pick_splits"]


def pick_splits(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray | None]:
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


def load_array_file(path: Path, name: str, limit: int | None, seed: int) -> Dataset:
    """A Dataset from a .npz/.npy file (see the module docstring for the keys and the hold-outs)."""
    picked = pick_splits(read_arrays(path), path)
    splits: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for split in ("train", "val", "test"):
        x = picked.get(f"x_{split}")
        if x is None:
            if picked.get(f"y_{split}") is not None:
                raise ValueError(f"{path}: y_{split} given without x_{split}")
            continue
        images = check_images(x, f"{path} [x_{split}]")
        splits[split] = (images, labels_from_array(picked.get(f"y_{split}"), len(images), f"{path} [y_{split}]"))
    labelled = {split: y is not None for split, (_, y) in splits.items()}
    if len(set(labelled.values())) > 1:
        raise ValueError(f"{path}: labels must be given for every split or none (labelled: {labelled})")
    shapes = {split: x.shape[1:] for split, (x, _) in splits.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{path}: splits have different image shapes {shapes}")
    dtypes = {split: str(x.dtype) for split, (x, _) in splits.items()}
    if len(set(dtypes.values())) > 1:  # mixed 8-bit and float splits: all as float32
        splits = {s: (x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x, y)
                  for s, (x, y) in splits.items()}

    rng = np.random.default_rng(seed)
    x_train, y_train = splits["train"]
    if "test" not in splits:
        if len(x_train) < 3:
            raise ValueError(
                f"{path}: need at least 3 images to hold out validation and test, got {len(x_train)}"
            )
        perm = rng.permutation(len(x_train))
        n_test = holdout_size(len(x_train))
        test, rest = perm[:n_test], perm[n_test:]
        splits["test"] = x_train[test], None if y_train is None else y_train[test]
        x_train, y_train = x_train[rest], None if y_train is None else y_train[rest]
    if "val" not in splits:
        if len(x_train) < 2:
            raise ValueError(f"{path}: need at least 2 training images to hold out a validation split")
        cut = len(x_train) - holdout_size(len(x_train))
        splits["val"] = x_train[cut:], None if y_train is None else y_train[cut:]
        x_train, y_train = x_train[:cut], None if y_train is None else y_train[:cut]
    if limit is not None and limit < len(x_train):
        x_train, y_train = x_train[:limit], None if y_train is None else y_train[:limit]

    def own(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.array(a, copy=True)

    return Dataset(name, own(x_train), own(y_train), own(splits["val"][0]), own(splits["val"][1]),
                   own(splits["test"][0]), own(splits["test"][1]))


def _load(req: LoadRequest) -> Dataset:
    if req.path is not None:
        return load_array_file(req.path, req.key, req.limit, req.seed)
    if req.data_dir is None:
        raise FileNotFoundError("dataset 'array' needs --data-dir pointing at a .npz or .npy file")
    return load_array_file(Path(req.data_dir).expanduser(), str(req.data_dir), req.limit, req.seed)


register_format("array", "a .npz/.npy file (name it directly, or 'array' with --data-dir FILE): uint8 or [0,1] floats",
                _load)
