"""Samplers by name: build, fit, load, or load-or-fit next to a model folder."""

from __future__ import annotations

import errno
import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaecore.samplers.base import (
    VALIDATION_LIMIT,
    NormalSampler,
    Progress,
    Sampler,
    SamplerLoadError,
    model_fingerprint,
    sampler_files,
)
from vaecore.samplers.hypersphere import HypersphereUniformSampler
from vaecore.samplers.iaf import IAFSampler
from vaecore.samplers.maf import MAFSampler
from vaecore.samplers.mixture import GMMSampler
from vaecore.samplers.pixelcnn import PixelCNNSampler
from vaecore.samplers.poincare import PoincareDiskSampler
from vaecore.samplers.rhvae import RHVAESampler
from vaecore.samplers.two_stage import TwoStageSampler
from vaecore.samplers.vamp import VampSampler
from vaecore.utils import WriteError, cache_dir

_CLASSES: dict[str, type[Sampler]] = {c.name: c for c in (NormalSampler, GMMSampler, TwoStageSampler, MAFSampler,
                                                           VampSampler, PixelCNNSampler, IAFSampler, RHVAESampler,
                                                           PoincareDiskSampler, HypersphereUniformSampler)}
SAMPLERS: dict[str, str] = {name: cls.description for name, cls in _CLASSES.items()}


def _sampler_class(name: str) -> type[Sampler]:
    if name not in _CLASSES:
        known = "; ".join(f"{k!r}: {v}" for k, v in SAMPLERS.items())
        raise KeyError(f"unknown sampler {name!r}; known samplers: {known}")
    return _CLASSES[name]


def build_sampler(name: str, **kwargs: Any) -> Sampler:
    """An unfitted sampler by name (see `SAMPLERS`); kwargs are its settings, e.g. components=10."""
    cls = _sampler_class(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad settings {kwargs} for sampler {name!r}: {e}") from e


def _training_subset(dataset: Any, n_train: int | None, seed: int) -> torch.Tensor:
    """A seeded subset of the training images as float32, read in one batch (not the whole split)."""
    n = dataset.size("train") if hasattr(dataset, "size") else dataset.x_train.shape[0]
    if n_train is None or n_train >= n:
        idx = slice(None)
    else:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_train]
    return dataset.take("train", idx) if hasattr(dataset, "take") else dataset.x_train[idx]


def _validation_images(dataset: Any) -> torch.Tensor | None:
    if hasattr(dataset, "take"):
        return dataset.take("val", slice(0, VALIDATION_LIMIT))
    return getattr(dataset, "x_val", None)


def fit_sampler(model: nn.Module, dataset: Any, name: str, *, n_train: int | None = 10_000, seed: int = 0,
                progress: Progress | bool | None = None, **kwargs: Any) -> Sampler:
    """Build sampler `name` and fit it on the latent means of (a seeded subset of) the training images;
    the learned ones (MAF, IAF, 2-stage) keep their best state on the validation images' latents."""
    sampler = build_sampler(name, **kwargs)
    x = _training_subset(dataset, n_train, seed)
    x_val = _validation_images(dataset) if sampler.uses_validation else None
    val = {"x_val": x_val} if x_val is not None else {}
    sampler.fit(model, x, seed=seed, progress=progress, **val)
    sampler.fit_info["dataset"] = getattr(dataset, "name", None)
    return sampler


def load_sampler(folder: str | Path, name: str, device: torch.device | str | None = None) -> Sampler:
    """Load `folder`'s saved sampler called `name`."""
    return _sampler_class(name).load(folder, device)


def sampler_cache(folder: str | Path) -> Path:
    """The writable folder where the samplers of a model folder that cannot be written (read-only, bundled with a
    read-only install, a Hub snapshot) are kept: one per model folder under `vaecore.utils.cache_dir()`."""
    resolved = Path(folder).expanduser().resolve()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return cache_dir() / "samplers" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', resolved.name)[:60]}-{key}"


def _saved_match(model: nn.Module, folder: Path, name: str, wanted: Sampler, dataset: Any, n_train: int | None,
                 seed: int) -> Sampler | None:
    """`folder`'s saved sampler when it matches (settings, seed, data, weights); None otherwise (a corrupt or
    interrupted one with a warning)."""
    weights, meta = sampler_files(folder, name)
    if not (weights.is_file() and meta.is_file()):
        return None
    try:
        saved = type(wanted).load(folder, device=getattr(model, "device", None))
    except SamplerLoadError as e:
        warnings.warn(f"refitting the {name!r} sampler: {e}", stacklevel=3)
        return None
    n_all = dataset.size("train") if hasattr(dataset, "size") else dataset.x_train.shape[0]
    n_expected = 0 if name == "vamp" else (n_all if n_train is None else min(n_train, n_all))
    info = saved.fit_info
    same = (saved.settings() == wanted.settings() and info.get("seed") == seed
            and info.get("model") == model_fingerprint(model)
            and info.get("dataset") == getattr(dataset, "name", None)
            and info.get("n_train") == n_expected)
    return saved if same else None


def load_or_fit(model: nn.Module, folder: str | Path, name: str, dataset: Any, *, n_train: int | None = 10_000,
                seed: int = 0, progress: Progress | bool | None = None, save_to: str | Path | None = None,
                **kwargs: Any) -> Sampler:
    """The sampler saved for this model when it matches (settings, seed, data, weights), else fit and save it.

    It is looked for in `folder` (the model's folder) and in `save_to`. A fitted one is saved to `save_to` when
    given, else into `folder` when that can be written, else into `sampler_cache(folder)`: a read-only model
    folder is never written. A corrupt or interrupted save is refitted (with a warning); a save that fails (a full
    disk, a read-only cache) is a warning, and the fitted sampler is still returned.
    """
    wanted = build_sampler(name, **kwargs)
    folder = Path(folder)
    fallback = sampler_cache(folder)
    places = [folder, Path(save_to) if save_to is not None else fallback]
    for place in dict.fromkeys(places):
        saved = _saved_match(model, place, name, wanted, dataset, n_train, seed)
        if saved is not None:
            return saved
    sampler = fit_sampler(model, dataset, name, n_train=n_train, seed=seed, progress=progress, **kwargs)
    targets = [Path(save_to)] if save_to is not None else [folder, fallback]
    for i, target in enumerate(targets):
        try:
            sampler.save(target)
            break
        except WriteError as e:
            if i + 1 < len(targets) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                continue  # a read-only model folder: the cache instead
            # the saved copy only spares the next call a refit: a full disk or a read-only cache loses nothing
            warnings.warn(f"the fitted {name!r} sampler is used without being saved ({e}); it will be fitted "
                          "again next time", stacklevel=2)
            break
    return sampler
