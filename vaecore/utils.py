"""Small shared helpers: devices, seeding, atomic file writes, numerics."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import vaecore.limits as limits

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


FAULT_ENV = "VAE_FAULT_RENAME"
"""Test hook of the kill -9 tests: "N" kills this process just before its N-th rename of an atomic write, "N:after"
just after it; with VAE_FAULT_RENAME_LOG=path every rename is logged there ("N path"). Unset in normal use."""
_renames = 0


def _fault_point(dst: Path, when: str) -> None:
    global _renames
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    if when == "before":
        _renames += 1
        log = os.environ.get(FAULT_ENV + "_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{_renames} {dst}\n")
    nth, _, at = spec.partition(":")
    if nth.strip().isdigit() and int(nth) == _renames and (at or "before") == when:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def replace_file(src: str | Path, dst: str | Path) -> None:
    """`os.replace(src, dst)`: the one rename every atomic write of vaecore goes through (and where the kill -9
    tests inject their faults, see FAULT_ENV)."""
    _fault_point(Path(dst), "before")
    os.replace(src, dst)
    _fault_point(Path(dst), "after")


class WriteError(OSError):
    """A file could not be written (disk full, read-only, no permission); the message names it and what to do.
    `errno` is the original error's."""

    def __str__(self) -> str:
        return str(self.strerror)


_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space (or write to another disk) and run again",
    errno.EDQUOT: "the disk quota is used up: free some space (or write to another disk) and run again",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "no permission to write there: choose a folder you can write to",
    errno.EPERM: "no permission to write there: choose a folder you can write to",
}


def write_error(path: str | Path, err: OSError) -> OSError:
    """`err` as a WriteError naming `path` and what to do, for the errors a user can fix (full, read-only, no
    permission); other OSErrors are returned unchanged."""
    advice = _WRITE_ADVICE.get(err.errno or 0)
    if advice is None or isinstance(err, WriteError):
        return err
    return WriteError(err.errno, f"could not write {path}: {advice} (the previous file, if any, is intact)")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to `.NAME.XXXX.tmp` beside `path`, fsync, then rename over it: readers and a killed write
    see the old file or the new one, never a part. The file gets the usual mode (0644 under umask 022).
    A full disk, a read-only folder or a missing permission raise a WriteError naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=TMP_SUFFIX)
    except OSError as e:
        raise write_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from e
        raise
    fsync_dir(path.parent)


def remove_temp_files(folder: str | Path, names: tuple[str, ...]) -> int:
    """Remove the temporary files that killed atomic writes of `names` left in `folder` (call it holding the
    folder's writer lock); returns how many were removed."""
    folder = Path(folder)
    prefixes = tuple(temp_prefix(Path(name)) for name in names)
    n = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for p in entries:
        if p.name.startswith(prefixes) and p.name.endswith(TMP_SUFFIX) and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive `flock` on the lock file `path` for the block (waiting for another holder; the kernel drops it
    when its owner dies). The lock file is removed at the end; a waiter that finds its file removed meanwhile
    locks the new one instead (as `RunLock` does), so two holders never overlap."""
    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise write_error(path, e) from e
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def cache_dir() -> Path:
    """Where vaecore keeps what it computes once for a model it may not write to (fitted samplers of read-only
    or bundled models): VAE_CACHE_DIR, else $XDG_CACHE_HOME/vaecore, else ~/.cache/vaecore."""
    if os.environ.get("VAE_CACHE_DIR"):
        return Path(os.environ["VAE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vaecore"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """JSON counterpart of `atomic_write_bytes`."""
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def shown_name(text: str, limit: int = 200) -> str:
    """`text` as a message shows a name a user gave: whole up to `limit` characters, else its start and end with its
    length, so a hostile name cannot flood a message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit * 2 // 5]}…{text[-limit // 5:]} ({len(text):,} characters)"


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


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(data: bytes) -> int:
    """The deepest nesting of `[` and `{` in JSON text (strings skipped), counted without parsing it."""
    bare = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    if bare.size == 0:
        return 0
    step = (np.isin(bare, (ord("["), ord("{"))).astype(np.int64)
            - np.isin(bare, (ord("]"), ord("}"))).astype(np.int64))
    return int(np.cumsum(step).max(initial=0))


def parse_json_bytes(data: bytes, what: str) -> Any:
    """JSON from bytes within the size and depth limits (`vaecore.limits`): a ValueError naming `what` when the
    bytes are too large, too deep, not UTF-8 or not valid JSON. Never a RecursionError."""
    limits.JSON_MB.check(-(-len(data) // limits.MIB), f"{what}: the file size")
    limits.JSON_DEPTH.check(json_depth(data), f"{what}: the nesting depth")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} is not UTF-8 text ({e}); re-save it as UTF-8 JSON") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON ({e}); restore it or re-create the folder") from e
    except RecursionError as e:  # a depth the scan above missed (it never should)
        raise ValueError(f"{what} is nested too deeply to read") from e


def read_json(path: str | Path) -> Any:
    """Read a JSON file with an error that names the file when it is missing, too large or deep, not UTF-8 or
    not valid JSON. Its size is checked before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path} is missing") from e
    limits.JSON_MB.check(-(-size // limits.MIB), f"{path}: the file size")
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path} is missing") from e
    return parse_json_bytes(data, str(path))


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
