"""Process-wide caches: models, datasets, training jobs, fitted samplers and evaluations, each keyed by the
model version (weights mtime) and every setting, so a retrained folder reloads and results are reused."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st
import torch

import vaecore
from explorer.catalog import cache_root, local_folder, model_stamp, read_json_file, runs_root
from explorer.jobs import JobManager
from vaecore import Dataset, ModelLoadError, PretrainedModel
from vaecore.files import APP_RUN, TRAIN, WEIGHTS
from vaecore.training import run_folder as rf
from vaecore.training.run_folder import DataSource
from vaecore.utils import shown_name

RETRY_AFTER_S = 60.0


@st.cache_resource(show_spinner="Loading model…", max_entries=32)
def _load_model_cached(spec: str, stamp: float) -> PretrainedModel:
    model = vaecore.load(spec, device="cpu")
    folder = local_folder(spec)
    model.data_source = run_source(folder) if folder is not None else None  # the data a run folder trained on
    return model


def load_model(spec: str) -> PretrainedModel:
    """The model a spec names (bundled name, folder or Hub repo id), loaded once per process and version."""
    return _load_model_cached(spec, model_stamp(spec))


def try_load_model(spec: str, where: Any = None) -> PretrainedModel | None:
    """`load_model`, showing the ModelLoadError message (in `where`, default the page) instead of raising.

    A Hub repo that failed is not retried for a minute in this session, so an unreachable Hub does not
    slow every rerun down.
    """
    failures = st.session_state.setdefault("vae_load_failures", {})
    failed = failures.get(spec)
    if failed and time.monotonic() - failed[0] < RETRY_AFTER_S and local_folder(spec) is None:
        message = failed[1]
    else:
        try:
            return load_model(spec)
        except Exception as e:  # noqa: BLE001 - every failure to load a user's model becomes a message, never a traceback
            message = re.sub(r"\(bundled: [^)]*\)", "(the Bundled list in the sidebar)", load_failure(e))
            failures[spec] = (time.monotonic(), message)
    (where or st).error(f"Could not load **{shown_name(spec)}**: {message}")
    return None


def load_failure(e: BaseException) -> str:
    """The message the app shows for a model that failed to load: the engine's own for the failures it names
    (ModelLoadError, a limit, a bad config), else the exception's type and text."""
    if isinstance(e, ValueError | OSError):
        return str(e)
    if isinstance(e, MemoryError):
        return "the model is too large for this server's memory"
    return f"{type(e).__name__}: {e}"


@st.cache_resource(show_spinner="Loading data…", max_entries=8)
def load_data(name: str, data_dir: str | None = None, limit: int | None = None, seed: int = 0,
              image_size: int | None = None, channels: int | None = None) -> Dataset:
    """A dataset, loaded once per process and (name, folder, limit, seed of its splits, transform)."""
    return vaecore.load_dataset(name, data_dir or None, limit=limit, seed=seed, image_size=image_size,
                                channels=channels, progress=False)


def dataset_for(model: PretrainedModel, data_dir: str | None = None) -> Dataset:
    """The dataset a model was trained on, cached: a run folder's recorded data (folder, split seed, transform),
    else its config's `dataset`."""
    source = getattr(model, "data_source", None)
    if data_dir is None and source is not None and not source.built_in_python:
        return load_data(source.name, source.data_dir, source.limit, source.seed or 0, source.image_size,
                         source.channels)
    return load_data(getattr(model.config, "dataset", "mnist") or "mnist", data_dir)


@torch.no_grad()
def reconstruction_pairs(model: PretrainedModel, x: torch.Tensor) -> torch.Tensor:
    """Originals and reconstructions interleaved by rows of 8 (row pairs: data, model)."""
    model.eval()
    recon = model.reconstruct(x).cpu()
    rows = []
    for i in range(0, x.shape[0], 8):
        rows += [x[i:i + 8].cpu(), recon[i:i + 8]]
    return torch.cat(rows)


@st.cache_resource
def _job_manager(root: str) -> JobManager:
    env = os.environ.get
    return JobManager(root, max_running=int(env("VAE_MAX_JOBS", "0")) or None,
                      max_per_session=int(env("VAE_JOBS_PER_SESSION", "1")),
                      threads=int(env("VAE_JOB_THREADS", "1")) or None)


