"""The hyperspherical VAE (SVAE, Davidson et al. 2018): a von Mises–Fisher posterior on S^{d−1}
and the uniform prior on the sphere; the KL between them is closed-form (components/hyperspherical).

The encoder gives a direction (normalised to the sphere) and a concentration κ = 1 + softplus(h).
`latent_dim` is d, the dimension of the space the sphere S^{d−1} lives in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from vaecore.components.hyperspherical import HypersphericalUniform, VonMisesFisher
from vaecore.components.kinds import Geometry, PosteriorKind
from vaecore.components.objectives import KLTerm, Term
from vaecore.components.posteriors import Posterior
from vaecore.components.priors import Prior
from vaecore.config import MAX_LATENT_DIM, ModelConfig, kl_weight, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import Capabilities, register_model_type
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset

MAX_KAPPA = 1e4


@dataclass
class SVAEConfig(ModelConfig):
    """An SVAE: latents on the sphere S^{latent_dim − 1}; `beta` weights the KL to the uniform prior."""

    model_type: str = "svae"
    latent_dim: int = setting(16, lo=2, hi=MAX_LATENT_DIM)
    beta: float = kl_weight(1.0)


@register_model_type
class SVAE(AutoEncoder):
    """Encoder → vMF(μ, κ) → z on the sphere → decoder; KL to the uniform distribution on the sphere."""

    model_type: ClassVar[str] = "svae"
    title: ClassVar[str] = "SVAE"
    what: ClassVar[str] = ("a hyperspherical variational autoencoder (von Mises–Fisher posterior, uniform prior on "
                           "the sphere)")
    tags: ClassVar[tuple[str, ...]] = ("variational", "hypersphere")
    group: ClassVar[str] = "non-euclidean"
    config_class: ClassVar[type[ModelConfig]] = SVAEConfig
    geometry: ClassVar[Geometry] = Geometry.SPHERE

    def encoder_features(self) -> int:
        return self.latent_dim + 1

    def make_posterior(self, h: Tensor) -> Posterior:
        loc = F.normalize(h[:, :-1], dim=1)
        kappa = (1 + F.softplus(h[:, -1:])).clamp(max=MAX_KAPPA)
        return VonMisesFisher(loc, kappa)

    def build_prior(self) -> Prior:
        return HypersphericalUniform(self.latent_dim)

    def build_terms(self) -> list[Term]:
        return [KLTerm(self.config.beta)]

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=True, prior_samples=True, latent_shape=(self.latent_dim,), geometry=Geometry.SPHERE,
                            posterior=PosteriorKind.VON_MISES_FISHER, prior=self.prior.kind)


register_preset("svae", "Hyperspherical VAE: von Mises–Fisher posterior, uniform prior on the sphere S^15",
                PYTHAE, model_type="svae", **{"likelihood": "bernoulli"})
