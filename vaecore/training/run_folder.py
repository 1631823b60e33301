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
import math
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
    BEST,
    BEST_RECORD,
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
from vaecore.models.base import config_bytes, save_model_files  # noqa: F401 (config_bytes: re-exported)
from vaecore.utils import (
    FILE_MODE,
    TMP_SUFFIX,
    WriteError,
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    json_safe,
    read_json,
    replace_file,
    temp_prefix,
    write_error,
)

PYTHON_DATA = "python:"  # train.json `data` of a run trained on a Dataset that load_dataset did not make


class RunFolderError(ValueError):
    """A run folder cannot be used as asked; the message says why and what to do."""


class RunLockedError(RunFolderError):
    """Another live process or thread is writing the run folder."""


class RunExistsError(RunFolderError):
    """A new run was started in a folder that already holds one."""


# the model ---------------------------------------------------------------------------------------
def save_model(folder: str | Path, model: Any, step: int | None = None, card: bool = True) -> None:
    """Write model.safetensors and config.json so a reader never finds either missing or half-written
    (`save_model_files`: the weights first, naming their config's sha256 and the step), then the card."""
    save_model_files(folder, model, step)
    if card:
        write_card(Path(folder), model.config.to_dict())


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


# best/: the model of the lowest validation loss ------------------------------------------------------------------
def write_best(folder: str | Path, model: Any, record: dict[str, Any]) -> None:
    """best/ for the model just checkpointed in `folder` at `record["step"]`: its weights hard-linked to the run's
    model.safetensors (a later save renames a new file into place, so the link keeps these bytes; written anew
    where links fail), config.json and README.md copied, then best.json, the manifest, last. best.json names the
    step that best/model.safetensors records in its metadata, so a write killed between them is seen by
    `read_best` (and mended by `repair_best` at the next start)."""
    folder = Path(folder)
    best = folder / BEST
    try:
        best.mkdir(exist_ok=True)
        linked = int(weights_metadata(folder).get("step", -1)) == int(record["step"])
        if linked and not ((best / WEIGHTS).exists() and os.path.samefile(folder / WEIGHTS, best / WEIGHTS)):
            tmp = best / f".{WEIGHTS}.hardlink{TMP_SUFFIX}"  # a name temp_files() recognises
            tmp.unlink(missing_ok=True)
            os.link(folder / WEIGHTS, tmp)
            replace_file(tmp, best / WEIGHTS)
            for name in (CONFIG, CARD):
                data = (folder / name).read_bytes()
                if not (best / name).is_file() or (best / name).read_bytes() != data:
                    atomic_write_bytes(best / name, data)
    except OSError as e:
        if isinstance(e, WriteError):
            raise
        linked = False
    if not linked:
        save_model(best, model, step=int(record["step"]))
    atomic_write_json(best / BEST_RECORD, {k: v for k, v in record.items() if k != "bad_epochs"})


def read_best(folder: str | Path) -> dict[str, Any] | None:
    """best.json of a run folder when it names the step best/model.safetensors was saved at; None when best/ is
    missing, unreadable or its two files disagree (a write killed between them)."""
    best = Path(folder) / BEST
    try:
        record = read_json(best / BEST_RECORD)
    except (OSError, ValueError):
        return None
    step = weights_metadata(best).get("step")
    if not isinstance(record, dict) or step is None or str(record.get("step")) != step:
        return None
    return record


def repair_best(folder: str | Path, model: Any, record: dict[str, Any] | None) -> None:
    """At the start of a resumed run (holding the lock): make best/ agree with the checkpoint's best `record`.
    When best/ already holds that step nothing is written; when the run's model.safetensors is that step (a kill
    came between the checkpoint and best/) best/ is written from it; otherwise a best.json that does not match
    its weights is removed (the next better epoch writes best/ again)."""
    folder = Path(folder)
    best = folder / BEST
    if not record or record.get("step") is None or not best.is_dir() and not (folder / WEIGHTS).is_file():
        return
    current = read_best(folder)
    if current is not None and current.get("step") == record["step"]:
        return
    if str(record["step"]) == weights_metadata(folder).get("step"):
        write_best(folder, model, record)
    elif current is None:
        (best / BEST_RECORD).unlink(missing_ok=True)


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


def check_run_folder(folder: str | Path) -> Path:
    """`folder` as a Path when it can be a run folder (a folder, or a path that does not exist yet); a RunFolderError
    saying what to pass otherwise."""
    if isinstance(folder, bytes) or not isinstance(folder, str | os.PathLike):
        raise RunFolderError(f"a run folder must be a path (str or Path), got {type(folder).__name__}")
    path = Path(folder)
    if not str(folder).strip():
        raise RunFolderError("the run folder is empty (''); give the path of a folder to write the run to")
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path} is a file; a run folder is a folder: choose another path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise RunFolderError(f"{parent} is a file, so {path} cannot be a run folder: choose another path")
    return path


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
        self.folder = check_run_folder(folder)
        self.path = self.folder / LOCK
        self._fd: int | None = None
        self.stale_owner: dict[str, Any] | None = None

    def acquire(self) -> RunLock:
        check_run_folder(self.folder)  # again: the path may have become a file since
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.folder, e) from e
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            except OSError as e:
                raise write_error(self.path, e) from e
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
    path = Path(folder) / METRICS
    try:
        _append(path, (json.dumps(json_safe(record), allow_nan=False) + "\n").encode())
    except OSError as e:
        raise write_error(path, e) from e


def _parse_line(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line, parse_constant=lambda _: None)
    except (json.JSONDecodeError, RecursionError):  # a torn line; a foreign line nested beyond the parser's depth
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int | float) or not math.isfinite(step):
        return None  # a foreign line: every record the trainer writes has a numeric step
    return record


def read_metrics(folder: str | Path) -> list[dict[str, Any]]:
    """All records of metrics.jsonl; torn or foreign lines (not a JSON object, or a "step" that is not a finite
    number) are skipped and NaN tokens of old runs read as None."""
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
