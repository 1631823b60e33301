"""Background training jobs for the app: one thread per run, owned here rather than by a script rerun.

A `JobManager` keeps a registry of jobs keyed by (session, run) and writes every run to its own folder
`<root>/<session>/<run>/` (a normal trainer run folder), so several users never share files and a page
reload or a navigation finds the job again. Past runs are read back from their folders. No Streamlit.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaecore.config import TrainConfig
from vaecore.files import APP_RUN, CHECKPOINT, CONFIG, TRAIN
from vaecore.training import run_folder
from vaecore.training.trainer import METRICS, Trainer, TrainingDiverged, read_metrics
from vaecore.utils import atomic_write_bytes, read_json, write_error

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
TERMINAL = ("finished", "stopped", "diverged", "error", "interrupted", "cancelled")
ACTIVE = ("queued", "starting", "running", "stopping")


SWEEPS = {"beta": "β", "latent_dim": "latent size", "likelihood": "likelihood", "sigma": "σ mode"}
"""The model settings a sweep can vary, with their names on the page."""
MAX_SWEEP = 6


def sweep_override(setting: str, value: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The model overrides that set one sweep value: the σ mode is a Gaussian likelihood's `sigma` setting."""
    if setting == "sigma":
        return {"likelihood": "gaussian", "likelihood_kwargs": {**(overrides.get("likelihood_kwargs") or {}),
                                                                "sigma": value}}
    return {setting: value}


class JobError(RuntimeError):
    """A job could not be started or found; the message says why."""


def check_name(name: str, what: str) -> str:
    """Reject session ids and run names that could escape the runs folder."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
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

    queue_position: int | None = None

    @property
    def running(self) -> bool:
        """Training, about to, or waiting in the queue (the run can be stopped)."""
        return self.status in ACTIVE

    @property
    def title(self) -> str:
        """The run's name as shown everywhere: the one given on rename, else 'preset on data · time'."""
        given = str((self.settings or {}).get("title") or "").strip()
        if given:
            return given
        when = time.strftime("%m-%d %H:%M", time.localtime(self.started)) if self.started else "?"
        return f"{self.preset} on {self.data} · {when}"

    @property
    def label(self) -> str:
        """'title · status' for run pickers: a live run's step is left to the live panel (a picker label is drawn
        once per page run and would fall behind)."""
        if self.status == "queued":
            status = f"queued (#{self.queue_position})" if self.queue_position else "queued"
        elif self.status in ("running", "starting", "stopping"):
            status = self.status
        else:
            status = f"{self.status} at step {self.step}"
        return f"{self.title} · {status}"


def last_step(records: list[dict[str, Any]]) -> int:
    """The highest step the records name; records whose "step" is not a finite number are ignored."""
    steps = [r.get("step") for r in records]
    return int(max((s for s in steps if isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s)),
                   default=0))


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
    step = last_step(records)
    settings = {}
    if (folder / APP_RUN).is_file():
        try:
            settings = read_json(folder / APP_RUN)
        except ValueError:
            settings = {}
    config = {}
    if (folder / CONFIG).is_file():
        try:
            config = read_json(folder / CONFIG)
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
        self._ended = threading.Event()  # its work is over: only the hand-over to the next job remains in its thread
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
        """Training (or evaluating) now: its thread runs and has not ended its work. A job handing its slot to the
        next one (`done`) no longer counts, so a sweep's next run never overlaps the one before it."""
        return self.thread is not None and self.thread.is_alive() and not self._ended.is_set()

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

    def _run(self, make_trainer: Any, threads: int | None = None, done: Any = None) -> None:
        try:
            if threads:
                import torch

                torch.set_num_threads(threads)
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
        finally:
            self.trainer = None
            self._ended.set()
            if done is not None:
                done(self)


class EvaluationCancelled(RuntimeError):
    """Raised inside an evaluation's progress callback when it was asked to stop."""


