"""Files the app reads without Streamlit: project paths, model folders, the bundled catalog and result files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from vaecore.files import CATALOG, CONFIG, EVAL, METRICS, WEIGHTS
from vaecore.hub import bundled_names, checkpoints_dir
from vaecore.models.families import GROUPS, card_group, family_title
from vaecore.models.families import group_heading as group_heading_of
from vaecore.training import run_folder as rf
from vaecore.utils import PROJECT_ROOT, read_json


def runs_root() -> Path:
    """Where the app writes training runs (VAE_APP_RUNS overrides, e.g. for tests)."""
    return Path(os.environ.get("VAE_APP_RUNS", PROJECT_ROOT / "runs" / "app"))


def local_folder(spec: str) -> Path | None:
    """The folder a spec names without touching the network: a path or a bundled name, else None (also for a name
    no folder can have: too long, a NUL byte, as a shared ?model= link may carry)."""
    try:
        path = Path(spec).expanduser()
        if path.is_dir():
            return path
        bundled = checkpoints_dir() / spec
        return bundled if bundled.is_dir() else None
    except (OSError, ValueError, RuntimeError):  # ENAMETOOLONG, embedded NUL, '~nosuchuser'
        return None


def model_stamp(spec: str) -> float:
    """Modification time of a local model's weights (0 for Hub repos), so a retrained folder reloads."""
    folder = local_folder(spec)
    try:
        return (folder / WEIGHTS).stat().st_mtime if folder else 0.0
    except OSError:
        return 0.0


def model_label(spec: str) -> str:
    """A short display name: the folder name for paths, the spec otherwise."""
    path = Path(spec)
    if len(path.parts) > 1 and local_folder(spec) is not None:
        return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return spec


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or {} when missing or unreadable (cards must never crash)."""
    try:
        data = read_json(path)  # bounded in size and depth (vaecore.limits): a hostile file is just unreadable
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _catalog_entries(root: Path) -> dict[str, dict[str, Any]]:
    """checkpoints/catalog.json as name -> entry; accepts a list, {"models": [...]} or a dict by name."""
    try:
        raw = json.loads((root / CATALOG).read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(raw, dict) and "models" in raw:  # the zoo's rows, then those of studies (e.g. "study_models")
        raw = [e for key, rows in raw.items() if key.endswith("models") and key != "hub_models"
               and isinstance(rows, list) for e in rows]
    if isinstance(raw, list):
        return {e["name"]: e for e in raw if isinstance(e, dict) and "name" in e}
    if isinstance(raw, dict):
        return {k: v for k, v in raw.items() if isinstance(v, dict)}
    return {}


def catalog_entries() -> dict[str, dict[str, Any]]:
    """checkpoints/catalog.json's rows (the zoo's and the studies') by name; reads that one file."""
    return _catalog_entries(checkpoints_dir())


def catalog_entry(name: str) -> dict[str, Any]:
    """A bundled model's catalog row (the zoo's or a study's), {} when it has none."""
    return catalog_entries().get(name, {})


def _sample_grid(folder: Path) -> dict[str, Any]:
    """The model's sample grid and what drew it: its prior (samples.png), else the GMM fitted on its
    training latents (samples-gmm.png, for models without a prior)."""
    if (folder / rf.SAMPLES).is_file():
        return {"samples": folder / rf.SAMPLES, "samples_caption": "samples from the prior"}
    if (folder / rf.GMM_SAMPLES).is_file():
        return {"samples": folder / rf.GMM_SAMPLES,
                "samples_caption": "no prior: samples from a GMM-10 fitted on its training latents"}
    return {"samples": None, "samples_caption": ""}


def _family_title(model_type: Any) -> str:
    try:
        return family_title(str(model_type or "vae"))
    except ValueError:
        return str(model_type)


