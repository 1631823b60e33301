"""Shared Streamlit helpers for every page: the sidebar model picker, cached loaders, images, plots.

Pages stay thin: they lay out widgets and call these helpers and `vaecore`. Models and datasets load
once per process (`st.cache_resource`); a model folder that changes on disk (a live training run) is
re-read because its cache key includes the weights' modification time.

Part A owns the top sections; part B appends its helpers in the marked section at the end.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

import vaecore
from explorer.jobs import JobManager, list_runs
from vaecore import Dataset, ModelLoadError, PretrainedModel
from vaecore.data.images import make_grid, to_png_bytes
from vaecore.hub import WEIGHTS, bundled_names, checkpoints_dir

PROJECT_ROOT = Path(__file__).resolve().parent
SESSION_PARAM = "sid"
MODEL_PARAM = "model"
_SID = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
_SPEC_KEY = "vae_model_spec"
_PICKER_RENDERED = "_vae_picker_rendered"
SOURCES = ("Bundled", "Runs", "Folder", "Hub")
RETRY_AFTER_S = 60.0
LIVE_REFRESH_S = 2.5


# session -------------------------------------------------------------------------------------------
def runs_root() -> Path:
    """Where the app writes training runs (VAE_APP_RUNS overrides, e.g. for tests)."""
    return Path(os.environ.get("VAE_APP_RUNS", PROJECT_ROOT / "runs" / "app"))


def session_id() -> str:
    """This browser session's id: kept in session state and in the URL (?sid=) so a reload finds its runs."""
    sid = st.session_state.get("vae_session_id")
    if not sid:
        given = st.query_params.get(SESSION_PARAM)
        sid = given if given and _SID.match(given) else secrets.token_urlsafe(9).replace("-", "a").replace("_", "b")
        st.session_state["vae_session_id"] = sid
    if st.query_params.get(SESSION_PARAM) != sid:
        st.query_params[SESSION_PARAM] = sid
    return sid


# models ----------------------------------------------------------------------------------------------
def local_folder(spec: str) -> Path | None:
    """The folder a spec names without touching the network: a path or a bundled name, else None."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    bundled = checkpoints_dir() / spec
    return bundled if bundled.is_dir() else None


def model_stamp(spec: str) -> float:
    """Modification time of a local model's weights (0 for Hub repos), so a retrained folder reloads."""
    folder = local_folder(spec)
    try:
        return (folder / WEIGHTS).stat().st_mtime if folder else 0.0
    except OSError:
        return 0.0


@st.cache_resource(show_spinner="Loading model…", max_entries=32)
def _load_model_cached(spec: str, stamp: float) -> PretrainedModel:
    return vaecore.load(spec, device="cpu")


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
        except ModelLoadError as e:
            message = str(e)
            failures[spec] = (time.monotonic(), message)
    (where or st).error(f"Could not load **{spec}**: {message}")
    return None