class EvalJob(Job):
    """The evaluation protocol (`vaecore.evaluation.protocol`) on a run's model in a background thread, with its
    progress; it writes the run's eval.json and per-image values and leaves the training log alone."""

    def __init__(self, session: str, name: str, folder: Path) -> None:
        super().__init__(session, name, folder)
        self.stage, self.done_steps, self.total_steps = "waiting for a free slot", 0, 0

    def progress(self, stage: str, done: int, total: int) -> None:
        if self._stop.is_set():
            raise EvaluationCancelled("stopped")
        self.stage, self.done_steps, self.total_steps = stage, int(done), int(total)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_steps / self.total_steps) if self.total_steps else 0.0

    def stop(self) -> None:
        self._stop.set()

    def _run(self, make_trainer: Any, threads: int | None = None, done: Any = None) -> None:
        try:
            if threads:
                import torch

                torch.set_num_threads(threads)
            self.status = "running"
            make_trainer(self)
            self.status, self.message = "finished", ""
        except EvaluationCancelled:
            self.status, self.message = "cancelled", "stopped before it finished; nothing was written"
        except Exception as e:  # noqa: BLE001 - any failure must reach the UI as a message
            self.status, self.message = "error", f"{type(e).__name__}: {e}"
        finally:
            self._ended.set()
            if done is not None:
                done(self)


def _evaluate(job: EvalJob, samplers: tuple[str, ...]) -> None:
    import vaecore
    from vaecore.evaluation.protocol import evaluate_with_protocol, write_evaluation

    model = vaecore.load(job.folder, device="cpu")
    dataset = run_folder.read_data_source(job.folder).load(progress=False)
    result, store = evaluate_with_protocol(model, dataset, job.folder, samplers, progress=job.progress)
    write_evaluation(job.folder, result, store)


def _append_event(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / METRICS, "a") as f:
        f.write(json.dumps({"time": time.time(), **record}) + "\n")


