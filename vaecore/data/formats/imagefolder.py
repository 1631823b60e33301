"""Image folders (`--data imagefolder --data-dir PATH`): PNG, JPEG, WebP and BMP files, decoded once into
the dataset cache.

Layouts, decided from what the folder holds:
- `train/`, `val/` (or `valid/`, `validation/`), `test/` subfolders: those splits; a missing val or test
  split is held out at random (by seed) from train;
- otherwise images in one subfolder per class (no image directly in the folder): labels are the class
  folders' names in sorted order (recorded as `Dataset.classes`), also inside split folders;
- otherwise every image under the folder, unlabelled;
- a file list (`--data-dir list.txt|.csv|.tsv`): one image per line, relative to the list's folder,
  optionally followed by a tab or comma and a class name.
Without split folders, test and validation are held out at random by seed (10,000 each for 50,000+
images, else 10%). Non-image files, unreadable files and symlink loops are skipped and counted; bad
images are skipped and named, and refused past `imagefiles.BAD_MIN` / `BAD_FRACTION`.
"""

from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaecore.data.datasets import Dataset, holdout_rows, holdout_size
from vaecore.data.filecache import FileParts, build_file_cache, decide_shape, probe_files
from vaecore.data.formats.registry import LoadRequest, register_format
from vaecore.data.imagefiles import IMAGE_EXTENSIONS, BadFiles, channels_of_mode, scan_folder
from vaecore.data.preprocess import Preprocess
from vaecore.data.storage import SubsetStore

__all__ = ["FolderPlan", "describe_folder", "load_folder_plan", "plan_folder"]

SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
              "test": "test", "testing": "test"}
LIST_SUFFIXES = (".txt", ".csv", ".tsv", ".lst")
MAX_LIST_BYTES = 512 * 2**20


@dataclass
class FolderPlan:
    """What an image folder (or file list) holds: image files by part, labels, and what was skipped."""

    root: Path
    layout: str
    parts: dict[str, list[str]]
    stats: dict[str, os.stat_result]
    labels: dict[str, np.ndarray] | None = None
    classes: list[str] | None = None
    skipped: dict[str, Any] = field(default_factory=dict)
    extra: list[tuple[str, os.stat_result]] = field(default_factory=list)

    def file_parts(self) -> FileParts:
        arrays = {part: {"labels": labels} for part, labels in (self.labels or {}).items()}
        return FileParts(self.root, self.parts, self.stats, arrays, self.extra)


def plan_folder(path: Path) -> FolderPlan:
    """Find the images of a folder or file list and decide its layout (see the module docstring)."""
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            return _plan_list(path)
        raise ValueError(f"{path} is a file; imagefolder takes a folder of images or a file list "
                         f"({', '.join(LIST_SUFFIXES)})")
    scan = scan_folder(path)
    skipped = scan.summary()
    if not scan.images:
        what = "the folder is empty" if not (scan.other or scan.unreadable) else (
            f"{len(scan.other)} other files skipped (e.g. {', '.join(scan.other[:3]) or '-'})"
            + (f", {len(scan.unreadable)} unreadable" if scan.unreadable else ""))
        raise ValueError(f"{path}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} in it and its "
                         f"subfolders); {what}")
    splits: dict[str, list[str]] = {}
    for name in scan.images:
        head = name.split("/", 1)[0].lower() if "/" in name else ""
        if head in SPLIT_DIRS:
            splits.setdefault(SPLIT_DIRS[head], []).append(name)
    if "train" in splits:
        outside = len(scan.images) - sum(len(v) for v in splits.values())
        if outside:
            skipped["outside_split_folders"] = outside
        within = {part: [n.split("/", 1)[1] for n in names] for part, names in splits.items()}
        classes, labels = _classes(within)
        return FolderPlan(path, "splits" + ("+classes" if classes else ""), splits, scan.stats,
                          labels, classes, skipped)
    classes, labels = _classes({"all": scan.images})
    return FolderPlan(path, "classes" if classes else "flat", {"all": scan.images}, scan.stats, labels, classes,
                      skipped)