def model_label(spec: str) -> str:
    """A short display name: the folder name for paths, the spec otherwise."""
    path = Path(spec)
    if len(path.parts) > 1 and local_folder(spec) is not None:
        return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return spec


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or {} when missing or unreadable (cards must never crash)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _catalog_entries(root: Path) -> dict[str, dict[str, Any]]:
    """checkpoints/catalog.json as name -> entry; accepts a list, {"models": [...]} or a dict by name."""
    try:
        raw = json.loads((root / "catalog.json").read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(raw, dict) and "models" in raw:
        raw = raw["models"]
    if isinstance(raw, list):
        return {e["name"]: e for e in raw if isinstance(e, dict) and "name" in e}
    if isinstance(raw, dict):
        return {k: v for k, v in raw.items() if isinstance(v, dict)}
    return {}


def bundled_catalog() -> list[dict[str, Any]]:
    """Bundled models with their catalog entry (checkpoints/catalog.json), config and eval.json."""
    root = checkpoints_dir()
    by_name = _catalog_entries(root)
    out = []
    for name in bundled_names():
        folder = root / name
        config = read_json_file(folder / "config.json")
        entry = {"name": name, "title": name, "description": "", "data": config.get("dataset"),
                 "likelihood": config.get("likelihood"), "latent_dim": config.get("latent_dim"),
                 **by_name.get(name, {})}
        entry.update(folder=folder, config=config, eval=read_json_file(folder / "eval.json"),
                     samples=folder / "samples.png" if (folder / "samples.png").is_file() else None)
        out.append(entry)
    return out


HEADLINE_METRICS = ("nll-discrete", "bpd", "iwae", "nll-pdf", "elbo", "mse", "fd")


def headline_metric(eval_result: dict[str, Any]) -> tuple[str, float] | None:
    """The one test metric a model card shows: the first of HEADLINE_METRICS present, else any number."""
    flat = {k: v for k, v in eval_result.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    nested = eval_result.get("metrics")
    if isinstance(nested, dict):
        flat.update({k: v for k, v in nested.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    for key in HEADLINE_METRICS:
        if key in flat and math.isfinite(flat[key]):
            return key, float(flat[key])
    for key, value in flat.items():
        if math.isfinite(value) and key not in ("n_test", "seed", "step", "epoch"):
            return key, float(value)
    return None


# data ------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading data…", max_entries=8)
def load_data(name: str, data_dir: str | None = None, limit: int | None = None) -> Dataset:
    """A dataset, loaded once per process and (name, folder, limit)."""
    return vaecore.load_dataset(name, data_dir or None, limit=limit)


def dataset_for(model: PretrainedModel, data_dir: str | None = None) -> Dataset:
    """The dataset a model was trained on (its config's `dataset`), cached."""
    return load_data(getattr(model.config, "dataset", "mnist") or "mnist", data_dir)


# sidebar model picker -----------------------------------------------------------------------------
def session_runs() -> list[Path]:
    """This session's run folders that hold a loadable model, newest first."""
    return [r.folder for r in list_runs(runs_root(), session_id()) if (r.folder / WEIGHTS).is_file()]


_PICK = "vae_pick"
_FIELDS = {"Bundled": "bundled", "Runs": "run", "Folder": "folder", "Hub": "repo"}


def _pick_state() -> dict[str, str]:
    """The picker's choices in plain session state (widget state is dropped on some page switches);
    a new session starts from the URL's ?model= so a reload or a shared link keeps the model."""
    if _PICK not in st.session_state:
        state: dict[str, str] = {}
        spec = st.query_params.get(MODEL_PARAM)
        if spec:
            if spec in bundled_names():
                state = {"source": "Bundled", "bundled": spec}
            elif local_folder(spec) is not None:
                runs = {str(f) for f in session_runs()}
                state = {"source": "Runs", "run": spec} if spec in runs else {"source": "Folder", "folder": spec}
            else:
                state = {"source": "Hub", "repo": spec}
        st.session_state[_PICK] = state
    return st.session_state[_PICK]


def set_pick(source: str, value: str) -> None:
    """Select a model in the sidebar picker; safe to use as a widget callback (before the picker is drawn)."""
    state = _pick_state()
    state["source"], state[_FIELDS[source]] = source, value
    st.session_state["vae_picker_source"] = source
    st.session_state[f"vae_picker_{_FIELDS[source]}"] = value


def _initial(key: str, name: str, value: Any, options: Sequence[Any] | None = None) -> dict[str, Any]:
    """`{name: value}` for a picker widget without state yet, {} once it has some (no double default).

    A remembered choice that is no longer among `options` (a deleted run) is dropped first.
    """
    if options is not None and key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return {} if key in st.session_state else {name: value}


def _choose(sb: Any, label: str, options: list[str], key: str, wanted: str | None, **kwargs: Any) -> str:
    index = options.index(wanted) if wanted in options else 0
    return sb.selectbox(label, options, key=key, **_initial(key, "index", index, options), **kwargs)


def _render_picker() -> str | None:
    sb = st.sidebar
    sb.subheader("Model")
    names = bundled_names()
    state = _pick_state()
    default_source = state.get("source") or (SOURCES[0] if names else SOURCES[2])
    source = sb.segmented_control(
        "Source", SOURCES, key="vae_picker_source", **_initial("vae_picker_source", "default", default_source),
        help="A bundled checkpoint, one of your training runs, a local folder (config.json + model.safetensors) "
             "or a Hugging Face Hub repo id.") or default_source
    spec: str | None = None
    if source == "Bundled":
        if names:
            spec = _choose(sb, "Bundled model", names, "vae_picker_bundled", state.get("bundled") or "sigma-vae")
        else:
            sb.info("No bundled checkpoints yet (checkpoints/ is empty). Train one on the Training monitor "
                    "page, or pick a folder.")
    elif source == "Runs":
        labels = {str(r): r.name for r in session_runs()}
        if labels:
            spec = _choose(sb, "Run", list(labels), "vae_picker_run", state.get("run"), format_func=labels.get)
        else:
            sb.info("No runs in this session yet: start one on the Training monitor page.")
    elif source == "Folder":
        spec = sb.text_input("Model folder", key="vae_picker_folder",
                             **_initial("vae_picker_folder", "value", state.get("folder", "")),
                             placeholder="runs/my-run or /path/to/model").strip() or None
    elif source == "Hub":
        spec = sb.text_input("Hub repo id", key="vae_picker_repo",
                             **_initial("vae_picker_repo", "value", state.get("repo", "")),
                             placeholder="owner/name").strip() or None
        sb.caption("Needs the network once; works offline afterwards from the hub cache.")
    state["source"] = source
    if spec:
        state[_FIELDS[source]] = spec
        model = try_load_model(spec, sb)
        if model is not None:
            sb.caption(model.summary())
        else:
            spec = None
    st.session_state[_SPEC_KEY] = spec
    if spec and st.query_params.get(MODEL_PARAM) != spec:
        st.query_params[MODEL_PARAM] = spec
    return spec


def render_model_picker() -> str | None:
    """Draw the picker in the sidebar (app.py calls this once per run, before the page)."""
    spec = _render_picker()
    st.session_state[_PICKER_RENDERED] = True
    return spec


def end_of_run() -> None:
    """Mark the picker as not yet drawn for the next run (app.py calls this after the page)."""
    st.session_state[_PICKER_RENDERED] = False


def model_picker() -> str | None:
    """The picked model spec; draws the picker when a page runs on its own (e.g. in tests)."""
    if st.session_state.get(_PICKER_RENDERED):
        return st.session_state.get(_SPEC_KEY)
    return _render_picker()


def selected_model() -> tuple[str, PretrainedModel] | tuple[None, None]:
    """(spec, model) of the sidebar pick, or (None, None) with an explanation on the page."""
    spec = model_picker()
    if not spec:
        st.info("Pick a model in the sidebar.")
        return None, None
    model = try_load_model(spec)
    return (spec, model) if model is not None else (None, None)


def require_model() -> tuple[str, PretrainedModel]:
    """(spec, model) of the sidebar pick; stops the page (with its explanation) when there is none."""
    spec, model = selected_model()
    if model is None:
        st.stop()
    return spec, model


def model_choices(include_runs: bool = True) -> dict[str, str]:
    """Every model the comparison pages can offer: spec -> label (bundled, this session's runs, the pick)."""
    choices = {name: name for name in bundled_names()}
    if include_runs:
        for folder in session_runs():
            choices[str(folder)] = f"run: {folder.name}"
    picked = st.session_state.get(_SPEC_KEY)
    if picked and picked not in choices:
        choices[picked] = model_label(picked)
    return choices


# images ----------------------------------------------------------------------------------------------
def grid_png(images: torch.Tensor, nrow: int | None = None, scale: int = 2) -> bytes:
    """PNG bytes of a (B, C, H, W) batch in [0, 1] laid out as a grid (small images enlarged)."""
    h = images.shape[-2]
    scale = max(scale, math.ceil(28 * scale / h)) if h < 28 else scale
    return to_png_bytes(make_grid(images, nrow), scale)


def show_images(images: torch.Tensor, caption: str | None = None, nrow: int | None = None, scale: int = 2,
                where: Any = None) -> None:
    """Show a batch of images as one grid."""
    (where or st).image(grid_png(images, nrow, scale), caption=caption)


def show_png_file(path: Path, caption: str | None = None, where: Any = None) -> bool:
    """Show a PNG from disk (read as bytes, so a file being replaced is never half-read); False if missing."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    (where or st).image(data, caption=caption, width="stretch")
    return True


@torch.no_grad()
def reconstruction_pairs(model: PretrainedModel, x: torch.Tensor) -> torch.Tensor:
    """Originals and reconstructions interleaved by rows of 8 (row pairs: data, model)."""
    model.eval()
    recon = model.reconstruct(x).cpu()
    rows = []
    for i in range(0, x.shape[0], 8):
        rows += [x[i:i + 8].cpu(), recon[i:i + 8]]
    return torch.cat(rows)


# training jobs ---------------------------------------------------------------------------------------
@st.cache_resource
def _job_manager(root: str) -> JobManager:
    return JobManager(root, max_running=int(os.environ.get("VAE_MAX_JOBS", "2")))


def job_manager() -> JobManager:
    """The process-wide registry of background training jobs (survives reruns, reloads and navigation)."""
    return _job_manager(str(runs_root()))


def read_records(folder: Path) -> list[dict[str, Any]]:
    """A run's metrics records (a live run's torn last line is skipped)."""
    return vaecore.read_metrics(folder)


def pick_run(folder: Path) -> None:
    """Widget callback: make a run folder the sidebar's model."""
    set_pick("Runs", str(folder))


def run_dataset(folder: Path) -> Dataset:
    """The dataset a run folder trained on (from app_run.json or train.json), cached."""
    settings = read_json_file(folder / "app_run.json") or read_json_file(folder / "train.json")
    return load_data(settings.get("data", "mnist"), settings.get("data_dir"))


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_run_checkpoint(folder: str, stamp: float) -> PretrainedModel:
    return vaecore.load(folder, device="cpu")


def run_reconstructions(folder: Path, n: int = 16) -> torch.Tensor | None:
    """Validation images and their reconstructions by the run's latest checkpoint; None before the first."""
    if not (folder / WEIGHTS).is_file():
        return None
    try:
        model = _load_run_checkpoint(str(folder), model_stamp(str(folder)))
        x = run_dataset(folder).x_val[:n]
    except (ModelLoadError, OSError, ValueError):
        return None
    return reconstruction_pairs(model, x)


def runs_table(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows for a table of runs: name, preset, data, status, steps, start time."""
    import datetime

    return [{"run": r.name, "preset": r.preset, "data": r.data, "status": r.status,
             "step": r.step, "of": r.total_steps,
             "started": datetime.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M") if r.started else "",
             "message": r.message} for r in runs]


# metrics and samplers -----------------------------------------------------------------------------------
METRIC_TITLES = {
    "elbo": "ELBO (nats, ↑)", "iwae": "IWAE log-likelihood (nats, ↑)", "nll-pdf": "−log pdf (nats, ↓)",
    "nll-discrete": "−log p of 8-bit images (nats, ↓)", "bpd": "bits/dim (↓)", "mse": "MSE, summed over pixels (↓)",
    "active-units": "active units", "fd": "Fréchet distance, small classifier (↓)", "knn": "5-NN accuracy (↑)",
    "mutual-info": "mutual information I(x; z) (nats)", "expected-gap": "expected gap Δ²(s²)",
    "classifier-score": "classifier score (↑)",
}
HIGHER_IS_BETTER = {"elbo", "iwae", "knn", "classifier-score"}


def metric_title(key: str) -> str:
    """A readable name for a metric key."""
    return METRIC_TITLES.get(key, key)


def metric_help(key: str) -> str:
    """The engine's one-line definition of a metric (empty before vaecore.metrics exists)."""
    try:
        from vaecore.evaluation.metrics import METRICS
    except ImportError:
        return ""
    return METRICS.get(key, "")


def cache_root() -> Path:
    """A writable folder for things the app computes once (fitted samplers of read-only models)."""
    return Path(os.environ.get("VAE_APP_CACHE", runs_root().parent / "cache"))


def sampler_folder(spec: str) -> Path:
    """Where a model's fitted samplers live: its own local folder when writable, else (read-only folders,
    Hub repos) a per-model cache folder seeded with any sampler files shipped with the model."""
    import shutil

    from vaecore.hub import resolve

    folder = local_folder(spec)
    if folder is not None and os.access(folder, os.W_OK):
        return folder
    folder = folder or resolve(spec)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[-80:] or "model"
    cache = cache_root() / "samplers" / safe
    cache.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("sampler-*"):
        if not (cache / f.name).exists():
            shutil.copy2(f, cache / f.name)
    return cache


@st.cache_resource(show_spinner=False, max_entries=64)
def _fitted_sampler(spec: str, stamp: float, name: str, n_train: int) -> Any:
    from vaecore.samplers import load_or_fit

    model = load_model(spec)
    return load_or_fit(model, sampler_folder(spec), name, dataset_for(model), n_train=n_train)


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


def evaluate_model(spec: str, names: Sequence[str], n_test: int, seed: int = 0, sampler: str = "prior",
                   iwae_k: int = 100, n_samples: int = 1000, progress: Any = None) -> dict[str, Any]:
    """vaecore.evaluation.metrics.evaluate on the first n_test test images, cached per model version and settings.

    `sampler` names the post-hoc sampler the Fréchet distance generates with ('prior': the model's own);
    `progress(stage, done, total)` is forwarded to the engine; a cached result returns at once.
    """
    from vaecore.evaluation.metrics import evaluate

    key = evaluation_key(spec, names, n_test, seed, sampler, iwae_k, n_samples)
    store = _evaluation_store()
    if key not in store:
        model = load_model(spec)
        fitted = fitted_sampler(spec, sampler) if sampler != "prior" and "fd" in names else None
        store[key] = evaluate(model, dataset_for(model), list(names), n_test=n_test, seed=seed, sampler=fitted,
                              iwae_k=iwae_k, n_samples=n_samples, progress=progress)
    return store[key]


COMPARISON_METRICS = ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "mse", "active-units", "fd")
DEFAULT_METRICS = ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "mse", "active-units")


@st.cache_data(show_spinner=False, max_entries=256)
def _sample_png(spec: str, stamp: float, sampler: str, n: int, seed: int, nrow: int) -> bytes:
    return grid_png(sample_images(spec, sampler, n, seed), nrow)


def sample_grid_png(spec: str, sampler: str = "prior", n: int = 36, seed: int = 0, nrow: int = 6) -> bytes:
    """PNG of n generated images (cached per model version, sampler, n and seed)."""
    return _sample_png(spec, model_stamp(spec), sampler, n, seed, nrow)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def metrics_table(results: dict[str, dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per model, one column per scalar metric (None where undefined)."""
    rows = []
    for label, r in results.items():
        row: dict[str, Any] = {"model": label}
        for m in names:
            v = r.get(m)
            row[m] = v if isinstance(v, list) else _number(v)
        rows.append(row)
    return rows


def metric_column_config(names: Sequence[str]) -> dict[str, Any]:
    """Column headers and help texts for the metrics table."""
    return {m: st.column_config.NumberColumn(metric_title(m), help=metric_help(m) or None, format="%.4g")
            for m in names}


def metric_notes(results: dict[str, dict[str, Any]]) -> list[str]:
    """'model — metric: why it is undefined' lines from evaluate's notes."""
    return [f"**{label}** — {metric_title(m)}: {why}" for label, r in results.items()
            for m, why in (r.get("notes") or {}).items()]


def metric_bar(results: dict[str, dict[str, Any]], metric: str) -> go.Figure:
    """A bar per model for one metric (models where it is undefined are left out)."""
    labels = [k for k, r in results.items() if _number(r.get(metric)) is not None]
    values = [_number(results[k][metric]) for k in labels]
    palette = plotly.colors.qualitative.Plotly
    colors = [palette[list(results).index(k) % len(palette)] for k in labels]
    fig = go.Figure(go.Bar(x=labels, y=values, text=[f"{v:.4g}" for v in values], textposition="auto",
                           marker_color=colors))
    better = "higher is better" if metric in HIGHER_IS_BETTER else ("" if metric == "active-units"
                                                                    else "lower is better")
    fig.update_layout(title=metric_title(metric) + (f" — {better}" if better else ""), height=280,
                      margin={"l": 40, "r": 10, "t": 50, "b": 40})
    return fig


def reference_note() -> str:
    """What the published numbers are and why they are not directly comparable with ours."""
    try:
        from vaecore.evaluation import reference
    except ImportError:
        return ""
    return ("Published values, **as printed in the papers** (models trained for up to 100 epochs), beside ours. "
            f"Not directly comparable: {reference.FID_NOTE}.")


def published_numbers(models: dict[str, str], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The papers' numbers beside ours, for models whose preset and dataset match a published table.

    `models` maps display label -> spec; `results` maps spec -> our evaluation.
    """
    try:
        from vaecore.evaluation import reference
    except ImportError:
        return []
    rows = []
    for label, spec in models.items():
        try:
            config = load_model(spec).config
        except ModelLoadError:
            continue
        ours = results.get(spec, {})
        preset, data = getattr(config, "preset", ""), getattr(config, "dataset", "")
        kind = getattr(load_model(spec), "model_type", "vae")
        paper = reference.reference_row("arelbo-table3", preset) if data == "mnist" else None
        if paper:
            sampler = (ours.get("settings") or {}).get("sampler", "prior")
            rows.append({"model": label, "paper": "AR-ELBO Table 3, MNIST", "paper's model": paper["label"],
                         "MSE (paper)": paper.get("mse"), "MSE (ours)": _number(ours.get("mse")),
                         "FID prior (paper)": paper.get("fid_prior"),
                         "FID 2-stage (paper)": paper.get("fid_two_stage"),
                         "FID GMM-10 (paper)": paper.get("fid_gmm"),
                         f"FD {sampler} (ours, small classifier)": _number(ours.get("fd"))})
        if kind == "tvae" and data == "mnist":
            rows.append({"model": label, "paper": "T-VAE §4, MNIST", "paper's model": "T-VAE",
                         "−log p (paper)": reference.TVAE_MNIST_NLL.get("T-VAE"),
                         "−log p (ours)": _number(ours.get("nll-discrete"))})
        if data in ("cifar10", "cifar-10", "cifar"):
            paper = reference.reference_row("sigma-table4", preset)
            if paper:
                rows.append({"model": label, "paper": "σ-VAE Table 4, CIFAR-10", "paper's model": paper["label"],
                             "−log pdf (paper)": paper.get("nll_pdf"),
                             "−log pdf (ours)": _number(ours.get("nll-pdf")),
                             "−log p (paper)": paper.get("nll_discrete"),
                             "−log p (ours)": _number(ours.get("nll-discrete"))})
    return rows


# curves ----------------------------------------------------------------------------------------------
TRAINING_PANELS = (("loss", "Loss (per example, nats)"), ("recon", "Reconstruction"), ("kl", "KL / regulariser"),
                   ("log_sigma", "ln σ"), ("lr", "Learning rate"), ("images_per_s", "Images / s"))


def series(records: Iterable[dict[str, Any]], key: str, kind: str = "step",
           x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) of one logged quantity from metrics records of one kind, skipping missing or non-finite values."""
    xs, ys = [], []
    for r in records:
        if r.get("kind") != kind or key not in r or x not in r:
            continue
        v = r[key]
        if isinstance(v, int | float) and math.isfinite(v):
            xs.append(float(r[x]))
            ys.append(float(v))
    return xs, ys


def _regulariser_key(records: Sequence[dict[str, Any]]) -> str:
    for key in ("kl", "mmd", "z_norm", "iwae_bound"):
        if any(key in r for r in records if r.get("kind") == "step"):
            return key
    return "kl"


def training_figure(records: Sequence[dict[str, Any]], x: str = "step") -> go.Figure:
    """Six panels of a run's curves: loss (with validation), reconstruction, KL, ln σ (or σx²), lr, speed."""
    uses_mle = any("sigma2_mle" in r for r in records if r.get("kind") == "step")
    reg_key = _regulariser_key(records)
    titles = [t for _, t in TRAINING_PANELS]
    titles[2] = {"kl": "KL", "mmd": "MMD", "z_norm": "½‖z‖²", "iwae_bound": "IWAE bound"}[reg_key]
    titles[3] = "σx² (MLE)" if uses_mle else "ln σ"
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.16)
    keys = ["loss", "recon", reg_key, "sigma2_mle" if uses_mle else "log_sigma", "lr", "images_per_s"]
    for i, key in enumerate(keys):
        row, col = divmod(i, 3)
        xs, ys = series(records, key, x=x)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=key,
                                 line={"width": 1.6}, marker={"size": 4}), row=row + 1, col=col + 1)
    vx, vy = series(records, "val_loss", kind="epoch", x=x)
    if vx:
        fig.add_trace(go.Scatter(x=vx, y=vy, mode="markers+lines", name="validation loss",
                                 line={"dash": "dot"}), row=1, col=1)
    fig.update_layout(height=520, showlegend=False, margin={"l": 40, "r": 20, "t": 40, "b": 40})
    fig.update_xaxes(title_text=x, row=2)
    fig.update_yaxes(type="log", exponentformat="power", row=2, col=2)
    if uses_mle:
        fig.update_yaxes(type="log", exponentformat="power", row=2, col=1)
    return fig


def sigma_trace(records: Sequence[dict[str, Any]], x: str = "epoch",
                quantity: str = "log_sigma") -> tuple[list[float], list[float]]:
    """ln σ (or σ² when quantity='sigma2') per logged step; AR-ELBO's σx² MLE gives ln σ = ½ ln σx²."""
    xs, ys = [], []
    for r in records:
        if r.get("kind") != "step" or x not in r:
            continue
        if "sigma2_mle" in r and isinstance(r["sigma2_mle"], int | float) and r["sigma2_mle"] > 0:
            log_sigma = 0.5 * math.log(r["sigma2_mle"])
        elif isinstance(r.get("log_sigma"), int | float):
            log_sigma = float(r["log_sigma"])
        else:
            continue
        if not math.isfinite(log_sigma):
            continue
        xs.append(float(r[x]))
        ys.append(math.exp(2 * log_sigma) if quantity == "sigma2" else log_sigma)
    return xs, ys


def sigma_figure(traces: dict[str, Sequence[dict[str, Any]]], x: str = "epoch", quantity: str = "log_sigma",
                 beta: float | None = 0.01, log_x: bool = False) -> go.Figure:
    """ln σ against training time for several models, with the σ = 1 and β-VAE levels (σ-VAE Fig. 5)."""
    fig = go.Figure()
    for label, records in traces.items():
        xs, ys = sigma_trace(records, x, quantity)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=label))
    fixed = 1.0 if quantity == "sigma2" else 0.0
    fig.add_hline(y=fixed, line_dash="dash", line_color="gray",
                  annotation_text="fixed σ = 1 (Gaussian VAE): " + ("σ² = 1" if quantity == "sigma2" else "ln σ = 0"))
    if beta:
        level = beta if quantity == "sigma2" else 0.5 * math.log(beta)
        fig.add_hline(y=level, line_dash="dot", line_color="firebrick",
                      annotation_text=f"β-VAE, β = {beta:g}: " + (f"σ² = {beta:g}" if quantity == "sigma2"
                                                                     else f"ln σ = ½ ln β = {level:.2f}"),
                      annotation_position="bottom right")
    fig.update_layout(height=480, xaxis_title="epoch" if x == "epoch" else "step",
                      yaxis_title="σ² (σx² MLE for AR-ELBO)" if quantity == "sigma2" else "ln σ",
                      legend={"orientation": "h", "y": -0.2}, margin={"l": 50, "r": 20, "t": 30, "b": 40})
    if log_x:
        fig.update_xaxes(type="log")
    if quantity == "sigma2":
        fig.update_yaxes(type="log")
    return fig


