"""Experiment trackers through the callback hook, each read back offline with its own reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from budget import seconds

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore.presets import model_config

ROOT = Path(__file__).resolve().parent.parent


def _run(out: Path, digits: vaecore.Dataset, tracker: str) -> Trainer:
    model = vaecore.build_model(model_config("sigma-vae", input_shape=digits.shape, arch="mlp",
                                             latent_dim=4).to_dict(), seed=0)
    cfg = TrainConfig(data="digits", epochs=2, batch_size=64, log_every=6, val_limit=200, log_to=[tracker])
    trainer = Trainer(model, digits, cfg, out)
    trainer.fit()
    return trainer


def test_tensorboard_scalars_and_grids(tmp_path: Path, digits: vaecore.Dataset) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -r requirements-dev.txt)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = _run(tmp_path, digits, "tensorboard")
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/kl", "train/lr", "val_loss", "val_elbo", "val_mse"} <= set(tags["scalars"])
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == list(range(6, trainer.total_steps + 1, 6))
    assert [e.step for e in acc.Scalars("val_loss")] == [trainer.steps_per_epoch, 2 * trainer.steps_per_epoch]
    assert {"samples", "reconstructions"} <= set(tags["images"])
    assert len(acc.Images("samples")) == 2 and acc.Images("samples")[0].width > 0


def test_mlflow_offline(tmp_path: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow", reason="mlflow is optional (pip install -r requirements-trackers.txt)")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _run(tmp_path, digits, "mlflow")
    client = mlflow.tracking.MlflowClient(f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}")
    exp = client.get_experiment_by_name("vae-explorer")
    run = client.search_runs([exp.experiment_id])[0]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) > 1
    assert client.get_metric_history(run.info.run_id, "val_loss")


def test_wandb_offline(tmp_path: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is optional (pip install -r requirements-trackers.txt)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer = _run(tmp_path, digits, "wandb")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "wandb wrote no offline run"
    records = next(runs[0].glob("run-*.wandb")).read_bytes()  # wandb 0.31 ships no offline reader: the keys
    assert records.count(b"train/loss") >= trainer.total_steps // 6 and records.count(b"val_loss") >= 2
    spe = trainer.steps_per_epoch
    images = sorted(p.name.split("_")[0] + "@" + p.name.split("_")[1] for p in runs[0].glob("files/media/images/*"))
    assert images == [f"{kind}@{step}" for kind in ("reconstructions", "samples") for step in (spe, 2 * spe)]


TRACKIO_SCRIPT = """
import json, sys
import vaecore
from tests.test_trackers import _run
from trackio.sqlite_storage import SQLiteStorage
trainer = _run(__import__("pathlib").Path(sys.argv[1]), vaecore.load_dataset("digits"), "trackio")
logs = SQLiteStorage.get_logs("vae-explorer", run="run")
print(json.dumps({"steps": [r["step"] for r in logs if "train/loss" in r],
                  "val": [r["step"] for r in logs if "val_loss" in r], "spe": trainer.steps_per_epoch}))
"""


def test_trackio_local(tmp_path: Path) -> None:
    """In a subprocess: trackio reads TRACKIO_DIR when imported, and must not write the user's cache."""
    pytest.importorskip("trackio", reason="trackio is optional (pip install -r requirements-trackers.txt)")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", TRACKIO_SCRIPT, str(tmp_path / "run")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=seconds(300))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["steps"] == list(range(6, 2 * out["spe"] + 1, 6))
    assert out["val"] == [out["spe"], 2 * out["spe"]]


def test_missing_package_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from vaecore.training.trackers import build_trackers

    real = builtins.__import__

    def no_mlflow(name: str, *args: object, **kwargs: object) -> object:
        if name == "mlflow":
            raise ImportError("No module named 'mlflow'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(ValueError, match="needs the mlflow package.*requirements-trackers.txt"):
        build_trackers(["mlflow"], tmp_path, {})
