"""Configurations as dataclasses serialised to JSON: what a model is, how it is trained, how it is evaluated.

`ModelConfig` holds what every model has (input shape, network, latent size, likelihood); each
family subclasses it with its own fields in its family module, so a saved config.json holds
only that family's settings. Each setting is declared once, as a field made by `setting(...)`,
whose metadata (`Meta`) says everything about it: its range or choices (checked here when a
config is built, so the CLI, the Python API and the app share the same checks and messages),
its help text, its CLI flag (the CLI's train / eval flags are generated from these fields) and
how the app's training page shows it (the page's widgets are generated too). Which families
take a model setting is which family configs have the field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

import vaecore.limits as limits
from vaecore.data.binarize import BINARIZE
from vaecore.data.datasets import STORAGE

T = TypeVar("T")
C = TypeVar("C", bound="Config")

MAX_LATENT_DIM = limits.LATENT_DIM.default  # the default; VAE_MAX_LATENT_DIM changes it (vaecore.limits)
OPTIMIZERS = ("adam", "adamw", "adamax", "sgd", "rmsprop")
SCHEDULERS = ("none", "plateau", "cosine", "step", "multistep")
TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")
AMP = ("auto", "bf16", "fp16", "none")


PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SEED = 2**32 - 1  # NumPy's limit; torch takes any 64-bit seed
MAX_THREADS = 1024


@dataclass(frozen=True)
class Meta:
    """What a config field declares about itself.

    Checks: `lo` ≤ value ≤ `hi` (`lo_open`: `lo` < value) or one of `choices`. Help: `help` (one line),
    `label` (the app's name for it; the CLI's flag names it there). CLI: `cli` True gives the flag
    `--name-with-dashes`, a string names the flag itself; `short` adds a short flag, `metavar` names the value.
    App: `app` is the training page's section ("model", "main", "advanced"), with `options` (a slider's
    values), `fmt` (a number format), `app_lo` / `app_hi` (the page's range where it is narrower than the
    engine's) and `none` (what None means, entered as 0). Resume: `resumable` settings may change when a run
    is resumed (they take effect from the resumed step and are recorded); every other setting must stay.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[Any, ...] | None = None
    help: str = ""
    label: str = ""
    cli: bool | str = False
    short: str | None = None
    metavar: str | None = None
    app: str | None = None
    options: tuple[Any, ...] | None = None
    fmt: str | None = None
    app_lo: float | None = None
    app_hi: float | None = None
    none: str | None = None
    resumable: bool = False

    @property
    def described(self) -> dict[str, Any]:
        """The descriptive part (everything but the checks), with only the values this field sets."""
        checks = {"lo", "hi", "lo_open", "choices"}
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in checks and getattr(self, f.name) != f.default}


META = "vaecore"  # the key of a field's Meta in its dataclass metadata


def setting(default: Any = dataclasses.MISSING, *, factory: Any = None, **meta: Any) -> Any:
    """A config field and its `Meta` (checks, help, CLI flag, app widget; see `Meta`)."""
    info = {META: Meta(**meta)}
    if factory is not None:
        return field(default_factory=factory, metadata=info)
    return field(default=default, metadata=info)


def kl_weight(default: float) -> Any:
    """The setting `beta` of a family whose β weights the KL term (one declaration for all of them)."""
    return setting(default, lo=0, cli=True, app="model", label="β (KL weight)", app_hi=100,
                   help="weight of the KL term (β-VAE: β > 1)")


@functools.cache
def meta_of(cls: type, name: str) -> Meta:
    """A field's Meta: the checks of its own declaration, the descriptive metadata merged down the class
    hierarchy (a family that redeclares `beta` with another default keeps its parent's help and flag)."""
    own: Meta | None = None
    described: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and META in f.metadata:
            own = f.metadata[META]
            described.update(own.described)
        elif f is not None:
            own = None
    if own is None:
        return Meta(**described)
    return dataclasses.replace(own, **described)


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a config class's fields."""
    return typing.get_type_hints(cls)


