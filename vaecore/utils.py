"""Small shared helpers: devices, seeding, atomic file writes, numerics."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def check_device(name: str) -> str:
    """`name` if it is "auto" or a device torch knows by that name, else a ValueError saying what to pass."""
    if name == "auto":
        return name
    try:
        torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from e
    return name


def default_device(name: str = "auto") -> torch.device:
    """CUDA when there is a GPU, the CPU otherwise; an explicit name must name a device this machine has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(check_device(name))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but this machine has no CUDA GPU; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but there are only {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} asked for, but MPS is not available here; use --device cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so runs repeat."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def softclip(t: torch.Tensor, min_value: float = -6.0) -> torch.Tensor:
    """Smooth lower bound: min + softplus(t - min) (σ-VAE's clip on log σ)."""
    return min_value + F.softplus(t - min_value)


def flat_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first (the batch)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def _file_mode() -> int:
    """0666 less the process umask: what `open()` would give a new file (mkstemp gives 0600)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()
TMP_SUFFIX = ".tmp"


def temp_prefix(path: Path) -> str:
    """Prefix of the temporary files that atomic writes of `path` leave when killed: `.NAME.`."""
    return f".{path.name}."


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to `.NAME.XXXX.tmp` beside `path`, fsync, then rename over it: readers and a killed write
    see the old file or the new one, never a part. The file gets the usual mode (0644 under umask 022)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """JSON counterpart of `atomic_write_bytes`."""
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None, so it serialises as strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path,
                            metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors atomically (write, fsync, rename)."""
    from safetensors.torch import save

    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


def read_json(path: str | Path) -> Any:
    """Read a JSON file with an error that names the file when it is missing, not UTF-8 or not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path} is missing") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e}); re-save it as UTF-8 JSON") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it or re-create the folder") from e


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the block, on this machine's fastest exact-enough path
    (`vaecore.runtime.inference.prepare`); the model's train/eval mode is restored after."""
    from vaecore.runtime.inference import prepare

    prepare(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
