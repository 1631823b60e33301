"""What the dSprites disentanglement study compares: its five families with their settings, and how tables and
cards title them. Read by the study's runner (disentanglement.py) and its table (disentanglement_table.py)."""

from __future__ import annotations

from typing import Any

import vaecore
from vaecore.models.families import family_title

FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "vae": ("bernoulli-vae", {}),
    "beta-vae": ("bernoulli-vae", {"beta": 4.0}),
    "beta-tc-vae": ("beta-tc-vae", {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "estimator": "mws"}),
    "factor-vae": ("factor-vae", {"gamma": 35.0}),
    "disentangled-beta-vae": ("disentangled-beta-vae", {"beta": 1000.0, "capacity": 25.0}),
}
LABELS = {"vae": "", "beta-vae": "β = 4", "beta-tc-vae": "β = 6", "factor-vae": "γ = 35",
          "disentangled-beta-vae": "γ = 1000, C → 25"}
"""Each family's settings as the tables and cards show them after its title."""


def title(family: str) -> str:
    """A family of the study as tables and cards name it: the engine's family title (β-VAE: the VAE with β = 4)
    and its settings."""
    preset, _ = FAMILIES[family]
    name = "β-VAE" if family == "beta-vae" else family_title(vaecore.model_config(preset).model_type)
    return f"{name} ({LABELS[family]})" if LABELS[family] else name
