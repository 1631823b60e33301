"""Image files, read safely: find them under a folder (symlink loops and unreadable entries skipped and
counted), read their headers, and decode them to uint8 (C, H, W) through the explicit transform.

Only PNG, JPEG, WebP and BMP are opened (Pillow restricted to those decoders). An image whose header
claims more than `MAX_PIXELS` pixels is refused before any pixel is decoded (a decompression bomb);
so are truncated or corrupt files. Modes are converted and counted: 1-bit and 16-bit grey become
8-bit grey (16-bit values shifted right by 8), palette and CMYK images become RGB, alpha channels
are dropped. Grey ↔ RGB happens only when the transform asks for it (`Preprocess.channels`).
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaecore.data.preprocess import Preprocess, geometry

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "BadImage", "BadFiles", "FileScan", "decode_image", "probe_image",
           "scan_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB")
MAX_PIXELS = 40_000_000  # pixels one image may claim (e.g. 8000 x 5000); larger headers are refused unread
BAD_FRACTION = 0.01  # bad image files tolerated: up to max(BAD_MIN, 1% of the image files), then refused
BAD_MIN = 10
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"}
SHOWN = 5


class BadImage(Exception):
    """An image file that cannot be used; the message says why."""


@dataclass
class FileScan:
    """What a folder holds: image files (relative paths, sorted) and what was skipped."""

    root: Path
    images: list[str] = field(default_factory=list)
    stats: dict[str, os.stat_result] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"image_files": len(self.images), "non_image_files": len(self.other),
                "non_image_examples": self.other[:SHOWN], "unreadable": len(self.unreadable),
                "unreadable_examples": [f"{n} ({why})" for n, why in self.unreadable[:SHOWN]]}


@dataclass
class BadFiles:
    """Image files skipped as unusable, with the reason; refused past the threshold."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, reason: str) -> None:
        self.items.append((name, reason))

    def check(self, total: int, where: str) -> None:
        """ValueError when more than max(BAD_MIN, BAD_FRACTION · total) image files are bad."""
        allowed = max(BAD_MIN, int(BAD_FRACTION * total))
        if len(self.items) > allowed:
            raise ValueError(f"{where}: {len(self.items)} of {total} image files cannot be used (over the limit of "
                             f"{allowed}): {self.describe()}; fix or remove them")

    def describe(self) -> str:
        """'reason: count (first names)' per kind of reason, e.g. 'corrupt or truncated: 2 (a.png, b.png)'."""
        groups: dict[str, list[str]] = {}
        for name, reason in self.items:
            groups.setdefault(reason.split(":")[0], []).append(name)
        parts = []
        for reason, names in sorted(groups.items()):
            more = f", and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
            parts.append(f"{reason}: {len(names)} ({', '.join(names[:SHOWN])}{more})")
        return "; ".join(parts)


def scan_folder(root: Path, *, skip_dirs: tuple[str, ...] = ()) -> FileScan:
    """Every image file under `root` (following folder symlinks once each; loops and unreadable
    entries recorded), with its stat; other files counted. Hidden entries (".name") are skipped."""
    scan = FileScan(root)
    seen: set[tuple[int, int]] = set()
    try:
        st = root.stat()
    except OSError as err:
        raise FileNotFoundError(f"data folder not readable: {root} ({err.strerror or err})") from err
    seen.add((st.st_dev, st.st_ino))
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            scan.unreadable.append((prefix or ".", f"unreadable folder: {err.strerror or err}"))
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.name.startswith(".") or (not prefix and entry.name in skip_dirs):
                continue
            try:
                st = entry.stat()  # follows symlinks
            except OSError as err:
                why = "symlink loop" if err.errno == 40 else ("broken symlink" if entry.is_symlink()
                                                              else err.strerror or str(err))
                scan.unreadable.append((rel, why))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    scan.unreadable.append((rel, "symlink loop (folder already visited)"))
                    continue
                seen.add(key)
                stack.append((Path(entry.path), rel + "/"))
            elif not stat.S_ISREG(st.st_mode):
                scan.other.append(rel)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                if not os.access(entry.path, os.R_OK):
                    scan.unreadable.append((rel, "permission denied"))
                    continue
                scan.images.append(rel)
                scan.stats[rel] = st
            else:
                scan.other.append(rel)
    scan.images.sort()
    return scan


def _open(path: Path) -> Any:
    """Open an image lazily (header only), refusing other formats and decompression bombs."""
    from PIL import Image, UnidentifiedImageError

    Image.init()  # registers every decoder, so the format restriction below names known ones
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path, formats=PIL_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise BadImage(f"decompression bomb: {err}") from err
        except UnidentifiedImageError as err:
            raise BadImage("not a PNG/JPEG/WebP/BMP image") from err
        except (SyntaxError, ValueError, EOFError) as err:
            raise BadImage(f"corrupt header: {err}") from err
        except OSError as err:
            raise BadImage(f"unreadable: {err.strerror or err}") from err
    w, h = img.size
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        img.close()
        raise BadImage(f"decompression bomb: the header claims {w}x{h} pixels (limit {MAX_PIXELS:,})")
    return img


def probe_image(path: Path) -> tuple[int, int, str]:
    """(width, height, mode) from the header alone."""
    img = _open(path)
    with img:
        return img.size[0], img.size[1], img.mode


def channels_of_mode(mode: str) -> int:
    """1 for grey modes (with or without alpha, 1/8/16-bit), 3 for colour ones."""
    return 1 if mode in GREY_MODES else 3


def decode_image(path: Path, pre: Preprocess, target_hw: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
    """Decode to uint8 (C, H, W) with `pre` applied; returns the conversions made (for counting)."""
    from PIL import Image

    img = _open(path)
    notes: list[str] = []
    with img:
        try:
            img.load()
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise BadImage(f"corrupt or truncated: {err}") from err
        mode = img.mode
        natural = channels_of_mode(mode)
        if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
            arr = np.asarray(img).astype(np.int64)
            out = Image.fromarray((np.clip(arr, 0, 65535) >> 8).astype(np.uint8))
            notes.append(f"{mode}→L (16-bit to 8-bit)")
        elif mode in ("L", "RGB"):
            out = img.copy()
        else:
            base = "L" if natural == 1 else "RGB"
            out = img.convert(base)
            notes.append(f"{mode}→{base}" + (" (alpha dropped)" if "A" in mode or "a" in mode else ""))
    want = pre.channels or natural
    if want != natural:
        out = out.convert("RGB" if want == 3 else "L")
        notes.append("grey→RGB" if want == 3 else "RGB→grey")
    size = out.size
    out = geometry(out, pre, target_hw)
    if out.size != size:
        notes.append("resized")
    arr = np.asarray(out, dtype=np.uint8)
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), notes