def bundled_catalog() -> list[dict[str, Any]]:
    """Bundled models with their catalog entry (checkpoints/catalog.json), config and eval.json."""
    root = checkpoints_dir()
    by_name = _catalog_entries(root)
    out = []
    for name in bundled_names():
        folder = root / name
        config = read_json_file(folder / CONFIG)
        entry = {"name": name, "title": name, "description": "", "data": config.get("dataset"),
                 "likelihood": config.get("likelihood"), "latent_dim": config.get("latent_dim"),
                 "family": _family_title(config.get("model_type")), **by_name.get(name, {})}
        entry.update(folder=folder, config=config, eval=read_json_file(folder / EVAL),
                     **_sample_grid(folder))
        out.append(entry)
    return out


OTHER_GROUP = "other"
CARD_METRICS = ("nll-discrete", "mse", "fd", "active-units")
def finite(v: Any) -> float | None:
    """v as a float when it is a finite number (not a bool), else None."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def card_metrics(eval_result: dict[str, Any]) -> dict[str, float | None]:
    """The same metrics for every model card: −log p of the 8-bit images, MSE, FD and active units.

    −log p is comparable across every model with a density (discrete likelihoods directly, continuous
    ones integrated over each 8-bit bin); ELBOs of different likelihood families are not, so cards do
    not show them. None where the model does not define the metric.
    """
    flat = dict(eval_result)
    if isinstance(eval_result.get("metrics"), dict):
        flat.update(eval_result["metrics"])
    return {k: finite(flat.get(k)) for k in CARD_METRICS}


def card_spreads(eval_result: dict[str, Any]) -> dict[str, float | None] | None:
    """The card metrics' SE (over test images) or s.d. (over sample seeds), None per metric that has none; None for
    an evaluation that stored no uncertainty at all (one older than the protocol)."""
    from vaecore.evaluation.registry import State, outcome

    if not eval_result.get("uncertainty"):
        return None
    out: dict[str, float | None] = {}
    for key in CARD_METRICS:
        o = outcome(eval_result, key)
        e = o.estimate if o.state is State.VALUE else None
        out[key] = None if e is None else e.sd if str(e.over) == "seeds" else e.se
    return out


def card_family(entry: dict[str, Any]) -> str:
    """The group a bundled model's card sits in (a key of the engine's `families.GROUPS`), as the engine files
    its config: by its family, the plain VAE by its likelihood, a preset that names its group there."""
    config = {"model_type": entry.get("model_type"), "likelihood": entry.get("likelihood"), "preset": entry.get("name"),
              **(entry.get("config") or {})}
    try:
        return card_group(config).key
    except ValueError:  # a config of a family or likelihood this engine does not know
        return OTHER_GROUP


def group_heading(key: str) -> str:
    """The heading of a group of cards: the engine's group title with its families."""
    return group_heading_of(key) if key in GROUPS else "Other models"


def group_order() -> list[str]:
    """Group keys in display order (the engine's), unknown models last."""
    return [*GROUPS, OTHER_GROUP]


def cache_root() -> Path:
    """A writable folder for things the app computes once (fitted samplers of read-only models)."""
    return Path(os.environ.get("VAE_APP_CACHE", runs_root().parent / "cache"))


def bundled_with_logs() -> dict[str, Path]:
    """Bundled checkpoints that ship their training log (metrics.jsonl): name -> folder."""
    root = checkpoints_dir()
    return {name: root / name for name in bundled_names() if (root / name / METRICS).is_file()}


def transfer_results_path() -> Path:
    """experiments/results/tvae_transfer.json (VAE_TRANSFER_RESULTS overrides, e.g. for tests)."""
    return Path(os.environ.get("VAE_TRANSFER_RESULTS",
                               PROJECT_ROOT / "experiments" / "results" / "tvae_transfer.json"))


def transfer_report() -> dict[str, Any] | None:
    """The report experiments/tvae_transfer.py writes, or None when it is missing or has no table."""
    report = read_json_file(transfer_results_path())
    return report if isinstance(report.get("table"), list) and report["table"] else None
