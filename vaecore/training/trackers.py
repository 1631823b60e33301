"""Experiment trackers as Trainer callbacks: `--log-to tensorboard,mlflow,wandb,trackio`.

Each tracker receives the Trainer's records: scalars of every logged step (`kind: "step"`) and
epoch (`"epoch"`), the sample and reconstruction grids of every epoch (`"images"`, uint8
arrays), and the closing event. Everything is written offline into the run folder unless the
tracker's own environment says otherwise (MLFLOW_TRACKING_URI, WANDB_MODE=online,
TRACKIO_DIR). The packages are optional: tensorboard is in requirements-dev.txt, the heavier
ones in requirements-trackers.txt.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

from vaecore.config import TrainConfig, check_value

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}
SKIP = frozenset({"kind", "step", "time", "epoch", "eta_s", "total_steps"})
PROJECT = "vae-explorer"


def parse_trackers(text: str | None) -> list[str]:
    """'tensorboard,mlflow' → ['tensorboard', 'mlflow'] (checked)."""
    return check_value(TrainConfig, "log_to", [n.strip() for n in (text or "").split(",") if n.strip()])


class Tracker:
    """A callback that forwards scalars and image grids to one tracker; subclasses fill in the writes."""

    name = "tracker"

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.closed = False

    def __call__(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if self.closed:
            return
        if kind in ("step", "epoch"):
            prefix = "train/" if kind == "step" else ""
            scalars = {prefix + k: float(v) for k, v in record.items()
                       if k not in SKIP and isinstance(v, numbers.Real) and not isinstance(v, bool)}
            if scalars:
                self.scalars(int(record["step"]), scalars)
        elif kind == "images":
            self.images(int(record["step"]), {k: record[k] for k in ("samples", "reconstructions") if k in record})
        elif kind == "event" and record.get("event") in ("finished", "stopped", "diverged"):
            self.close()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def images(self, step: int, grids: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


class TensorBoardTracker(Tracker):
    """Event files under <run>/tensorboard (read them with `tensorboard --logdir <run>`)."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        super().__init__(run_dir, config)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def images(self, step: int, grids: dict[str, Any]) -> None:
        for tag, grid in grids.items():
            self.writer.add_image(tag, grid, step, dataformats="HW" if grid.ndim == 2 else "HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        super().close()


class MLflowTracker(Tracker):
    """An MLflow run in <run>/mlflow.db (artifacts in <run>/mlartifacts) unless MLFLOW_TRACKING_URI is set."""

    name = "mlflow"

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        super().__init__(run_dir, config)
        import mlflow

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}")
            if mlflow.get_experiment_by_name(PROJECT) is None:
                mlflow.create_experiment(PROJECT, artifact_location=(self.run_dir / "mlartifacts").resolve().as_uri())
        mlflow.set_experiment(PROJECT)
        self.run = mlflow.start_run(run_name=self.run_dir.name)
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=step)

    def images(self, step: int, grids: dict[str, Any]) -> None:
        for tag, grid in grids.items():
            self.mlflow.log_image(grid, key=tag, step=step)

    def close(self) -> None:
        self.mlflow.end_run()
        super().close()


class WandbTracker(Tracker):
    """A Weights & Biases run, offline under <run>/wandb unless WANDB_MODE=online."""

    name = "wandb"

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        super().__init__(run_dir, config)
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=PROJECT, name=self.run_dir.name, dir=str(self.run_dir), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def images(self, step: int, grids: dict[str, Any]) -> None:
        self.run.log({k: self.wandb.Image(v) for k, v in grids.items()}, step=step)

    def close(self) -> None:
        self.run.finish()
        super().close()


class TrackioTracker(Tracker):
    """A trackio run (local SQLite under TRACKIO_DIR, by default the Hugging Face cache)."""

    name = "trackio"

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        super().__init__(run_dir, config)
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=PROJECT, name=self.run_dir.name, config=config)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.trackio.log(values, step=step)

    def images(self, step: int, grids: dict[str, Any]) -> None:
        self.trackio.log({k: self.trackio.Image(v) for k, v in grids.items()}, step=step)

    def close(self) -> None:
        self.trackio.finish()
        super().close()


CLASSES: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker,
                                     "wandb": WandbTracker, "trackio": TrackioTracker}


def build_trackers(names: list[str], run_dir: str | Path, config: dict[str, Any]) -> list[Tracker]:
    """One callback per named tracker; ValueError saying what to install when a package is missing."""
    check_value(TrainConfig, "log_to", names)
    out = []
    for name in names:
        try:
            out.append(CLASSES[name](Path(run_dir), config))
        except ImportError as e:
            hint = "pip install -r requirements-dev.txt" if name == "tensorboard" else \
                "pip install -r requirements-trackers.txt"
            raise ValueError(f"--log-to {name} needs the {PACKAGES[name]} package ({e}); run `{hint}`") from e
    return out