class JobManager:
    """The registry of training jobs of one process, with run folders under `root/<session>/`."""

    def __init__(self, root: str | Path, max_running: int | None = None, max_per_session: int = 1,
                 max_queued: int = 32, threads: int | None = 1) -> None:
        """`max_running` jobs train at once (default: one per core), the others wait in a queue of at most
        `max_queued`; a session may have `max_per_session` jobs training or queued; each job trains with
        `threads` torch threads (None: leave the process setting)."""
        self.root = Path(root)
        self.max_running = max_running or os.cpu_count() or 1
        self.max_per_session = max_per_session
        self.max_queued = max_queued
        self.threads = threads
        self._jobs: dict[tuple[str, str], Job] = {}
        self._evals: dict[tuple[str, str], EvalJob] = {}
        self._pending: dict[str, list[tuple[Path, Any]]] = {}  # a session's sweep runs waiting for the one before
        self._queue: list[tuple[Job, Any]] = []
        self._lock = threading.RLock()

    # queries -----------------------------------------------------------------------------------------
    def session_dir(self, session: str) -> Path:
        return self.root / check_name(session, "session id")

    def job(self, session: str, run: str) -> Job | None:
        return self._jobs.get((session, run))

    def active(self, session: str | None = None) -> list[Job]:
        """Jobs training or queued (of one session, or all)."""
        return [j for (s, _), j in self._jobs.items() if (j.alive or j.status == "queued")
                and (session is None or s == session)]

    def training(self) -> list[Job]:
        """Jobs whose thread is alive (trainings and evaluations: they share the slots)."""
        return [j for j in [*self._jobs.values(), *self._evals.values()] if j.alive]

    def evaluation(self, session: str, run: str) -> EvalJob | None:
        """The latest evaluation job of a run (running, queued or ended), or None."""
        return self._evals.get((session, run))

    def evaluate(self, session: str, run: str, samplers: tuple[str, ...] = ("gmm",)) -> EvalJob:
        """Queue the evaluation protocol on a run that is not training: its eval.json then ranks it with the bundled
        models on the same test images. One evaluation per session at a time."""
        from vaecore.files import WEIGHTS

        folder = self.session_dir(session) / check_name(run, "run name")
        with self._lock:
            job = self.job(session, run)
            if job is not None and (job.alive or job.status == "queued"):
                raise JobError(f"run {run!r} is still training: stop it or let it finish first")
            if not (folder / WEIGHTS).is_file():
                raise JobError(f"run {run!r} has no model yet: evaluate it after its first checkpoint")
            busy = [j for (s, _), j in self._evals.items() if s == session and (j.alive or j.status == "queued")]
            if busy:
                raise JobError(f"run {busy[0].name!r} is being evaluated in this session: wait for it")
            if len(self._queue) >= self.max_queued:
                raise JobError(f"{len(self._queue)} jobs are already waiting on this server; try again later")
            evaluation = EvalJob(session, run, folder)
            self._evals[(session, run)] = evaluation
            make = functools.partial(_evaluate, samplers=tuple(samplers))
            if len(self.training()) >= self.max_running:
                evaluation.status = "queued"
                self._queue.append((evaluation, make))
            else:
                self._start_thread(evaluation, make)
        return evaluation

    def queue_position(self, session: str, run: str) -> int | None:
        """1 for the next job to start, … ; None when the run is not queued."""
        with self._lock:
            for i, (job, _) in enumerate(self._queue):
                if (job.session, job.name) == (session, run):
                    return i + 1
        return None

    def runs(self, session: str) -> list[RunInfo]:
        """Every run of a session, newest first: live jobs and past run folders."""
        infos = list_runs(self.root, session, self._jobs)
        for info in infos:
            info.queue_position = self.queue_position(session, info.name)
        return infos

    def run(self, session: str, run: str) -> RunInfo:
        folder = self.session_dir(session) / check_name(run, "run name")
        if not folder.is_dir():
            raise JobError(f"no run {run!r} in this session")
        info = read_run(folder, self.job(session, run))
        info.queue_position = self.queue_position(session, run)
        return info

    def rename(self, session: str, run: str, title: str) -> None:
        """Give a run a display name (its folder keeps its name); an empty title restores the default."""

        folder = self.session_dir(session) / check_name(run, "run name")
        if not (folder / APP_RUN).is_file():
            raise JobError(f"no run {run!r} in this session")
        title = " ".join(str(title).split())
        if len(title) > 80:
            raise JobError(f"a run's name has at most 80 characters, got {len(title)}")
        with self._lock:
            settings = read_json(folder / APP_RUN)
            settings["title"] = title
            atomic_write_bytes(folder / APP_RUN, json.dumps(settings, indent=2, default=str).encode())

    def delete(self, session: str, run: str) -> None:
        """Remove a run that is not training or queued, with its folder."""
        import shutil

        folder = self.session_dir(session) / check_name(run, "run name")
        if not folder.is_dir():
            raise JobError(f"no run {run!r} in this session")
        with self._lock:
            job = self.job(session, run)
            if job is not None and (job.alive or job.status == "queued"):
                raise JobError(f"run {run!r} is still training: stop it first")
            owner = run_folder.lock_owner(folder)
            if owner is not None:
                raise JobError(f"run {run!r} is in use by another process ({owner.get('pid', '?')}); stop it first")
            self._jobs.pop((session, run), None)
            try:
                shutil.rmtree(folder)
            except OSError as e:
                raise JobError(f"could not delete run {run!r}: {write_error(folder, e)}") from e

    # control -----------------------------------------------------------------------------------------
    def _check_capacity(self, session: str) -> None:
        mine = self.active(session)
        if len(mine) >= self.max_per_session:
            raise JobError(f"run {mine[0].name!r} is still training in this session: stop it first")
        if self._pending.get(session):
            raise JobError(f"{len(self._pending[session])} runs of this session's sweep are still waiting: let them "
                           "train or cancel the rest of the sweep first")
        if len(self._queue) >= self.max_queued:
            raise JobError(f"{len(self._queue)} trainings are already waiting on this server; try again later")

    def start(self, session: str, preset: str, train: TrainConfig | dict[str, Any] | None = None,
              name: str | None = None, processes: int = 1, **overrides: Any) -> Job:
        """Start training `preset` (model overrides such as likelihood, latent_dim, beta) in a new run folder;
        `processes` > 1 launches it with torchrun (DDP, one process per GPU; gloo on the CPU)."""
        tc = self._train_config(preset, train, overrides)
        with self._lock:
            self._check_capacity(session)
            folder, make = self._prepare(session, preset, tc, overrides, name, processes)
            return self._launch(session, folder, make)

    def start_sweep(self, session: str, preset: str, train: TrainConfig | dict[str, Any] | None, setting: str,
                    values: list[Any], **overrides: Any) -> list[Path]:
        """One run per value of one model setting (`SWEEPS`: β, latent size, likelihood, σ mode), the other
        settings as given; the runs train one after the other (a sweep is this session's one job) and are compared
        on one chart. Returns their folders, in the order of the values."""
        if setting not in SWEEPS:
            raise JobError(f"a sweep varies one of {', '.join(SWEEPS)}, not {setting!r}")
        if not 2 <= len(values) <= MAX_SWEEP or len(set(map(str, values))) != len(values):
            raise JobError(f"a sweep takes 2 to {MAX_SWEEP} different values, got {values}")
        members = [(v, {**overrides, **sweep_override(setting, v, overrides)}) for v in values]
        configs = [(v, o, self._train_config(preset, train, o)) for v, o in members]  # every value checked first
        stamp = time.strftime("%Y%m%d-%H%M%S")
        sweep = f"{preset}-{setting}-{stamp}"
        with self._lock:
            self._check_capacity(session)
            prepared = []
            for v, o, tc in configs:
                value = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(v))[:20]
                extra = {"sweep": {"id": sweep, "setting": setting, "value": v, "values": list(values)},
                         "title": f"{preset} on {tc.data} · {SWEEPS[setting]} = {v}"}
                prepared.append(self._prepare(session, preset, tc, o, f"{preset}-{tc.data}-{setting}-{value}-{stamp}",
                                              extra=extra))
            (first, make), rest = prepared[0], prepared[1:]
            self._pending.setdefault(session, []).extend(rest)
            self._launch(session, first, make)
            return [folder for folder, _ in prepared]

    def cancel_sweep(self, session: str) -> int:
        """Drop the runs of this session's sweep that have not started (their folders too); how many."""
        import shutil

        with self._lock:
            pending = self._pending.pop(session, [])
        for folder, _ in pending:
            shutil.rmtree(folder, ignore_errors=True)
        return len(pending)

    def pending(self, session: str) -> int:
        """Runs of this session's sweep still waiting for the one before them."""
        return len(self._pending.get(session, []))

    @staticmethod
    def _train_config(preset: str, train: TrainConfig | dict[str, Any] | None,
                      overrides: dict[str, Any]) -> TrainConfig:
        from vaecore.presets import model_config, train_config

        model_config(preset, **overrides)  # an unknown preset or a setting its family lacks fails here, not later
        # the preset's own training defaults (VAE+'s augmentation) under the page's settings, as the CLI does
        return train if isinstance(train, TrainConfig) else train_config(preset, **dict(train or {}))

    def _prepare(self, session: str, preset: str, tc: TrainConfig, overrides: dict[str, Any], name: str | None,
                 processes: int = 1, extra: dict[str, Any] | None = None) -> tuple[Path, Any]:
        """A new run folder with its settings, and the function that builds its trainer (call under the lock)."""
        base = name or f"{preset}-{tc.data}-" + time.strftime("%Y%m%d-%H%M%S")
        check_name(base, "run name")
        folder, i = self.session_dir(session) / base, 1
        while folder.exists():
            i += 1
            folder = self.session_dir(session) / f"{base}-{i}"
        settings = {"preset": preset, "data": tc.data, "data_dir": tc.data_dir, "overrides": overrides,
                    "train": tc.to_dict(), "created": time.time(), **(extra or {})}
        try:
            folder.mkdir(parents=True)
            atomic_write_bytes(folder / APP_RUN, json.dumps(settings, indent=2, default=str).encode())
        except OSError as e:  # a read-only or full runs folder: one message that names it, not a traceback
            raise JobError(str(write_error(folder, e))) from e
        if processes > 1:
            from explorer.multiprocess import ProcessTrainer

            return folder, lambda: ProcessTrainer(folder, processes)

        def make() -> Trainer:
            from vaecore.data.datasets import load_dataset
            from vaecore.presets import build_preset

            dataset = load_dataset(tc.data, tc.data_dir, limit=tc.limit, seed=tc.seed, image_size=tc.image_size,
                                   channels=tc.channels, storage=tc.data_storage, progress=False)
            model = build_preset(preset, data=dataset, seed=tc.seed, **overrides)
            return Trainer(model, dataset, tc, folder)

        return folder, make

    def resume(self, session: str, run: str, more_epochs: int = 0) -> Job:
        """Continue a stopped or interrupted run from its checkpoint; `more_epochs` extends a finished one."""
        folder = self.session_dir(session) / check_name(run, "run name")
        if not (folder / CHECKPOINT).is_file():
            raise JobError(f"run {run!r} has no checkpoint to resume from")
        with self._lock:
            self._check_capacity(session)
            changes: dict[str, Any] = {}
            if more_epochs > 0:
                records = read_metrics(folder)
                done = max((float(r.get("epoch", 0)) for r in records if "epoch" in r), default=0.0)
                changes = {"epochs": math.ceil(done - 1e-9) + int(more_epochs), "max_steps": None}
            world = int(read_json(folder / TRAIN).get("world_size", 1)) if (folder / TRAIN).is_file() \
                else 1
            if world > 1:  # resumes exactly only with as many processes
                from explorer.multiprocess import ProcessTrainer

                return self._launch(session, folder, lambda: ProcessTrainer(folder, world, resume=True,
                                                                            epochs=changes.get("epochs")))
            return self._launch(session, folder, lambda: Trainer.resume(folder, **changes))

    def stop_evaluation(self, session: str, run: str) -> bool:
        """Stop a run's evaluation (nothing is written), or take it off the queue; False when there is none."""
        job = self.evaluation(session, run)
        if job is None:
            return False
        if self._dequeue(job):
            return True
        if not job.alive:
            return False
        job.stop()
        return True

    def _dequeue(self, job: Any) -> bool:
        """Take a queued job off the queue as cancelled; False when it is not queued."""
        with self._lock:
            queued = next((q for q in self._queue if q[0] is job), None)
            if queued is None:
                return False
            self._queue.remove(queued)
            job.status, job.message = "cancelled", "taken off the queue before it started"
            return True

    def stop(self, session: str, run: str) -> bool:
        """Ask a live job to stop, or take a queued one off the queue; False when there is none."""
        job = self.job(session, run)
        if job is None:
            return False
        if self._dequeue(job):
            _append_event(job.folder, {"kind": "event", "event": "cancelled", "message": job.message, "step": 0})
            return True
        if not job.alive:
            return False
        job.stop()
        return True

    def stop_all(self, timeout: float = 30.0) -> None:
        """Empty the queue, stop every job and wait for them (tests and shutdown)."""
        with self._lock:
            for job, _ in list(self._queue):
                (self.stop_evaluation if isinstance(job, EvalJob) else self.stop)(job.session, job.name)
        for job in [*self._jobs.values(), *self._evals.values()]:
            job.stop()
        for job in [*self._jobs.values(), *self._evals.values()]:
            job.wait(timeout)

    def _launch(self, session: str, folder: Path, make: Any) -> Job:
        job = Job(session, folder.name, folder)
        with self._lock:
            self._jobs[(session, folder.name)] = job
            if len(self.training()) >= self.max_running:
                job.status = "queued"
                self._queue.append((job, make))
            else:
                self._start_thread(job, make)
        return job

    def _start_thread(self, job: Job, make: Any) -> None:
        job.status = "starting"
        job.thread = threading.Thread(target=job._run, args=(make, self.threads, self._finished),
                                      name=f"train-{job.session}-{job.name}", daemon=True)
        job.thread.start()

    def _finished(self, job: Job) -> None:
        """A job's thread is ending: start the next queued job and free the finished one's memory."""
        import gc

        with self._lock:
            waiting = self._pending.get(job.session)
            if waiting and not isinstance(job, EvalJob):  # the next run of this session's sweep
                folder, make = waiting.pop(0)
                if not waiting:
                    self._pending.pop(job.session, None)
                self._launch(job.session, folder, make)
            running = sum(1 for j in self.training() if j is not job)
            while self._queue and running < self.max_running:
                nxt, make = self._queue.pop(0)
                self._start_thread(nxt, make)
                running += 1
        gc.collect()