def bundled_with_logs() -> dict[str, Path]:
    """Bundled checkpoints that ship their training log (metrics.jsonl): name -> folder."""
    root = checkpoints_dir()
    return {name: root / name for name in bundled_names() if (root / name / "metrics.jsonl").is_file()}


def logs_sigma(records: Sequence[dict[str, Any]]) -> bool:
    """Whether a training log has a decoder σ (ln σ or AR-ELBO's σx² MLE)."""
    return any("log_sigma" in r or "sigma2_mle" in r for r in records if r.get("kind") == "step")


def default_sigma_models(bundled: dict[str, Path], limit: int = 6) -> list[str]:
    """The bundled models the σ page starts with: σ-VAE-like ones first, at most `limit`."""
    order = ("sigma-vae", "sigma-vae-learned", "gaussian-vae", "beta-vae", "arelbo-iso-i", "sigma-vae-per-pixel")
    first = [n for n in order if n in bundled]
    rest = [n for n in bundled if n not in first and logs_sigma(vaecore.read_metrics(bundled[n]))]
    return (first + rest)[:limit]


def sigma_traces(sources: dict[str, Path]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Training logs of the chosen folders that have a σ, and why the others are left out."""
    traces: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for label, folder in sources.items():
        records = vaecore.read_metrics(folder)
        if not records:
            skipped[label] = "no training log (metrics.jsonl) yet"
        elif not logs_sigma(records):
            config = read_json_file(Path(folder) / "config.json")
            lik, sigma = config.get("likelihood", "this"), (config.get("likelihood_kwargs") or {}).get("sigma")
            skipped[label] = ("its decoder predicts σ for every pixel and image, so there is no single σ to plot"
                              if sigma == "per-pixel" else f"the {lik} likelihood has no decoder σ")
        else:
            traces[label] = records
    return traces, skipped


def sigma_summary(traces: dict[str, Sequence[dict[str, Any]]],
                  sources: dict[str, Path] | None = None) -> list[dict[str, Any]]:
    """Per model: the last logged ln σ, σ², the KL weight β and the effective ln σ + ½ ln β.

    A β-VAE with σ = 1 has the optimum of a σ-VAE with σ² = β, so its effective ln σ is ½ ln β.
    """
    rows = []
    for label, records in traces.items():
        xs, ys = sigma_trace(records, "epoch")
        if not ys:
            continue
        config = read_json_file(Path(sources[label]) / "config.json") if sources and label in sources else {}
        beta = float(config.get("beta", 1.0) or 1.0)
        rows.append({"model": label, "epoch": round(xs[-1], 2), "ln σ": round(ys[-1], 3),
                     "σ²": float(f"{math.exp(2 * ys[-1]):.4g}"), "β": beta,
                     "effective ln σ": round(ys[-1] + 0.5 * math.log(beta), 3) if beta > 0 else None})
    return rows


def format_seconds(s: float | None) -> str:
    """'1 h 02 min', '3 min 05 s', '12 s' for a duration (— when unknown)."""
    if s is None or not math.isfinite(s):
        return "—"
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if m else f"{sec} s"


# ============================================================================================
# Part B helpers (latent map, interpolation, transformations) — appended by part B below.
# ============================================================================================

from collections import OrderedDict  # noqa: E402
from collections.abc import Callable  # noqa: E402

from explorer.uploads import Uploaded, parse_uploads  # noqa: E402
from vaecore.latent import projection as proj  # noqa: E402

SPLITS = ("test", "val", "train")
UPLOADED = "uploaded"
UPLOADS_KEY = "vae_uploads"
MAP_SELECTION_KEY = "vae_map_selection"
PICK_MODES = ("By index", "By class", "Random")


# image sources: dataset splits and the user's uploads ---------------------------------------------
def upload_panel(shape: tuple[int, int, int], key: str = "b_upload") -> Uploaded | None:
    """Uploader for .npz/.npy arrays and PNGs; parsed images become the 'uploaded' source of this session.

    The size limit per file is server.maxUploadSize in .streamlit/config.toml. Parse errors are shown,
    not raised. Uploads stay in the session (other pages use them) until forgotten.
    """
    limit = st.get_option("server.maxUploadSize")
    files = st.file_uploader(
        "Images: .npz / .npy arrays or PNG files", type=["npz", "npy", "png"], accept_multiple_files=True, key=key,
        help=f"Arrays: uint8 0..255 or floats in [0, 1], shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with the "
             f"model's {shape[1]}×{shape[2]} size; keys x/y, images/labels, x_train/y_train/x_test/y_test or one "
             f"array. PNGs are converted to grayscale and resized. Up to {limit} MB per file.")
    invert = st.segmented_control("Invert PNGs", ["auto", "yes", "no"], default="auto", required=True,
                                  key=f"{key}_invert",
                                  help="The models saw light digits on a dark background; 'auto' inverts PNGs "
                                       "whose border is light (dark ink on paper).")
    stored = st.session_state.get(UPLOADS_KEY)
    if files:
        signature = (tuple((f.name, f.size, getattr(f, "file_id", "")) for f in files), tuple(shape), invert)
        if not stored or stored.get("signature") != signature:
            errors: list[str] = []
            try:
                data = parse_uploads([(f.name, f.getvalue()) for f in files], shape,
                                     invert={"auto": None, "yes": True, "no": False}[invert or "auto"], errors=errors)
            except ValueError as e:
                data = None
                if not (errors and str(e).startswith("no usable files")):
                    errors.append(str(e))
            stored = {"signature": signature, "shape": tuple(shape), "data": data, "errors": errors,
                      "token": secrets.token_hex(6)}
            st.session_state[UPLOADS_KEY] = stored
        for message in stored.get("errors") or []:
            st.error(message)
    current = uploaded_images(shape)
    if current is not None:
        labelled = "with labels" if current.labels is not None else "no labels"
        st.caption(f"{len(current):,} uploaded image{'s' if len(current) != 1 else ''} ({labelled}), "
                   "available as the **uploaded** source on the map, interpolation and transformation pages.")
        if st.button("Forget uploaded images", key=f"{key}_forget"):
            st.session_state.pop(UPLOADS_KEY, None)
            st.rerun()
    elif stored and stored.get("data") is not None and tuple(stored["shape"]) != tuple(shape):
        st.warning(f"The uploaded images are {stored['shape'][1]}×{stored['shape'][2]}; this model takes "
                   f"{shape[1]}×{shape[2]}. Upload them again for this model.")
    return current


def uploaded_images(shape: tuple[int, int, int]) -> Uploaded | None:
    """This session's uploaded images if they fit a model of `shape`, else None."""
    stored = st.session_state.get(UPLOADS_KEY)
    if stored and tuple(stored["shape"]) == tuple(shape):
        return stored["data"]
    return None


def image_sources(model: PretrainedModel) -> list[str]:
    """The image sources a page can offer for a model: its dataset's splits, plus 'uploaded' when there are any."""
    shape = tuple(model.config.input_shape)
    return list(SPLITS) + ([UPLOADED] if uploaded_images(shape) is not None else [])


def source_images(model: PretrainedModel, source: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images, labels or None) of a source: a split of the model's dataset or the uploaded images."""
    if source == UPLOADED:
        up = uploaded_images(tuple(model.config.input_shape))
        if up is None:
            raise ValueError("no uploaded images for this model's image size")
        return up.images, up.labels
    return dataset_for(model).split(source)


def source_token(model: PretrainedModel, source: str) -> str:
    """A key part that changes whenever the images of a source change (uploads get a fresh token)."""
    if source == UPLOADED:
        stored = st.session_state.get(UPLOADS_KEY) or {}
        return f"{UPLOADED}:{stored.get('token', '')}"
    return f"{getattr(model.config, 'dataset', '')}:{source}"


def source_picker(model: PretrainedModel, key: str, label: str = "Images from") -> str:
    """A segmented control over `image_sources` (test split by default)."""
    options = image_sources(model)
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return st.segmented_control(label, options, default="test", required=True, key=key,
                                help="A split of the model's training dataset, or the images you uploaded "
                                     "on the Latent map page.") or "test"


def pick_image(label: str, n: int, labels: torch.Tensor | None, key: str, default: int = 0) -> int:
    """Choose one image of a source of n images: by index, by class (the i-th of a class) or at random."""
    modes = list(PICK_MODES) if labels is not None else [m for m in PICK_MODES if m != "By class"]
    mode = st.segmented_control(label, modes, default=modes[0], required=True, key=f"{key}_mode")
    if mode == "By class" and labels is not None:
        classes = sorted(int(c) for c in torch.unique(labels))
        c1, c2 = st.columns(2)
        cls = c1.selectbox("Class", classes, index=min(default, len(classes) - 1), key=f"{key}_class")
        members = torch.nonzero(labels == cls).flatten()
        k = c2.number_input("Which one", 0, len(members) - 1, value=0, key=f"{key}_k",
                            help=f"{len(members):,} images of class {cls}")
        return int(members[int(k)])
    if mode == "Random":
        if f"{key}_seed" not in st.session_state:
            st.session_state[f"{key}_seed"] = default
        if st.button("New random image", key=f"{key}_again"):
            st.session_state[f"{key}_seed"] = secrets.randbelow(2**31)
        return int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(st.session_state[f"{key}_seed"])))
    return int(st.number_input("Index", 0, n - 1, value=min(default, n - 1), key=f"{key}_index"))


