"""The VAE family: a diagonal-Gaussian posterior, a prior (N(0, I) or VampPrior) and β·KL.

Which decoder likelihood it has is the whole difference between the σ-VAE's calibrated decoders,
the AR-ELBO variants, the trainable-Σx baselines, the discrete decoders and the textbook
Bernoulli VAE, so they are presets of this one class (registered at the bottom).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from vaecore.components.objectives import KLTerm, Term
from vaecore.components.priors import Prior, StandardNormal, VampPrior
from vaecore.config import ModelConfig, kl_weight, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import register_model_type
from vaecore.presets import register_preset

PRIORS = ("normal", "vamp")


@dataclass
class VAEConfig(ModelConfig):
    """A VAE: `beta` weights the KL; `prior` is 'normal' or 'vamp' (with `vamp_components` pseudo-inputs)."""

    model_type: str = "vae"
    beta: float = kl_weight(1.0)
    prior: str = setting("normal", choices=PRIORS)
    vamp_components: int = setting(50, lo=1, hi=10_000)


@register_model_type
class VAE(AutoEncoder):
    """The VAE by composition: encoder → N(μ, σ²) → decoder → likelihood, + β·KL to the prior."""

    model_type: ClassVar[str] = "vae"
    title: ClassVar[str] = "VAE"
    pythae: ClassVar[str] = (
        "With a σ = 1 Gaussian decoder (Pythae's `mse`), our −log p(x|z) is Pythae's reconstruction loss "
        "½Σ(x − x̂)² plus ½D ln 2π (720.45 nats on MNIST): the same gradients, a normalised density "
        "(docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder"
    tags: ClassVar[tuple[str, ...]] = ("variational",)
    group: ClassVar[str] = "by-likelihood"
    config_class: ClassVar[type[ModelConfig]] = VAEConfig
    config: VAEConfig

    def build_prior(self) -> Prior:
        if self.config.prior == "vamp":
            return VampPrior(self.latent_dim, self.config.vamp_components, self.config.input_shape, self.posterior)
        return StandardNormal(self.latent_dim)

    def build_terms(self) -> list[Term]:
        return [KLTerm(self.config.beta)]



def gaussian(sigma: str, **kw: Any) -> dict[str, Any]:
    """Preset settings of a Gaussian decoder with σ chosen by `sigma` (likelihoods.GAUSSIAN_SIGMAS)."""
    return {"likelihood": "gaussian", "likelihood_kwargs": {"sigma": sigma, **kw}}


SIGMA = "σ-VAE (Rybkin et al.)"
ARELBO = "AR-ELBO (Lin et al.), Table 3"
PYTHAE = "Pythae (Chadebec et al.)"

register_preset("sigma-vae", "Gaussian decoder with the optimal (analytic) shared σ, the calibrated σ-VAE",
                SIGMA, **gaussian("optimal"))
register_preset("sigma-vae-learned", "Gaussian decoder with one shared σ learned by gradient descent",
                SIGMA, **gaussian("learned"))
register_preset("sigma-vae-per-pixel", "Gaussian decoder predicting σ for every pixel",
                SIGMA, **gaussian("per-pixel"))
register_preset("gaussian-vae", "Gaussian decoder with σ = 1: the classic, over-smoothing Gaussian VAE",
                SIGMA, **gaussian("fixed", value=1.0))
register_preset("beta-vae", "σ = 1 Gaussian with KL weight β = 0.01 (same optimum as a fixed σ² = β)",
                SIGMA, beta=0.01, **gaussian("fixed", value=1.0))
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
_SAME_AS = {"iso-i": "sigma-vae-learned", "diag-d": "sigma-vae-per-pixel"}  # one model, two papers' names
for _v, _sigma in _TRAINABLE.items():
    register_preset(f"trainable-{_v}", f"{_v.title()} with Σx a trainable parameter (Dai & Wipf), the "
                    "AR-ELBO baseline" + (f"; the same model as `{_SAME_AS[_v]}`" if _v in _SAME_AS else ""),
                    ARELBO, alias_of=_SAME_AS.get(_v, ""), **gaussian(_sigma))

register_preset("vamp-vae", "VAE with a VampPrior of 50 learned pseudo-inputs (σ-VAE decoder)",
                PYTHAE, prior="vamp", vamp_components=50, **gaussian("optimal"))
