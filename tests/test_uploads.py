"""Uploads: limits are checked from the .npy / PNG headers before decoding, every failure is a clear
ValueError, and adding PNGs to a labelled array keeps its labels."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from explorer.uploads import MAX_IMAGES, UNLABELLED, array_headers, parse_uploads, png_size

SHAPE = (1, 28, 28)


def _npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    """A version 1.0 .npy header promising `shape` (the data may be missing: a forged file)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _png(width: int, height: int, rows: bool = True) -> bytes:
    """A grey PNG of width×height zeros, built row by row (no full image in memory); header only if not rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if not rows:
        return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _small_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_forged_npz_of_millions_of_images_is_refused_from_its_header() -> None:
    forged = _zip({"x.npy": _npy_header((3_000_000, 28, 28))})
    tracemalloc.start()
    with pytest.raises(ValueError, match="too many images"):
        parse_uploads([("zeros.npz", forged)], SHAPE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20


def test_a_compressed_npz_of_zeros_is_refused_before_decoding() -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((3 * MAX_IMAGES, 28, 28), np.uint8))
    data = buf.getvalue()
    assert len(data) < 2**20
    tracemalloc.start()
    with pytest.raises(ValueError, match=f"limit is {MAX_IMAGES:,}"):
        parse_uploads([("zeros.npz", data)], SHAPE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20, f"{peak / 2**20:.0f} MB allocated before refusing"


def test_the_image_limit_counts_every_file_from_the_headers() -> None:
    npy = _npy_header((15, 28, 28)) + bytes(15 * 28 * 28)
    with pytest.raises(ValueError, match="too many images .30"):
        parse_uploads([("a.npy", npy), ("b.npy", npy)], SHAPE, max_images=20)
    errors: list[str] = []
    up = parse_uploads([("a.npy", npy), ("b.npy", npy)], SHAPE, max_images=20, errors=errors)
    assert len(up) == 15 and len(errors) == 1 and "b.npy" in errors[0]


def test_a_huge_array_of_few_images_is_refused_by_its_decoded_size() -> None:
    with pytest.raises(ValueError, match="MB once decoded"):
        array_headers("wide.npy", _npy_header((10, 8000, 8000), "<f8"))


def test_pickled_and_truncated_arrays_give_a_message() -> None:
    with pytest.raises(ValueError, match="pickled"):
        parse_uploads([("o.npy", _npy_header((2,), "|O"))], SHAPE)
    with pytest.raises(ValueError, match="could not read"):
        parse_uploads([("short.npy", _npy_header((2, 28, 28)) + b"\x00" * 10)], SHAPE)


@pytest.mark.parametrize("width, height, rows", [(60_000, 60_000, False), (20_000, 20_000, False),
                                                 (5_000, 5_000, True)], ids=["forged-60000", "header-20000",
                                                                             "real-5000"])
def test_png_bombs_are_refused_from_the_header(width: int, height: int, rows: bool) -> None:
    data = _png(width, height, rows)
    assert png_size("x.png", data) == (width, height)
    tracemalloc.start()
    with pytest.raises(ValueError, match="limit is"):
        parse_uploads([("bomb.png", data)], SHAPE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20


def test_a_png_without_a_header_gives_a_message() -> None:
    with pytest.raises(ValueError, match="IHDR"):
        parse_uploads([("cut.png", b"\x89PNG\r\n\x1a\n\x00\x00")], SHAPE)


def test_adding_a_png_to_a_labelled_npz_keeps_the_labels() -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((3, 28, 28), np.uint8), y=np.array([4, 5, 6]))
    up = parse_uploads([("digits.npz", buf.getvalue()), ("mine.png", _small_png())], SHAPE)
    assert len(up) == 4 and up.labels.tolist() == [4, 5, 6, UNLABELLED]
    only_png = parse_uploads([("mine.png", _small_png())], SHAPE)
    assert only_png.labels is None


def test_16_bit_png_is_scaled_not_clipped() -> None:
    from PIL import Image

    from explorer.uploads import parse_png

    values = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")
    x = parse_png("deep.png", buf.getvalue(), (1, 2, 2), invert=False)
    assert x.shape == (1, 2, 2)
    assert x.flatten().tolist() == pytest.approx([0.0, 64 / 255, 128 / 255, 1.0], abs=1 / 255)