def image_png(x: torch.Tensor, size: int = 112) -> bytes:
    """PNG of one image (C, H, W) enlarged to about `size` pixels across."""
    h = x.shape[-2]
    return to_png_bytes(make_grid(x[None], nrow=1, padding=0), max(1, round(size / h)))


def label_text(labels: torch.Tensor | None, i: int) -> str:
    """'label 7' for labelled sources, '' otherwise."""
    return f"label {int(labels[i])}" if labels is not None and i < len(labels) else ""


# latents and projections (computed once per process and key, with progress) ------------------------
@st.cache_resource(show_spinner=False)
def _b_store() -> dict[str, OrderedDict]:
    return {"latents": OrderedDict(), "maps": OrderedDict()}


def _remember(kind: str, key: tuple[Any, ...], value: Any, keep: int) -> Any:
    store = _b_store()[kind]
    store[key] = value
    store.move_to_end(key)
    while len(store) > keep:
        store.popitem(last=False)
    return value


def _recall(kind: str, key: tuple[Any, ...]) -> Any:
    store = _b_store()[kind]
    if key in store:
        store.move_to_end(key)
        return store[key]
    return None


def _latent_key(spec: str, model: PretrainedModel, source: str, n: int) -> tuple[Any, ...]:
    return (spec, model_stamp(spec), source_token(model, source), int(n))


