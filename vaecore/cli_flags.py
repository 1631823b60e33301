"""The CLI's setting flags, generated from the config dataclasses (`vaecore.config.Meta`).

Every field whose Meta has `cli` becomes a flag: `--name-with-dashes` (or the flag Meta names),
its value parsed by the field's type and checked by the field's own range, so `--seed -1` and
`TrainConfig(seed=-1)` fail with the same message. Booleans get `--x / --no-x`; list settings
take comma-separated values; optional ones accept `none`. Every flag defaults to None (not
given), so a preset's own defaults apply. Model settings are flags of the union of the family
configs: each family takes only its own, and a flag its family lacks is one error line naming
the families that take it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from vaecore.components.likelihoods import LIKELIHOODS
from vaecore.components.nets import ARCHITECTURES
from vaecore.config import ModelConfig, check_value, meta_of, type_hints
from vaecore.models.base import MODEL_TYPES
from vaecore.samplers import SAMPLERS

NONE_WORDS = ("none", "null")
# the names an open setting takes, from the registries that own them (listed in its help)
REGISTRY_NAMES: dict[str, Callable[[], Iterable[str]]] = {"likelihood": lambda: LIKELIHOODS,
                                                         "arch": lambda: ARCHITECTURES, "sampler": lambda: SAMPLERS}
__all__ = ["add_flags", "add_model_flags", "flag_of", "given", "given_model", "model_settings",
           "refuse_unknown_to_family", "takers", "train_command"]


def flag_of(cls: type, name: str) -> str | None:
    """The CLI flag of a config field, or None when it has none."""
    cli = meta_of(cls, name).cli
    if not cli:
        return None
    return cli if isinstance(cli, str) else "--" + name.replace("_", "-")


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def value_parser(cls: type, name: str) -> Callable[[str], Any]:
    """argparse `type` of a field: the text as the field's type, checked by the field's own checks."""
    hint, optional = _base_type(type_hints(cls)[name])

    def parse(text: str) -> Any:
        if optional and text.strip().lower() in NONE_WORDS:
            return None
        try:
            if hint is int:
                value: Any = int(text)
            elif hint is float:
                value = float(text)
            elif typing.get_origin(hint) is list:
                item = (typing.get_args(hint) or (str,))[0]
                value = [item(v.strip()) for v in text.split(",") if v.strip()]
            else:
                value = text
        except ValueError:
            kind = "a whole number" if hint is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        try:
            return check_value(cls, name, value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = name  # argparse names the type in its own messages
    return parse


def _add(parser: Any, cls: type, name: str, help_text: str) -> None:
    meta = meta_of(cls, name)
    flags = [flag_of(cls, name)] + ([meta.short] if meta.short else [])
    hint, _ = _base_type(type_hints(cls)[name])
    if hint is bool:
        parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        return
    choices = meta.choices if meta.choices is not None and typing.get_origin(hint) is not list else None
    parser.add_argument(*flags, dest=name, type=value_parser(cls, name), default=None, metavar=meta.metavar
                        or ("{" + ",".join(map(str, choices)) + "}" if choices else None), help=help_text)


def _help(cls: type, name: str) -> str:
    meta = meta_of(cls, name)
    names = REGISTRY_NAMES.get(name)
    return meta.help + (f" ({' | '.join(names())})" if names else "")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def add_flags(parser: Any, cls: type, names: Iterable[str] | None = None,
              defaults: dict[str, Any] | None = None) -> None:
    """A flag for each field of `cls` with CLI metadata (only `names`, when given); the help shows the field's
    default, or the command's own from `defaults`."""
    wanted = set(names) if names is not None else None
    for f in dataclasses.fields(cls):
        if flag_of(cls, f.name) and (wanted is None or f.name in wanted):
            default = (defaults or {}).get(f.name, _default(f))
            shown = f" (default {_shown(default)})" if default not in (None, [], "") else ""
            _add(parser, cls, f.name, _help(cls, f.name) + shown)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The values of `cls`'s flags given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if flag_of(cls, f.name) and getattr(args, f.name, None) is not None}


