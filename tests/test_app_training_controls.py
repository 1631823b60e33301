"""Training controls after a state change, run names and the command line (AppTest and the job manager on tiny
digits runs)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from budget import seconds
from streamlit.testing.v1 import AppTest

from explorer import tables
from explorer.catalog import read_json_file
from explorer.jobs import JobManager, RunInfo
from vaecore import read_metrics
from vaecore.cli import build_parser
from vaecore.cli_flags import given
from vaecore.config import TrainConfig
from vaecore.presets import train_config

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"data": "digits", "max_steps": 8, "log_every": 2, "val_limit": 50, "batch_size": 32, "sample_grids": False}


def _wait(condition, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + seconds(timeout)
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _event(folder: Path) -> str | None:
    return next((r.get("event") for r in reversed(read_metrics(folder)) if r.get("kind") == "event"), None)


def test_runs_are_named_by_preset_data_and_time_renamed_and_their_table_converts(tmp_path: Path) -> None:
    manager = JobManager(tmp_path, max_running=2, max_per_session=2)
    first = manager.start("sess01", "sigma-vae", QUICK)
    second = manager.start("sess01", "vae-plus", {**QUICK, "limit": 300}, latent_dim=4)
    for job in (first, second):
        job.wait(seconds(120))
    assert first.name.startswith("sigma-vae-digits-") and second.name.startswith("vae-plus-digits-")
    infos = {i.name: i for i in manager.runs("sess01")}
    assert infos[first.name].title.startswith("sigma-vae on digits · ")
    # the app trains the preset with its own training defaults, as the CLI does (VAE+ augments)
    assert infos[second.name].settings["train"]["augment"] == train_config("vae-plus").augment
    manager.rename("sess01", first.name, "  my   first run ")
    assert manager.run("sess01", first.name).title == "my first run"
    assert manager.run("sess01", first.name).label.startswith("my first run · finished at step 8")
    rows = tables.runs_table(manager.runs("sess01"))
    pa.Table.from_pandas(pd.DataFrame(rows))  # one type per column: no pyarrow fallback (tracebacks in the log)


def test_a_live_runs_label_leaves_its_step_to_the_live_panel() -> None:
    info = RunInfo(name="r", folder=Path("r"), preset="sigma-vae", data="digits", status="running", step=600,
                   total_steps=740, started=0.0)
    assert "step" not in info.label and info.label.endswith("· running")


def test_one_control_button_follows_the_state_and_the_command_parses_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=seconds(120)).run()
    at.selectbox(key="tm_data").set_value("digits")
    at.number_input(key="tm_epochs").set_value(500)
    at.number_input(key="tm_log_every").set_value(5)
    at.button(key="tm_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    folder = next((tmp_path / "runs" / at.session_state["vae_session_id"]).iterdir())
    _wait(lambda: any(r.get("kind") == "step" for r in read_metrics(folder)), "the first steps")
    at.run()
    assert at.button(key="tm_action").label == "Pause / stop"
    at.button(key="tm_action").click().run()
    _wait(lambda: _event(folder) == "stopped", "the stop")
    at.run()
    buttons = [b.label for b in at.button]
    assert at.button(key="tm_action").label == "Resume" and "Pause / stop" not in buttons  # no stale Pause
    at.button(key="tm_action").click().run()  # the callback resumes before the page draws
    assert at.button(key="tm_action").label == "Pause / stop"
    _wait(lambda: _event(folder) == "resumed", "the resume")
    at.button(key="tm_action").click().run()
    _wait(lambda: _event(folder) == "stopped", "the second stop")
    at.run()
    command = at.code[0].value
    args = build_parser().parse_args(shlex.split(command)[3:])
    settings = read_json_file(folder / "app_run.json")
    assert args.model == settings["preset"] == "sigma-vae"
    assert train_config(args.model, **given(args, TrainConfig)).to_dict() == settings["train"]
    at.button(key="tm_evaluate").click().run()  # queued like training, with progress, stoppable
    assert any(p.proto.text.startswith(("evaluating", "queued")) for p in at.progress), [p.proto.text
                                                                                          for p in at.progress]
    at.button(key="tm_eval_stop").click().run()
    assert not at.exception, [e.value for e in at.exception]
