"""Configurations as dataclasses serialised to JSON: what a model is, and how it is trained.

`ModelConfig` holds what every model has (input shape, network, latent size, likelihood); each
family subclasses it with its own fields in its family module, so a saved config.json holds
only that family's settings. Every setting is checked once, here, when a config is built: its
type (a string `beta` in a config.json does not load) and its range (`setting(lo=..., hi=...)`),
so the CLI, the Python API and the app share the same checks and messages.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from vaecore.data.binarize import BINARIZE

T = TypeVar("T")
C = TypeVar("C", bound="Config")

MAX_LATENT_DIM = 4096
OPTIMIZERS = ("adam", "adamw", "adamax", "sgd", "rmsprop")
SCHEDULERS = ("none", "plateau", "cosine", "step", "multistep")
TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")
AMP = ("auto", "bf16", "fp16", "none")


def setting(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False, choices: tuple[Any, ...] | None = None, factory: Any = None) -> Any:
    """A dataclass field with a checked range (`lo` ≤ value ≤ `hi`; `lo_open` makes it `lo` < value)
    or a set of `choices`."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def check_tracker_names(names: list[str]) -> None:
    """ValueError naming the first unknown experiment tracker and the known ones."""
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"setting 'log_to' has unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")


def from_dict(cls: type[T], data: dict[str, Any], *, what: str = "config") -> T:
    """Build a dataclass from a dict, rejecting unknown keys with a message that lists the valid ones."""
    if not isinstance(data, dict):
        raise ValueError(f"a {what} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; valid keys: {sorted(names)}")
    return cls(**data)


def _allowed(hint: Any) -> tuple[type, ...] | None:
    """The runtime types a type hint accepts, or None when it is not a simple scalar hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(hint):
            sub = _allowed(arg)
            if sub is None:
                return None
            out += sub
        return tuple(out)
    if hint is type(None):
        return (type(None),)
    if hint is float:
        return (float, int)
    if hint in (int, str, bool):
        return (hint,)
    if origin in (dict, list, tuple) or hint in (dict, list, tuple):
        return (origin or hint,) if origin is not tuple else (tuple, list)
    return None


class Config:
    """Shared behaviour of the config dataclasses: checks, JSON round trips, replace."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Type- and range-check every field; ValueError naming the setting and what to fix."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            allowed = _allowed(hints.get(f.name))
            bad_bool = isinstance(value, bool) and bool not in (allowed or ())
            if allowed is not None and (bad_bool or not isinstance(value, allowed)):
                names = " or ".join(sorted({"null" if t is type(None) else t.__name__ for t in allowed}))
                raise ValueError(f"setting {f.name!r} must be {names}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"setting {f.name!r} must be a finite number, got {value!r}")
            meta = f.metadata
            if value is None or not meta:
                continue
            if meta.get("choices") is not None and value not in meta["choices"]:
                raise ValueError(f"setting {f.name!r} must be one of {list(meta['choices'])}, got {value!r}")
            lo, hi = meta.get("lo"), meta.get("hi")
            if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
                rel = ">" if meta.get("lo_open") else ">="
                raise ValueError(f"setting {f.name!r} must be {rel} {lo}, got {value!r}")
            if hi is not None and value > hi:
                raise ValueError(f"setting {f.name!r} must be <= {hi}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        return from_dict(cls, data, what=f"{cls.__name__} config")

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass
class ModelConfig(Config):
    """What every model has: its family (`model_type`), input, network, latent size and likelihood."""

    model_type: str = "vae"
    preset: str = "custom"
    input_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = setting(16, lo=1, hi=MAX_LATENT_DIM)
    arch: str = "sigma-conv"
    likelihood: str = "gaussian"
    likelihood_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        shape = self.input_shape
        if not isinstance(shape, tuple | list) or len(shape) != 3 or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"setting 'input_shape' must be (C, H, W) of positive integers, got {shape!r}")
        self.input_shape = tuple(shape)  # type: ignore[assignment]
        super().__post_init__()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


@dataclass
class TrainConfig(Config):
    """How a run trains; saved as train.json in the run folder so `--resume` continues it."""

    def validate(self) -> None:
        """The field checks, then the device name."""
        from vaecore.utils import check_device

        super().validate()
        check_tracker_names(self.log_to)
        try:
            check_device(self.device)
        except ValueError as e:
            raise ValueError(f"setting 'device': {e}") from None

    data: str = "mnist"
    data_dir: str | None = None
    limit: int | None = setting(None, lo=1)
    data_seed: int | None = setting(None, lo=0)
    epochs: int = setting(10, lo=1)
    max_steps: int | None = setting(None, lo=1)
    batch_size: int = setting(128, lo=1)
    lr: float = setting(1e-3, lo=0, lo_open=True)
    seed: int = setting(0, lo=0)
    optimizer: str = setting("adam", choices=OPTIMIZERS)
    weight_decay: float = setting(0.0, lo=0)
    momentum: float = setting(0.0, lo=0, hi=1)
    nesterov: bool = False
    beta1: float = setting(0.9, lo=0, hi=1)
    beta2: float = setting(0.999, lo=0, hi=1)
    eps: float = setting(1e-8, lo=0, lo_open=True)
    scheduler: str = setting("none", choices=SCHEDULERS)
    plateau: bool = False
    plateau_patience: int = setting(5, lo=0)
    plateau_factor: float = setting(0.5, lo=0, lo_open=True, hi=1)
    step_size: int = setting(10, lo=1)
    step_gamma: float = setting(0.5, lo=0, lo_open=True, hi=1)
    milestones: list[int] = field(default_factory=list)  # multistep: epoch counts after which lr ×= step_gamma
    min_lr: float = setting(0.0, lo=0)
    early_stopping: int | None = setting(None, lo=1)
    keep_best: bool = True
    kl_warmup_steps: int = setting(0, lo=0)
    grad_clip: float | None = setting(None, lo=0, lo_open=True)
    log_every: int = setting(20, lo=1)
    checkpoint_every: int = setting(500, lo=1)
    divergence_factor: float | None = setting(100.0, lo=1)  # None: stop on NaN/inf only, never on an explosion
    val_limit: int | None = setting(2000, lo=1)
    val_batch_size: int = setting(500, lo=1)
    sample_grids: bool = True
    log_to: list[str] = field(default_factory=list)
    device: str = "auto"
    amp: str = setting("auto", choices=AMP)
    compile: bool = False
    channels_last: bool = False
    conv_autotune: bool = False  # CPU: each conv layer times oneDNN against a GEMM lowering, keeps the faster
    threads: int | None = setting(None, lo=1)
    world_size: int = setting(1, lo=1)
    augment: dict[str, Any] | None = None
    binarize: str = setting("none", choices=BINARIZE)  # dynamic: a fresh Bernoulli draw per epoch (data/binarize)

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones) or \
                list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"setting 'milestones' must be increasing epoch counts >= 1, got {self.milestones!r}")