def latents_for(spec: str, source: str, n: int, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Posterior means of the first n images of a source, encoded once per (model version, source, n)."""
    model = load_model(spec)
    key = _latent_key(spec, model, source, n)
    found = _recall("latents", key)
    if found is None:
        x, _ = source_images(model, source)
        found = _remember("latents", key, proj.encode_images(model, x[:n], progress=progress), keep=12)
    return found


def _map_key(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> tuple[Any, ...]:
    model = load_model(spec)
    return (*_latent_key(spec, model, source, n), method, int(dim), tuple(sorted(params.items())))


def cached_map(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> np.ndarray | None:
    """A projection computed before with exactly these settings, or None."""
    return _recall("maps", _map_key(spec, source, n, method, dim, params))


def latent_map(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any],
               progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(n, dim) map coordinates of a source's latents, cached per (model, source, n, method, dim, params)."""
    key = _map_key(spec, source, n, method, dim, params)
    found = _recall("maps", key)
    if found is None:
        z = latents_for(spec, source, n, progress)
        if progress is not None:
            progress(1.0, f"running {method.upper()} on {len(z):,} latents…")
        found = _remember("maps", key, proj.project(z, method, dim, **params), keep=24)
    return found


CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")


def latent_map_figure(coords: np.ndarray, labels: np.ndarray | None, images: torch.Tensor | None = None,
                      thumbnails: int = 0, highlight: Sequence[int] = (), title: str = "") -> go.Figure:
    """Scatter of map coordinates (2-D or 3-D), one trace per class; hover shows index and label.

    Each point's customdata is [index, label], so a selection maps back to images whatever the trace.
    `thumbnails` > 0 draws that many images at their points (2-D only): Plotly's hover boxes cannot
    hold images, so the map itself shows what lies where.
    """
    n, dim = coords.shape
    lab = np.full(n, -1) if labels is None else np.asarray(labels)[:n]
    fig = go.Figure()
    groups = sorted(set(int(v) for v in lab))
    for g in groups:
        idx = np.flatnonzero(lab == g)
        custom = np.stack([idx, lab[idx]], axis=1)
        name = "all" if g < 0 else str(g)
        colour = CLASS_COLOURS[g % len(CLASS_COLOURS)] if g >= 0 else CLASS_COLOURS[0]
        hover = "<b>#%{customdata[0]}</b>" + ("" if g < 0 else "<br>label %{customdata[1]}") + "<extra></extra>"
        marker = {"size": 3 if dim == 3 else (4 if n > 3000 else 6), "color": colour, "opacity": 0.8}
        if dim == 3:
            fig.add_trace(go.Scatter3d(x=coords[idx, 0], y=coords[idx, 1], z=coords[idx, 2], mode="markers",
                                       name=name, customdata=custom, hovertemplate=hover, marker=marker))
        else:
            trace = go.Scattergl if n > 1500 else go.Scatter
            fig.add_trace(trace(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=name, customdata=custom,
                                hovertemplate=hover, marker=marker))
    highlight = [int(i) for i in highlight if 0 <= int(i) < n]
    if highlight and dim == 2:
        fig.add_trace(go.Scatter(x=coords[highlight, 0], y=coords[highlight, 1], mode="markers", name="picked",
                                 customdata=np.stack([highlight, lab[highlight]], axis=1),
                                 hovertemplate="<b>#%{customdata[0]}</b><extra>picked</extra>",
                                 marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}}))
    if thumbnails and images is not None and dim == 2:
        _add_thumbnails(fig, coords, images, thumbnails)
    layout: dict[str, Any] = {"height": 620, "margin": {"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                              "legend": {"title": {"text": "label" if labels is not None else ""},
                                         "itemsizing": "constant"},
                              "dragmode": "lasso" if dim == 2 else "orbit", "title": title or None}
    if dim == 2:
        layout["clickmode"] = "event+select"
        layout["yaxis"] = {"scaleanchor": "x", "scaleratio": 1}
    fig.update_layout(**layout)
    return fig


