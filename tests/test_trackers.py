"""Experiment trackers through the callback hook, each read back offline with its own reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore.presets import model_config


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
    client = mlflow.tracking.MlflowClient((tmp_path / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("vae-explorer")
    run = client.search_runs([exp.experiment_id])[0]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) > 1
    assert client.get_metric_history(run.info.run_id, "val_loss")


def test_wandb_offline(tmp_path: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is optional (pip install -r requirements-trackers.txt)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    _run(tmp_path, digits, "wandb")
    summaries = list((tmp_path / "wandb").glob("offline-run-*/files/wandb-summary.json"))
    assert summaries, "wandb wrote no offline run"
    summary = json.loads(summaries[0].read_text())
    assert "val_loss" in summary and "train/loss" in summary


def test_trackio_local(tmp_path: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trackio", reason="trackio is optional (pip install -r requirements-trackers.txt)")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    _run(tmp_path / "run", digits, "trackio")
    assert any((tmp_path / "trackio").rglob("*.db")), "trackio wrote no local database"


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
