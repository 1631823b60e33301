"""Background training jobs for the app: one thread per run, owned here rather than by a script rerun.

A `JobManager` keeps a registry of jobs keyed by (session, run) and writes every run to its own folder
`<root>/<session>/<run>/` (a normal trainer run folder), so several users never share files and a page
reload or a navigation finds the job again. Past runs are read back from their folders. No Streamlit.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaecore.config import TrainConfig
from vaecore.training.trainer import METRICS, Trainer, TrainingDiverged, build_model, read_metrics
from vaecore.utils import read_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
TERMINAL = ("finished", "stopped", "diverged", "error", "interrupted")


class JobError(RuntimeError):
    """A job could not be started or found; the message says why."""


def check_name(name: str, what: str) -> str:
    """Reject session ids and run names that could escape the runs folder."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise JobError(f"invalid {what} {name!r}: use letters, digits, '-', '_' and '.'")
    return name


@dataclass
class RunInfo:
    """What a run folder says about itself: settings, progress and how it ended."""

    name: str
    folder: Path
    preset: str
    data: str
    status: str
    step: int
    total_steps: int | None
    message: str = ""
    started: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status in ("starting", "running", "stopping")

    @property
    def label(self) -> str:
        """'name · data · status' (a live run reads 'training': its step count changes every second)."""
        status = "training" if self.running else f"{self.status} at step {self.step}"
        return f"{self.name} · {self.data} · {status}"


def run_status(records: list[dict[str, Any]]) -> tuple[str, str]:
    """(status, message) from a run's records: the last event, 'interrupted' when it never ended."""
    for r in reversed(records):
        if r.get("kind") != "event":
            continue
        event = r.get("event", "")
        if event in ("started", "resumed"):
            return "interrupted", "the app stopped while this run was training; resume it to continue"
        return event, r.get("message", "")
    return ("interrupted", "the run never logged a step") if records else ("empty", "")


def read_run(folder: Path, job: Job | None = None) -> RunInfo:
    """A RunInfo from a run folder; a live job's own status wins over the folder's."""
    records = read_metrics(folder)
    status, message = run_status(records)
    total = next((r.get("total_steps") for r in reversed(records) if r.get("kind") == "event"
                  and "total_steps" in r), None)
    step = max((int(r.get("step", 0)) for r in records), default=0)
    settings = {}
    if (folder / "app_run.json").is_file():
        try:
            settings = read_json(folder / "app_run.json")
        except ValueError:
            settings = {}
    config = {}
    if (folder / "config.json").is_file():
        try:
            config = read_json(folder / "config.json")
        except ValueError:
            config = {}
    if job is not None and job.status not in TERMINAL:
        status, message = job.status, job.message
    elif job is not None and job.status == "error":
        status, message = job.status, job.message
    return RunInfo(name=folder.name, folder=folder, preset=settings.get("preset", config.get("preset", "?")),
                   data=settings.get("data", config.get("dataset", "?")), status=status, step=step,
                   total_steps=total, message=message,
                   started=records[0].get("time", 0.0) if records else folder.stat().st_mtime, settings=settings)


