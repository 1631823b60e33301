"""Decode a dataset of image files into the on-disk cache once: read every header, decide the output size
and channels, decode (in worker processes for large sets) through the explicit transform, and write
uint8 rows — resumably, with a progress bar, counting what was skipped or converted.

Used by the image-folder and CelebA formats. The parts (e.g. "all", or "train"/"val"/"test") are lists
of files; per-file arrays (labels, attributes) are kept for the images that decoded, with `index`,
the position in the part's file list of each cached row.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaecore.data.cache import CacheEntry, CacheWriter, ProgressBar, fingerprint_files, open_cache
from vaecore.data.imagefiles import BadFiles, BadImage, channels_of_mode, decode_image, probe_image
from vaecore.data.preprocess import Preprocess

__all__ = ["FileParts", "build_file_cache", "probe_files"]

PARALLEL_MIN = 1000  # files: fewer are read in this process
CHUNK = 128  # files per worker task
SAVE_EVERY = 4096  # images between progress records
MAX_CACHE_BYTES = 2**40  # a dataset whose cache would exceed 1 TiB is refused before anything is written


@dataclass
class FileParts:
    """Image files by part (names relative to `root`), their stats, and per-file arrays by part."""

    root: Path
    parts: dict[str, list[str]]
    stats: dict[str, os.stat_result]
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    extra_fingerprint: list[tuple[str, os.stat_result]] = field(default_factory=list)

    def fingerprint(self) -> dict[str, Any]:
        files = [(f"{part}/{name}", self.stats[name]) for part, names in self.parts.items() for name in names]
        return fingerprint_files(files + self.extra_fingerprint)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.parts.values())


def _workers(n: int) -> int:
    if n < PARALLEL_MIN:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(0, min(cores, 8))


def _probe_chunk(paths: list[str]) -> list[tuple[int, int, str] | str]:
    out: list[tuple[int, int, str] | str] = []
    for path in paths:
        try:
            out.append(probe_image(Path(path)))
        except BadImage as err:
            out.append(str(err))
    return out


def _decode_chunk(paths: list[str], pre: dict[str, Any], target: tuple[int, int] | None
                  ) -> list[tuple[np.ndarray | None, list[str] | str]]:
    transform = Preprocess(**pre)
    out: list[tuple[np.ndarray | None, list[str] | str]] = []
    for path in paths:
        try:
            out.append(decode_image(Path(path), transform, target))
        except BadImage as err:
            out.append((None, str(err)))
    return out


def _map_chunks(fn: Any, paths: list[str], workers: int, *args: Any) -> Iterator[list[Any]]:
    """fn(chunk, *args) over chunks of paths, in order; in worker processes when `workers`, at most
    2·workers chunks in flight."""
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    if not workers:
        for chunk in chunks:
            yield fn(chunk, *args)
        return
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[cf.Future] = deque()
        it = iter(chunks)
        for chunk in it:
            pending.append(pool.submit(fn, chunk, *args))
            if len(pending) >= 2 * workers:
                break
        while pending:
            yield pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(fn, nxt, *args))


def probe_files(root: Path, names: list[str], progress: Any = False, desc: str = "reading headers"
                ) -> list[tuple[int, int, str] | str]:
    """Header of every file, (width, height, mode), or the reason it cannot be used."""
    bar = ProgressBar(progress, len(names), desc)
    out: list[tuple[int, int, str] | str] = []
    try:
        for chunk in _map_chunks(_probe_chunk, [str(root / n) for n in names], _workers(len(names))):
            out += chunk
            bar.update(len(chunk))
    finally:
        bar.close()
    return out


def decide_shape(headers: list[tuple[int, int, str]], pre: Preprocess, names: list[str], where: str
                 ) -> tuple[int, tuple[int, int]]:
    """Output channels and (H, W): the transform's when set, else the data's (the most common size);
    data mixing grey and colour images without `channels` is refused, naming examples of both."""
    if not headers:
        raise ValueError(f"{where}: no usable image")
    kinds = Counter(channels_of_mode(mode) for _, _, mode in headers)
    if pre.channels is None and len(kinds) > 1:
        grey = [n for n, (_, _, m) in zip(names, headers, strict=True) if channels_of_mode(m) == 1][:3]
        colour = [n for n, (_, _, m) in zip(names, headers, strict=True) if channels_of_mode(m) == 3][:3]
        raise ValueError(f"{where} mixes grey ({kinds[1]} images, e.g. {', '.join(grey)}) and colour ({kinds[3]} "
                         f"images, e.g. {', '.join(colour)}); pass --channels 1 (to grey) or --channels 3 (to RGB)")
    channels = pre.channels or next(iter(kinds))
    sizes = Counter(pre.output_hw(h, w) for w, h, _ in headers)
    return channels, sizes.most_common(1)[0][0]


def build_file_cache(kind: str, source: str, files: FileParts, pre: Preprocess, progress: Any,
                     settings: dict[str, Any] | None = None, info: dict[str, Any] | None = None) -> CacheEntry:
    """The cache of these image files under `pre`, built (or resumed) unless a valid one exists; `info` is
    recorded in its manifest (e.g. the class names its labels index)."""
    where = source

    def build(writer: CacheWriter) -> None:
        state = writer.progress
        if "target" not in state:
            state = _plan(files, pre, progress, where)
            c, h, w = state["target"]
            need = sum(len(g) for g in state["good"].values()) * c * h * w
            if need > MAX_CACHE_BYTES:
                raise ValueError(f"{where}: the cache would take {need / 2**40:.1f} TiB (limit 1 TiB); "
                                 "pass a smaller --image-size")
            writer.check_space(need)
            writer.save_progress(state)
        _decode_all(writer, state, files, pre, progress, where)
        writer.info.update(info or {})

    return open_cache(kind, source, {"preprocess": pre.to_dict(), **(settings or {})}, files.fingerprint(), build)


def _plan(files: FileParts, pre: Preprocess, progress: Any, where: str) -> dict[str, Any]:
    """Read every header: which files are usable, the output (C, H, W), sizes and modes seen."""
    names = [name for part in files.parts.values() for name in part]
    headers = probe_files(files.root, names, progress, "reading image headers")
    bad = BadFiles([(n, h) for n, h in zip(names, headers, strict=True) if isinstance(h, str)])
    bad.check(len(names), where)
    good_names = [n for n, h in zip(names, headers, strict=True) if not isinstance(h, str)]
    good_headers = [h for h in headers if not isinstance(h, str)]
    if not good_headers:
        raise ValueError(f"{where}: none of the {len(names)} image files could be read: {bad.describe()}")
    channels, (height, width) = decide_shape(good_headers, pre, good_names, where)  # type: ignore[arg-type]
    good: dict[str, list[int]] = {}
    position = 0
    for part, part_names in files.parts.items():
        good[part] = [i for i in range(len(part_names)) if not isinstance(headers[position + i], str)]
        position += len(part_names)
        if not good[part]:
            raise ValueError(f"{where}: the {part} part has no usable image ({len(part_names)} files)")
    sizes = Counter(f"{w}x{h}" for w, h, _ in good_headers)  # type: ignore[misc]
    modes = Counter(m for _, _, m in good_headers)  # type: ignore[misc]
    return {"target": [channels, height, width], "good": good, "bad": bad.items, "next": dict.fromkeys(good, 0),
            "rows": dict.fromkeys(good, 0), "dropped": {p: [] for p in good}, "notes": {},
            "sizes": dict(sizes.most_common(10)), "distinct_sizes": len(sizes), "modes": dict(modes)}


def _decode_all(writer: CacheWriter, state: dict[str, Any], files: FileParts, pre: Preprocess, progress: Any,
                where: str) -> None:
    c, h, w = state["target"]
    total = sum(len(g) for g in state["good"].values())
    bar = ProgressBar(progress, total, f"decoding {Path(where).name} into the cache")
    bar.update(sum(state["next"].values()))
    notes = Counter(state["notes"])
    bad = BadFiles([tuple(b) for b in state["bad"]])
    try:
        for part, good in state["good"].items():
            names = files.parts[part]
            arr = writer.images(part, len(good), (c, h, w))
            start = state["next"][part]
            todo = [str(files.root / names[i]) for i in good[start:]]
            since = 0
            target = None if pre.image_size is not None else (h, w)
            for chunk in _map_chunks(_decode_chunk, todo, _workers(len(todo)), pre.to_dict(), target):
                for image, result in chunk:
                    index = good[state["next"][part]]
                    state["next"][part] += 1
                    if image is None:
                        bad.add(names[index], str(result))
                        state["dropped"][part].append(index)
                        continue
                    arr[state["rows"][part]] = image
                    state["rows"][part] += 1
                    notes.update(result)
                bar.update(len(chunk))
                since += len(chunk)
                if since >= SAVE_EVERY:
                    since = 0
                    state["bad"], state["notes"] = bad.items, dict(notes)
                    writer.save_progress(state)
            state["bad"], state["notes"] = bad.items, dict(notes)
            writer.save_progress(state)
            del arr
    finally:
        bar.close()
    bad.check(files.total, where)
    for part, good in state["good"].items():
        dropped = set(state["dropped"][part])
        kept = np.array([i for i in good if i not in dropped], dtype=np.int64)
        writer.finish_part(part, len(kept))
        writer.array(part, "index", kept)
        for name, values in files.arrays.get(part, {}).items():
            writer.array(part, name, np.asarray(values)[kept])
    writer.info = {"target": state["target"], "skipped": {"bad": len(bad.items), "examples": bad.items[:5],
                                                          "summary": bad.describe() if bad.items else ""},
                   "converted": dict(notes), "sizes": state["sizes"], "distinct_sizes": state["distinct_sizes"],
                   "modes": state["modes"]}