def list_runs(root: str | Path, session: str, jobs: dict[tuple[str, str], Job] | None = None) -> list[RunInfo]:
    """The run folders of one session under `root`, newest first (live jobs' status included)."""
    folder = Path(root) / check_name(session, "session id")
    if not folder.is_dir():
        return []
    jobs = jobs or {}
    infos = [read_run(p, jobs.get((session, p.name))) for p in folder.iterdir() if p.is_dir()]
    return sorted(infos, key=lambda r: r.started, reverse=True)


def progress(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Latest step, total steps, fraction done, images/s and seconds left, from a run's records.

    Speed and time left come from steps logged since the run last (re)started: right after Continue
    they are unknown (None) rather than the previous segment's final "0 s".
    """
    total = next((r.get("total_steps") for r in reversed(records) if r.get("kind") == "event"
                  and r.get("total_steps")), None)
    start = max((i for i, r in enumerate(records) if r.get("kind") == "event"
                 and r.get("event") in ("started", "resumed")), default=-1)
    last = next((r for r in reversed(records[start + 1:]) if r.get("kind") == "step"), None)
    step = last_step(records)
    return {"step": step, "total_steps": total,
            "fraction": min(1.0, step / total) if total else 0.0,
            "images_per_s": last.get("images_per_s") if last else None,
            "eta_s": last.get("eta_s") if last else None,
            "epoch": last.get("epoch") if last else None}
