"""The run folder: crash-safe writes of its files (named in `vaecore.files`), the writer's lock, and the metrics log.

A run folder holds
  config.json, model.safetensors, README.md   the model, loadable by `vaecore.load(folder)`
  checkpoint.safetensors                       weights + optimiser + RNG state, for resume
  train.json                                   the TrainConfig, with the dataset the run really used
  metrics.jsonl                                one strict-JSON record per line (NaN written as null)
  samples.png, eval.json                       a sample grid; test metrics when evaluated
  train.lock                                   while a process writes the run: its pid

Guarantees: every file but metrics.jsonl is replaced atomically (temporary file, fsync, rename), so
a reader or a `kill -9` sees the old file or the new one, never a part; config.json is never
removed or rewritten while a run writes weights, and model.safetensors records a hash of the
config it belongs to (`consistent_pair`) and the step it was saved at; a killed append to
metrics.jsonl leaves at most one torn last line, which readers skip and the next writer ends.
Only one process (or thread) writes a folder at a time: `RunLock` holds an exclusive `flock`
on train.lock, which the kernel releases when its owner dies, so a stale lock never blocks.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaecore.data.datasets import load_dataset
from vaecore.files import (  # noqa: F401  (their home is vaecore.files; re-exported: rf.CONFIG, rf.EVAL, ...)
    CARD,
    CHECKPOINT,
    CONFIG,
    EVAL,
    GMM_SAMPLES,
    LOCK,
    METRICS,
    RUN_FILES,
    SAMPLES,
    TRAIN,
    WEIGHTS,
)
from vaecore.utils import (
    FILE_MODE,
    TMP_SUFFIX,
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    json_safe,
    read_json,
    temp_prefix,
)

PYTHON_DATA = "python:"  # train.json `data` of a run trained on a Dataset that load_dataset did not make


class RunFolderError(ValueError):
    """A run folder cannot be used as asked; the message says why and what to do."""


class RunLockedError(RunFolderError):
    """Another live process or thread is writing the run folder."""


class RunExistsError(RunFolderError):
    """A new run was started in a folder that already holds one."""


# the model ---------------------------------------------------------------------------------------
def config_bytes(config: dict[str, Any]) -> bytes:
    """config.json exactly as written (sorted keys, indented, strict JSON)."""
    return json.dumps(json_safe(config), sort_keys=True, indent=2, allow_nan=False).encode()


def save_model(folder: str | Path, model: Any, step: int | None = None, card: bool = True) -> None:
    """Write model.safetensors and config.json so a reader never finds either missing or half-written.

    The weights are renamed into place first, then config.json only if its bytes change (never within a
    run). The weights' metadata names the config they belong to (sha256) and the step.
    """
    folder = Path(folder)
    cfg = config_bytes(model.config.to_dict())
    meta = {"format": "pt", "model_type": str(model.model_type), "config_sha256": hashlib.sha256(cfg).hexdigest()}
    if step is not None:
        meta["step"] = str(int(step))
    atomic_save_safetensors(model.state_dict(), folder / WEIGHTS, metadata=meta)
    path = folder / CONFIG
    if not path.is_file() or path.read_bytes() != cfg:
        atomic_write_bytes(path, cfg)
    if card:
        write_card(folder, model.config.to_dict())


def write_card(folder: Path, config: dict[str, Any]) -> None:
    """README.md model card through the engine's card writer (itself an atomic write)."""
    from vaecore.model_card import write_model_card

    write_model_card(folder, config)


