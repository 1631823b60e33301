"""Named presets: each model of the papers is a registry entry, a `ModelConfig` plus training defaults.

Adding a model means adding an entry here (and, only if it needs a new term, a regulariser or
likelihood); no class is copied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vaecore.config import ModelConfig, TrainConfig


@dataclass(frozen=True)
class Preset:
    """A named model: one line of description, the model config and training defaults."""

    name: str
    description: str
    config: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    source: str = ""


PRESETS: dict[str, Preset] = {}


def register_preset(name: str, description: str, source: str = "", train: dict[str, Any] | None = None,
                    **config: Any) -> Preset:
    """Add a preset to the registry (other modules, e.g. tvae.py, add theirs this way)."""
    preset = Preset(name, description, {"preset": name, **config}, dict(train or {}), source)
    PRESETS[name] = preset
    return preset


def _gauss(sigma: str, **kw: Any) -> dict[str, Any]:
    return {"likelihood": "gaussian", "likelihood_kwargs": {"sigma": sigma, **kw}}


SIGMA = "σ-VAE (Rybkin et al.)"
ARELBO = "AR-ELBO (Lin et al.), Table 3"
PYTHAE = "Pythae (Chadebec et al.)"

register_preset("sigma-vae", "Gaussian decoder with the optimal (analytic) shared σ, the calibrated σ-VAE",
                SIGMA, **_gauss("optimal"))
register_preset("sigma-vae-learned", "Gaussian decoder with one shared σ learned by gradient descent",
                SIGMA, **_gauss("learned"))
register_preset("sigma-vae-per-pixel", "Gaussian decoder predicting σ for every pixel",
                SIGMA, **_gauss("per-pixel"))
register_preset("gaussian-vae", "Gaussian decoder with σ = 1: the classic, over-smoothing Gaussian VAE",
                SIGMA, **_gauss("fixed", value=1.0))
register_preset("beta-vae", "σ = 1 Gaussian with KL weight β = 0.01 (same optimum as a fixed σ² = β)",
                SIGMA, beta=0.01, **_gauss("fixed", value=1.0))
register_preset("bernoulli-vae", "Bernoulli decoder (binary cross-entropy), the textbook MNIST VAE",
                SIGMA, likelihood="bernoulli")
register_preset("disc-gaussian-vae", "Discretized Gaussian over 256 bins with a shared learned scale (init e^-2)",
                SIGMA, likelihood="disc-gaussian", likelihood_kwargs={"init_log_scale": -2.0})
register_preset("disc-logistic-vae", "Discretized logistic over 256 bins with a shared learned scale (init e^-2)",
                SIGMA, likelihood="disc-logistic", likelihood_kwargs={"init_log_scale": -2.0})
register_preset("logistic-mixture-vae", "Mixture of 5 discretized logistics per pixel",
                SIGMA, likelihood="logistic-mixture", likelihood_kwargs={"components": 5})
register_preset("categorical-vae", "256-way categorical distribution per pixel",
                SIGMA, likelihood="categorical")
register_preset("bitwise-vae", "Bitwise-categorical: 8 Bernoulli bits per pixel",
                SIGMA, likelihood="bitwise")
register_preset("beta-likelihood-vae", "Beta density on [0, 1] with concentrations 1 + softplus",
                SIGMA, likelihood="beta")

for _v, _what in [("iso-i", "one σx² for all pixels and images"), ("iso-d", "one σx² per image"),
                  ("diag-i", "one σx² per pixel"), ("diag-d", "one σx² per pixel of every image")]:
    register_preset(f"arelbo-{_v}", f"AR-ELBO {_v.title()}: σx² set to its MLE every step, {_what}",
                    ARELBO, likelihood="arelbo", likelihood_kwargs={"variance": _v})
_TRAINABLE = {"iso-i": "learned", "diag-i": "learned-diag", "iso-d": "per-example", "diag-d": "per-pixel"}
for _v, _sigma in _TRAINABLE.items():
    register_preset(f"trainable-{_v}", f"{_v.title()} with Σx a trainable parameter (Dai & Wipf), the "
                    "AR-ELBO baseline", ARELBO, **_gauss(_sigma))

register_preset("iwae", "Importance-weighted autoencoder, K = 5 samples, Bernoulli decoder",
                PYTHAE, regulariser="iwae", iwae_k=5, likelihood="bernoulli")
register_preset("vamp-vae", "VAE with a VampPrior of 50 learned pseudo-inputs (σ-VAE decoder)",
                PYTHAE, prior="vamp", vamp_components=50, **_gauss("optimal"))
register_preset("ae", "Deterministic autoencoder, squared error (σ² = ½ Gaussian)", ARELBO,
                regulariser="none", **_gauss("fixed", value=0.5**0.5))
register_preset("wae-mmd-imq", "Wasserstein AE with MMD (inverse multiquadric kernel), λ = 10",
                ARELBO, regulariser="mmd", mmd_kernel="imq", mmd_weight=10.0, **_gauss("fixed", value=0.5**0.5))
register_preset("wae-mmd-rbf", "Wasserstein AE with MMD (RBF kernel), λ = 10",
                ARELBO, regulariser="mmd", mmd_kernel="rbf", mmd_weight=10.0, **_gauss("fixed", value=0.5**0.5))
register_preset("rae-l2", "Regularised AE: squared error + ‖z‖² + decoder weight decay",
                ARELBO, regulariser="rae", rae_penalty="l2", rae_embedding_weight=1e-2, rae_penalty_weight=1e-4,
                **_gauss("fixed", value=0.5**0.5))
register_preset("rae-gp", "Regularised AE: squared error + ‖z‖² + decoder gradient penalty",
                ARELBO, regulariser="rae", rae_penalty="gp", rae_embedding_weight=1e-2, rae_penalty_weight=1e-2,
                **_gauss("fixed", value=0.5**0.5))


def list_presets() -> list[Preset]:
    """All presets in registration order."""
    return list(PRESETS.values())


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a KeyError listing the known names."""
    if name not in PRESETS:
        from vaecore.hub import _register_model_types

        _register_model_types()
    if name not in PRESETS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(PRESETS)} "
                       "(see `python -m vaecore list-models`)")
    return PRESETS[name]


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of a preset with overrides applied (unknown keys raise ValueError)."""
    from vaecore.models.base import MODEL_TYPES

    preset = get_preset(name)
    kind = preset.config.get("model_type", "vae")
    config_class = MODEL_TYPES[kind].config_class if kind in MODEL_TYPES else ModelConfig
    base = config_class.from_dict(dict(preset.config))
    new_kwargs = overrides.pop("likelihood_kwargs", {}) or {}
    changed = "likelihood" in overrides and overrides["likelihood"] != base.likelihood
    kwargs = {} if changed else dict(base.likelihood_kwargs)
    kwargs.update(new_kwargs)
    valid = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for model {name!r}; valid: {sorted(valid)}")
    return base.replace(likelihood_kwargs=kwargs, **overrides)


def train_config(name: str, **overrides: Any) -> TrainConfig:
    """The preset's training defaults (e.g. VAE+ augmentation) with overrides applied."""
    values = {**get_preset(name).train, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(values)
