"""The training page's settings widgets, generated from the config fields (`vaecore.config.Meta`).

A training setting appears in the section its Meta names (`app`: "main", "advanced", "data"), with its
label, help and range. A model setting (`app="model"`) appears only for a preset whose family's config
has the field, labelled as that family declares it (β is the KL weight of a VAE, the commitment weight
of a VQ-VAE; a WAE has none), and a family's refused likelihoods are not offered.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from vaecore.components.likelihoods import LIKELIHOODS
from vaecore.config import ModelConfig, TrainConfig, meta_of, type_hints
from vaecore.models.base import MODEL_TYPES
from vaecore.presets import get_preset

PRESET_DEFAULT = "(preset default)"
KEY = "tm_"


def section(cls: type, app: str) -> list[str]:
    """The fields of `cls` the page shows in section `app`, in declaration order."""
    return [f.name for f in dataclasses.fields(cls) if meta_of(cls, f.name).app == app]


def family_of(preset: str) -> type:
    """The model class of a preset's family."""
    return MODEL_TYPES[get_preset(preset).config.get("model_type", "vae")]


def model_settings(preset: str) -> list[str]:
    """The model settings the page offers for a preset: its family's fields with app metadata."""
    return section(family_of(preset).config_class, "model")


def key_of(cls: type, name: str) -> str:
    """Widget key: shared model settings keep their value across families, a family's own setting is keyed by the
    family (a VAE's β never becomes a VQ-VAE's commitment weight)."""
    if issubclass(cls, ModelConfig) and name not in ModelConfig.__dataclass_fields__:
        return f"{KEY}{cls.__dataclass_fields__['model_type'].default}_{name}"
    return KEY + name


def _scalar(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def setting_input(where: Any, cls: type, name: str, value: Any, *, choices: Sequence[Any] | None = None,
                  placeholder: str | None = None) -> Any:
    """One widget for setting `name` of `cls`, as its Meta describes it; returns the value entered. `value`
    None with a `placeholder` leaves a model setting at the preset's default (returned as None)."""
    meta = meta_of(cls, name)
    hint, optional = _scalar(type_hints(cls)[name])
    label = meta.label or name.replace("_", " ")
    common = {"key": key_of(cls, name), "help": meta.help or None, "persist_state": "session"}
    choices = list(choices if choices is not None else meta.choices or ())
    if choices and optional and meta.none is not None and placeholder is None:  # None offered as meta.none says
        options = [None, *choices]
        return where.selectbox(label, options, index=options.index(value) if value in options else 0,
                               format_func=lambda v: meta.none if v is None else str(v), **common)
    if choices:
        if placeholder is not None:
            picked = where.selectbox(label, [PRESET_DEFAULT, *choices], **common)
            return None if picked == PRESET_DEFAULT else picked
        return where.selectbox(label, choices, index=choices.index(value) if value in choices else 0, **common)
    if meta.options:
        return where.select_slider(label, list(meta.options), value=value, **common)
    if hint is bool:
        return where.checkbox(label, value=bool(value), **common)
    if hint in (int, float):
        lo = meta.app_lo if meta.app_lo is not None else meta.lo
        hi = meta.app_hi if meta.app_hi is not None else meta.hi
        none_as_zero = optional and meta.none is not None
        if none_as_zero:
            label, lo, value = f"{label} (0 = {meta.none})", 0, value or 0
        number = int if hint is int else float
        entered = where.number_input(
            label, None if lo is None else number(lo), None if hi is None else number(hi), value=value,
            placeholder=placeholder, format=meta.fmt or (None if hint is int else "%.4g"),
            step=1 if hint is int else None, **common)
        if entered is None:
            return None
        entered = number(entered)
        return None if none_as_zero and entered == 0 else entered
    return where.text_input(label, value="" if value is None else str(value), **common) or None


def train_inputs(columns: Sequence[Any], app: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings of section `app`, one widget each, laid out over `columns` in turn; `defaults`
    are the page's starting values (else the TrainConfig defaults)."""
    base = TrainConfig()
    out = {}
    for i, name in enumerate(section(TrainConfig, app)):
        out[name] = setting_input(columns[i % len(columns)], TrainConfig, name, defaults.get(name, getattr(base, name)))
    return out


def model_inputs(columns: Sequence[Any], preset: str) -> dict[str, Any]:
    """The model settings a preset's family has, each starting at the preset's default; returns the ones the user
    set (the overrides)."""
    family = family_of(preset)
    cls = family.config_class
    defaults = dataclasses.asdict(cls.from_dict(dict(get_preset(preset).config)))
    refused = getattr(family, "refused_likelihoods", {}) or {}
    out = {}
    for i, name in enumerate(model_settings(preset)):
        choices = [n for n in LIKELIHOODS if n not in refused] if name == "likelihood" else None
        value = setting_input(columns[i % len(columns)], cls, name, None, choices=choices,
                              placeholder=str(defaults[name]))
        if value is not None:
            out[name] = value
    return out
