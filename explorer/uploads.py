"""User-supplied images: parse uploaded .npz / .npy arrays and PNG files into a model-ready batch.

Arrays follow the rules of `vaecore.data` (uint8 0..255 or floats in [0, 1]; (N, H, W), (N, H, W, C) or
(N, C, H, W); keys x_train/y_train/x_test/…, x/y, images/labels, or a single array) and must already
have the model's height and width. PNGs are converted to the model's channels and resized to its
H×W; colour stays colour for a colour model, and every conversion made is counted (`Uploaded.notes`) so the
page can say so. Anything else raises ValueError with a message that says what was wrong and what is accepted.
Nothing is ever unpickled.

Sizes are checked before anything is decoded: array shapes and dtypes from the .npy headers (inside a
.npz too, with the zip's uncompressed sizes), image sizes from the PNG header. A compressed file of
zeros can therefore not expand into gigabytes, and a forged PNG header is refused without decoding.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import torch
from torch import Tensor

import vaecore.limits as limits
from vaecore.data.arrays import images_from_array, labels_from_array
from vaecore.data.formats.npz import pick_splits

MAX_IMAGES = limits.UPLOAD_IMAGES.default  # defaults; the limits in force are read from vaecore.limits per upload
MAX_ARRAY_BYTES = limits.UPLOAD_MB.default * limits.MIB
MAX_PNG_PIXELS = limits.PNG_PIXELS.default
UNLABELLED = -1
ACCEPTED = ("npz", "npy", "png")

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Uploaded:
    """Images (N, C, H, W) float32 in [0, 1], labels (N,) int64 or None, and where each image came from."""

    images: Tensor
    labels: Tensor | None
    names: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # conversion made for the model → how many images

    named_labels: int = 0  # how many labels were read from file names (`label_from_name`)

    def note(self, what: str, n: int) -> Uploaded:
        if n:
            self.notes[what] = self.notes.get(what, 0) + n
        return self

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _kind(name: str, data: bytes) -> str:
    """'npz', 'npy' or 'png' from the content (magic bytes), checked against the file name."""
    head = data[:8]
    if head.startswith(_NPY_MAGIC):
        kind = "npy"
    elif head.startswith(_ZIP_MAGIC):
        kind = "npz"
    elif head.startswith(_PNG_MAGIC):
        kind = "png"
    else:
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext in ACCEPTED:
            raise ValueError(f"{name}: the file is not a valid .{ext} (its first bytes do not match the format)")
        raise ValueError(f"{name}: unsupported file type; upload .npz or .npy arrays or PNG images")
    return kind


def _to_model_channels(x: np.ndarray, channels: int, what: str) -> np.ndarray:
    """(N, C, H, W) float array with C made equal to the model's channels (RGB ↔ gray)."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 3 and channels == 1:
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).astype(np.float32)
    if c == 1 and channels == 3:
        return np.repeat(x, 3, axis=1)
    raise ValueError(f"{what}: images have {c} channels, the model takes {channels}")