def check_value(cls: type, name: str, value: Any) -> Any:
    """`value` for setting `name` of config class `cls` when its type and range allow it, else a ValueError that
    names the setting and what to pass."""
    allowed = _allowed(type_hints(cls)[name])
    bad_bool = isinstance(value, bool) and bool not in (allowed or ())
    if allowed is not None and (bad_bool or not isinstance(value, allowed)):
        names = " or ".join(sorted({"null" if t is type(None) else t.__name__ for t in allowed}))
        raise ValueError(f"setting {name!r} must be {names}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"setting {name!r} must be a finite number, got {value!r}")
    if isinstance(value, str):
        limits.STRING_LENGTH.check(len(value), f"setting {name!r}: the length")
    meta = meta_of(cls, name)
    if value is None:
        return value
    if meta.choices is not None and isinstance(value, list):
        unknown = [v for v in value if v not in meta.choices]
        if unknown:
            raise ValueError(f"setting {name!r} has unknown value {unknown[0]!r}; choose from "
                             f"{', '.join(map(str, meta.choices))}")
    elif meta.choices is not None and value not in meta.choices:
        raise ValueError(f"setting {name!r} must be one of {list(meta.choices)}, got {value!r}")
    if meta.lo is not None and (value <= meta.lo if meta.lo_open else value < meta.lo):
        raise ValueError(f"setting {name!r} must be {'>' if meta.lo_open else '>='} {meta.lo}, got {value!r}")
    if meta.hi is not None and value > meta.hi:
        raise ValueError(f"setting {name!r} must be <= {meta.hi}, got {value!r}")
    return value


def check_augment(augment: dict[str, Any]) -> None:
    """ValueError unless `augment` is the settings of a `TransformRange` (rotation, translation, scale, shear,
    kinds), naming the unknown or invalid one."""
    from vaecore.data.transforms import TransformRange

    try:
        from_dict(TransformRange, augment, what="augment")
    except (TypeError, ValueError) as e:
        raise ValueError(f"setting 'augment': {e}") from None


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
        for f in fields(self):  # type: ignore[arg-type]
            check_value(type(self), f.name, getattr(self, f.name))

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
    latent_dim: int = setting(16, lo=1, cli=True, app="model", label="Latent size", app_hi=512,
                              help="latent dimensions (a VQ-VAE: the dimension of each code vector)")
    arch: str = setting("sigma-conv", cli=True, help="encoder / decoder network")
    likelihood: str = setting("gaussian", cli=True, app="model", label="Likelihood",
                              help="decoder likelihood; a new one starts from its own default settings")
    likelihood_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        shape = self.input_shape
        if not isinstance(shape, tuple | list) or len(shape) != 3 or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"setting 'input_shape' must be (C, H, W) of positive integers, got {shape!r}")
        self.input_shape = tuple(shape)  # type: ignore[assignment]
        limits.check_input_shape(self.input_shape, "setting 'input_shape'")
        super().__post_init__()

    def validate(self) -> None:
        """The field checks and the size limits (vaecore.limits), then the preset's name (a label, never a path)."""
        super().validate()
        limits.LATENT_DIM.check(self.latent_dim, "setting 'latent_dim'")
        if not PRESET_NAME.fullmatch(self.preset):
            raise ValueError(f"setting 'preset' must be a name of letters, digits, '.', '_' or '-' (at most 64), "
                             f"got {self.preset[:80]!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


@dataclass
class TrainConfig(Config):
    """How a run trains; saved as train.json in the run folder so `--resume` continues it."""

    data: str = setting("mnist", cli=True,
                        help="mnist | fashion-mnist | digits | idx | imagefolder | celeba | cifar10 | cifar100 | "
                             "svhn | dsprites | dsprites-procedural | file.npz | hf://owner/name (docs/data.md)")
    data_dir: str | None = setting(None, cli=True, metavar="DIR", help="folder (or file) with the dataset")
    limit: int | None = setting(None, lo=1, cli=True, app="data", label="Training images", none="all",
                                app_hi=60_000, help="use only the first N training images")
    data_seed: int | None = setting(None, lo=0, hi=MAX_SEED,
                                    help="seed of the data's split and subset (default: the run's seed)")
    image_size: int | None = setting(None, lo=4, hi=1024, cli=True, metavar="PX", app="data", label="Image size",
                                     none="as the data", app_hi=256,
                                     help="resize (shorter side) and centre-crop the images to PX x PX; recorded, so "
                                          "--resume, eval and the app rebuild the same data")
    channels: int | None = setting(None, choices=(1, 3), cli=True, app="data", label="Channels", none="as the data",
                                   help="convert the images to 1 (grey) or 3 (RGB) channels; without it, data that "
                                        "mixes grey and colour images is refused")
    hflip: bool = setting(False, cli=True, app="advanced", label="Flip training images left-right",
                          help="augmentation: each training image mirrored left-right with probability 1/2 "
                               "(drawn per batch from the seed)")
    dequantize: bool = setting(False, cli=True, app="advanced", label="Dequantise training images",
                               help="training batches of 8-bit data as (k + u) / 256 with u ~ U[0, 1) instead of "
                                    "k / 255, for continuous likelihoods (validation and evaluation keep k / 255)")
    data_storage: str = setting("auto", choices=STORAGE, cli=True, resumable=True,
                                help="where a cached dataset is read from: memory, disk (batch by batch from the "
                                     "cache file, for data larger than memory), or auto (memory when under 2 GiB)")
    data_workers: int = setting(0, lo=0, hi=64, cli=True, resumable=True,
                                help="DataLoader worker processes reading a dataset from disk (0: in the training "
                                     "process)")
    epochs: int = setting(10, lo=1, cli=True, app="main", label="Epochs", app_hi=500, resumable=True,
                          help="passes over the training images")
    max_steps: int | None = setting(None, lo=1, cli=True, app="advanced", label="Max steps", none="no limit",
                                    app_hi=10_000_000, resumable=True, help="stop after this many optimiser steps")
    batch_size: int = setting(128, lo=1, cli=True, app="advanced", label="Batch size",
                              options=(16, 32, 64, 128, 256, 512), help="images per optimiser step")
    lr: float = setting(1e-3, lo=0, lo_open=True, cli=True, app="main", label="Learning rate", fmt="%.1e",
                        app_lo=1e-6, app_hi=1.0,
                        help="learning rate (Adam's usual range is 1e-4 … 3e-3)")
    seed: int = setting(0, lo=0, hi=MAX_SEED, cli=True, app="advanced", label="Seed",
                        help="seed of the initial weights, the batches and the noise")
    optimizer: str = setting("adam", choices=OPTIMIZERS, cli=True, help="optimizer (default adam)")
    weight_decay: float = setting(0.0, lo=0, cli=True, help="weight decay")
    momentum: float = setting(0.0, lo=0, hi=1, cli=True, help="sgd / rmsprop momentum")
    nesterov: bool = setting(False, cli=True, help="sgd: Nesterov momentum")
    beta1: float = setting(0.9, lo=0, hi=1, cli=True, help="adam / adamw: β1")
    beta2: float = setting(0.999, lo=0, hi=1, cli=True, help="adam / adamw: β2; rmsprop: α")
    eps: float = setting(1e-8, lo=0, lo_open=True, cli=True, help="adam / adamw / rmsprop: ε")
    scheduler: str = setting("none", choices=SCHEDULERS, cli=True,
                             help="learning-rate schedule, stepped per epoch")
    plateau: bool = setting(False, cli=True,
                            help="ReduceLROnPlateau on the validation loss (the same as --scheduler plateau)")
    plateau_patience: int = setting(5, lo=0, cli=True, help="plateau schedule: epochs without improvement")
    plateau_factor: float = setting(0.5, lo=0, lo_open=True, hi=1, cli=True, help="plateau schedule: decay factor")
    step_size: int = setting(10, lo=1, cli=True, help="step schedule: epochs between decays")
    step_gamma: float = setting(0.5, lo=0, lo_open=True, hi=1, cli=True,
                                help="step / multistep schedule: decay factor")
    milestones: list[int] = setting(factory=list, cli=True, metavar="EPOCHS",
                                    help="multistep schedule: epoch counts after which lr ×= step_gamma, "
                                         "comma-separated")
    min_lr: float = setting(0.0, lo=0, cli=True, help="cosine / plateau floor")
    early_stopping: int | None = setting(None, lo=1, cli=True, metavar="PATIENCE", resumable=True,
                                         help="stop after this many epochs without a better validation loss")
    keep_best: bool = setting(True, cli=True, resumable=True, help="keep the best model in <out>/best")
    kl_warmup_steps: int = setting(0, lo=0, cli="--kl-warmup", app="advanced", label="KL warm-up steps",
                                   app_hi=100_000, help="steps of linear KL warm-up")
    grad_clip: float | None = setting(None, lo=0, lo_open=True, cli=True, help="clip the gradient norm")
    log_every: int = setting(20, lo=1, cli=True, app="advanced", label="Log every N steps", app_hi=1000,
                             resumable=True, help="steps between logged records")
    checkpoint_every: int = setting(500, lo=1, cli=True, app="advanced", app_lo=10, app_hi=100_000,
                                    label="Checkpoint, samples and reconstructions every N steps", resumable=True,
                                    help="steps between checkpoints (besides every epoch end)")
    divergence_factor: float | None = setting(100.0, lo=1, cli=True, resumable=True,
                                              help="stop when the loss rises above its best by more than this many "
                                                   "times its scale (raise it to tolerate spikes; null: only NaN/inf)")
    val_limit: int | None = setting(2000, lo=1, cli=True, help="validation images evaluated each epoch")
    val_batch_size: int = setting(500, lo=1, cli=True, help="images per validation batch")
    sample_grids: bool = setting(True, cli=True, resumable=True, help="per-epoch sample grids in <out>/samples")
    log_to: list[str] = setting(factory=list, choices=TRACKERS, cli=True, metavar="TRACKERS", resumable=True,
                                help=f"experiment trackers, comma-separated: {', '.join(TRACKERS)}")
    device: str = setting("auto", cli=True, resumable=True, help="auto | cpu | cuda | cuda:N | mps")
    amp: str = setting("auto", choices=AMP, cli=True,
                       help="mixed precision: on CUDA auto picks bf16 (or fp16 with a GradScaler); on the CPU only "
                            "bf16 applies (autocast, fast with AMX / AVX-512 BF16); auto = fp32 on the CPU")
    compile: bool = setting(False, cli=True, help="torch.compile the loss")
    channels_last: bool = setting(False, cli=True, help="channels-last memory format for conv nets")
    conv_autotune: bool = setting(True, cli=True,
                                  help="CPU: each conv layer keeps the faster of PyTorch's kernel and a GEMM lowering, "
                                       "measured once per machine and shape (cached; recorded for an exact resume)")
    deterministic: bool = setting(False, cli=True,
                                  help="bit for bit: PyTorch's own kernels, nothing chosen by measurement (CPU) and "
                                       "deterministic algorithms (CUDA); the default is the fastest path that "
                                       "differs only in rounding")
    threads: int | None = setting(None, lo=1, hi=MAX_THREADS, cli=True, resumable=True, help="torch CPU threads")
    world_size: int = setting(1, lo=1, help="processes the run is trained by (set by torchrun, recorded)")
    augment: dict[str, Any] | None = setting(None, help="random affine transforms of the training images: "
                                                        "TransformRange's fields (rotation, translation, scale, "
                                                        "shear, kinds)")
    binarize: str = setting("none", choices=BINARIZE, cli=True,
                            help="binary training images: 'dynamic' draws a fresh seeded Bernoulli sample of each "
                                 "image per epoch, 'static' one draw (validation images: one fixed draw)")

    def validate(self) -> None:
        """The field checks, then what one field cannot check alone: the device, the trackers, the augmentation's
        settings, a scheduler chosen twice."""
        from vaecore.utils import check_device

        super().validate()
        limits.BATCH_SIZE.check(self.batch_size, "setting 'batch_size'")
        limits.BATCH_SIZE.check(self.val_batch_size, "setting 'val_batch_size'")
        try:
            check_device(self.device)
        except ValueError as e:
            raise ValueError(f"setting 'device': {e}") from None
        if self.plateau and self.scheduler not in ("none", "plateau"):
            raise ValueError(f"settings 'plateau' and 'scheduler' conflict: plateau=True is scheduler='plateau', "
                             f"but scheduler={self.scheduler!r}; choose one (--scheduler {self.scheduler} or "
                             "--plateau)")
        if self.augment is not None:
            check_augment(self.augment)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones) or \
                list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"setting 'milestones' must be increasing epoch counts >= 1, got {self.milestones!r}")


