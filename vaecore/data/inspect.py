"""What a data folder or file holds, without decoding or caching it (`vaecore data info PATH`): which
format it is, how many images, their sizes and modes, the classes, the splits, and what loading it
with a given transform would convert or refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaecore.data.preprocess import Preprocess

__all__ = ["describe", "detect_format", "format_description"]


def detect_format(path: Path) -> str:
    """The format name a folder or file looks like (imagefolder when nothing more specific matches)."""
    from vaecore.data.formats import cifar, dsprites, idx

    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            from vaecore.data.arrays import npz_member_names

            return "dsprites" if set(dsprites.ARRAYS) <= set(npz_member_names(path)) else "array"
        if suffix == ".npy":
            return "array"
        if suffix == ".mat":
            return "svhn"
        return "imagefolder"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    for kind, layout in (("cifar10", cifar.LAYOUTS["cifar10"]), ("cifar100", cifar.LAYOUTS["cifar100"])):
        for where in (path, path / layout["folder"], path / layout["python"][0]):
            if (where / layout["train"][0]).is_file() or (where / layout["python"][1]).is_file():
                return kind
    if (path / "train_32x32.mat").is_file() or (path / "test_32x32.mat").is_file():
        return "svhn"
    if (path / "img_align_celeba").is_dir() or (path / "Img" / "img_align_celeba").is_dir():
        return "celeba"
    if (path / dsprites.FILE).is_file():
        return "dsprites"
    if any((path / f"{n}{gz}").is_file() for n in idx.IDX_FILES.values() for gz in ("", ".gz")):
        return "idx"
    return "imagefolder"


def describe(path: str | Path, fmt: str | None = None, *, image_size: int | None = None,
             channels: int | None = None, progress: Any = False) -> dict[str, Any]:
    """A summary of the data at `path` (format detected unless given), reading headers only."""
    path = Path(path).expanduser()
    fmt = fmt or detect_format(path)
    pre = Preprocess(image_size=image_size, channels=channels)
    info: dict[str, Any] = {"path": str(path), "format": fmt}
    if fmt == "imagefolder":
        from vaecore.data.formats.imagefolder import describe_folder

        return {**info, **describe_folder(path, pre, progress)}
    if fmt in ("cifar10", "cifar100"):
        from vaecore.data.formats import cifar

        folder = cifar.find_folder(path, fmt)
        layout = cifar.LAYOUTS[fmt]
        counts = {part: sum(cifar.count_records(folder / n, layout["labels"]) for n in layout[part])
                  for part in ("train", "test")}
        return {**info, "images": sum(counts.values()), "parts": counts, "sizes": {"32x32": sum(counts.values())},
                "modes": {"RGB": sum(counts.values())}, "classes": layout["classes"], "output": _out((3, 32, 32), pre)}
    if fmt == "svhn":
        from vaecore.data.formats import svhn

        folder = path.parent if path.is_file() else path
        counts = {part: svhn.mat_layout(folder / name) for part, name in svhn.FILES.items()}
        return {**info, "images": sum(counts.values()), "parts": counts, "sizes": {"32x32": sum(counts.values())},
                "modes": {"RGB": sum(counts.values())}, "classes": 10, "output": _out((3, 32, 32), pre)}
    if fmt == "dsprites":
        from vaecore.data import sprites
        from vaecore.data.arrays import NpzMember, npz_member_names
        from vaecore.data.formats import dsprites

        file = path / dsprites.FILE if path.is_dir() else path
        member = NpzMember(file, "imgs", dsprites.MAX_NPZ_BYTES)
        member.close()
        return {**info, "images": member.shape[0], "sizes": {"x".join(map(str, member.shape[1:])): member.shape[0]},
                "arrays": npz_member_names(file), "factors": dict(zip(sprites.NAMES, sprites.SIZES, strict=True)),
                "output": _out((1, *member.shape[1:]), pre)}  # type: ignore[arg-type]
    if fmt == "celeba":
        from vaecore.data.formats.imagefolder import describe_folder

        images = path / "img_align_celeba"
        if not images.is_dir():
            images = path / "Img" / "img_align_celeba"
        if (images / "img_align_celeba").is_dir():
            images = images / "img_align_celeba"
        folder = describe_folder(images, Preprocess(image_size=image_size or 64, channels=channels, crop=140),
                                 progress)
        return {**info, **folder, "path": str(path), "layout": "celeba (img_align_celeba + list_eval_partition.txt)",
                "protocol": f"centre crop 140, resize to {image_size or 64}"}
    from vaecore.data.datasets import load_dataset  # small in-memory formats: load them

    ds = load_dataset(fmt if fmt != "array" else str(path), None if fmt == "array" else str(path), progress=False)
    n = sum(ds.size(s) for s in ("train", "val", "test"))
    return {**info, "images": n, "parts": {s: ds.size(s) for s in ("train", "val", "test")},
            "sizes": {f"{ds.shape[2]}x{ds.shape[1]}": n}, "classes": ds.num_classes, "output": _out(ds.shape, pre)}


def _out(shape: tuple[int, int, int], pre: Preprocess) -> list[int]:
    c, h, w = shape
    return [pre.channels or c, *pre.output_hw(h, w)]


def format_description(info: dict[str, Any]) -> str:
    """The summary as a few lines of text (what `vaecore data info` prints)."""
    lines = [f"{info['path']}: {info['format']}" + (f", layout {info['layout']}" if info.get("layout") else "")]
    if "images" in info:
        parts = ", ".join(f"{k} {v:,}" for k, v in (info.get("parts") or {}).items())
        of = f" of {info['image_files']:,} image files" if info.get("image_files") else ""
        lines.append(f"images: {info['images']:,}{of}" + (f" (files by part: {parts})" if parts else ""))
    if info.get("sizes"):
        more = info.get("distinct_sizes", len(info["sizes"]))
        sizes = ", ".join(f"{k}: {v:,}" for k, v in info["sizes"].items())
        lines.append(f"sizes (W x H): {sizes}" + (f" … ({more} distinct)" if more > len(info["sizes"]) else ""))
    if info.get("modes"):
        lines.append("modes: " + ", ".join(f"{k}: {v:,}" for k, v in info["modes"].items()))
    classes = info.get("classes")
    if isinstance(classes, list):
        counts = info.get("class_counts") or {}
        shown = ", ".join(f"{c} ({counts.get(c, '?')})" for c in classes[:20])
        lines.append(f"classes: {len(classes)} (folder names, sorted): {shown}" + (" …" if len(classes) > 20 else ""))
    elif classes:
        lines.append(f"classes: {classes}")
    elif info["format"] == "imagefolder":
        lines.append("classes: none (unlabelled)")
    if info.get("factors"):
        lines.append("factors: " + ", ".join(f"{k} ({v})" for k, v in info["factors"].items()))
    skipped = info.get("skipped") or {}
    if skipped.get("non_image_files") or skipped.get("unreadable") or skipped.get("outside_split_folders"):
        lines.append(f"skipped: {skipped.get('non_image_files', 0)} non-image file(s)"
                     + (f" (e.g. {', '.join(skipped['non_image_examples'][:3])})" if skipped.get("non_image_examples")
                        else "")
                     + f", {skipped.get('unreadable', 0)} unreadable"
                     + (f" ({'; '.join(skipped['unreadable_examples'][:3])})" if skipped.get("unreadable_examples")
                        else "")
                     + (f", {skipped['outside_split_folders']} outside the split folders"
                        if skipped.get("outside_split_folders") else ""))
    if info.get("bad"):
        lines.append(f"unusable images (skipped): {info['bad_summary']}")
    if info.get("protocol"):
        lines.append(f"protocol: {info['protocol']}")
    if info.get("refused"):
        lines.append(f"will refuse: {info['refused']}")
    elif info.get("output"):
        c, h, w = info["output"]
        lines.append(f"will load as: {c} x {h} x {w} ({'RGB' if c == 3 else 'grey'}) uint8")
        convert = info.get("will_convert") or {}
        lines.append("will convert: " + (", ".join(f"{k}: {v:,}" for k, v in convert.items()) if convert
                                         else "nothing"))
    return "\n".join(lines)
