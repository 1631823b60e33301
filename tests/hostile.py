"""Hostile inputs for the reliability tests (tests/test_bounds.py, tests/memory_probe.py): model folders whose
config.json or weights ask for too much or are malformed, and upload files that try to expand past the limits.
Every builder writes small files (kilobytes to a few MB) into a folder given by the caller."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file


def tiny_model(folder: Path) -> Path:
    """A valid, untrained sigma-vae for 8×8 images (mlp, latent 4): config.json + model.safetensors."""
    import vaecore

    vaecore.build_preset("sigma-vae", input_shape=(1, 8, 8), dataset="digits", arch="mlp", latent_dim=4,
                         seed=0).save_pretrained(folder)
    return folder


def _edited(base: Path, dest: Path, change: Callable[[dict], object]) -> Path:
    shutil.copytree(base, dest)
    cfg = json.loads((dest / "config.json").read_text())
    out = change(cfg)
    (dest / "config.json").write_text(out if isinstance(out, str) else json.dumps(cfg))
    return dest


def _set(**changes: object) -> Callable[[dict], None]:
    return lambda cfg: cfg.update(changes)


def _deep(cfg: dict) -> str:
    return json.dumps(cfg)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _big(cfg: dict) -> str:
    return json.dumps({**cfg, "pad": "x" * (17 * 2**20)})


CONFIGS: dict[str, Callable[[dict], object]] = {
    "input_shape [1, 3000, 3000]": _set(input_shape=[1, 3000, 3000]),
    "input_shape [1, 100000, 100000]": _set(input_shape=[1, 100_000, 100_000]),
    "input_shape [512, 28, 28]": _set(input_shape=[512, 28, 28]),
    "latent_dim 10**6": _set(latent_dim=10**6),
    "vamp_components 10**6": _set(prior="vamp", vamp_components=10**6),
    "model_type dict": _set(model_type={"a": 1}),
    "model_type list": _set(model_type=["vae"]),
    "config 100,000 deep": _deep,
    "config 17 MB": _big,
    "preset 10**6 characters": _set(preset="p" * 10**6),
}


def model_folders(root: Path) -> dict[str, Path]:
    """One folder per hostile config (CONFIGS) and per hostile weights file, beside a valid one ('valid')."""
    base = tiny_model(root / "valid")
    out = {"valid": base}
    for i, (name, change) in enumerate(CONFIGS.items()):
        out[name] = _edited(base, root / f"config{i}", change)
    for name, change in (("weights NaN", lambda t: t * float("nan")), ("weights int64", lambda t: t.long())):
        folder = root / name.replace(" ", "-")
        shutil.copytree(base, folder)
        weights = load_file(str(folder / "model.safetensors"))
        key = next(k for k, v in weights.items() if v.dim() == 2)
        weights[key] = change(weights[key])
        save_file(weights, str(folder / "model.safetensors"))
        out[name] = folder
    forged = root / "weights-forged"
    shutil.copytree(base, forged)
    header = json.dumps({"big": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}}).encode()
    (forged / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    out["weights header claims 4 GB"] = forged
    return out


# uploads ------------------------------------------------------------------------------------------------------
def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    """A .npy header alone (no data) promising `shape`."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes], compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR promises width×height gray pixels (its data is one empty IDAT)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def uploads() -> dict[str, tuple[str, bytes]]:
    """Hostile uploads as (file name, bytes), for a model of 28×28 gray images, plus the largest valid one."""
    zeros = npy_bytes(np.zeros((100_000, 28, 28), np.uint8))  # 78 MB of zeros: deflates to ~80 KB
    many = {f"a{i}.npy": npy_bytes(np.zeros((1, 28, 28), np.uint8)) for i in range(20_000)}
    labels = np.array([0, 1, 10**15])
    return {
        "npz member 'x.npy/' (a folder entry) of 100,000 images": ("dir.npz", zip_bytes({"x.npy/": zeros})),
        "npz of 20,000 members": ("many.npz", zip_bytes(many, compress=False)),
        "npz of 100,000 compressed zero images": ("zeros.npz", zip_bytes({"x.npy": zeros})),
        "npy header of 3,000,000 images": ("forged.npy", npy_header((3_000_000, 28, 28))),
        "labels [0, 1, 10**15]": ("labels.npz", zip_bytes({"x.npy": npy_bytes(np.zeros((3, 28, 28), np.uint8)),
                                                          "y.npy": npy_bytes(labels)})),
        "png header of 60,000 x 60,000": ("bomb.png", png_header(60_000, 60_000)),
        "valid: 20,000 images (the limit)": ("mnist.npz", zip_bytes({
            "x.npy": npy_bytes(np.random.default_rng(0).integers(0, 256, (20_000, 28, 28), dtype=np.uint8)),
            "y.npy": npy_bytes(np.arange(20_000) % 10)}, compress=False)),
    }
