"""dSprites, with its ground-truth factors: DeepMind's `.npz` (`--data dsprites --data-dir
dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`) and the procedural generator (`--data dsprites-procedural`,
no files needed; see `vaecore.data.sprites`).

The `.npz` is read with `allow_pickle=False` and only its arrays `imgs` (737,280 × 64 × 64, 0/1),
`latents_values` and `latents_classes` are opened — its pickled `metadata` is never touched — and they
are checked against the published factor grid. Both are cached as 0/255 uint8 in grid order; the
splits are random by seed (10,000 test and 10,000 validation images, the rest train) and labels are
the shape class. `Dataset.factors` names the six factors with their sizes and values and holds the
full grid (`factors.images(classes)` draws any combination); `Dataset.factor_classes(split)` gives
every image's classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaecore.data import sprites
from vaecore.data.arraycache import ArrayPart, build_array_cache
from vaecore.data.arrays import NpzMember, npz_member_names, read_arrays
from vaecore.data.cache import CacheEntry, fingerprint_files
from vaecore.data.datasets import Dataset, holdout_rows
from vaecore.data.factors import Factors
from vaecore.data.formats.registry import LoadRequest, register_format
from vaecore.data.storage import SubsetStore

__all__ = ["check_grid", "dsprites_dataset"]

FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
HOME = "https://github.com/deepmind/dsprites-dataset"
ARRAYS = ("imgs", "latents_values", "latents_classes")
MAX_NPZ_BYTES = 8 * 2**30


def check_grid(values: np.ndarray, classes: np.ndarray, what: str) -> None:
    """ValueError unless (N, 6) factor values and classes are the published dSprites grid, in its order."""
    n = sprites.n_images()
    if classes.shape != (n, 6) or values.shape != (n, 6):
        raise ValueError(f"{what}: latents of shapes {classes.shape} and {values.shape}; the dSprites grid has "
                         f"({n}, 6)")
    if not np.array_equal(classes, sprites.grid_classes(np.arange(n))):
        raise ValueError(f"{what}: latents_classes are not the dSprites grid in its order (sizes {sprites.SIZES})")
    expected = np.stack([v[classes[:, k]] for k, v in enumerate(sprites.factor_values())], axis=1)
    if not np.allclose(values, expected, rtol=0, atol=1e-6):
        raise ValueError(f"{what}: latents_values differ from the published factor values")


def dsprites_dataset(entry: CacheEntry, name: str, req: LoadRequest) -> Dataset:
    """The Dataset of a cached dSprites grid: random splits by seed, shape labels, factors with the grid."""
    grid = entry.images("grid")
    values = tuple(tuple(float(x) for x in v) for v in sprites.factor_values())
    factors = Factors(sprites.NAMES, sprites.SIZES, values, grid=grid)
    train, val, test = holdout_rows(len(grid), req.seed, test=True)
    if req.limit is not None:
        train = train[:req.limit]
    rows = {"train": train, "val": val, "test": test}
    classes = {split: sprites.grid_classes(r) for split, r in rows.items()}
    return Dataset(name, *(v for split in ("train", "val", "test")
                           for v in (SubsetStore(grid, rows[split]), classes[split][:, 1])),
                   factors=factors, factor_classes=classes, classes=list(sprites.SHAPES),
                   info={"preprocessed": True, "cache": str(entry.folder)})


def _load_procedural(req: LoadRequest) -> Dataset:
    fingerprint = {"generator": sprites.GENERATOR_VERSION, "sizes": list(sprites.SIZES)}
    part = ArrayPart(sprites.n_images(), (1, 64, 64), sprites.render)
    entry = build_array_cache("dsprites-procedural", "procedural", fingerprint, {"grid": part}, req.preprocess,
                              req.progress, info={"factors": sprites.NAMES, "sizes": sprites.SIZES})
    return dsprites_dataset(entry, "dsprites-procedural", req)


def _npz_part(path: Path) -> ArrayPart:
    """The images of DeepMind's file, read in order as a stream (0/1 → 0/255)."""
    names = npz_member_names(path)
    missing = [a for a in ARRAYS if a not in names]
    if missing:
        raise ValueError(f"{path}: a dSprites file needs the arrays {', '.join(ARRAYS)}; missing {', '.join(missing)}"
                         f" (found {', '.join(sorted(names)) or 'none'}); download {FILE} from {HOME}")
    member = NpzMember(path, "imgs", MAX_NPZ_BYTES)
    shape = member.shape
    member.close()
    if shape != (sprites.n_images(), 64, 64):
        raise ValueError(f"{path}: imgs has shape {shape}; dSprites has ({sprites.n_images()}, 64, 64)")
    for key in ARRAYS[1:]:  # the latents' headers, checked before either is read
        member = NpzMember(path, key, sprites.n_images() * 6 * 8)
        shape, kind = member.shape, member.dtype.kind
        member.close()
        if shape != (sprites.n_images(), 6) or kind not in "uif":
            raise ValueError(f"{path}: {key} has shape {shape}; dSprites has ({sprites.n_images()}, 6) numbers")
    state: dict[str, NpzMember] = {}

    def read(start: int, stop: int) -> np.ndarray:
        if "checked" not in state:  # the latents, once, before the first images are cached
            arrays = read_arrays(path, keys={"latents_values", "latents_classes"})
            check_grid(np.asarray(arrays["latents_values"], np.float64), np.asarray(arrays["latents_classes"]),
                       str(path))
            state["checked"] = True  # type: ignore[assignment]
        if "m" not in state or state["m"].position > start:
            state["m"] = NpzMember(path, "imgs", MAX_NPZ_BYTES)
        stream = state["m"]
        stream.skip_to(start)
        x = stream.read(stop - start)
        if x.dtype.kind not in "bui" or (x.size and (int(x.max()) > 1 or int(x.min()) < 0)):
            raise ValueError(f"{path}: imgs must hold 0/1 pixels, got {x.dtype} in [{x.min()}, {x.max()}]")
        if stop == sprites.n_images():
            stream.close()
        return (x.astype(np.uint8) * np.uint8(255))[:, None]

    return ArrayPart(sprites.n_images(), (1, 64, 64), read)


def _load_npz(req: LoadRequest) -> Dataset:
    path = req.folder("dsprites", f"DeepMind's {FILE} (from {HOME}) or the folder holding it")
    if path.is_dir():
        path = path / FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path.parent}: no {FILE}; download it from {HOME}, or use --data "
                                    "dsprites-procedural (no download)")
    fingerprint = fingerprint_files([(path.name, path.stat())])
    entry = build_array_cache("dsprites", str(path.resolve()), fingerprint, {"grid": _npz_part(path)},
                              req.preprocess, req.progress)
    return dsprites_dataset(entry, "dsprites", req)


_DSPRITES = {"arch": "locatello-conv", "latent_dim": 10}  # Locatello et al. 2019 (their decoder: Bernoulli)
register_format("dsprites", f"DeepMind's dSprites ({FILE}) with its 6 ground-truth factors, 64x64 binary",
                _load_npz, defaults=_DSPRITES)
register_format("dsprites-procedural", "dSprites generated here (the exact 737,280-image factor grid, 64x64), "
                "with its factors; no download", _load_procedural, aliases=("dsprites-gen",), defaults=_DSPRITES)
