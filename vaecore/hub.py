"""Finding and loading models: run folders, bundled checkpoints, and Hugging Face Hub repos.

`load(x)` accepts a folder holding `config.json` + `model.safetensors`, the name of a bundled
checkpoint under `checkpoints/`, or a Hub repo id `owner/name` (resolved through the normal hub
cache, so it works offline with HF_HUB_OFFLINE=1 once cached). Weights are read with
safetensors and configs with JSON: nothing a user or the Hub provides is ever unpickled.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from vaecore.models.base import MODEL_TYPES, PretrainedModel
from vaecore.utils import PROJECT_ROOT, atomic_write_bytes, read_json

CHECKPOINTS_DIR = PROJECT_ROOT / "checkpoints"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHTS = "model.safetensors"


class ModelLoadError(ValueError):
    """A model could not be found or read; the message says which file and what to do."""


def checkpoints_dir() -> Path:
    """Where bundled checkpoints live (VAE_CHECKPOINTS overrides, e.g. for tests)."""
    return Path(os.environ.get("VAE_CHECKPOINTS", CHECKPOINTS_DIR))


def bundled_names() -> list[str]:
    """Names of bundled checkpoints (folders under checkpoints/ with a config.json)."""
    root = checkpoints_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file() and (p / WEIGHTS).is_file())


def resolve(name_or_path: str | Path) -> Path:
    """The local folder for a path, a bundled name or a Hub repo id (downloading through the cache)."""
    s = str(name_or_path)
    path = Path(s).expanduser()
    if path.is_dir():
        return path
    if (checkpoints_dir() / s).is_dir():
        return checkpoints_dir() / s
    if REPO_ID.match(s) and not path.exists():
        return _download(s)
    known = ", ".join(bundled_names()) or "none"
    raise ModelLoadError(f"no model called {s!r}: it is not a folder, not a bundled checkpoint "
                         f"(bundled: {known}) and not a Hub repo id of the form 'owner/name'")


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")
    try:
        return Path(snapshot_download(repo_id, cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                                      local_files_only=offline,
                                      allow_patterns=["*.json", "*.safetensors", "*.md", "*.jsonl", "*.png"]))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError) as e:
        why = "it is not in the local hub cache and HF_HUB_OFFLINE is set" if offline else \
            "the Hugging Face Hub could not be reached or has no such repo"
        raise ModelLoadError(f"could not load Hub repo {repo_id!r}: {why} ({type(e).__name__}). "
                             "Download it once while online, or pass a local folder.") from e


def load_folder(folder: str | Path, device: str | None = None) -> PretrainedModel:
    """Load a model folder strictly; errors name the file and what is wrong."""
    folder = Path(folder)
    cfg_path, weights = folder / "config.json", folder / WEIGHTS
    for p in (cfg_path, weights):
        if not p.is_file():
            raise ModelLoadError(f"{p} is missing: a model folder needs config.json and {WEIGHTS}")
    try:
        config = read_json(cfg_path)
    except ValueError as e:
        raise ModelLoadError(str(e)) from e
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in MODEL_TYPES:
        raise ModelLoadError(f"{cfg_path}: model_type {kind!r} is not one of {sorted(MODEL_TYPES)}")
    try:
        model = MODEL_TYPES[kind].from_pretrained(str(folder), strict=True)
    except SafetensorError as e:
        raise ModelLoadError(f"{weights} is corrupt or truncated ({e}); re-download or re-train it") from e
    except RuntimeError as e:
        raise ModelLoadError(f"{weights} does not match {cfg_path}: {str(e).splitlines()[-1].strip()} "
                             "(were the files copied from different models?)") from e
    except (ValueError, TypeError, KeyError) as e:
        raise ModelLoadError(f"{cfg_path} is not a valid {kind} config: {e}") from e
    model.eval()
    if device:
        model.to(device)
    return model


def load(name_or_path: str | Path, device: str | None = None) -> PretrainedModel:
    """Load a model from a folder, a bundled checkpoint name, or a Hub repo id; in eval mode."""
    _register_model_types()
    return load_folder(resolve(name_or_path), device)


def _register_model_types() -> None:
    """Import modules that register extra model types (T-VAE) so their configs load."""
    import importlib

    for module in ("vaecore.tvae",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


def write_model_card(folder: Path, config: dict[str, Any], metrics: dict[str, Any] | None = None,
                     extra: str = "") -> None:
    """A README.md model card: what the model is, its data, and its metrics when known."""
    if metrics is None and (folder / "eval.json").is_file():
        metrics = json.loads((folder / "eval.json").read_text())
    train = json.loads((folder / "train.json").read_text()) if (folder / "train.json").is_file() else {}
    lik = config.get("likelihood", "?")
    kw = config.get("likelihood_kwargs") or {}
    lines = [
        "---", "library_name: vaecore", "tags:", "- vae", "- vaecore", f"- {config.get('preset', 'vae')}",
        f"datasets:\n- {config.get('dataset', 'unknown')}", "---", "",
        f"# {config.get('preset', 'vae')}", "",
        "A variational autoencoder trained with [vaecore](https://github.com/) (VAE Explorer).", "",
        "| field | value |", "| --- | --- |",
        f"| model type | {config.get('model_type')} |",
        f"| likelihood | {lik} {json.dumps(kw) if kw else ''} |",
        f"| regulariser | {config.get('regulariser', '-')} (β = {config.get('beta', 1.0)}) |",
        f"| architecture | {config.get('arch')} |",
        f"| latent size | {config.get('latent_dim')} |",
        f"| input shape | {config.get('input_shape')} |",
        f"| data | {config.get('dataset')} |",
    ]
    if train:
        lines += [f"| epochs | {train.get('epochs')} (max steps: {train.get('max_steps')}) |",
                  f"| batch size / lr / seed | {train.get('batch_size')} / {train.get('lr')} / {train.get('seed')} |"]
    if metrics:
        lines += ["", "## Test metrics", "", "| metric | value |", "| --- | --- |"]
        for k, v in metrics.items():
            if isinstance(v, int | float):
                lines.append(f"| {k} | {v:.4g} |")
    lines += ["", "## Use", "", "```python", "import vaecore", "model = vaecore.load(\"<this folder or repo id>\")",
              "images = model.sample(16)", "```", ""]
    if extra:
        lines += [extra, ""]
    atomic_write_bytes(folder / "README.md", "\n".join(lines).encode())


def publish(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Push a model folder (weights, config, card, traces, eval) to a Hub model repo; returns its URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    load_folder(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                      allow_patterns=["*.json", "*.jsonl", "*.safetensors", "*.md", "*.png"],
                      ignore_patterns=["checkpoint.safetensors"],
                      commit_message=f"Upload {folder.name} with vaecore")
    return f"https://huggingface.co/{repo_id}"
