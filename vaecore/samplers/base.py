"""The sampler contract: fit to latents, draw latents, save as safetensors + JSON (never pickle)."""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from torch import nn

import vaecore.limits as limits
from vaecore import files
from vaecore.latent.encode import latent_means
from vaecore.utils import atomic_write_bytes, atomic_write_json, locked, read_json, remove_temp_files, write_error

FORMAT = "vaecore-sampler"
FORMAT_VERSION = 1
VALIDATION_LIMIT = 2000

Progress = Callable[[float, str], None]
"""Progress callback: (fraction done in [0, 1], short message)."""


class SamplerLoadError(ValueError):
    """A saved sampler is missing, corrupt or does not match what was asked for."""


def as_progress(progress: Progress | bool | None) -> Progress | None:
    if progress is True:
        return lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr, flush=True)
    return progress or None


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of the model's weights, so a sampler saved for other weights is not reused."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def sampler_files(folder: str | Path, name: str) -> tuple[Path, Path]:
    """The weights and JSON paths of the sampler `name` saved in a model folder."""
    weights, meta = files.sampler_files(name)
    return Path(folder) / weights, Path(folder) / meta


class Sampler:
    """Base class: a density over latents fitted on training latent means, with safe save/load."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_validation: ClassVar[bool] = False
    """Whether fitting selects its best state on validation latents (`fit(..., x_val=)`)."""

    def __init__(self) -> None:
        self.latent_dim: int | None = None
        self.device = torch.device("cpu")
        self.fit_info: dict[str, Any] = {}
        self.validation_latents: torch.Tensor | None = None

    # the contract ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable; saved and compared by `load_or_fit`."""
        return {}

    @property
    def fitted(self) -> bool:
        return self.latent_dim is not None

    def fit(self, model: nn.Module, x_train: torch.Tensor, *, x_val: torch.Tensor | None = None, seed: int = 0,
            progress: Progress | bool | None = None) -> Sampler:
        """Fit on the posterior means of `x_train` under `model`; samples land on the model's device.
        Samplers that `uses_validation` keep the state that scores best on the latents of `x_val`."""
        z = latent_means(model, x_train)
        z_val = latent_means(model, x_val[:VALIDATION_LIMIT]) if x_val is not None and self.uses_validation else None
        self.fit_latents(z, seed=seed, progress=progress, z_val=z_val)
        self.fit_info.update(model=model_fingerprint(model), n_train=int(x_train.shape[0]))
        return self

    def fit_latents(self, z: torch.Tensor, *, seed: int = 0, progress: Progress | bool | None = None,
                    z_val: torch.Tensor | None = None) -> Sampler:
        """Fit directly on latent codes z: (N, d); the device of z is where samples are drawn.
        `z_val`: held-out codes a learned sampler selects its best state on (Pythae's eval_data)."""
        if z.ndim != 2 or z.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs latents of shape (N >= 2, d), got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("the training latents contain NaN or inf; the model may have diverged")
        if z_val is not None and (z_val.ndim != 2 or z_val.shape[1] != z.shape[1] or not torch.isfinite(z_val).all()):
            raise ValueError(f"validation latents must be finite, of shape (M, {z.shape[1]}), got {tuple(z_val.shape)}")
        self.latent_dim = int(z.shape[1])
        self.device = z.device
        self.fit_info = {"seed": int(seed), "n_train": int(z.shape[0])}
        self.validation_latents = None if z_val is None else z_val.detach().float().to(z.device)
        if self.validation_latents is not None:
            self.fit_info["n_val"] = int(z_val.shape[0])
        try:
            self._fit(z.detach().float(), seed, as_progress(progress))
        finally:
            self.validation_latents = None
        return self

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent draws, (n, d) on the sampler's device; a generator makes them repeatable."""
        if not self.fitted:
            raise RuntimeError(f"the {self.name!r} sampler is not fitted: call fit(model, x_train) first")
        n = limits.check_count(n, "n")
        with torch.no_grad():
            return self._sample(n, generator).to(self.device)

    def to(self, device: torch.device | str) -> Sampler:
        """Move the sampler's tensors (and future samples) to `device`."""
        self.device = torch.device(device)
        for key, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor | nn.Module):
                setattr(self, key, value.to(self.device))
        return self

    # persistence ------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write `sampler-<name>.safetensors`, then `sampler-<name>.json` into folder; returns the JSON path.

        The JSON is the manifest, written last: it records the sha256 of the tensors file it goes with, so a save
        killed between the two renames leaves a pair that `load` refuses (and `load_or_fit` refits) instead of a
        JSON describing other tensors. Writers of one folder's sampler take turns (`locked`), and each clears the
        temporary files that a killed save of this sampler left behind.
        """
        from safetensors.torch import save as to_bytes

        if not self.fitted:
            raise RuntimeError(f"the {self.name!r} sampler is not fitted; nothing to save")
        folder = Path(folder)
        weights, meta = sampler_files(folder, self.name)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self._state().items()}
        data = to_bytes(tensors or {"_empty": torch.zeros(0)}, metadata={"format": FORMAT, "sampler": self.name})
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(folder, e) from e
        with locked(folder / f".{weights.stem}.lock"):
            remove_temp_files(folder, (weights.name, meta.name))
            atomic_write_bytes(weights, data)
            atomic_write_json(meta, {"format": FORMAT, "version": FORMAT_VERSION, "sampler": self.name,
                                     "description": self.description, "settings": self.settings(),
                                     "latent_dim": self.latent_dim, "fit": self.fit_info,
                                     "tensors_sha256": hashlib.sha256(data).hexdigest()})
        return meta

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> Sampler:
        """Load a saved sampler of this kind strictly; errors name the file and what to do. The JSON must be the
        manifest of these tensors (its sha256; files saved before manifests existed are checked by shape)."""
        if not cls.name:
            raise TypeError("call load on a concrete sampler class, or use load_sampler(folder, name)")
        weights, meta_path = sampler_files(folder, cls.name)
        for path in (meta_path, weights):
            if not path.is_file():
                raise SamplerLoadError(f"{path} is missing: no fitted {cls.name!r} sampler in {folder}")
        hint = "delete it (and its .json/.safetensors partner) to fit the sampler again"
        try:
            meta = read_json(meta_path)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if meta.get("sampler") != cls.name:
                raise ValueError(f"it holds a {meta.get('sampler')!r} sampler, not {cls.name!r}")
            if int(meta.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(f"format version {meta.get('version')} is newer than this vaecore reads")
            settings = meta.get("settings", {})
            if not isinstance(settings, dict):
                raise ValueError("its settings are not a JSON object")
            sampler = cls(**settings)
            sampler.latent_dim = limits.LATENT_DIM.check(int(meta["latent_dim"]), "its latent_dim")
            sampler.fit_info = dict(meta.get("fit", {}))
        except (ValueError, TypeError, KeyError) as e:
            raise SamplerLoadError(f"{meta_path} is not a valid {cls.name!r} sampler file ({e}); {hint}") from e
        try:
            limits.MODEL_PARAMS.check(weights.stat().st_size // 4, f"{weights}: its values")
        except limits.LimitError as e:
            raise SamplerLoadError(str(e)) from e
        try:
            data = weights.read_bytes()
            tensors = load_tensors(data)
        except (SafetensorError, OSError, ValueError) as e:
            raise SamplerLoadError(f"{weights} is corrupt or truncated ({e}); {hint}") from e
        want = meta.get("tensors_sha256")
        if want is not None and want != hashlib.sha256(data).hexdigest():
            raise SamplerLoadError(f"{meta_path} describes other tensors than {weights} holds (a save was "
                                   f"interrupted between the two files); {hint}")
        tensors.pop("_empty", None)
        bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise SamplerLoadError(f"{weights} holds non-finite values in {bad}; {hint}")
        try:
            sampler._load_state(tensors)
        except (KeyError, ValueError, RuntimeError) as e:
            raise SamplerLoadError(f"{weights} does not match {meta_path} ({e}); {hint}") from e
        return sampler.to(device or "cpu")

    # for subclasses -------------------------------------------------------------------------
    def _standardised_validation(self) -> torch.Tensor | None:
        """The validation latents being fitted on (at most VALIDATION_LIMIT), in the coordinates of
        the subclass's `shift` and `scale`; None without them."""
        z = self.validation_latents
        if z is None:
            return None
        return (z[:VALIDATION_LIMIT] - self.shift) / self.scale  # type: ignore[attr-defined]

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise ValueError(f"unexpected tensors {sorted(tensors)}")

    def _randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=device).to(self.device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        state = f"latent_dim={self.latent_dim}" if self.fitted else "not fitted"
        return f"{type(self).__name__}({args}) [{state}]"


def expect_shapes(tensors: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> None:
    extra = sorted(set(tensors) - set(shapes))
    missing = sorted(set(shapes) - set(tensors))
    if extra or missing:
        raise ValueError(f"missing tensors {missing}, unexpected tensors {extra}")
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != shape:
            raise ValueError(f"tensor {key!r} has shape {tuple(tensors[key].shape)}, expected {shape}")


# --------------------------------------------------------------------------------------------------
class NormalSampler(Sampler):
    """The standard normal N(0, I): the prior of every normal-prior model; fitting only records d."""

    name = "prior"
    description = "the N(0, I) prior (no fitting)"

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        pass

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.latent_dim is not None
        return self._randn((n, self.latent_dim), generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) per row."""
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1)