def job_manager() -> JobManager:
    """The process-wide registry of background training jobs (survives reruns, reloads and navigation)."""
    return _job_manager(str(runs_root()))


def read_records(folder: Path) -> list[dict[str, Any]]:
    """A run's metrics records (a live run's torn last line is skipped)."""
    return vaecore.read_metrics(folder)


def run_source(folder: Path) -> DataSource | None:
    """The data a run folder trained on, as the engine reads it back from train.json (its seed and limit
    included), or from the app's settings of a run that has not written train.json yet; None for neither."""
    if (folder / TRAIN).is_file():
        try:
            return rf.read_data_source(folder)
        except rf.RunFolderError:
            pass
    settings = read_json_file(folder / APP_RUN)
    if not settings:
        return None
    return rf.data_source({**(settings.get("train") or {}), "data": settings.get("data"),
                           "data_dir": settings.get("data_dir")})


def run_dataset(folder: Path) -> Dataset:
    """The dataset a run folder trained on (`run_source`; MNIST when the folder records none), cached."""
    source = run_source(folder) or rf.DataSource("mnist")
    return load_data(source.name, source.data_dir, source.limit, source.seed or 0, source.image_size,
                     source.channels)


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_run_checkpoint(folder: str, stamp: float) -> PretrainedModel:
    return vaecore.load(folder, device="cpu")


def run_reconstructions(folder: Path, n: int = 16) -> torch.Tensor | None:
    """Validation images and their reconstructions by the run's latest checkpoint; None before the first."""
    if not (folder / WEIGHTS).is_file():
        return None
    try:
        model = _load_run_checkpoint(str(folder), model_stamp(str(folder)))
        x = run_dataset(folder).take("val", slice(0, n))
    except (ModelLoadError, OSError, ValueError):
        return None
    return reconstruction_pairs(model, x)


def sampler_folders(spec: str) -> tuple[Path, Path]:
    """(where a model's fitted samplers are read from, where the app saves the ones it fits). The app writes only
    to its own folders: a run of this app keeps its samplers in its run folder; any other model (bundled, a
    folder, a Hub repo) has them saved in a per-model folder under the app's cache, and those shipped beside
    the model are read from its folder."""
    from vaecore.hub import resolve

    folder = local_folder(spec) or resolve(spec)
    if folder.resolve().is_relative_to(runs_root().resolve()):
        return folder, folder
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[-80:] or "model"
    return folder, cache_root() / "samplers" / safe


def sampler_folder(spec: str) -> Path:
    """Where the app saves the samplers it fits for a model (`sampler_folders`): its run folder or the cache."""
    return sampler_folders(spec)[1]


def sampler_saved(spec: str, name: str) -> bool:
    """Whether a fitted sampler `name` of the model is on disk (beside it or in the app's cache)."""
    return any((place / f"sampler-{name}.safetensors").is_file() for place in sampler_folders(spec))


@st.cache_resource(show_spinner=False, max_entries=64)
def _fitted_sampler(spec: str, stamp: float, name: str, n_train: int) -> Any:
    from vaecore.samplers import load_or_fit

    model = load_model(spec)
    folder, save_to = sampler_folders(spec)
    return load_or_fit(model, folder, name, dataset_for(model), n_train=n_train, save_to=save_to)


def fitted_sampler(spec: str, name: str, n_train: int = 10_000) -> Any:
    """A post-hoc sampler for a model, loaded from disk or fitted once (cached per model version)."""
    return _fitted_sampler(spec, model_stamp(spec), name, n_train)


@torch.no_grad()
def sample_images(spec: str, sampler: str = "prior", n: int = 64, seed: int = 0) -> torch.Tensor:
    """n images generated by a model with a post-hoc sampler ('prior' draws from the model's own prior)."""
    model = load_model(spec)
    g = torch.Generator(device=model.device).manual_seed(seed)
    if sampler == "prior":
        return model.sample(n, generator=g).cpu()
    z = fitted_sampler(spec, sampler).sample_latents(n, generator=g)
    return model.decode(z.to(model.device)).cpu()