def weights_metadata(folder: str | Path) -> dict[str, str]:
    """The metadata of a folder's model.safetensors ({} when absent or unreadable)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(Path(folder) / WEIGHTS), "pt") as f:
            return dict(f.metadata() or {})
    except (OSError, SafetensorError):
        return {}


def consistent_pair(folder: str | Path) -> bool:
    """True when model.safetensors was saved with the config.json now beside it (or predates the hash)."""
    folder = Path(folder)
    want = weights_metadata(folder).get("config_sha256")
    try:
        have = hashlib.sha256((folder / CONFIG).read_bytes()).hexdigest()
    except OSError:
        return False
    return want is None or want == have


def holds_run(folder: str | Path) -> bool:
    """Whether the folder already holds a run (a checkpoint to resume)."""
    return (Path(folder) / CHECKPOINT).is_file()


# the checkpoint ----------------------------------------------------------------------------------
def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """checkpoint.safetensors: tensors plus a JSON `state` in the metadata, replaced atomically."""
    atomic_save_safetensors(tensors, Path(folder) / CHECKPOINT, metadata={"state": json.dumps(json_safe(state))})


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and state of checkpoint.safetensors, or a RunFolderError naming the file."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: nothing to resume in {Path(folder)}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            state = json.loads((f.metadata() or {})["state"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as e:
        raise RunFolderError(f"{path} is corrupt or incomplete ({e}); start a new run") from e
    return tensors, state


def dataset_record(dataset: Any, seed: int) -> dict[str, Any]:
    """TrainConfig fields naming the data a run really uses: `load_dataset`'s arguments (absolute paths),
    or `python:NAME` for a Dataset built by hand, which resume then asks for."""
    source = getattr(dataset, "source", None)
    if not source:
        return {"data": PYTHON_DATA + str(dataset.name), "data_dir": None, "limit": None, "data_seed": None,
                "image_size": None, "channels": None}
    return {"data": source["name"], "data_dir": source["data_dir"], "limit": source["limit"],
            "data_seed": None if source["seed"] == seed else source["seed"],
            "image_size": source.get("image_size"), "channels": source.get("channels")}


@dataclass(frozen=True)
class DataSource:
    """The data a run trained on, read back from what it recorded: `load_dataset`'s name, folder and limit, and
    the seed its splits used (`data_seed` when the run recorded one, else the run's `seed`; None: not recorded)."""

    name: str
    data_dir: str | None = None
    limit: int | None = None
    seed: int | None = None
    image_size: int | None = None
    channels: int | None = None
    storage: str = "auto"

    @property
    def built_in_python(self) -> bool:
        """A Dataset made by hand in Python: it cannot be reloaded by name."""
        return self.name.startswith(PYTHON_DATA)

    def load(self, *, limit: int | None | bool = True, progress: Any = True) -> Any:
        """The dataset again (`limit=True`: the run's limit; None: every training image), through the same
        transform; a RunFolderError for a Dataset built in Python."""
        if self.built_in_python:
            raise RunFolderError(f"the run was trained on a Dataset built in Python ({self.name[len(PYTHON_DATA):]!r}),"
                                 " which cannot be reloaded by name; pass that dataset yourself")
        return load_dataset(self.name, self.data_dir, limit=self.limit if limit is True else limit,
                            seed=0 if self.seed is None else self.seed, image_size=self.image_size,
                            channels=self.channels, storage=self.storage, progress=progress)


def data_source(train: dict[str, Any]) -> DataSource:
    """The data a train.json (or the app's run settings, same fields) names: `data`, `data_dir`, `limit`, the
    seed of its splits, its transform (`image_size`, `channels`) and where it is read from (`data_storage`)."""
    seed = train.get("data_seed") if isinstance(train.get("data_seed"), int) else train.get("seed")
    limit, size, channels = train.get("limit"), train.get("image_size"), train.get("channels")
    storage = train.get("data_storage") if train.get("data_storage") in ("auto", "memory", "disk") else "auto"
    return DataSource(str(train.get("data") or "mnist"), train.get("data_dir") or None,
                      limit if isinstance(limit, int) else None, seed if isinstance(seed, int) else None,
                      size if isinstance(size, int) else None, channels if channels in (1, 3) else None, storage)


def read_data_source(folder: str | Path) -> DataSource:
    """The data a run folder trained on, from its train.json (a RunFolderError naming the file if unreadable)."""
    return data_source(read_train_json(folder))


def write_train_json(folder: str | Path, train: dict[str, Any]) -> None:
    atomic_write_json(Path(folder) / TRAIN, train)


def read_train_json(folder: str | Path) -> dict[str, Any]:
    """train.json as a dict; a RunFolderError naming the file when it is missing or not a JSON object."""
    path = Path(folder) / TRAIN
    try:
        data = read_json(path)
    except FileNotFoundError as e:
        raise RunFolderError(f"{path} is missing: {Path(folder)} is not a run folder") from e
    except ValueError as e:
        raise RunFolderError(str(e)) from e
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


# temporary files ---------------------------------------------------------------------------------
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX) + "$")  # what atomic_write_bytes names