def _classes(parts: dict[str, list[str]]) -> tuple[list[str] | None, dict[str, np.ndarray] | None]:
    """Class folders when no part has an image at its top level: sorted names and per-file labels."""
    if any("/" not in n for names in parts.values() for n in names):
        return None, None
    classes = sorted({n.split("/", 1)[0] for names in parts.values() for n in names})
    index = {c: i for i, c in enumerate(classes)}
    return classes, {part: np.array([index[n.split("/", 1)[0]] for n in names], dtype=np.int64)
                     for part, names in parts.items()}


def _plan_list(path: Path) -> FolderPlan:
    """A file list: `path[<TAB or ,>class]` per line; blank lines and lines starting with # are skipped."""
    size = path.stat().st_size
    if size > MAX_LIST_BYTES:
        raise ValueError(f"{path}: a file list of {size / 2**20:.0f} MiB is over the {MAX_LIST_BYTES // 2**20} MiB "
                         "limit")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: the file list is not UTF-8 text ({err})") from err
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    root = path.parent.resolve()
    names, class_names, stats = [], [], {}
    other, unreadable = [], []
    for row in csv.reader(text.splitlines(), delimiter=delimiter):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        name = row[0].strip()
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            other.append(name)
            continue
        try:
            stats[name] = (root / name).stat()
        except OSError as err:
            unreadable.append((name, err.strerror or str(err)))
            continue
        names.append(name)
        class_names.append(row[1].strip() if len(row) > 1 and row[1].strip() else None)
    if not names:
        raise ValueError(f"{path}: the file list names no readable image ({len(other)} non-image entries, "
                         f"{len(unreadable)} missing or unreadable)")
    labelled = [c is not None for c in class_names]
    if any(labelled) and not all(labelled):
        raise ValueError(f"{path}: give a class for every listed image or for none ({sum(labelled)} of "
                         f"{len(names)} have one)")
    classes = labels = None
    if all(labelled):
        classes = sorted(set(class_names))  # type: ignore[arg-type]
        index = {c: i for i, c in enumerate(classes)}
        labels = {"all": np.array([index[c] for c in class_names], dtype=np.int64)}  # type: ignore[index]
    skipped = {"image_files": len(names), "non_image_files": len(other), "non_image_examples": other[:5],
               "unreadable": len(unreadable), "unreadable_examples": [f"{n} ({w})" for n, w in unreadable[:5]]}
    return FolderPlan(root, "list", {"all": names}, stats, labels, classes, skipped, [("<list>", path.stat())])


def load_folder_plan(plan: FolderPlan, name: str, kind: str, source: str, req: LoadRequest) -> Dataset:
    """Decode a planned folder into the cache (or reuse it) and split it into a Dataset."""
    entry = build_file_cache(kind, source, plan.file_parts(), req.preprocess, req.progress,
                             {"layout": plan.layout}, {"classes": plan.classes})
    classes = entry.manifest.get("classes", plan.classes)  # the names the cached labels index, sorted
    skipped = plan.skipped.get("non_image_files", 0) + plan.skipped.get("unreadable", 0)
    if entry.fresh and req.progress is True and (entry.summary() or skipped):
        note = f"skipped {skipped} non-image or unreadable file(s); " if skipped else ""
        print(f"{plan.root}: {note}{entry.summary()}".rstrip("; "), file=sys.stderr)
    rng = np.random.default_rng(req.seed)
    stores, labels = {}, {}
    for part in entry.parts:
        stores[part] = entry.images(part)
        labels[part] = entry.array(part, "labels")
    if "all" in stores:
        train, val, test = holdout_rows(len(stores["all"]), req.seed, test=True)
        rows = {"train": ("all", train), "val": ("all", val), "test": ("all", test)}
    else:
        n = len(stores["train"])
        perm = rng.permutation(n)
        rows = {"train": ("train", perm)}
        for split in ("val", "test"):
            if split in stores:
                rows[split] = (split, np.arange(len(stores[split])))
            else:
                hold = holdout_size(len(rows["train"][1]))
                if len(rows["train"][1]) - hold < 1:
                    raise ValueError(f"{plan.root}: too few training images to hold out a {split} split")
                rows[split] = ("train", rows["train"][1][-hold:])
                rows["train"] = ("train", rows["train"][1][:-hold])
    if req.limit is not None:
        part, r = rows["train"]
        rows["train"] = (part, r[:req.limit])
    x = {split: SubsetStore(stores[part], r) for split, (part, r) in rows.items()}
    y = {split: None if labels[part] is None else labels[part][r] for split, (part, r) in rows.items()}
    info = {"preprocessed": True, "cache": str(entry.folder), "layout": plan.layout, "skipped_files": plan.skipped,
            **{k: entry.manifest.get(k) for k in ("skipped", "converted", "sizes", "modes", "target")}}
    return Dataset(name, x["train"], y["train"], x["val"], y["val"], x["test"], y["test"], classes=classes,
                   info=info)