@st.cache_resource(show_spinner=False)
def _evaluation_store() -> dict[tuple[Any, ...], dict[str, Any]]:
    return {}


def evaluation_key(spec: str, names: Sequence[str], n_test: int, seed: int = 0, sampler: str = "prior",
                   iwae_k: int = 100, n_samples: int = 1000) -> tuple[Any, ...]:
    """The explicit cache key of one evaluation: model version, metrics and every setting."""
    return (spec, model_stamp(spec), tuple(sorted(names)), int(n_test), int(seed), sampler, int(iwae_k),
            int(n_samples))


def cached_evaluation(spec: str, names: Sequence[str], n_test: int, **settings: Any) -> dict[str, Any] | None:
    """A stored result of `evaluate_model`, or None when it has not been computed yet."""
    return _evaluation_store().get(evaluation_key(spec, names, n_test, **settings))


PER_IMAGE_KEY = "_per_image"
"""Where an app-side evaluation result keeps its per-image values (a `PerImage`; not part of eval.json)."""


def evaluate_model(spec: str, names: Sequence[str], n_test: int, seed: int = 0, sampler: str = "prior",
                   iwae_k: int = 100, n_samples: int = 1000, progress: Any = None) -> dict[str, Any]:
    """vaecore.evaluation.metrics.evaluate on the first n_test test images, cached per model version and settings.

    `sampler` names the post-hoc sampler the Fréchet distance generates with ('prior': the model's own);
    `progress(stage, done, total)` is forwarded to the engine; a cached result returns at once. The result keeps its
    per-image values under PER_IMAGE_KEY.
    """
    from vaecore.evaluation.metrics import evaluate, image_set
    from vaecore.evaluation.per_image import per_image_from

    key = evaluation_key(spec, names, n_test, seed, sampler, iwae_k, n_samples)
    store = _evaluation_store()
    if key not in store:
        model = load_model(spec)
        fitted = fitted_sampler(spec, sampler) if sampler != "prior" and "fd" in names else None
        result = evaluate(model, dataset_for(model), list(names), n_test=n_test, seed=seed, sampler=fitted,
                          iwae_k=iwae_k, n_samples=n_samples, progress=progress, per_image=True)
        result[PER_IMAGE_KEY] = per_image_from(result, image_set(result))  # for paired differences on the page
        result.pop("per_image")
        store[key] = result
    return store[key]


@st.cache_data(show_spinner=False, max_entries=64)
def _collapse(spec: str, stamp: float, data: str, data_dir: str | None, n: int, seed: int = 0,
              image_size: int | None = None, channels: int | None = None) -> list[str]:
    from explorer.diagnostics import diagnose
    from explorer.models import has_prior_samples

    model = _load_model_cached(spec, stamp)
    ds = load_data(data, data_dir, seed=seed, image_size=image_size, channels=channels)
    g = torch.Generator(device=model.device).manual_seed(0)
    samples = model.sample(64, generator=g).cpu() if has_prior_samples(model) else None
    mean = sum(b.double().sum(0, keepdim=True) for b in ds.batches("train", 4096)) / max(ds.size("train"), 1)
    return diagnose(model, ds.take("val", slice(0, n)), mean.float(), samples).warnings


def collapse_warnings(spec: str, n: int = 500) -> list[str]:
    """Collapse warnings (KL per dimension, reconstructions ≈ mean image, flat or blank samples) of a model,
    on n validation images of its dataset; cached per model version."""
    folder = local_folder(spec)
    source = run_source(folder) if folder else None
    try:
        model = load_model(spec)
        if source is None or source.built_in_python:
            source = rf.DataSource(getattr(model.config, "dataset", "mnist") or "mnist")
        return _collapse(spec, model_stamp(spec), source.name, source.data_dir, n, source.seed or 0,
                         source.image_size, source.channels)
    except (ModelLoadError, OSError, ValueError) as e:
        return [f"Could not check for collapse: {e}"]


def run_collapse_warnings(folder: Path) -> list[str]:
    """`collapse_warnings` of a run's latest checkpoint ([] before its first)."""
    return collapse_warnings(str(folder)) if (folder / WEIGHTS).is_file() else []
