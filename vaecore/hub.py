"""Finding and loading models: run folders, bundled checkpoints, and Hugging Face Hub repos.

`load(x)` accepts a folder holding `config.json` + `model.safetensors`, the name of a bundled
checkpoint under `checkpoints/`, or a Hub repo id `owner/name` (resolved through the normal hub
cache, so it works offline with HF_HUB_OFFLINE=1 once cached). Weights are read with
safetensors and configs with JSON: nothing a user or the Hub provides is ever unpickled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from vaecore import limits
from vaecore.files import CHECKPOINT, CONFIG, WEIGHTS
from vaecore.models.base import MODEL_TYPES, PretrainedModel, check_model_size, register_loader
from vaecore.models.legacy import upgrade_config
from vaecore.utils import PROJECT_ROOT, read_json, shown_name

CHECKPOINTS_DIR = PROJECT_ROOT / "checkpoints"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DOWNLOADED = ("*.json", "*.safetensors", "*.md", "*.jsonl", "*.png")  # the files of a Hub repo that vaecore reads


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
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file() and (p / WEIGHTS).is_file())


def _alias_of(name: str) -> str:
    """The preset a preset is an alias of ('' for none or an unknown name)."""
    from vaecore.presets import PRESETS

    preset = PRESETS.get(name)
    return preset.alias_of if preset is not None else ""


def resolve(name_or_path: str | Path) -> Path:
    """The local folder for a path, a bundled name or a Hub repo id (downloading through the cache)."""
    s = str(name_or_path)
    try:
        path = Path(s).expanduser()
        if path.is_dir():
            return path
        path.exists()
    except (OSError, ValueError, RuntimeError) as e:  # too long a name, a NUL byte, '~nosuchuser'
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ModelLoadError(f"no model called {shown_name(s)!r}: it cannot name a folder ({why})") from None
    if s and (checkpoints_dir() / s).is_dir():
        return checkpoints_dir() / s
    alias = _alias_of(s)
    if alias and (checkpoints_dir() / alias).is_dir():  # a preset declared the same model as a bundled one
        return checkpoints_dir() / alias
    if path.exists():
        raise ModelLoadError(f"{s} is a file, not a model folder: pass the folder that holds {CONFIG} "
                             f"and {WEIGHTS}")
    looks_local = s.startswith((".", "/", "~")) or (len(path.parts) > 1 and Path(path.parts[0]).is_dir())
    if REPO_ID.match(s) and not looks_local:
        return download(s)
    names = bundled_names()
    shown = ", ".join(names[:5]) + (f", … ({len(names)} in all; see `python -m vaecore list-bundled`)"
                                    if len(names) > 5 else "") if names else "none"
    if looks_local:
        raise ModelLoadError(f"no folder {shown_name(s)!r} (looked in {shown_name(str(path.resolve()))}): "
                             "check the path")
    raise ModelLoadError(f"no model called {shown_name(s)!r}: not a folder, not a bundled checkpoint (bundled: "
                         f"{shown}) and not a Hub repo id of the form 'owner/name'")


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | Path | None = None,
             token: str | bool | None = None, local_files_only: bool = False, force_download: bool = False) -> Path:
    """The local snapshot of a Hub model repo (JSON, safetensors, cards and images only), through the hub cache;
    offline with HF_HUB_OFFLINE=1. ModelLoadError when it cannot be had."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if not isinstance(repo_id, str) or not REPO_ID.match(repo_id):
        raise ModelLoadError(f"{repo_id!r} is neither a local folder nor a Hub repo id of the form 'owner/name'")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")
    unlisted: Exception | None = None  # why the Hub could not list the repo
    if not (offline or local_files_only):  # sized before anything is downloaded, at the revision checked
        try:
            revision = check_download_size(repo_id, revision, token)
        except limits.LimitError:
            raise
        except Exception as e:  # noqa: BLE001 - no listing (no network, no such repo): the local cache only
            unlisted = e
    try:
        return Path(snapshot_download(repo_id, revision=revision,
                                      cache_dir=cache_dir or os.environ.get("HF_HUB_CACHE") or None,
                                      local_files_only=offline or local_files_only or unlisted is not None,
                                      token=token,
                                      force_download=force_download, allow_patterns=list(DOWNLOADED)))
    except HFValidationError as e:
        raise ModelLoadError(f"{repo_id!r} is neither a local folder nor a valid Hub repo id ({e})") from e
    except (LocalEntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError) as e:
        cause = unlisted if unlisted is not None and isinstance(e, LocalEntryNotFoundError) else e
        raise ModelLoadError(f"could not load Hub repo {repo_id!r}: {_hub_failure(cause, offline)}") from e


