"""The Poincaré VAE (Mathieu et al., 2019): latents on the Poincaré ball of curvature −c, a wrapped
normal posterior and prior (components/hyperbolic), and the decoder reading the ball through the
logarithmic map at the origin.

The encoder gives a tangent vector h_μ and log σ²; μ = exp_0(h_μ) and q(z|x) = N_W(μ, diag σ²).
The prior is N_W(0, `prior_scale`²·I). The KL has no closed form, so the objective and the ELBO use
the one-sample estimate log q(z|x) − log p(z) (the generic bounds of `AutoEncoder` do the rest).
Every latent the model takes or gives (`embed`, `sample_latents`, `decode`) is a point of the ball.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from vaecore.components.hyperbolic import Ball, WrappedNormal, WrappedNormalPrior
from vaecore.components.kinds import Geometry, PosteriorKind
from vaecore.components.objectives import KLTerm, Term
from vaecore.components.posteriors import Posterior
from vaecore.components.priors import Prior
from vaecore.config import ModelConfig, kl_weight, setting
from vaecore.models.autoencoder import LOGVAR_RANGE, AutoEncoder
from vaecore.models.base import Capabilities, register_model_type
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset


@dataclass
class PoincareVAEConfig(ModelConfig):
    """A Poincaré VAE: ball curvature −`curvature`, prior N_W(0, `prior_scale`²·I), KL weight `beta`."""

    model_type: str = "poincare-vae"
    curvature: float = setting(1.0, lo=0, lo_open=True, hi=100)
    prior_scale: float = setting(1.0, lo=0, lo_open=True, hi=100)
    beta: float = kl_weight(1.0)


@register_model_type
class PoincareVAE(AutoEncoder):
    """Encoder → N_W(exp_0(h_μ), σ²) on the ball → log_0 → decoder; β·KL to the wrapped-normal prior."""

    model_type: ClassVar[str] = "poincare-vae"
    title: ClassVar[str] = "Poincaré VAE"
    pythae: ClassVar[str] = (
        "Our draws are projected into the ball (‖z‖ ≤ (1 − 4·10⁻³)/√c in float32); Pythae's exponential "
        "map does not project (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder on the Poincaré ball (wrapped normal posterior and prior)"
    tags: ClassVar[tuple[str, ...]] = ("variational", "hyperbolic")
    group: ClassVar[str] = "non-euclidean"
    config_class: ClassVar[type[ModelConfig]] = PoincareVAEConfig
    config: PoincareVAEConfig
    geometry: ClassVar[Geometry] = Geometry.POINCARE_BALL

    def __init__(self, config: dict[str, Any] | PoincareVAEConfig) -> None:
        cfg = self._parse_config(config)
        self.ball = Ball(cfg.curvature)
        super().__init__(cfg)

    def make_posterior(self, h: Tensor) -> Posterior:
        mu, logvar = h.chunk(2, dim=1)
        loc = self.ball.manifold.projx(self.ball.expmap0(mu))
        return WrappedNormal(loc, (0.5 * logvar.clamp(*LOGVAR_RANGE)).exp(), self.ball)

    def build_prior(self) -> Prior:
        return WrappedNormalPrior(self.latent_dim, self.ball, self.config.prior_scale)

    def build_terms(self) -> list[Term]:
        return [KLTerm(self.config.beta)]

    def decode_params(self, z: Tensor) -> Tensor:
        """The decoder of the tangent vector log_0(z) of each ball point z."""
        return self.decoder(self.ball.logmap0(z.to(self.device)))

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=True, prior_samples=True, latent_shape=(self.latent_dim,),
                            geometry=Geometry.POINCARE_BALL, posterior=PosteriorKind.WRAPPED_NORMAL,
                            prior=self.prior.kind)


register_preset("poincare-vae", "Poincaré VAE: wrapped normal posterior and prior on the Poincaré ball (c = 1), "
                "decoder through the log map, Bernoulli decoder", PYTHAE, model_type="poincare-vae",
                likelihood="bernoulli")