@dataclass
class EvalConfig(Config):
    """How a model is evaluated or sampled from (the CLI's eval, sample and compare options)."""

    data: str | None = setting(None, cli=True, help="dataset (default: the one the model was trained on)")
    data_dir: str | None = setting(None, cli=True, metavar="DIR", help="folder (or file) with the dataset")
    seed: int = setting(0, lo=0, hi=MAX_SEED, cli=True, help="seed of the test subset and of every draw")
    device: str | None = setting(None, cli=True, help="auto | cpu | cuda | cuda:N | mps")
    sampler: str = setting("prior", cli=True, help="the latent sampler generation uses (compare: comma-separated)")
    components: int = setting(10, lo=1, hi=10_000, cli=True, help="GMM components")
    metrics: str | None = setting(None, cli=True, help="comma-separated metric names (eval: elbo,mse; compare: "
                                                        "every metric the models define; 'list' describes them)")
    n_test: int = setting(10_000, lo=1, cli=True, help="test images evaluated")
    iwae_k: int = setting(1000, lo=1, hi=100_000, cli=True, help="importance samples per image of the IWAE bound")
    fid_weights: str | None = setting(None, cli=True, metavar="FILE",
                                      help="Inception weights (safetensors) for standard FID")
    deterministic: bool = setting(False, cli=True,
                                  help="bit for bit: PyTorch's own kernels and memory format, nothing chosen by "
                                       "measurement (as VAECORE_DETERMINISTIC=1); the default is the fastest path "
                                       "that differs only in rounding")

    def validate(self) -> None:
        """The field checks, then the device name."""
        from vaecore.utils import check_device

        super().validate()
        if self.device is not None:
            try:
                check_device(self.device)
            except ValueError as e:
                raise ValueError(f"setting 'device': {e}") from None
