"""CelebA in its own layout (`--data celeba --data-dir FOLDER`): `img_align_celeba/` (the aligned JPEGs) and
`list_eval_partition.txt` (0 train, 1 validation, 2 test — the official split, used by Pythae), with
`list_attr_celeba.txt` read as labels when present: the 40 binary attributes become `Dataset.factors`
(classes 0 for -1, 1 for 1). The files may also sit in the download's `Img/`, `Eval/` and `Anno/`
subfolders, or be Kaggle's `.csv` versions.

Protocol: a centre crop of 140 × 140, then a resize to 64 × 64 (bilinear, antialiased), as in the AR-ELBO
paper's App. J.2 after Tolstikhin et al. (2018) and Ghosh et al. (2020); `--image-size` changes the
final size, not the crop.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from vaecore.data.datasets import Dataset
from vaecore.data.factors import Factors
from vaecore.data.filecache import FileParts, build_file_cache
from vaecore.data.formats.registry import LoadRequest, register_format
from vaecore.data.imagefiles import scan_folder
from vaecore.data.preprocess import Preprocess

__all__ = ["CROP", "read_attributes", "read_partition"]

CROP = 140
DEFAULT_SIZE = 64
HOME = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
MAX_TEXT_BYTES = 64 * 2**20
PARTS = {"0": "train", "1": "val", "2": "test"}


def _find(folder: Path, names: tuple[str, ...], subfolders: tuple[str, ...]) -> Path | None:
    for sub in ("", *subfolders):
        for name in names:
            path = folder / sub / name if sub else folder / name
            if path.exists():
                return path
    return None


def _rows(path: Path) -> list[list[str]]:
    """Whitespace- (.txt) or comma-separated (.csv) rows of a small text file, size-checked first."""
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise ValueError(f"{path}: over {MAX_TEXT_BYTES // 2**20} MiB; not a CelebA list file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".csv":
        return [row for row in csv.reader(io.StringIO(text)) if row]
    return [line.split() for line in text.splitlines() if line.strip()]


def read_partition(path: Path) -> dict[str, str]:
    """image name → "train" / "val" / "test"."""
    out = {}
    for i, row in enumerate(_rows(path)):
        if len(row) != 2 or (i == 0 and not row[1].strip().isdigit()):
            if i == 0 and len(row) == 2:
                continue  # a .csv header
            raise ValueError(f"{path}: line {i + 1} is {' '.join(row)!r}; expected 'NAME.jpg 0|1|2'")
        if row[1].strip() not in PARTS:
            raise ValueError(f"{path}: line {i + 1}: partition {row[1]!r} is not 0, 1 or 2")
        out[row[0].strip()] = PARTS[row[1].strip()]
    if not out:
        raise ValueError(f"{path}: no images listed")
    return out


def read_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Attribute names and, per image name, its attributes as classes (0 for -1, 1 for 1)."""
    rows = _rows(path)
    if path.suffix.lower() == ".csv":
        names, body = rows[0][1:], rows[1:]
    else:
        if len(rows) < 2:
            raise ValueError(f"{path}: too short for a CelebA attribute file")
        names, body = rows[1], rows[2:]
    out = {}
    for i, row in enumerate(body):
        if len(row) != len(names) + 1 or any(v.strip() not in ("-1", "1") for v in row[1:]):
            raise ValueError(f"{path}: row {i + 1} of the attributes is not a name and {len(names)} values of -1/1")
        out[row[0].strip()] = (np.array([int(v) for v in row[1:]], dtype=np.int64) + 1) // 2
    return [n.strip() for n in names], out


def _load(req: LoadRequest) -> Dataset:
    folder = req.folder("celeba", f"the CelebA folder holding img_align_celeba/ and list_eval_partition.txt ({HOME})")
    images = _find(folder, ("img_align_celeba",), ("Img",))
    if images is not None and (images / "img_align_celeba").is_dir():
        images = images / "img_align_celeba"  # Kaggle's zip nests the folder
    partition = _find(folder, ("list_eval_partition.txt", "list_eval_partition.csv"), ("Eval",))
    if images is None or not images.is_dir() or partition is None:
        missing = [n for n, p in (("img_align_celeba/", images), ("list_eval_partition.txt", partition)) if p is None]
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; CelebA's layout is img_align_celeba/ (the "
                                f"aligned JPEGs) and list_eval_partition.txt, from {HOME}")
    split_of = read_partition(partition)
    attributes = _find(folder, ("list_attr_celeba.txt", "list_attr_celeba.csv"), ("Anno",))
    attr_names, attrs = read_attributes(attributes) if attributes is not None else (None, {})
    scan = scan_folder(images)
    present = set(scan.images)
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name in sorted(split_of):
        if name in present:
            parts[split_of[name]].append(name)
    missing = len(split_of) - sum(len(v) for v in parts.values())
    if not all(parts.values()):
        raise ValueError(f"{images}: the partition lists {len(split_of)} images but a split has none of them "
                         f"({ {k: len(v) for k, v in parts.items()} }); is img_align_celeba complete?")
    arrays = {}
    if attr_names is not None:
        lacking = [n for names in parts.values() for n in names if n not in attrs]
        if lacking:
            raise ValueError(f"{attributes}: no attributes for {len(lacking)} images (e.g. {lacking[0]})")
        arrays = {part: {"attributes": np.stack([attrs[n] for n in names])} for part, names in parts.items()}
    pre = Preprocess(image_size=req.preprocess.image_size or DEFAULT_SIZE, channels=req.preprocess.channels,
                     crop=CROP)
    extra = [(f"<{p.name}>", p.stat()) for p in (partition, attributes) if p is not None]
    files = FileParts(images, parts, scan.stats, arrays, extra)
    entry = build_file_cache("celeba", str(folder.resolve()), files, pre, req.progress)
    stores = {part: entry.images(part) for part in parts}
    limit = req.limit
    train = stores["train"] if limit is None else stores["train"].subset(slice(0, limit))
    factors = classes = None
    if attr_names is not None:
        factors = Factors(tuple(attr_names), (2,) * len(attr_names), ((-1.0, 1.0),) * len(attr_names))
        classes = {part: entry.array(part, "attributes") for part in parts}
        if limit is not None:
            classes["train"] = classes["train"][:limit]
    info = {"preprocessed": True, "cache": str(entry.folder), "protocol": f"centre crop {CROP}, resize to "
            f"{pre.image_size}", "listed_but_missing": missing,
            **{k: entry.manifest.get(k) for k in ("skipped", "converted", "target")}}
    return Dataset("celeba", train, None, stores["val"], None, stores["test"], None, factors=factors,
                   factor_classes=classes, info=info)


register_format("celeba", "CelebA aligned faces (--data-dir with img_align_celeba/, list_eval_partition.txt), "
                "centre crop 140 -> 64x64 RGB, 40 attributes as factors", _load,
                defaults={"arch": "pythae-conv", "latent_dim": 64})  # Pythae and AR-ELBO on CelebA
