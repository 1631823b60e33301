"""vaecore: the VAE Explorer engine.

Models are compositions (network × likelihood × latent regulariser × prior) named by presets;
`load` opens run folders, bundled checkpoints and Hub repos; `train` / `Trainer` train them.
"""

from __future__ import annotations

from typing import Any

from vaecore.config import ModelConfig, TrainConfig
from vaecore.data.datasets import Dataset, load_dataset
from vaecore.hub import ModelLoadError, load, publish
from vaecore.models.base import VAE, LossOutput, PretrainedModel
from vaecore.presets import PRESETS, get_preset, list_presets, model_config
from vaecore.training.trainer import Trainer, TrainingDiverged, TrainResult, build_model, read_metrics, train

__version__ = "0.1.0"


def list_models() -> list[str]:
    """Names of every preset `train` and the CLI accept."""
    _load_extensions()
    return list(PRESETS)


def _load_extensions() -> None:
    """Import modules that add presets and model types of their own (T-VAE)."""
    from vaecore.hub import _register_model_types

    _register_model_types()


def __getattr__(name: str) -> Any:
    if name in ("extract_transformation", "apply_transformation", "interpolate_pair", "TVAE"):
        from vaecore.models import tvae

        return getattr(tvae, name)
    raise AttributeError(f"module 'vaecore' has no attribute {name!r}")


__all__ = [
    "PRESETS", "Dataset", "LossOutput", "ModelConfig", "ModelLoadError", "PretrainedModel", "TrainConfig",
    "TrainResult", "Trainer", "TrainingDiverged", "VAE", "build_model", "get_preset", "list_models", "list_presets",
    "load", "load_dataset", "model_config", "publish", "read_metrics", "train",
]
