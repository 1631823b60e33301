"""Measured kernel choices kept per machine, so a choice is timed once per machine and shape, not once per run.

One JSON file per machine signature (`machine.signature()`: CPU, the ISA the kernels use, threads, torch) in
`cache_dir()/kernels/`: `$VAECORE_CACHE_DIR`, else `$XDG_CACHE_HOME/vaecore`, else `~/.cache/vaecore`. A
machine capped to AVX2, or run with another thread count, reads and writes its own file. Entries map a layer's
geometry and input signature to the kernel chosen and the timings behind it. Writes merge with what other
processes wrote meanwhile (under a file lock) and are atomic; a missing, unreadable or oversized file is
treated as empty, and a folder that cannot be written keeps the choices in memory only. Within a process a key
keeps the first choice it got, so two instances of one model compute alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vaecore.runtime import machine

__all__ = ["MAX_BYTES", "MAX_ENTRIES", "cache_dir", "cache_path", "find", "lookup", "store"]

MAX_BYTES = 4 * 2**20  # a cache file larger than this is ignored (and replaced)
MAX_ENTRIES = 20_000  # per machine; beyond it new choices are kept in memory only
FORMAT = "vaecore-kernels/1"
_lock = threading.Lock()
_loaded: dict[str, dict[str, Any]] = {}  # signature -> entries


def cache_dir() -> Path:
    """Where vaecore keeps per-machine measurements."""
    if os.environ.get("VAECORE_CACHE_DIR"):
        return Path(os.environ["VAECORE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaecore"


def cache_path(signature: str | None = None) -> Path:
    """The kernel-choice file of a machine signature (this machine's now by default)."""
    return cache_dir() / "kernels" / f"{signature or machine.signature()}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, dict)
            and isinstance(v.get("choice"), str)}


def _entries(signature: str) -> dict[str, Any]:
    if signature not in _loaded:
        _loaded[signature] = _read(cache_path(signature))
    return _loaded[signature]


def lookup(key: str) -> str | None:
    """The kernel this machine chose for `key` before (in this process or, through the file, any other)."""
    with _lock:
        entry = _entries(machine.signature()).get(key)
    return None if entry is None else entry["choice"]


def find(match: Callable[[str], bool]) -> str | None:
    """The choice of the first key (in the order this process learnt them) that `match` accepts, else None."""
    with _lock:
        entries = _entries(machine.signature())
        return next((v["choice"] for k, v in entries.items() if match(k)), None)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still keep the file whole
        yield
        return
    with open(path.with_suffix(".lock"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside `path` and rename it over: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(key: str, choice: str, timings: dict[str, float]) -> str:
    """Record this machine's choice for `key` in memory and in its file (merged with other processes' writes);
    returns the choice this process keeps for `key` (the first it recorded)."""
    m = machine.current()
    signature = m.signature()
    entry = {"choice": choice, "ms": {k: round(v * 1e3, 4) for k, v in timings.items()}}
    with _lock:
        entries = _entries(signature)
        kept = entries.setdefault(key, entry)["choice"]  # a key keeps its first choice for the process's life
        if len(entries) > MAX_ENTRIES:
            return kept
        path = cache_path(signature)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(path):
                merged = {**_read(path), key: entry}
                if len(merged) <= MAX_ENTRIES:
                    _write(path, {"format": FORMAT, "machine": m.describe(), "entries": merged})
                    for k, v in merged.items():  # other processes' choices, never over one this process uses
                        entries.setdefault(k, v)
        except OSError:
            pass  # a read-only home: the choice holds for this process
    return kept