def _add_thumbnails(fig: go.Figure, coords: np.ndarray, images: torch.Tensor, count: int) -> None:
    import base64

    n = len(coords)
    pick = np.random.default_rng(0).choice(n, size=min(count, n), replace=False)
    span = float(max(np.ptp(coords[:, 0]), np.ptp(coords[:, 1]), 1e-6))
    size = span * 0.045
    for i in pick:
        png = to_png_bytes(make_grid(images[int(i)][None], nrow=1, padding=0))
        fig.add_layout_image(source="data:image/png;base64," + base64.b64encode(png).decode(), xref="x", yref="y",
                             x=float(coords[i, 0]), y=float(coords[i, 1]), sizex=size, sizey=size,
                             xanchor="center", yanchor="middle", layer="above", opacity=0.9)


def set_map_selection(spec: str, source: str, indices: Sequence[int]) -> None:
    """Remember the map's selected image indices for this session (the Interpolation page reads them)."""
    st.session_state[MAP_SELECTION_KEY] = {"spec": spec, "source": source, "indices": [int(i) for i in indices]}


def map_selection(spec: str | None = None, source: str | None = None) -> list[int]:
    """The indices selected on the latent map, if it was made with this model and source (any when None)."""
    sel = st.session_state.get(MAP_SELECTION_KEY) or {}
    if spec is not None and sel.get("spec") != spec:
        return []
    if source is not None and sel.get("source") != source:
        return []
    return list(sel.get("indices") or [])