def temp_files(folder: str | Path) -> list[Path]:
    """Temporary files that killed writes left behind: of the run's files, and any in its subfolders
    (best/, samples/), which only the run writes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = tuple(temp_prefix(Path(name)) for name in RUN_FILES)
    found = [p for p in folder.iterdir() if p.name.startswith(prefixes) and p.name.endswith(TMP_SUFFIX)]
    for sub in folder.iterdir():
        if sub.is_dir() and not sub.is_symlink():
            found += [p for p in sub.iterdir() if _TEMP.match(p.name) and p.is_file()]
    return sorted(found)


def clean_temp_files(folder: str | Path) -> int:
    """Remove those temporary files (call it holding the lock); returns how many were removed."""
    n = 0
    for path in temp_files(folder):
        path.unlink(missing_ok=True)
        n += 1
    return n


# the lock ----------------------------------------------------------------------------------------
def _proc_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _describe(owner: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["time"])) if owner.get("time") else "?"
    return f"process {owner.get('pid', '?')} on {owner.get('host', '?')} (since {when})"


class RunLock:
    """Exclusive writer lock of a run folder: `flock` on train.lock, which holds the owner's pid.

    A lock file whose owner died (kill -9, power loss) is stale: the kernel has dropped its flock, so the
    next writer takes it over and `stale_owner` says whose it was.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self._fd: int | None = None
        self.stale_owner: dict[str, Any] | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = self._read(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{self.folder} is being written by {_describe(owner)}; wait for that training to end or "
                    "stop it, or choose another folder") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous owner removed the file between our open and flock
                os.close(fd)
                continue
            owner = self._read(fd)
            if owner.get("pid"):
                self.stale_owner = owner
            record = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                      "proc_start": _proc_start(os.getpid())}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            self._fd = fd
            return self
        raise RunLockedError(f"could not lock {self.path}: other processes keep taking it")

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (ValueError, OSError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_owner(folder: str | Path) -> dict[str, Any] | None:
    """Who writes the folder now ({pid, host, time}), or None when no live process holds its lock."""
    path = Path(folder) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return RunLock._read(fd) or {"pid": None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# metrics -----------------------------------------------------------------------------------------
def _append(path: Path, data: bytes) -> None:
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = b"\n" + data  # end a line torn by a killed writer
        f.write(data)


def append_metric(folder: str | Path, record: dict[str, Any]) -> None:
    """Append one record to metrics.jsonl as strict JSON (NaN and infinities become null)."""
    _append(Path(folder) / METRICS, (json.dumps(json_safe(record), allow_nan=False) + "\n").encode())


def _parse_line(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line, parse_constant=lambda _: None)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def read_metrics(folder: str | Path) -> list[dict[str, Any]]:
    """All records of metrics.jsonl; torn or foreign lines are skipped and NaN tokens of old runs read as None."""
    path = Path(folder) / METRICS
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [r for r in map(_parse_line, text.splitlines()) if r is not None]


def truncate_metrics(folder: str | Path, step: int) -> None:
    """Keep only the records up to `step` (those a resumed run has not yet redone), atomically."""
    folder = Path(folder)
    if not (folder / METRICS).exists():
        return
    kept = [r for r in read_metrics(folder) if not isinstance(r.get("step"), int | float) or r["step"] <= step]
    atomic_write_bytes(folder / METRICS,
                       "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in kept).encode())
