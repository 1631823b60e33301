"""Reading configs written before per-family configs: one flat ModelConfig with a `regulariser`.

`upgrade_config` maps such a config.json to its family's config (the weights are unchanged), so
run folders and Hub repos saved by earlier versions still load.
"""

from __future__ import annotations

from typing import Any

_FAMILY = {"kl": "vae", "iwae": "iwae", "none": "ae", "mmd": "wae", "rae": "rae"}
_COMMON = ("model_type", "preset", "input_shape", "latent_dim", "arch", "likelihood", "likelihood_kwargs", "dataset")
_KEEP = {
    "vae": {"beta": "beta", "prior": "prior", "vamp_components": "vamp_components"},
    "iwae": {"beta": "beta", "prior": "prior", "vamp_components": "vamp_components", "iwae_k": "k"},
    "ae": {},
    "wae": {"mmd_kernel": "mmd_kernel", "mmd_weight": "mmd_weight"},
    "rae": {"rae_embedding_weight": "embedding_weight", "rae_penalty": "penalty",
            "rae_penalty_weight": "penalty_weight"},
    "tvae": {"beta": "beta", "mmd_kernel": "mmd_kernel", "mmd_weight": "mmd_weight", "hidden": "hidden",
             "coherence_weight": "coherence_weight", "transform": "transform"},
}


def is_legacy(config: dict[str, Any]) -> bool:
    """A flat config of the first engine (it names a `regulariser`)."""
    return isinstance(config, dict) and "regulariser" in config


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """The family config equivalent to a flat legacy config; other configs are returned unchanged."""
    if not is_legacy(config):
        return config
    reg = config["regulariser"]
    kind = config.get("model_type", "vae")
    if kind == "vae":
        if reg not in _FAMILY:
            raise ValueError(f"unknown regulariser {reg!r} in a legacy config; known: {sorted(_FAMILY)}")
        kind = _FAMILY[reg]
    if kind not in _KEEP:
        raise ValueError(f"cannot upgrade a legacy config of model_type {kind!r}")
    out = {k: config[k] for k in _COMMON if k in config}
    out["model_type"] = kind
    for old, new in _KEEP[kind].items():
        if old in config:
            out[new] = config[old]
    return out
