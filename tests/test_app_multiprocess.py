"""The app's multi-process jobs: a run launched through the job queue with torchrun (gloo on the CPU
here; one process per GPU on a multi-GPU server) trains with DDP, records its world size, stops on
request and resumes with as many processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from budget import seconds

from explorer.jobs import JobManager
from explorer.multiprocess import LOG, ProcessTrainer, failure_line, launch_command
from vaecore.training.trainer import read_metrics

TRAIN = {"data": "digits", "batch_size": 64, "log_every": 6, "val_limit": 200, "checkpoint_every": 12, "seed": 0}
MODEL = {"arch": "mlp", "latent_dim": 4}


def _wait(job, timeout: float = 300.0) -> None:
    end = time.monotonic() + seconds(timeout)
    while job.alive and time.monotonic() < end:
        time.sleep(0.2)
    assert not job.alive, "the job did not end"


def test_launch_command_runs_the_cli_under_torchrun(tmp_path: Path) -> None:
    cmd = launch_command(tmp_path, 4)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert cmd[-2:] == ["--settings", str(tmp_path / "app_run.json")]
    assert launch_command(tmp_path, 2, resume=True, epochs=7)[-3:] == ["--resume", "--epochs", "7"]
    with pytest.raises(ValueError, match="at least 2"):
        ProcessTrainer(tmp_path, 1)


def test_two_process_job_trains_stops_and_resumes(tmp_path: Path) -> None:
    manager = JobManager(tmp_path, max_running=1)
    job = manager.start("ddpsession", "ae", {**TRAIN, "max_steps": 24}, name="two", processes=2, **MODEL)
    _wait(job)
    log = job.folder / LOG
    assert job.status == "finished", (job.message, log.read_text()[-4000:] if log.exists() else "")
    assert json.loads((job.folder / "train.json").read_text())["world_size"] == 2
    steps = [r["step"] for r in read_metrics(job.folder) if r.get("kind") == "step"]
    assert steps == [6, 12, 18, 24], "one metrics stream, from rank 0"
    assert manager.run("ddpsession", "two").label.endswith("finished at step 24")

    long = manager.start("ddpsession", "ae", {**TRAIN, "max_steps": 100_000}, name="long", processes=2, **MODEL)
    end = time.monotonic() + seconds(240)
    while not any(r.get("step", 0) >= 12 for r in read_metrics(long.folder)) and time.monotonic() < end:
        time.sleep(0.2)
    manager.stop("ddpsession", "long")
    _wait(long)
    assert long.status == "stopped" and "2 processes" in long.message, (long.status, long.message)
    stopped_at = max(r["step"] for r in read_metrics(long.folder) if r.get("kind") == "step")
    resumed = manager.resume("ddpsession", "long")  # exact only with as many processes: relaunched with 2
    end = time.monotonic() + seconds(240)
    while not any(r.get("event") == "resumed" for r in read_metrics(long.folder)) and time.monotonic() < end:
        time.sleep(0.2)
    while max(r.get("step", 0) for r in read_metrics(long.folder)) <= stopped_at + 6 and time.monotonic() < end:
        time.sleep(0.2)
    manager.stop("ddpsession", "long")
    _wait(resumed)
    assert resumed.status == "stopped", (resumed.status, resumed.message)
    events = [r["event"] for r in read_metrics(long.folder) if r.get("kind") == "event"]
    assert "resumed" in events and json.loads((long.folder / "train.json").read_text())["world_size"] == 2


def test_a_crashed_process_is_reported_by_its_signal_not_by_torchrun_rule(tmp_path: Path) -> None:
    script = tmp_path / "abort.py"
    script.write_text("import os\nif os.environ['RANK'] == '1':\n    os.abort()\n")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True, timeout=seconds(120))
    assert run.returncode != 0 and run.stderr.strip().endswith("=")
    line = failure_line(run.stderr, run.returncode)
    assert "rank" in line and "SIGABRT" in line, line
    assert failure_line("x\nerror: batch size 63 does not split\n====", 2) == "batch size 63 does not split"
    assert failure_line("", 3) == "torchrun exited with status 3"


@pytest.mark.parametrize("gpus", [0, 4])
def test_the_monitor_offers_processes_only_with_several_gpus(gpus: int, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from explorer import multiprocess

    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(multiprocess, "gpu_count", lambda: gpus)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "1_Training_monitor.py"),
                           default_timeout=seconds(120))
    at.run()
    assert not at.exception
    box = at.number_input(key="tm_processes")
    assert box.value == 1 and box.proto.disabled == (gpus < 2) and box.proto.max == max(1, gpus)
    assert f"this server has {gpus}" in box.label


def test_a_failing_multi_process_run_reports_the_cli_error(tmp_path: Path) -> None:
    manager = JobManager(tmp_path, max_running=1)
    job = manager.start("ddpsession", "ae", {**TRAIN, "max_steps": 12, "batch_size": 63}, name="odd", processes=2,
                        **MODEL)
    _wait(job)
    assert job.status == "error" and "does not split over 2 processes" in job.message, job.message
