"""vaecore: the VAE Explorer engine.

Models are compositions (network × posterior × likelihood × objective terms × prior) in family
classes, named by presets; `load` opens run folders, bundled checkpoints and Hub repos;
`train` / `Trainer` train them. Importing vaecore imports every family, so `PRESETS` and the
model types are complete.
"""

from __future__ import annotations

from vaecore import model_card, models  # noqa: F401  (registers every family, its presets and the card writer)
from vaecore.components.nets import register_architecture
from vaecore.config import ModelConfig, TrainConfig
from vaecore.data.datasets import Dataset, load_dataset
from vaecore.hub import ModelLoadError, load, publish
from vaecore.models.base import Capabilities, LossOutput, ParamGroup, PretrainedModel
from vaecore.models.tvae import TVAE, apply_transformation, extract_transformation, interpolate_pair
from vaecore.models.vae import VAE
from vaecore.presets import PRESETS, build_model, build_preset, get_preset, list_presets, model_config
from vaecore.training.trainer import Trainer, TrainingDiverged, TrainResult, read_metrics, train

__version__ = "0.1.0"


def list_models() -> list[str]:
    """Names of every preset `train` and the CLI accept."""
    return list(PRESETS)


__all__ = [
    "PRESETS", "TVAE", "VAE", "Capabilities", "Dataset", "LossOutput", "ModelConfig", "ModelLoadError", "ParamGroup",
    "PretrainedModel", "TrainConfig", "TrainResult", "Trainer", "TrainingDiverged", "apply_transformation",
    "build_model", "build_preset", "extract_transformation", "get_preset", "interpolate_pair", "list_models",
    "list_presets", "load", "load_dataset", "model_config", "publish", "read_metrics", "register_architecture", "train",
]
