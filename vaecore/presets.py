"""The preset registry: each model of the papers is a named entry, a family config plus training defaults.

Family modules (vaecore/models/*.py) register their presets beside their class with
`register_preset`; `import vaecore` imports every family, so the registry is complete whatever
the import order. `build_model` is the one place that turns "preset + overrides + data" into a model
for the CLI, the Python API and the app.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vaecore.config import ModelConfig, TrainConfig
from vaecore.data.datasets import Dataset
from vaecore.models.base import MODEL_TYPES, Capabilities, PretrainedModel, check_model_size
from vaecore.utils import seed_everything


@dataclass(frozen=True)
class Preset:
    """A named model: one line of description, the model config and training defaults."""

    name: str
    description: str
    config: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    group: str = ""  # the zoo group it is shown in when not its family's (models.families.GROUPS)
    alias_of: str = ""  # another preset with the same configuration: the same model under another paper's name


PRESETS: dict[str, Preset] = {}


def register_preset(name: str, description: str, source: str = "", train: dict[str, Any] | None = None,
                    group: str = "", alias_of: str = "", **config: Any) -> Preset:
    """Add a preset to the registry (each family module registers its own); `group` files it under another
    group of the zoo than its family's (the T-VAE paper's VAE baselines sit with the T-VAE); `alias_of` declares it
    the same model as an earlier preset (ValueError unless the two configurations and training settings are equal
    but for the name)."""
    if alias_of:
        other = get_preset(alias_of)
        if {**other.config, "preset": name} != {"preset": name, **config} or dict(train or {}) != other.train:
            raise ValueError(f"preset {name!r} is declared an alias of {alias_of!r} but its settings differ")
    preset = Preset(name, description, {"preset": name, **config}, dict(train or {}), source, group, alias_of)
    PRESETS[name] = preset
    return preset


def list_presets() -> list[Preset]:
    """All presets in registration order."""
    return list(PRESETS.values())


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a KeyError listing the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(PRESETS)} "
                       "(see `python -m vaecore list-models`)")
    return PRESETS[name]


def config_class(model_type: str) -> type[ModelConfig]:
    """The config dataclass of a family."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[model_type].config_class


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The family config of a preset with overrides applied (unknown or invalid settings raise ValueError).

    A new `likelihood` starts from that likelihood's defaults; `likelihood_kwargs` add to them.
    """
    preset = get_preset(name)
    kind = preset.config.get("model_type", "vae")
    if overrides.get("model_type", kind) != kind:
        raise ValueError(f"model_type is fixed by the preset ({name!r} is a {kind!r} model); "
                         "pick another preset instead of overriding model_type")
    overrides.pop("model_type", None)
    cls = config_class(kind)
    base = cls.from_dict(dict(preset.config))
    new_kwargs = overrides.pop("likelihood_kwargs", {}) or {}
    changed = "likelihood" in overrides and overrides["likelihood"] != base.likelihood
    kwargs = {} if changed else dict(base.likelihood_kwargs)
    kwargs.update(new_kwargs)
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for model {name!r} ({kind}); "
                         f"valid: {sorted(valid - {'model_type'})}")
    return base.replace(likelihood_kwargs=kwargs, **overrides)


def train_config(name: str, **overrides: Any) -> TrainConfig:
    """The preset's training defaults (e.g. VAE+ augmentation) with overrides applied."""
    values = {**get_preset(name).train, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(values)


def build_model(config: ModelConfig | dict[str, Any], seed: int | None = None) -> PretrainedModel:
    """Instantiate the family class that the config's `model_type` names (a dict, e.g. a config.json, is read
    into the family's config first); `seed` fixes its initial weights."""
    if not isinstance(config, ModelConfig):
        if not isinstance(config, dict):
            raise ValueError(f"a model config must be a ModelConfig or a dict, got {type(config).__name__}")
        config = config_class(config.get("model_type", "vae")).from_dict(dict(config))
    check_model_size(MODEL_TYPES[config.model_type], config, f"model {config.preset!r}")
    if seed is not None:
        seed_everything(seed)
    return MODEL_TYPES[config.model_type](config)


def capabilities_of(config: ModelConfig | dict[str, Any]) -> Capabilities:
    """What a model of this config can do (`PretrainedModel.capabilities`: ELBO, prior samples, latent shape and
    kinds) without weights or memory: the model is built on PyTorch's meta device. A table of many models reads
    their facts this way instead of loading each."""
    import torch

    with torch.device("meta"):
        return build_model(config).capabilities


def build_preset(name: str, *, data: Dataset | None = None, input_shape: tuple[int, int, int] | None = None,
                 dataset: str | None = None, seed: int | None = None, **overrides: Any) -> PretrainedModel:
    """Preset + overrides + data → an initialised model: the one path of the CLI, `vaecore.train` and the app.

    `data` gives the input shape and the dataset's name (an `input_shape` that disagrees with its images is a
    ValueError); without it, `input_shape` and `dataset` say them. Where neither the preset nor the overrides
    choose the network or the latent size, the papers' choices for the data apply (`model_defaults`: e.g. the
    σ-VAE's wide convs on CIFAR, the disentanglement net with 10 latents on dSprites).
    """
    if data is not None:
        if input_shape is not None and tuple(input_shape) != tuple(data.shape):
            raise ValueError(f"input_shape {list(input_shape)} does not match the data's images {list(data.shape)}; "
                             "the data sets the input shape, so leave input_shape out")
        input_shape, dataset = data.shape, dataset or data.name
        from vaecore.data.formats import model_defaults

        overrides = {**model_defaults(data.name, {**get_preset(name).config, **overrides}), **overrides}
    if input_shape is not None:
        overrides["input_shape"] = tuple(input_shape)
    if dataset is not None:
        overrides["dataset"] = dataset
    return build_model(model_config(name, **overrides), seed=seed)
