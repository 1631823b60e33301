"""The dataset format registry: a format is one module that calls `register_format` at import.

A `Format` names a loader `load(LoadRequest) -> Dataset`, says what it reads (description, whether it
needs `--data-dir`), and carries the model defaults the papers use on that data (architecture,
latent size, likelihood), which the CLI and the app apply when the user does not choose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaecore.data.preprocess import Preprocess

__all__ = ["FORMATS", "Format", "LoadRequest", "model_defaults", "register_format", "resolve_format"]


@dataclass(frozen=True)
class LoadRequest:
    """What `load_dataset` was asked for, resolved: the name as given, the folder or file, the options."""

    key: str
    data_dir: str | None
    path: Path | None = None
    limit: int | None = None
    seed: int = 0
    preprocess: Preprocess = field(default_factory=Preprocess)
    progress: Any = True
    recorded_name: str = ""
    recorded_dir: str | None = None

    def folder(self, fmt: str, hint: str) -> Path:
        """The data folder (or file) of a format that needs one; FileNotFoundError saying what to pass."""
        if self.data_dir is None:
            raise FileNotFoundError(f"dataset {fmt!r} needs --data-dir pointing at {hint}")
        path = Path(self.data_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data folder not found: {path}; pass --data-dir pointing at {hint}")
        return path


@dataclass(frozen=True)
class Format:
    """One dataset format: its name, a one-line description, its loader and the papers' model defaults."""

    name: str
    description: str
    load: Callable[[LoadRequest], Any]
    aliases: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)


FORMATS: dict[str, Format] = {}
_ALIASES: dict[str, str] = {}


def register_format(name: str, description: str, load: Callable[[LoadRequest], Any], *,
                    aliases: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> Format:
    """Register a dataset format under `name` (and `aliases`); returns it."""
    if "\n" in description:
        raise ValueError("a format description is one line")
    fmt = Format(name, description, load, aliases, dict(defaults or {}))
    FORMATS[name] = fmt
    for alias in aliases:
        _ALIASES[alias] = name
    return fmt


def resolve_format(key: str, data_dir: str | None) -> tuple[Format, LoadRequest]:
    """The format a dataset name means (a registered name or alias, a .npz/.npy path, hf://owner/name)."""
    low = key.lower()
    low = _ALIASES.get(low, low)
    folder = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    if low.startswith("hf://"):
        return FORMATS["hf"], LoadRequest(key, data_dir, recorded_name=key, recorded_dir=folder)
    if low.endswith((".npz", ".npy")):
        path = Path(key).expanduser()
        if data_dir is not None and not path.is_absolute() and not path.exists():
            path = Path(data_dir).expanduser() / path
        return FORMATS["array"], LoadRequest(key, None, path=path, recorded_name=str(path.resolve()),
                                             recorded_dir=folder)
    if low not in FORMATS or low == "hf":
        names = [n for n in FORMATS if n != "hf"]
        raise ValueError(f"unknown dataset {key!r}; valid names: {', '.join(names)} "
                         "(or a path ending in .npz/.npy, or hf://owner/name)")
    return FORMATS[low], LoadRequest(key, data_dir, recorded_name=low, recorded_dir=folder)


def model_defaults(data: str, fixed: dict[str, Any]) -> dict[str, Any]:
    """The papers' model settings for dataset `data` (architecture, latent size) that `fixed` (the preset's
    fields and the user's choices) leaves open; {} for data without defaults or an unknown name."""
    name = _ALIASES.get(str(data).lower(), str(data).lower())
    fmt = FORMATS.get(name)
    return {} if fmt is None else {k: v for k, v in fmt.defaults.items() if fixed.get(k) is None}
