"""The model contract every family fills in, and safe save/load.

A model is a `PretrainedModel`: an `nn.Module` whose config is a family dataclass (config.json)
and whose weights are safetensors. What the Trainer, the metrics, the samplers and the app may
rely on, and nothing more:

- `loss(x, ctx) -> LossOutput`: the training objective of a batch (per-example mean) and its
  logged terms; `ctx` is the `StepContext` (step, epoch, dataset size, KL weight). A model with
  several parameter groups puts one loss per group in `LossOutput.group_losses`.
- `param_groups()`: the groups that get their own optimizer, stepped in the order given
  (default: one group, "model", holding every parameter).
- `on_epoch_end(ctx)`: called by the Trainer after each epoch (e.g. RHVAE's metric update).
- `capabilities`: what is defined for this model (an ELBO / importance weights, prior
  samples, the latent shape and geometry); callers check it instead of `hasattr` or names.
- `log_importance_weights(x, k)`: the only thing metrics call for likelihood bounds.
- `embed(x)`: the latent point of each image (maps, KNN, interpolation), for every model.

Families register their class under `model_type` (`register_model_type`), so `vaecore.load`
builds the right class from a config.json.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

import vaecore.limits as limits
from vaecore.components.context import StepContext
from vaecore.components.kinds import Geometry, PosteriorKind, PriorKind
from vaecore.config import ModelConfig
from vaecore.files import CARD, CONFIG, WEIGHTS
from vaecore.utils import (
    atomic_save_safetensors,
    atomic_write_bytes,
    json_safe,
    locked,
    remove_temp_files,
    write_error,
)

MODEL_TYPES: dict[str, type[PretrainedModel]] = {}
PIXEL_TOLERANCE = 1e-4
CardWriter = Callable[[Path, dict[str, Any], "dict[str, Any] | None"], None]
_CARD_WRITER: list[CardWriter] = []
SAVE_LOCK = ".save.lock"  # held by save_pretrained while it writes a folder
_LOADER: tuple[Any, Any, type[Exception]] | None = None


def register_loader(download: Any, load_folder: Any, load_error: type[Exception]) -> None:
    """Make `PretrainedModel.from_pretrained` load through vaecore.hub's checked path (`download` for a repo id,
    then `load_folder`); vaecore.hub registers itself (it imports this module; importing vaecore imports it)."""
    global _LOADER
    _LOADER = (download, load_folder, load_error)


def register_model_type(cls: type[PretrainedModel]) -> type[PretrainedModel]:
    """Class decorator: make a model type loadable by its `model_type` name."""
    MODEL_TYPES[cls.model_type] = cls
    return cls


def register_card_writer(writer: CardWriter) -> CardWriter:
    """Set what `save_pretrained` writes the model card (README.md) with: `vaecore.model_card` registers itself (a
    card labels metrics from the evaluation registry, a layer above the models; importing vaecore imports it)."""
    _CARD_WRITER[:] = [writer]
    return writer


@dataclass
class LossOutput:
    """A training step's objective, one loss per parameter group when there are several, and logs."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    group_losses: dict[str, torch.Tensor] | None = None

    def for_group(self, name: str) -> torch.Tensor:
        """The loss that parameter group `name` minimises."""
        if self.group_losses is None:
            return self.loss
        if name not in self.group_losses:
            raise KeyError(f"the model gave no loss for parameter group {name!r} "
                           f"(it gave {sorted(self.group_losses)})")
        return self.group_losses[name]


@dataclass
class ParamGroup:
    """Parameters that share one optimizer; `lr_scale` multiplies the run's learning rate."""

    name: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0