def _npy_header(stream: IO[bytes], what: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, without reading the data."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = npy_format.read_array_header_2_0(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise ValueError(f"{what}: could not read as a NumPy .npz/.npy file ({err})") from err
    if dtype.hasobject:
        raise ValueError(f"{what}: object (pickled) arrays are not supported")
    return tuple(int(d) for d in shape), dtype


def _too_many(what: str, total: int, max_images: int) -> ValueError:
    return limits.LimitError(f"{what}: too many images ({total:,} with the files before it); the limit is "
                             f"{max_images:,} per upload (environment variable {limits.UPLOAD_IMAGES.env}, and "
                             f"{limits.UPLOAD_MB.env} for their decoded size)")


def _image_limit(shape: tuple[int, int, int], max_images: int | None) -> int:
    """The images an upload may hold for a model of `shape`: the image-count limit, and no more than the
    decoded-size limit holds as float32 images of that shape."""
    by_count = limits.UPLOAD_IMAGES.value if max_images is None else max_images
    by_bytes = limits.UPLOAD_MB.value * limits.MIB // (4 * math.prod(shape))
    return max(1, min(by_count, by_bytes))


def _decoded_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes an array takes once decoded and converted to float32 (the larger of the two)."""
    return (math.prod(shape) if shape else 1) * max(dtype.itemsize, 4)


def _check_array_size(shape: tuple[int, ...], dtype: np.dtype, what: str, max_images: int, already: int) -> int:
    """The number of images an array header promises; raises when they or their decoded size are too big."""
    count = 1 if len(shape) == 2 else (shape[0] if shape else 0)
    if already + count > max_images:
        raise _too_many(what, already + count, max_images)
    decoded = _decoded_bytes(shape, dtype)
    if decoded > limits.UPLOAD_MB.value * limits.MIB:
        raise limits.LimitError(f"{what}: shape {shape} would take {decoded / 2**20:,.0f} MB once decoded; the limit "
                                f"is {limits.UPLOAD_MB.value:,} MB per upload (environment variable "
                                f"{limits.UPLOAD_MB.env})")
    return count


def _zip_entries(data: bytes) -> int | None:
    """The number of members a zip's end-of-central-directory record declares (zip64 included), read from the
    last bytes alone, so an archive of millions of members is refused before its directory is parsed."""
    tail = data[-(2**16 + 22):]
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return None
    total = struct.unpack("<H", tail[end + 10:end + 12])[0]
    if total == 0xFFFF:
        end64 = tail.rfind(b"PK\x06\x06", 0, end)
        if end64 < 0 or end - end64 < 40:
            return None
        total = struct.unpack("<Q", tail[end64 + 32:end64 + 40])[0]
    return int(total)


def _too_many_members(name: str, count: int, first: list[str]) -> limits.LimitError:
    shown = "".join(f"{n[:40]!r}, " for n in first[:3])
    return limits.LimitError(f"{name}: the archive holds {count:,} members ({shown}…); the limit is "
                             f"{limits.ARCHIVE_MEMBERS.value:,} arrays per .npz (environment variable "
                             f"{limits.ARCHIVE_MEMBERS.env}); save the images as one array")


def _members(zf: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """The archive's members, refused when there are too many or one is not a plain `.npy` array entry (a name
    ending in '/' is a folder entry, which NumPy would still read as an array)."""
    infos = zf.infolist()
    if len(infos) > limits.ARCHIVE_MEMBERS.value:
        raise _too_many_members(name, len(infos), [i.filename for i in infos])
    for info in infos:
        if info.filename.endswith("/") or info.is_dir():
            raise ValueError(f"{name}: member {info.filename[:80]!r} is a folder entry, not an array; a .npz holds "
                             "only .npy arrays (save it with numpy.savez)")
    return infos


def array_headers(name: str, data: bytes, max_images: int = MAX_IMAGES, already: int = 0) -> int:
    """Check every array of a .npz / .npy file from its header alone; the number of images they hold.

    `already` counts the images of the files before this one, against the same `max_images`. Every member of
    an archive counts (folder entries are refused), and their decoded sizes together stay within the limit.
    """
    if data.startswith(_NPY_MAGIC):
        return _check_array_size(*_npy_header(io.BytesIO(data), name), name, max_images, already)
    declared = _zip_entries(data)
    if declared is not None and declared > limits.ARCHIVE_MEMBERS.value:
        raise _too_many_members(name, declared, [])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = _members(zf, name)
            total = decoded = 0
            for info in members:
                what = f"{name} [{info.filename.removesuffix('.npy')[:80]}]"
                with zf.open(info) as member:
                    shape, dtype = _npy_header(member, what)
                if info.filename.removesuffix(".npy").startswith(("y", "label")):
                    _check_array_size(shape[:1], dtype, what, max_images, 0)
                else:
                    total += _check_array_size(shape, dtype, what, max_images, already + total)
                decoded += _decoded_bytes(shape, dtype)
                if decoded > limits.UPLOAD_MB.value * limits.MIB:
                    raise limits.LimitError(
                        f"{name}: its arrays would take {decoded / 2**20:,.0f} MB once decoded; the limit is "
                        f"{limits.UPLOAD_MB.value:,} MB per upload (environment variable {limits.UPLOAD_MB.env})")
            return total
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as err:
        raise ValueError(f"{name}: could not read as a NumPy .npz/.npy file ({err})") from err


def parse_array(name: str, data: bytes, shape: tuple[int, int, int], max_images: int = MAX_IMAGES,
                already: int = 0) -> Uploaded:
    """Images (and labels, if present) from the bytes of a .npz or .npy file, for a model of `shape` (C, H, W).

    Every split a .npz holds (x_train, x_val, x_test) is used, in that order. The headers are checked
    first (`array_headers`), so nothing larger than the limits is ever decoded.
    """
    array_headers(name, data, max_images, already)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        arrays = {"x": loaded} if isinstance(loaded, np.ndarray) else {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{name}: could not read as a NumPy .npz/.npy file ({err})") from err
    except MemoryError as err:
        raise ValueError(f"{name}: too large to decode on this server") from err
    if not arrays:
        raise ValueError(f"{name}: the .npz file holds no arrays")
    picked = pick_splits(arrays, name)  # type: ignore[arg-type]
    xs, ys = [], []
    for split in ("train", "val", "test"):
        x = picked.get(f"x_{split}")
        if x is None:
            continue
        if x.dtype.kind not in "buif":
            raise ValueError(f"{name}: images have dtype {x.dtype}; expected uint8 (0..255) or floats in [0, 1]")
        if x.ndim == 2 and x.shape == tuple(shape[1:]):
            x = x[None]
        images = images_from_array(x, f"{name} [{'x' if split == 'train' else 'x_' + split}]")
        xs.append(images)
        ys.append(labels_from_array(picked.get(f"y_{split}"), len(images), f"{name} [y_{split}]"))
    c, h, w = shape
    for images in xs:
        if images.shape[2:] != (h, w):
            raise ValueError(f"{name}: images are {images.shape[2]}×{images.shape[3]} pixels, the model takes "
                             f"{h}×{w}; resize them first (or upload PNGs, which are resized for you)")
    joined = np.concatenate(xs)
    x = _to_model_channels(joined, c, name)
    labels = None
    if all(y is not None for y in ys):
        labels = torch.from_numpy(np.concatenate(ys))
    out = Uploaded(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), labels, [name] * len(x))
    return out.note(_channel_note(joined.shape[1], c), len(x) if joined.shape[1] != c else 0)


def _channel_note(have: int, want: int) -> str:
    return "colour → grey" if have == 3 and want == 1 else "grey → colour (RGB)"


def png_size(name: str, data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, read without decoding the image."""
    if len(data) < 24 or not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        raise ValueError(f"{name}: not a readable PNG image (no IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise ValueError(f"{name}: the PNG header says {width}×{height} pixels")
    return int(width), int(height)


def parse_png(name: str, data: bytes, shape: tuple[int, int, int], invert: bool | None = None,
              notes: dict[str, int] | None = None) -> Tensor:
    """One PNG as a (C, H, W) float tensor in [0, 1]: converted to the model's channels, resized to H×W (the
    conversions made are counted in `notes`).

    `invert=None` decides by the border: MNIST-style data is a light shape on a dark background, so a
    picture whose border is mostly light (dark ink on paper) is inverted.
    """
    from PIL import Image, UnidentifiedImageError

    width, height = png_size(name, data)
    if width * height > limits.PNG_PIXELS.value:
        raise limits.LimitError(f"{name}: the PNG is {width:,}×{height:,} pixels; the limit is "
                                f"{limits.PNG_PIXELS.value:,} pixels (e.g. 4096×4096) per image (environment "
                                f"variable {limits.PNG_PIXELS.env})")
    try:
        img = Image.open(io.BytesIO(data))
        if img.size != (width, height):
            raise ValueError(f"size {img.size} does not match the header's {width}×{height}")
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{name}: not a readable PNG image ({err})") from err
    except MemoryError as err:
        raise ValueError(f"{name}: too large to decode on this server") from err
    if img.format != "PNG":
        raise ValueError(f"{name}: expected a PNG image, got {img.format or 'an unknown format'}")
    c, h, w = shape
    if img.mode == "I" or img.mode.startswith("I;16"):  # 16-bit gray: scale by the header's bit depth, not clip
        depth = data[24]
        scaled = np.asarray(img, dtype=np.float64) / float(2 ** depth - 1)
        img = Image.fromarray(np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    notes = {} if notes is None else notes
    grey = img.mode in ("1", "L", "LA", "La", "I", "F") or img.mode.startswith("I;16")
    if grey != (c == 1):
        what = _channel_note(1 if grey else 3, c)
        notes[what] = notes.get(what, 0) + 1
    img = img.convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        what = f"resized {img.size[0]}×{img.size[1]} → {w}×{h}"
        notes[what] = notes.get(what, 0) + 1
        img = img.resize((w, h), Image.BILINEAR if min(img.size) < 2 * min(w, h) else Image.LANCZOS)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    if invert is None:
        border = np.concatenate([arr[:, 0].ravel(), arr[:, -1].ravel(), arr[:, :, 0].ravel(), arr[:, :, -1].ravel()])
        invert = float(border.mean()) > 0.5
    if invert:
        arr = 1.0 - arr
    return torch.from_numpy(np.ascontiguousarray(arr))


_LEADING_LABEL = re.compile(r"^(\d{1,2})(?:[_\-. ]|$)")
_NAMED_LABEL = re.compile(r"(?:^|[_\-. ])(?:label|class|digit|y)[_\-=]?(\d{1,3})(?:[_\-. ]|$)", re.IGNORECASE)
LABEL_NAMES = "a name that starts with the label (3.png, 3_a.png, 3-17.png) or holds label3 / class_3 / digit-3 / y=3"


def label_from_name(name: str) -> int | None:
    """The class label a file name gives (LABEL_NAMES: '7.png', '7_001.png', 'img_label3.png'), else None."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    found = _LEADING_LABEL.match(stem) or _NAMED_LABEL.search(stem)
    return int(found.group(1)) if found else None


def parse_uploads(files: Iterable[tuple[str, bytes]], shape: tuple[int, int, int],
                  invert: bool | None = None, max_images: int | None = None,
                  errors: list[str] | None = None) -> Uploaded:
    """All uploaded files (name, bytes) as one batch for a model of `shape` (C, H, W).

    Arrays and PNGs may be mixed. A PNG's label is read from its file name (`label_from_name`). When some files
    carry labels, images without one (PNGs, unlabelled
    arrays) get UNLABELLED (-1), so adding a PNG never drops the other files' labels. Limits are checked
    from each file's header before it is decoded. A bad file raises ValueError, unless an `errors` list
    is given: then its message is appended there and the other files are still used (a UI can show both).
    """
    parts: list[Uploaded] = []
    total = 0
    max_images = _image_limit(shape, max_images)
    for name, data in files:
        try:
            if not data:
                raise ValueError(f"{name}: the file is empty")
            if _kind(name, data) == "png":
                if total + 1 > max_images:
                    raise _too_many(name, total + 1, max_images)
                notes: dict[str, int] = {}
                label = label_from_name(name)
                part = Uploaded(parse_png(name, data, shape, invert, notes)[None],
                                None if label is None else torch.tensor([label], dtype=torch.int64), [name], notes,
                                named_labels=int(label is not None))
            else:
                part = parse_array(name, data, shape, max_images, already=total)
        except ValueError as e:
            if errors is None:
                raise
            errors.append(str(e))
            continue
        parts.append(part)
        total += len(part)
    if not parts:
        raise ValueError("no usable files uploaded" if errors else "no files uploaded")
    images = torch.cat([p.images for p in parts])
    labels = None
    if any(p.labels is not None for p in parts):
        labels = torch.cat([p.labels if p.labels is not None else torch.full((len(p),), UNLABELLED, dtype=torch.int64)
                            for p in parts])
    out = Uploaded(images, labels, [n for p in parts for n in p.names], named_labels=sum(p.named_labels for p in parts))
    for p in parts:
        for what, n in p.notes.items():
            out.note(what, n)
    return out


__all__ = ["ACCEPTED", "LABEL_NAMES", "MAX_ARRAY_BYTES", "MAX_IMAGES", "MAX_PNG_PIXELS", "UNLABELLED", "Uploaded",
           "array_headers", "label_from_name", "parse_array", "parse_png", "parse_uploads", "png_size"]
