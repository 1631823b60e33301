"""Multi-process training jobs: a run launched with torchrun (one process per GPU, DDP), with the
surface a `Job` needs from a Trainer (`fit`, `stop`, `step`), so the app's queue runs it like any job.

The processes run `python -m vaecore train --settings <run>/app_run.json` (or `--resume`) under
`torch.distributed.run --standalone`; rank 0 writes the run folder, which the page reads as usual.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from vaecore.files import APP_RUN
from vaecore.training.trainer import TrainResult, read_metrics

LOG = "torchrun.log"  # the processes' stderr, kept in the run folder when they fail
_CAUSES = ("terminate called", "what():", "rank ", "exitcode", "Killed")


def failure_line(stderr: str, returncode: int | None) -> str:
    """The one line that says why a torchrun launch failed: the CLI's own `error:` line when a rank
    printed one, else a Python exception, an abort or the exit code torchrun's summary reports (its
    last line is only a rule of '=')."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    if ours:
        return ours[-1]
    causes = [line for line in lines if re.match(r"^(\[rank\d+\]: )?\w+(Error|Exception): ", line)
              and "ChildFailedError" not in line]
    causes += [line for line in lines if line.startswith(_CAUSES)]
    return "; ".join(dict.fromkeys(causes[:4])) or f"torchrun exited with status {returncode}"


def gpu_count() -> int:
    """CUDA devices visible to the server (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch_command(folder: Path, processes: int, resume: bool = False, epochs: int | None = None) -> list[str]:
    """The torchrun command line of a run folder: a new run from its app_run.json, or a resume."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(processes)}",
           "-m", "vaecore", "train", "--out", str(folder), "--no-progress"]
    if resume:
        return cmd + ["--resume"] + (["--epochs", str(int(epochs))] if epochs else [])
    return cmd + ["--settings", str(folder / APP_RUN)]


class ProcessTrainer:
    """Runs `launch_command` to its end. `stop()` interrupts every process (SIGINT to the process
    group): the run keeps its last periodic checkpoint and resumes with as many processes."""

    def __init__(self, folder: Path, processes: int, resume: bool = False, epochs: int | None = None) -> None:
        if processes < 2:
            raise ValueError(f"a multi-process run needs at least 2 processes, got {processes}")
        self.folder, self.processes = Path(folder), int(processes)
        self.command = launch_command(self.folder, self.processes, resume, epochs)
        self.proc: subprocess.Popen[str] | None = None
        self.step = 0
        self._stopping = False

    def _last(self, kind: str) -> dict[str, Any]:
        return next((r for r in reversed(read_metrics(self.folder)) if r.get("kind") == kind), {})

    def fit(self) -> TrainResult:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self.proc = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        if self._stopping:
            self.stop()
        _, err = self.proc.communicate()
        event = self._last("event")
        self.step = int(event.get("step", self._last("step").get("step", 0)))
        epoch = int(float(self._last("step").get("epoch", 0)))
        if self.proc.returncode == 0 and event.get("event") in ("finished", "stopped"):
            return TrainResult(event["event"], self.step, epoch, event.get("message", ""))
        if self._stopping:
            return TrainResult("stopped", self.step, epoch, f"stopped; resumes from its last checkpoint with "
                               f"{self.processes} processes")
        log = self.folder / LOG
        log.write_text(err or "")
        raise RuntimeError(f"{failure_line(err or '', self.proc.returncode)} (torchrun's output: {log})")

    def stop(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
