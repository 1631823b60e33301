"""Per-image evaluation values stored beside a model's eval.json (`files.PER_IMAGE`), so that models are compared
on the same test images — mean ± standard error, paired differences — without evaluating them again.

    store = per_image_from(result, images)         # from evaluate(..., per_image=True)
    save_per_image(folder, store)
    a, b = load_per_image("checkpoints/sigma-vae"), load_per_image("checkpoints/gaussian-vae")
    a.estimate("nll-discrete")                      # Estimate(1427.1, se=…, n=2000)
    a.difference(b, "nll-discrete")                 # paired a − b; ValueError on different images

The file is safetensors (never pickle): one float64 vector per metric, the int64 indices of the images into their
split, and as metadata the format, the dataset, the split, the images' fingerprint and the evaluation settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaecore.evaluation.uncertainty import Difference, Estimate, ImageSet, mean_se, paired_difference
from vaecore.files import EVAL, PER_IMAGE

__all__ = ["FORMAT", "MAX_BYTES", "SHA_KEY", "PerImage", "file_sha256", "load_per_image", "per_image_from",
           "save_per_image"]

FORMAT = "vaecore-per-image/1"
MAX_BYTES = 10 * 2**20  # a bundled file stays under 10 MB; 2,000 images × 10 metrics × 8 bytes is 160 kB
MAX_IMAGES = 1_000_000
INDICES = "__indices__"
MANIFEST = "manifest"  # metadata: the JSON file written after this one that records its sha256
SHA_KEY = "per_image_sha256"  # in that JSON (eval.json): the sha256 of the per-image file it belongs to


@dataclass
class PerImage:
    """Per-image values (metric key → (n,) float64) on one image set, and the settings they were computed with."""

    images: ImageSet
    values: dict[str, np.ndarray]
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images.indices)
        for key, v in self.values.items():
            arr = np.asarray(v, dtype=np.float64).reshape(-1)
            if arr.size != n:
                raise ValueError(f"per-image values of {key!r}: {arr.size} values for {n} images")
            self.values[key] = arr

    def estimate(self, key: str) -> Estimate:
        """Mean ± SE of metric `key` over the images; KeyError when it was not stored."""
        if key not in self.values:
            raise KeyError(f"no per-image values of {key!r} (stored: {', '.join(self.values) or 'none'})")
        return mean_se(self.values[key])

    def difference(self, other: PerImage, key: str) -> Difference:
        """Paired difference self − other of metric `key` on the same images (ValueError otherwise)."""
        if key not in self.values or key not in other.values:
            raise KeyError(f"per-image values of {key!r} are missing in one of the two stores")
        return paired_difference(self.values[key], other.values[key], self.images, other.images)


def per_image_from(result: Mapping[str, Any], images: ImageSet) -> PerImage:
    """The per-image values of an `evaluate(..., per_image=True)` result on `images`."""
    values = {k: np.asarray(v, dtype=np.float64) for k, v in (result.get("per_image") or {}).items()}
    settings = {k: v for k, v in (result.get("settings") or {}).items() if isinstance(v, str | int | float | bool)}
    return PerImage(images, values, settings)


def save_per_image(folder: str | Path, store: PerImage, manifest: str | None = None) -> Path:
    """Write `folder/per_image.safetensors` atomically; ValueError for non-finite values or a file over MAX_BYTES.
    With `manifest=EVAL` the file belongs to the eval.json written after it (`protocol.write_evaluation`), which
    records its sha256: `load_per_image` refuses it beside any other eval.json (a save interrupted between them)."""
    if manifest not in (None, EVAL):
        raise ValueError(f"the manifest of per-image values is {EVAL!r} or none, not {manifest!r}")
    from safetensors.numpy import save

    from vaecore.utils import atomic_write_bytes

    for key, v in store.values.items():
        if key == INDICES or not np.isfinite(v).all():
            raise ValueError(f"per-image values of {key!r} are not finite (or the name is reserved)")
    tensors = {INDICES: np.asarray(store.images.indices, dtype=np.int64),
               **{k: np.ascontiguousarray(v, dtype=np.float64) for k, v in store.values.items()}}
    meta = {"format": FORMAT, "dataset": store.images.dataset, "split": store.images.split,
            "fingerprint": store.images.fingerprint, "settings": json.dumps(store.settings, sort_keys=True),
            **({MANIFEST: manifest} if manifest else {})}
    data = save(tensors, metadata=meta)
    if len(data) > MAX_BYTES:
        raise ValueError(f"{len(data)} bytes of per-image values: over the {MAX_BYTES} limit (evaluate fewer images)")
    path = Path(folder) / PER_IMAGE
    atomic_write_bytes(path, data)
    return path


def load_per_image(folder: str | Path) -> PerImage | None:
    """`folder`'s per-image values, or None when it has none; ValueError naming the file when it is not a valid
    per-image file (too large, wrong format, shapes or dtypes, non-finite values)."""
    from safetensors import safe_open

    path = Path(folder) / PER_IMAGE
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path}: {size} bytes, over the {MAX_BYTES}-byte limit of a per-image file")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            keys = list(f.keys())
            if INDICES not in keys:
                raise ValueError("no image indices")
            shapes = {k: f.get_slice(k).get_shape() for k in keys}
            n = shapes[INDICES][0] if len(shapes[INDICES]) == 1 else -1
            if not 1 <= n <= MAX_IMAGES or any(s != [n] for s in shapes.values()):
                raise ValueError(f"every entry must be a vector of the {n} images")
            indices = f.get_tensor(INDICES)
            values = {k: f.get_tensor(k) for k in keys if k != INDICES}
        settings = json.loads(meta.get("settings") or "{}")
    except ValueError as e:
        raise ValueError(f"{path} is not a valid per-image file: {e}") from None
    except Exception as e:  # noqa: BLE001 - a corrupt header: one clear line
        raise ValueError(f"{path} is not a valid per-image file: {type(e).__name__}: {e}") from None
    if indices.dtype != np.int64 or any(v.dtype != np.float64 for v in values.values()):
        raise ValueError(f"{path}: indices must be int64 and values float64")
    bad = [k for k, v in values.items() if not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path}: non-finite per-image values in {bad}")
    if MANIFEST in meta:
        _check_manifest(path, meta[MANIFEST])
    images = ImageSet(meta.get("dataset", "?"), meta.get("split", "?"), tuple(int(i) for i in indices),
                      meta.get("fingerprint", ""))
    return PerImage(images, values, settings if isinstance(settings, dict) else {})


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_manifest(path: Path, manifest: str) -> None:
    """ValueError unless the eval.json beside `path` records `path`'s sha256 (the pair one evaluation wrote)."""
    from vaecore.utils import read_json

    if manifest != EVAL:
        raise ValueError(f"{path} is not a valid per-image file: its manifest is {manifest!r}, not {EVAL!r}")
    try:
        recorded = read_json(path.parent / EVAL).get(SHA_KEY)
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != file_sha256(path):
        raise ValueError(f"{path} does not belong to the {EVAL} beside it (an evaluation was interrupted between "
                         "the two files): evaluate the model again")
