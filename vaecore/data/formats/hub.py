"""Hugging Face Hub dataset repos (`hf://owner/name[/subfolder]`) holding the four IDX files or one
.npz/.npy, fetched through the hub cache (offline once cached, `HF_HUB_OFFLINE=1`); `--data-dir`
reads a local copy instead."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vaecore.data.datasets import Dataset
from vaecore.data.formats.idx import IDX_FILES, load_idx_folder
from vaecore.data.formats.npz import load_array_file
from vaecore.data.formats.registry import LoadRequest, register_format

_HUB_PATTERNS = ["*-ubyte", "*-ubyte.gz", "*.npz", "*.npy"]
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_hub_name(spec: str) -> tuple[str, str]:
    """`hf://owner/name[/subfolder]` -> (repo_id, subfolder)."""
    parts = spec[len("hf://"):].split("/")
    if len(parts) < 2 or not all(_REPO_PART.fullmatch(p) for p in parts[:2]):
        raise ValueError(f"bad Hub dataset name {spec!r}; expected hf://owner/name (optionally /subfolder)")
    subfolder = "/".join(p for p in parts[2:] if p)
    if ".." in subfolder.split("/"):
        raise ValueError(f"bad Hub dataset name {spec!r}: '..' is not allowed in the subfolder")
    return f"{parts[0]}/{parts[1]}", subfolder


def _hub_cache_dir() -> str | None:
    """The hub cache as the environment says now (huggingface_hub reads it only once, at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.path.expandvars(os.environ[var]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return None


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _load(req: LoadRequest) -> Dataset:
    spec = req.key
    repo_id, subfolder = parse_hub_name(spec)
    if req.data_dir is not None:
        return _load_folder(Path(req.data_dir).expanduser(), spec, req.limit, req.seed)
    from huggingface_hub import snapshot_download

    patterns = [f"{subfolder}/{p}" for p in _HUB_PATTERNS] if subfolder else _HUB_PATTERNS
    try:
        root = snapshot_download(repo_id, repo_type="dataset", cache_dir=_hub_cache_dir(),
                                 local_files_only=_hub_offline(), allow_patterns=patterns)
    except Exception as err:  # the hub raises HTTP, offline, validation and OS errors alike
        raise FileNotFoundError(
            f"could not reach the Hugging Face Hub for {spec!r} and it is not in the local cache "
            f"({type(err).__name__}: {err}); pass a local folder with --data-dir"
        ) from err
    return _load_folder(Path(root) / subfolder, spec, req.limit, req.seed)


def _load_folder(folder: Path, name: str, limit: int | None, seed: int) -> Dataset:
    """Load a folder holding the four IDX files (at any depth) or a single .npz/.npy file."""
    if folder.is_file() and folder.suffix in (".npz", ".npy"):
        return load_array_file(folder, name, limit, seed)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder not found: {folder}; pass --data-dir pointing at an existing folder")
    idx_dirs = sorted({p.parent for p in folder.rglob(f"*{IDX_FILES['train_images']}*") if p.is_file()})
    if len(idx_dirs) == 1:
        return load_idx_folder(idx_dirs[0], name, limit, None)
    arrays = sorted(p for p in folder.rglob("*") if p.suffix in (".npz", ".npy") and p.is_file())
    if not idx_dirs and len(arrays) == 1:
        return load_array_file(arrays[0], name, limit, seed)
    found = [str(p.relative_to(folder)) for p in idx_dirs + arrays]
    if found:
        raise ValueError(f"{folder}: several candidate datasets ({', '.join(found)}); "
                         "name one with hf://owner/name/subfolder or pass its path with --data-dir")
    raise FileNotFoundError(f"{folder}: no IDX files and no .npz/.npy file found")


register_format("hf", "hf://OWNER/NAME: a Hugging Face Hub dataset repo holding the four IDX files or one .npz/.npy",
                _load)