def _hub_failure(e: Exception, offline: bool) -> str:
    """Why a Hub download failed, telling 'offline' from 'no such repo' from other HTTP answers."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if offline:
        return ("it is not in the local hub cache and HF_HUB_OFFLINE is set (offline mode). Download it once while "
                "online, or pick a local folder.")
    if isinstance(e, GatedRepoError):
        return "the repo is gated: accept its terms on the Hub and set HF_TOKEN."
    if isinstance(e, RepositoryNotFoundError):
        return ("the Hub has no such repo (or it is private: set HF_TOKEN). Check the id, owner/name as on "
                "huggingface.co.")
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, HfHubHTTPError) and status:
        return f"the Hub answered HTTP {status}. Try again later, or pick a local folder."
    return ("the Hugging Face Hub could not be reached (offline, or no network from this server) and the repo is not "
            f"in the local hub cache ({type(e).__name__}). Download it once while online, or pick a local folder.")


def check_download_size(repo_id: str, revision: str | None = None, token: str | bool | None = None) -> str:
    """The commit of `repo_id` at `revision` whose files vaecore would download (`DOWNLOADED`), once their number
    and total size, listed by the Hub, are within `limits.DOWNLOAD_FILES` and `limits.DOWNLOAD_MB` (a LimitError
    naming the repo otherwise); downloading that commit then fetches exactly the files checked."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True, token=token)
    files = list(filter_repo_objects(info.siblings or [], allow_patterns=list(DOWNLOADED), key=lambda s: s.rfilename))
    limits.DOWNLOAD_FILES.check(len(files), f"Hub repo {repo_id!r}: the files to download")
    size = sum(int(s.size or 0) for s in files)
    limits.DOWNLOAD_MB.check(-(-size // limits.MIB), f"Hub repo {repo_id!r}: the size of its files")
    return info.sha or revision or "main"


def read_config(folder: str | Path) -> dict[str, Any]:
    """A model folder's config.json as a family config dict (configs of earlier versions upgraded)."""
    cfg_path = Path(folder) / CONFIG
    if not cfg_path.is_file():
        raise ModelLoadError(f"{cfg_path} is missing: a model folder needs {CONFIG} and {WEIGHTS}")
    try:
        config = read_json(cfg_path)
    except UnicodeDecodeError as e:
        raise ModelLoadError(f"{cfg_path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                             "save it as UTF-8 JSON") from e
    except (ValueError, OSError) as e:
        raise ModelLoadError(str(e)) from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{cfg_path} must hold a JSON object, got {type(config).__name__}")
    for key in ("model_type", "regulariser"):
        if key in config and not isinstance(config[key], str):
            raise ModelLoadError(f"{cfg_path}: {key} must be a string naming a family (one of "
                                 f"{sorted(MODEL_TYPES)}), got a {type(config[key]).__name__}")
    try:
        return upgrade_config(config)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelLoadError(f"{cfg_path}: {e}") from e


def _read_weights(model: PretrainedModel, weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of `weights` checked against the model its config builds: names, shapes and dtypes from
    the safetensors header before any tensor is read, then finiteness."""
    from safetensors import safe_open

    expected = model.state_dict()
    try:
        with safe_open(str(weights), "pt") as f:
            names = set(f.keys())
            missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
            if missing or unexpected:
                raise ModelLoadError(f"{weights} does not match its {CONFIG}: missing {missing[:4]}, unexpected "
                                     f"{unexpected[:4]} (were the files copied from different models?)")
            for name, want in expected.items():
                shape = tuple(f.get_slice(name).get_shape())
                if shape != tuple(want.shape):
                    raise ModelLoadError(f"{weights} does not match its {CONFIG}: {name} has shape {shape}, "
                                         f"the config builds {tuple(want.shape)} (were the files copied from "
                                         "different models?)")
            state = {name: f.get_tensor(name) for name in expected}
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{weights} is corrupt or truncated ({e}); re-download or re-train it") from e
    for name, want in expected.items():
        got = state[name]
        if got.dtype != want.dtype and not (got.is_floating_point() and want.is_floating_point()):
            raise ModelLoadError(f"{weights}: {name} is {got.dtype}, expected {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelLoadError(f"{weights}: {name} holds NaN or infinite values; the model diverged or the "
                                 "file is damaged: use an earlier checkpoint")
    return state


def _device(device: str | torch.device | None) -> torch.device | None:
    from vaecore.utils import default_device

    if device is None:
        return None
    try:
        return default_device(str(device))
    except ValueError as e:
        raise ModelLoadError(f"device {device!r}: {e}") from e


def load_folder(folder: str | Path, device: str | torch.device | None = None) -> PretrainedModel:
    """Load a model folder strictly; errors name the file and what is wrong. The config's sizes are checked
    (`vaecore.limits`) and the model's parameters counted before any weight is allocated."""
    folder = Path(folder)
    target = _device(device)
    config = read_config(folder)
    cfg_path, weights = folder / CONFIG, folder / WEIGHTS
    if not weights.is_file():
        raise ModelLoadError(f"{weights} is missing: a model folder needs {CONFIG} and {WEIGHTS}")
    kind = config.get("model_type")
    if kind not in MODEL_TYPES:
        raise ModelLoadError(f"{cfg_path}: model_type {kind!r} is not one of {sorted(MODEL_TYPES)}")
    try:
        check_model_size(MODEL_TYPES[kind], config, str(cfg_path))
        model = MODEL_TYPES[kind](config)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelLoadError(f"{cfg_path} is not a valid {kind} config: {e}") from e
    state = _read_weights(model, weights)
    model.load_state_dict(state, strict=True)
    model.eval()
    if target is not None:
        model.to(target)
    return model


def load(name_or_path: str | Path, device: str | None = None) -> PretrainedModel:
    """Load a model from a folder, a bundled checkpoint name, or a Hub repo id; in eval mode."""
    return load_folder(resolve(name_or_path), device)


def publish(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Push a model folder (weights, config, card, traces, eval) to a Hub model repo; returns its URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    load_folder(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                      allow_patterns=["*.json", "*.jsonl", "*.safetensors", "*.md", "*.png"],
                      ignore_patterns=[CHECKPOINT],
                      commit_message=f"Upload {folder.name} with vaecore")
    return f"https://huggingface.co/{repo_id}"


register_loader(download, load_folder, ModelLoadError)
