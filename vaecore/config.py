"""Configurations as dataclasses serialised to JSON: what a model is, and how it is trained."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], *, what: str = "config") -> T:
    """Build a dataclass from a dict, rejecting unknown keys with a message that lists the valid ones."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; valid keys: {sorted(names)}")
    return cls(**data)


@dataclass
class ModelConfig:
    """A model as a composition: network × likelihood × latent regulariser × prior."""

    model_type: str = "vae"
    preset: str = "custom"
    input_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 16
    arch: str = "sigma-conv"
    likelihood: str = "gaussian"
    likelihood_kwargs: dict[str, Any] = field(default_factory=dict)
    regulariser: str = "kl"
    beta: float = 1.0
    iwae_k: int = 5
    mmd_kernel: str = "imq"
    mmd_weight: float = 10.0
    rae_embedding_weight: float = 1e-4
    rae_penalty: str = "l2"
    rae_penalty_weight: float = 1e-7
    prior: str = "normal"
    vamp_components: int = 50
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)  # type: ignore[assignment]
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {self.input_shape}")

    @property
    def deterministic(self) -> bool:
        """Encoders of AE, WAE and RAE give a point, not a distribution."""
        return self.regulariser in ("none", "mmd", "rae")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return from_dict(cls, data, what="model config")

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class TrainConfig:
    """How a run trains; saved as train.json in the run folder so `--resume` continues it."""

    data: str = "mnist"
    data_dir: str | None = None
    limit: int | None = None
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    plateau: bool = False
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    kl_warmup_steps: int = 0
    grad_clip: float | None = None
    log_every: int = 20
    checkpoint_every: int = 500
    val_limit: int | None = 2000
    device: str = "auto"
    amp: str = "auto"
    augment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, data, what="train config")