def _load(req: LoadRequest) -> Dataset:
    path = req.folder("imagefolder", "a folder of images (PNG, JPEG, WebP, BMP) or a file list")
    plan = plan_folder(path)
    return load_folder_plan(plan, "imagefolder", "imagefolder", str(path.resolve()), req)


def describe_folder(path: Path, pre: Preprocess, progress: Any = False) -> dict[str, Any]:
    """What an image folder holds and what loading it with `pre` would convert (headers only, nothing decoded)."""
    plan = plan_folder(path)
    names = [n for part in plan.parts.values() for n in part]
    headers = probe_files(plan.root, names, progress, "reading image headers")
    bad = BadFiles([(n, h) for n, h in zip(names, headers, strict=True) if isinstance(h, str)])
    good = [(n, h) for n, h in zip(names, headers, strict=True) if not isinstance(h, str)]
    sizes = Counter(f"{w}x{h}" for _, (w, h, _) in good)
    modes = Counter(m for _, (_, _, m) in good)
    info: dict[str, Any] = {"path": str(path), "layout": plan.layout, "images": len(good), "image_files": len(names),
                            "parts": {p: len(v) for p, v in plan.parts.items()}, "sizes": dict(sizes.most_common(8)),
                            "distinct_sizes": len(sizes), "modes": dict(modes), "classes": plan.classes,
                            "skipped": plan.skipped, "bad": len(bad.items), "bad_summary": bad.describe() if bad.items
                            else "", "will_convert": {}}
    if plan.labels is not None:
        label_of = {n: int(v) for part, labels in plan.labels.items() for n, v in zip(plan.parts[part], labels,
                                                                                       strict=True)}
        counts = Counter(label_of[n] for n, _ in good)
        info["class_counts"] = {plan.classes[k]: counts[k] for k in sorted(counts)}  # type: ignore[index]
    try:
        channels, (h, w) = decide_shape([hd for _, hd in good], pre, [n for n, _ in good], str(path))
    except ValueError as err:
        info["refused"] = str(err)
        return info
    convert: Counter[str] = Counter()
    for _, (iw, ih, mode) in good:
        natural = channels_of_mode(mode)
        if mode not in ("L", "RGB"):
            convert[f"{mode}→{'L' if natural == 1 else 'RGB'}"] += 1
        if natural != channels:
            convert["grey→RGB" if channels == 3 else "RGB→grey"] += 1
        if (ih, iw) != (h, w):
            convert[f"resized {iw}x{ih}→{w}x{h}"] += 1
    info["output"] = [channels, h, w]
    info["will_convert"] = dict(convert.most_common(12))
    return info


register_format("imagefolder", "a folder (--data-dir) of PNG/JPEG/WebP/BMP images: flat, one subfolder per class, "
                "train/val/test subfolders, or a file list", _load, aliases=("image-folder", "images", "folder"))