# transformations (T-VAE page) -----------------------------------------------------------------------
def model_type_of(spec: str) -> str:
    """A model's `model_type` from its config.json, without loading it ('vae' when unknown)."""
    folder = local_folder(spec)
    if folder is not None:
        return str(read_json_file(folder / "config.json").get("model_type", "vae"))
    try:
        return str(getattr(load_model(spec).config, "model_type", "vae"))
    except ModelLoadError:
        return "vae"


def models_by_type() -> dict[str, dict[str, str]]:
    """Offered models (bundled, runs, the sidebar pick) split by model_type: type -> {spec: label}."""
    out: dict[str, dict[str, str]] = {}
    for spec, label in model_choices().items():
        out.setdefault(model_type_of(spec), {})[spec] = label
    return out


TRANSFORM_AMOUNTS: dict[str, tuple[float, float, float, float, str]] = {
    "rotation": (-45.0, 45.0, 20.0, 1.0, "degrees, counter-clockwise"),
    "translation": (-0.25, 0.25, 0.1, 0.01, "fraction of the width (x) and height (y)"),
    "scale": (0.6, 1.5, 1.2, 0.01, "zoom factor (> 1 enlarges)"),
    "shear": (-40.0, 40.0, 20.0, 1.0, "degrees (positive slants like italics)"),
}


