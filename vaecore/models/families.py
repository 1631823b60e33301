"""What the engine says about each family, for cards, tables and the app: its title, what the model is, its
tags, and the group (section of the zoo) a model of it is shown in.

Each family class declares `title`, `what`, `tags` and `group` (class attributes, `models/base.py`); the
groups and their titles live here, in display order. The plain VAE is grouped by its decoder likelihood
(`group = BY_LIKELIHOOD`, the likelihood class names its group), and a preset may file itself elsewhere
(the T-VAE paper's VAE baselines sit with the T-VAE). Readers call `card_group(config)` and
`family_title(model_type)`; nobody guesses a family from a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaecore.components.likelihoods import LIKELIHOODS
from vaecore.models.base import MODEL_TYPES
from vaecore.presets import PRESETS

BY_LIKELIHOOD = "by-likelihood"
"""A family's `group` when its models are grouped by their decoder likelihood (the plain VAE)."""


@dataclass(frozen=True)
class FamilyGroup:
    """A section of the zoo: its key and its title."""

    key: str
    title: str


GROUPS: dict[str, FamilyGroup] = {}
"""Every group by key, in display order."""


def _group(key: str, title: str) -> None:
    GROUPS[key] = FamilyGroup(key, title)


_group("vae-gaussian", "VAE · Gaussian decoder (σ-VAE, β-VAE, fixed and learned σ)")
_group("vae-arelbo", "VAE · AR-ELBO (σx² set to its MLE)")
_group("vae-discrete", "VAE · discrete 8-bit likelihoods")
_group("vae-bernoulli", "VAE · Bernoulli decoder (binarised pixels, no density of 8-bit images)")
_group("vae-beta", "VAE · Beta likelihood")
_group("importance-weighted", "Importance-weighted bounds")
_group("richer-posteriors", "Richer posteriors: flows and Hamiltonian dynamics")
_group("disentangling", "Disentangling the latent dimensions")
_group("aggregate-matching", "Matching the aggregate posterior to the prior")
_group("deterministic", "Autoencoders without a posterior")
_group("non-euclidean", "Non-Euclidean latent spaces")
_group("quantised", "Quantised (discrete) latents")
_group("perceptual", "Other reconstruction terms")
_group("tvae", "T-VAE and its baselines")


def _get(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)


def family_class(model_type: str) -> type:
    """The registered class of a family; a ValueError naming the known ones otherwise."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[model_type]


def family_title(model_type: str) -> str:
    """The display name of a family, e.g. 'VQ-VAE' for 'vqvae' (its model_type if it declares none)."""
    return family_class(model_type).title or model_type


def card_group(config: Mapping[str, Any] | Any) -> FamilyGroup:
    """The group a model (its config, as a dict or a config object) is shown in: its preset's group if the preset
    names one, else its family's, the plain VAE's by its likelihood."""
    preset = PRESETS.get(str(_get(config, "preset") or ""))
    if preset is not None and preset.group:
        return GROUPS[preset.group]
    cls = family_class(str(_get(config, "model_type") or "vae"))
    key = cls.group
    if not key:
        raise ValueError(f"the {cls.__name__} family declares no zoo group")
    if key == BY_LIKELIHOOD:
        name = str(_get(config, "likelihood") or "")
        if name not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {name!r} in a {cls.title} config")
        key = f"vae-{LIKELIHOODS[name][0].group}"
    return GROUPS[key]


def group_members(key: str) -> list[str]:
    """The titles of the families filed under a group by their class (not by likelihood or preset)."""
    return [cls.title for cls in MODEL_TYPES.values() if cls.group == key]


def group_heading(key: str) -> str:
    """A group's title with the families in it, e.g. 'Importance-weighted bounds (IWAE, MIWAE, PIWAE, CIWAE)'."""
    members = group_members(key)
    return f"{GROUPS[key].title} ({', '.join(members)})" if members else GROUPS[key].title