@dataclass(frozen=True)
class Capabilities:
    """What a model defines, as typed flags a caller tests: `elbo` (a posterior density and a likelihood, so
    ELBO, IWAE and −log p), `prior_samples` (generation from its own prior), `latent_shape`, the latent
    `geometry`, the `posterior` and `prior` kinds (`components.kinds`; a string of a kind's value is converted,
    an unknown one refused), and why there is no ELBO."""

    elbo: bool
    prior_samples: bool
    latent_shape: tuple[int, ...]
    geometry: Geometry = Geometry.EUCLIDEAN
    posterior: PosteriorKind = PosteriorKind.GAUSSIAN
    prior: PriorKind = PriorKind.STANDARD_NORMAL
    why_no_elbo: str = ""

    def __post_init__(self) -> None:
        for name, kind in (("geometry", Geometry), ("posterior", PosteriorKind), ("prior", PriorKind)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                raise ValueError(f"unknown {name} {value!r}; known: {', '.join(k.value for k in kind)}") from None
        object.__setattr__(self, "latent_shape", tuple(int(n) for n in self.latent_shape))

    @property
    def latent_size(self) -> int:
        """How many numbers a latent is (16 × 7 × 7 = 784 for a VQ-VAE's code map)."""
        return math.prod(self.latent_shape)

    @property
    def diagonal_gaussian_posterior(self) -> bool:
        """q(z|x) = N(μ(x), diag σ²(x)): KL per dimension, mutual information, posterior maps."""
        return self.posterior is PosteriorKind.GAUSSIAN

    @property
    def standard_normal_prior(self) -> bool:
        """p(z) = N(0, I): the KL splits over latent dimensions."""
        return self.prior is PriorKind.STANDARD_NORMAL

    @property
    def deterministic_encoder(self) -> bool:
        """The encoder gives a point (AE, WAE, RAE) or a code (VQ): no posterior density."""
        return self.posterior in (PosteriorKind.POINT, PosteriorKind.VECTOR_QUANTISED)


def parameter_count(cls: type[PretrainedModel], config: dict[str, Any] | ModelConfig) -> int | None:
    """Values in the parameters and buffers `cls(config)` would allocate, counted by building it on the meta
    device (no memory; the global RNG untouched); None where a family cannot be built there."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        try:
            probe = cls(config)
        except (RuntimeError, NotImplementedError):
            return None
    return sum(t.numel() for t in (*probe.parameters(), *probe.buffers()))


def check_model_size(cls: type[PretrainedModel], config: dict[str, Any] | ModelConfig, what: str = "the model") -> None:
    """Refuse a config whose model would exceed `limits.MODEL_PARAMS`, before any weight is allocated."""
    n = parameter_count(cls, config)
    if n is not None:
        limits.MODEL_PARAMS.check(n, f"{what}: its parameters and buffers")


def config_bytes(config: dict[str, Any]) -> bytes:
    """config.json exactly as written (sorted keys, indented, strict JSON)."""
    return json.dumps(json_safe(config), sort_keys=True, indent=2, allow_nan=False).encode()


def save_model_files(folder: str | Path, model: PretrainedModel, step: int | None = None) -> None:
    """Write model.safetensors and config.json so a reader never finds either missing or half-written.

    The weights are renamed into place first, then config.json only if its bytes change. The weights' metadata
    names the config they belong to (its sha256, which `consistent_pair` checks) and the step.
    """
    folder = Path(folder)
    cfg = config_bytes(model.config.to_dict())
    meta = {"format": "pt", "model_type": str(model.model_type), "config_sha256": hashlib.sha256(cfg).hexdigest()}
    if step is not None:
        meta["step"] = str(int(step))
    atomic_save_safetensors(model.state_dict(), folder / WEIGHTS, metadata=meta)
    path = folder / CONFIG
    if not path.is_file() or path.read_bytes() != cfg:
        atomic_write_bytes(path, cfg)


def scalar(t: torch.Tensor) -> float:
    return float(t.detach())


class PretrainedModel(nn.Module, PyTorchModelHubMixin, library_name="vaecore",
                      repo_url="https://huggingface.co/docs/huggingface_hub", tags=["vae", "vaecore"]):
    """nn.Module with safetensors + JSON config save/load through `PyTorchModelHubMixin`.

    `save_pretrained(dir)` writes `model.safetensors` (atomically), `config.json` and a model
    card; `from_pretrained(dir_or_repo)` loads strictly. Nothing is ever unpickled.
    """

    model_type: ClassVar[str] = "base"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    config: ModelConfig
    # what the family is, for cards, tables and the app (vaecore.models.families); each family sets all four
    title: ClassVar[str] = ""  # its display name, e.g. 'VQ-VAE'
    what: ClassVar[str] = ""  # what a model of it is, e.g. 'a deterministic autoencoder (no posterior density)'
    tags: ClassVar[tuple[str, ...]] = ()  # e.g. ('autoencoder', 'deterministic')
    group: ClassVar[str] = ""  # a key of families.GROUPS (or families.BY_LIKELIHOOD)
    pythae: ClassVar[str] = ""  # how its numbers differ from Pythae 0.1.2's (docs/pythae-differences.md)

    def _parse_config(self, config: dict[str, Any] | ModelConfig) -> Any:
        cfg = config if isinstance(config, ModelConfig) else self.config_class.from_dict(dict(config))
        if not isinstance(cfg, self.config_class):
            raise ValueError(f"a {type(cfg).__name__} is not a {self.config_class.__name__}")
        if cfg.model_type != self.model_type:
            raise ValueError(f"config is for model_type {cfg.model_type!r}, not {self.model_type!r}")
        return cfg

    # the contract ---------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        raise NotImplementedError

    def loss(self, x: torch.Tensor, ctx: StepContext | None = None) -> LossOutput:
        raise NotImplementedError

    def param_groups(self) -> list[ParamGroup]:
        """One group holding every parameter; adversarial families split theirs."""
        return [ParamGroup("model", [p for p in self.parameters() if p.requires_grad])]

    def on_epoch_end(self, ctx: StepContext) -> None:
        """Hook the Trainer calls after each epoch; nothing by default."""

    # saving and loading ---------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        atomic_save_safetensors(self.state_dict(), Path(save_directory) / WEIGHTS,
                                metadata={"format": "pt", "model_type": self.model_type})

    def save_pretrained(self, save_directory: str | Path, *, config: dict | None = None,
                        metrics: dict[str, Any] | None = None, push_to_hub: bool = False, repo_id: str | None = None,
                        **push_kwargs: Any) -> str | None:
        """Save weights, config and a model card that states the model, data and metrics (`save_model_files`:
        each file replaced atomically, the weights first, naming the config they belong to)."""
        if config is not None and config != self.config.to_dict():
            raise ValueError("save_pretrained writes the model's own config; change model.config instead")
        folder = Path(save_directory)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(folder, e) from e
        with locked(folder / SAVE_LOCK):  # one saver at a time, which clears what killed saves left
            remove_temp_files(folder, (WEIGHTS, CONFIG, CARD))
            save_model_files(folder, self)
            for write_card in _CARD_WRITER:
                write_card(folder, self.config.to_dict(), metrics)
        if push_to_hub:
            return self.push_to_hub(repo_id or folder.name, **push_kwargs)
        return None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, force_download: bool = False,
                        token: str | bool | None = None, cache_dir: str | Path | None = None,
                        local_files_only: bool = False, revision: str | None = None,
                        map_location: str | None = None, **model_kwargs: Any) -> PretrainedModel:
        """Load a folder or Hub repo through `vaecore.load`'s checks (config bounds, dtypes, finite weights,
        shapes); a folder holding another family than `cls` is refused. Nothing is ever unpickled."""
        if _LOADER is None:
            raise RuntimeError("import vaecore (its hub module registers the loader) before from_pretrained")
        download, load_folder, load_error = _LOADER
        if model_kwargs:
            raise ValueError(f"from_pretrained takes no model arguments ({sorted(model_kwargs)}): the model is "
                             f"built from the folder's {CONFIG}")
        spec = str(pretrained_model_name_or_path)
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            folder = download(spec, revision=revision, cache_dir=cache_dir, token=token,
                              local_files_only=local_files_only, force_download=force_download)
        model = load_folder(folder, device=map_location)
        if not isinstance(model, cls):
            raise load_error(f"{spec} holds a {model.model_type!r} model ({type(model).__name__}), not a "
                                 f"{cls.__name__}: load it with vaecore.load or {type(model).__name__}.from_pretrained")
        return model

    # helpers ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' float type: float32 unless the model was converted (e.g. `.double()`)."""
        return next(self.parameters()).dtype

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images as (B, C, H, W) in [0, 1] in the model's dtype, on its device, or a ValueError saying what to fix."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor, got {type(x).__name__}")
        want = tuple(self.config.input_shape)
        if x.dim() == 3 and want[0] == 1:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"this model takes images of shape (B, {', '.join(map(str, want))}); "
                             f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"images must be floating point with values in [0, 1], got dtype {x.dtype} "
                             "(divide 8-bit images by 255)")
        if x.shape[0] == 0:
            raise ValueError(f"no images (an empty batch of shape {tuple(x.shape)}): pass at least one image")
        if x.numel():
            lo, hi = torch.aminmax(x.detach())
            if not (torch.isfinite(lo) and torch.isfinite(hi)):
                raise ValueError("images contain NaN or infinite values")
            if lo < -PIXEL_TOLERANCE or hi > 1 + PIXEL_TOLERANCE:
                raise ValueError(f"pixel values must lie in [0, 1], got values in [{float(lo):.4g}, {float(hi):.4g}]"
                                 + (" (divide 8-bit images by 255)" if hi > 1.5 else ""))
        return x.to(self.device, self.dtype)

    def _check_latents(self, z: Any) -> torch.Tensor:
        """Latents as float32 (B, *latent_shape) or (B, d) on the model's device, finite and within the decode
        limit, or a ValueError saying what to pass."""
        shape = tuple(self.capabilities.latent_shape)
        flat = math.prod(shape)
        want = f"(B, {', '.join(map(str, shape))})" + (f" or (B, {flat})" if len(shape) > 1 else "")
        if not isinstance(z, torch.Tensor):
            hint = " (convert a NumPy array with torch.from_numpy(z).float())" if hasattr(z, "__array__") else ""
            raise ValueError(f"latents must be a torch.Tensor of shape {want}, got {type(z).__name__}{hint}")
        if tuple(z.shape[1:]) not in (shape, (flat,)) or z.dim() < 2:
            hint = " (one latent: z.unsqueeze(0))" if tuple(z.shape) in (shape, (flat,)) else ""
            raise ValueError(f"this model decodes latents of shape {want}; got {tuple(z.shape)}{hint}")
        if not z.is_floating_point():
            raise ValueError(f"latents must be floating point (float32), got dtype {z.dtype}")
        if z.shape[0] == 0:
            raise ValueError("no latents to decode (an empty batch): pass at least one")
        limits.SAMPLES.check(int(z.shape[0]), "the number of latents to decode")
        limits.check_tensor_bytes(int(z.shape[0]) * math.prod(self.config.input_shape), "the decoded images")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("latents contain NaN or infinite values; decode finite latents")
        return z.to(self.device, self.dtype)

    def _check_count(self, n: Any, what: str = "n") -> int:
        """A number of images to generate: a whole number >= 1 within `limits.SAMPLES` and the decode size limit."""
        n = limits.check_count(n, what)
        limits.check_tensor_bytes(n * math.prod(self.config.input_shape), f"{what}={n:,} images")
        return n

    def summary(self) -> str:
        """One line: preset, family, likelihood, architecture, latent size, parameter count."""
        n = sum(p.numel() for p in self.parameters())
        c = self.config
        return (f"{c.preset} ({self.model_type}): likelihood={c.likelihood} {c.likelihood_kwargs or ''} "
                f"arch={c.arch} latent={c.latent_dim} params={n / 1e6:.2f}M")