class Job:
    """One training run in a background thread; `stop()` asks the trainer to checkpoint and end."""

    def __init__(self, session: str, name: str, folder: Path) -> None:
        self.session, self.name, self.folder = session, name, folder
        self.status = "starting"
        self.message = ""
        self.trainer: Trainer | None = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Request a stop; the run checkpoints after the current step (also before it has begun)."""
        with self._lock:
            self._stop.set()
            if self.status in ("starting", "running"):
                self.status = "stopping"
            if self.trainer is not None:
                self.trainer.stop()

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends (True) or the timeout passes (False)."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.alive

    def records(self) -> list[dict[str, Any]]:
        return read_metrics(self.folder)

    def _attach(self, trainer: Trainer) -> None:
        with self._lock:
            self.trainer = trainer
            if self._stop.is_set():
                trainer.stop()
            elif self.status == "starting":
                self.status = "running"

    def _run(self, make_trainer: Any) -> None:
        try:
            trainer = make_trainer()
            self._attach(trainer)
            result = trainer.fit()
            self.status, self.message = result.status, result.message
        except TrainingDiverged as e:
            self.status, self.message = "diverged", str(e)
        except Exception as e:  # noqa: BLE001 - any failure must reach the UI as a message
            self.status, self.message = "error", f"{type(e).__name__}: {e}"
            _append_event(self.folder, {"kind": "event", "event": "error", "message": self.message,
                                        "step": self.trainer.step if self.trainer else 0})


def _append_event(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / METRICS, "a") as f:
        f.write(json.dumps({"time": time.time(), **record}) + "\n")


class JobManager:
    """The registry of training jobs of one process, with run folders under `root/<session>/`."""

    def __init__(self, root: str | Path, max_running: int = 2) -> None:
        self.root = Path(root)
        self.max_running = max_running
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()

    # queries -----------------------------------------------------------------------------------------
    def session_dir(self, session: str) -> Path:
        return self.root / check_name(session, "session id")

    def job(self, session: str, run: str) -> Job | None:
        return self._jobs.get((session, run))

    def active(self, session: str | None = None) -> list[Job]:
        """Jobs whose thread is still alive (of one session, or all)."""
        return [j for (s, _), j in self._jobs.items() if j.alive and (session is None or s == session)]

    def runs(self, session: str) -> list[RunInfo]:
        """Every run of a session, newest first: live jobs and past run folders."""
        return list_runs(self.root, session, self._jobs)

    def run(self, session: str, run: str) -> RunInfo:
        folder = self.session_dir(session) / check_name(run, "run name")
        if not folder.is_dir():
            raise JobError(f"no run {run!r} in this session")
        return read_run(folder, self.job(session, run))

    # control -----------------------------------------------------------------------------------------
    def _check_capacity(self, session: str) -> None:
        mine = self.active(session)
        if mine:
            raise JobError(f"run {mine[0].name!r} is still training in this session: stop it first")
        if len(self.active()) >= self.max_running:
            raise JobError(f"{self.max_running} trainings are already running on this server; "
                           "try again when one has finished")

    def start(self, session: str, preset: str, train: TrainConfig | dict[str, Any] | None = None,
              name: str | None = None, **overrides: Any) -> Job:
        """Start training `preset` (model overrides such as likelihood, latent_dim, beta) in a new run folder."""
        from vaecore.presets import get_preset

        get_preset(preset)
        tc = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(dict(train or {}))
        with self._lock:
            self._check_capacity(session)
            base = name or time.strftime("%Y%m%d-%H%M%S") + f"-{preset}"
            check_name(base, "run name")
            folder, i = self.session_dir(session) / base, 1
            while folder.exists():
                i += 1
                folder = self.session_dir(session) / f"{base}-{i}"
            folder.mkdir(parents=True)
            settings = {"preset": preset, "data": tc.data, "data_dir": tc.data_dir, "overrides": overrides,
                        "train": tc.to_dict(), "created": time.time()}
            (folder / "app_run.json").write_text(json.dumps(settings, indent=2, default=str))

            def make() -> Trainer:
                from vaecore.data.datasets import load_dataset
                from vaecore.presets import model_config

                dataset = load_dataset(tc.data, tc.data_dir, limit=tc.limit, seed=tc.seed)
                cfg = model_config(preset, **{"input_shape": dataset.shape, "dataset": dataset.name, **overrides})
                return Trainer(build_model(cfg.to_dict()), dataset, tc, folder)

            return self._launch(session, folder, make)

    def resume(self, session: str, run: str, more_epochs: int = 0) -> Job:
        """Continue a stopped or interrupted run from its checkpoint; `more_epochs` extends a finished one."""
        folder = self.session_dir(session) / check_name(run, "run name")
        if not (folder / "checkpoint.safetensors").is_file():
            raise JobError(f"run {run!r} has no checkpoint to resume from")
        with self._lock:
            self._check_capacity(session)
            changes: dict[str, Any] = {}
            if more_epochs > 0:
                records = read_metrics(folder)
                done = max((float(r.get("epoch", 0)) for r in records if "epoch" in r), default=0.0)
                changes = {"epochs": math.ceil(done - 1e-9) + int(more_epochs), "max_steps": None}
            return self._launch(session, folder, lambda: Trainer.resume(folder, **changes))

    def stop(self, session: str, run: str) -> bool:
        """Ask a live job to stop; False when there is none."""
        job = self.job(session, run)
        if job is None or not job.alive:
            return False
        job.stop()
        return True

    def stop_all(self, timeout: float = 30.0) -> None:
        """Stop every job and wait for them (tests and shutdown)."""
        for job in list(self._jobs.values()):
            job.stop()
        for job in list(self._jobs.values()):
            job.wait(timeout)

    def _launch(self, session: str, folder: Path, make: Any) -> Job:
        job = Job(session, folder.name, folder)
        job.thread = threading.Thread(target=job._run, args=(make,), name=f"train-{session}-{folder.name}",
                                      daemon=True)
        self._jobs[(session, folder.name)] = job
        job.thread.start()
        return job


def list_runs(root: str | Path, session: str, jobs: dict[tuple[str, str], Job] | None = None) -> list[RunInfo]:
    """The run folders of one session under `root`, newest first (live jobs' status included)."""
    folder = Path(root) / check_name(session, "session id")
    if not folder.is_dir():
        return []
    jobs = jobs or {}
    infos = [read_run(p, jobs.get((session, p.name))) for p in folder.iterdir() if p.is_dir()]
    return sorted(infos, key=lambda r: r.started, reverse=True)


def progress(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Latest step, total steps, fraction done, images/s and seconds left, from a run's records."""
    total = next((r.get("total_steps") for r in reversed(records) if r.get("kind") == "event"
                  and r.get("total_steps")), None)
    last = next((r for r in reversed(records) if r.get("kind") == "step"), None)
    step = max((int(r.get("step", 0)) for r in records), default=0)
    return {"step": step, "total_steps": total,
            "fraction": min(1.0, step / total) if total else 0.0,
            "images_per_s": last.get("images_per_s") if last else None,
            "eta_s": last.get("eta_s") if last else None,
            "epoch": last.get("epoch") if last else None}