def transform_matrix(kind: str, amount: float, amount_y: float = 0.0) -> torch.Tensor:
    """The forward matrix (1, 3, 3) of one transformation kind (see vaecore.transforms for the signs)."""
    from vaecore.data.transforms import affine_matrix

    if kind == "rotation":
        return affine_matrix(rotation=amount)
    if kind == "translation":
        return affine_matrix(translation_x=amount, translation_y=amount_y)
    if kind == "scale":
        return affine_matrix(scale=amount)
    if kind == "shear":
        return affine_matrix(shear=amount)
    raise ValueError(f"unknown transformation {kind!r}; choose one of {list(TRANSFORM_AMOUNTS)}")


def apply_power(images: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
    """images under f^k (k may be negative or 0): the ground truth that z + k·T should decode to."""
    from vaecore.data.transforms import apply_affine

    if k == 0:
        return images
    return apply_affine(images, torch.linalg.matrix_power(theta[0], k)[None])


TRANSFER_COLUMNS = ("M-Aff", "M-M", "F-Aff", "F-F")
TRANSFER_COLUMN_NAMES = {"M-Aff": "MNIST → Aff", "M-M": "MNIST → MNIST", "F-Aff": "Fashion → Aff",
                         "F-F": "Fashion → Fashion"}


def transfer_results_path() -> Path:
    """experiments/results/tvae_transfer.json (VAE_TRANSFER_RESULTS overrides, e.g. for tests)."""
    return Path(os.environ.get("VAE_TRANSFER_RESULTS",
                               PROJECT_ROOT / "experiments" / "results" / "tvae_transfer.json"))


def transfer_report() -> dict[str, Any] | None:
    """The report experiments/tvae_transfer.py writes, or None when it is missing or has no table."""
    report = read_json_file(transfer_results_path())
    return report if isinstance(report.get("table"), list) and report["table"] else None


def transfer_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and latent size: our KNN accuracy (%) per column beside the paper's Table 1."""
    rows = []
    for r in report["table"]:
        row: dict[str, Any] = {"model": r.get("name", r.get("preset")), "z": r.get("latent")}
        for col in TRANSFER_COLUMNS:
            ours, paper = _number((r.get("ours") or {}).get(col)), _number((r.get("paper") or {}).get(col))
            if ours is not None or any((x.get("ours") or {}).get(col) is not None for x in report["table"]):
                row[f"{col} ours (%)"] = None if ours is None else round(100 * ours, 1)
                row[f"{col} paper (%)"] = paper
        rows.append(row)
    return rows


def transfer_figure(report: dict[str, Any]) -> go.Figure:
    """Grouped bars of our KNN accuracy per setting and model, with the paper's values as open diamonds."""
    table = report["table"]
    cols = [c for c in TRANSFER_COLUMNS if any((r.get("ours") or {}).get(c) is not None for r in table)]
    fig = go.Figure()
    for i, r in enumerate(table):
        name = f"{r.get('name', r.get('preset'))} (z = {r.get('latent')})"
        colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        ours = [_number((r.get("ours") or {}).get(c)) for c in cols]
        ours = [None if v is None else 100 * v for v in ours]
        fig.add_trace(go.Bar(name=name, x=[TRANSFER_COLUMN_NAMES[c] for c in cols], y=ours, marker_color=colour,
                             offsetgroup=str(i), text=[f"{v:.1f}" if v is not None else "" for v in ours],
                             textposition="outside"))
        paper = [_number((r.get("paper") or {}).get(c)) for c in cols]
        if any(v is not None for v in paper):
            fig.add_trace(go.Scatter(name="paper (Table 1)", x=[TRANSFER_COLUMN_NAMES[c] for c in cols], y=paper,
                                     mode="markers", offsetgroup=str(i), legendgroup="paper",
                                     showlegend=not any(t.legendgroup == "paper" for t in fig.data),
                                     marker={"symbol": "diamond-open", "size": 11, "color": "black",
                                             "line": {"width": 2}},
                                     hovertemplate=f"{name}, paper: %{{y:.1f}} %<extra></extra>"))
    fig.update_layout(barmode="group", scattermode="group", height=400, yaxis={"title": "KNN accuracy (%)",
                      "range": [0, 105]}, legend={"orientation": "h", "y": -0.18},
                      margin={"l": 50, "r": 10, "t": 20, "b": 40})
    return fig


def transfer_curve_figure(report: dict[str, Any]) -> go.Figure | None:
    """Aff accuracy against the number of labelled KNN latents (the paper's Figure 2), mean ± s.d."""
    curves = report.get("figure2") or []
    fig = go.Figure()
    for r in curves:
        points = sorted((int(n), v) for n, v in (r.get("curve") or {}).items() if isinstance(v, dict))
        if not points:
            continue
        fig.add_trace(go.Scatter(x=[n for n, _ in points], y=[100 * v["mean"] for _, v in points],
                                 error_y={"type": "data", "array": [100 * v.get("std", 0) for _, v in points]},
                                 mode="lines+markers",
                                 name=f"{r.get('name')} (z = {r.get('latent')}, trained on {r.get('source')})"))
    if not fig.data:
        return None
    fig.update_layout(height=360, xaxis={"type": "log", "title": "labelled KNN training latents"},
                      yaxis_title="Aff accuracy (%)", legend={"orientation": "h", "y": -0.25},
                      margin={"l": 50, "r": 10, "t": 20, "b": 40})
    return fig