# model settings: the union of the family configs ---------------------------------------------------
def model_settings() -> dict[str, list[str]]:
    """Each model setting with a flag, and the families (model types) whose config has it."""
    out: dict[str, list[str]] = {}
    for model_type, family in MODEL_TYPES.items():
        for f in dataclasses.fields(family.config_class):
            if flag_of(family.config_class, f.name):
                out.setdefault(f.name, []).append(model_type)
    return out


def takers(name: str) -> list[str]:
    """The families (model types) whose config has the setting `name`."""
    return [t for t, family in MODEL_TYPES.items() if name in {f.name for f in dataclasses.fields(family.config_class)}]


def given_model(args: argparse.Namespace) -> dict[str, Any]:
    """The values of the model-setting flags given on the command line."""
    return {name: getattr(args, name) for name in model_settings() if getattr(args, name, None) is not None}


def add_model_flags(parser: Any) -> None:
    """One flag per model setting; its help says what it is in each family that takes it."""
    for name, families in model_settings().items():
        by_help: dict[str, list[str]] = {}
        for t in families:
            by_help.setdefault(_help(MODEL_TYPES[t].config_class, name) or name, []).append(t)
        cls = MODEL_TYPES[families[0]].config_class
        text = "; ".join(h if len(by_help) == 1 and len(families) == len(MODEL_TYPES) else f"{h} [{', '.join(ts)}]"
                         for h, ts in by_help.items())
        _add(parser, cls, name, text)


def refuse_unknown_to_family(preset: str, model_type: str, settings: Iterable[str],
                             flag: Callable[[str], str]) -> None:
    """ValueError for the first model setting the family lacks, naming the families that take it."""
    have = {f.name for f in dataclasses.fields(MODEL_TYPES[model_type].config_class)}
    for name in settings:
        if name not in have:
            others = takers(name)
            own = sorted(have - set(ModelConfig.__dataclass_fields__))
            where = (f"the families that take it: {', '.join(others)}" if others
                     else f"no family has it; {model_type}'s own settings: {', '.join(own) or 'none'}")
            raise ValueError(f"{flag(name)}: model {preset!r} ({model_type}) has no setting {name!r}; {where}")


# the command that reproduces a run ------------------------------------------------------------------
def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def train_command(preset: str, train: dict[str, Any], overrides: dict[str, Any] | None = None,
                  out: str = "runs/my-run") -> tuple[str, list[str]]:
    """`python -m vaecore train …` that trains what `preset`, the training settings `train` (a TrainConfig's
    fields) and the model `overrides` describe: a flag for each setting that differs from the preset's own
    default, model settings without a flag as `--set key=JSON`. Returns the command and the training settings it
    cannot state (no flag): pass those with `--settings FILE` instead."""
    import json
    import shlex

    from vaecore.config import TrainConfig
    from vaecore.presets import train_config

    wanted = TrainConfig.from_dict(dict(train)).to_dict()
    base = train_config(preset).to_dict()
    parts = ["python", "-m", "vaecore", "train", "--model", preset]
    missing = []
    for f in dataclasses.fields(TrainConfig):
        value = wanted[f.name]
        if value == base[f.name]:
            continue
        flag = flag_of(TrainConfig, f.name)
        if flag is None:
            missing.append(f.name)
        elif isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag.removeprefix("--"))
        else:
            parts += [flag, _as_text(value)]
    flagged = model_settings()
    for name, value in (overrides or {}).items():
        cls = MODEL_TYPES[takers(name)[0]].config_class if name in flagged else None
        if cls is not None and flag_of(cls, name) and not isinstance(value, dict):
            parts += [flag_of(cls, name), _as_text(value)]
        elif name == "likelihood_kwargs" and isinstance(value, dict):
            parts += [a for k, v in value.items() for a in ("--set", f"likelihood_kwargs.{k}={json.dumps(v)}")]
        else:
            parts += ["--set", f"{name}={json.dumps(value)}"]
    parts += ["--out", out]
    return shlex.join(parts), missing
