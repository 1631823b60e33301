"""VAEs with a normalizing-flow posterior: VAE-LinNF (planar/radial flows, Rezende & Mohamed 2015)
and VAE-IAF (inverse autoregressive flow, Kingma et al. 2016).

    z_0 ~ N(μ(x), σ²(x)),  z_K = f_K ∘ … ∘ f_1(z_0)
    ELBO = E[log p(x|z_K) + log p(z_K) − log q(z_0|x) + Σ_k log|det ∂f_k/∂z_{k−1}|]

The posterior is a `FlowPosterior`: its log-density is exact at its own draws, which is what the
generic ELBO, KL estimate and IWAE weights of `AutoEncoder` evaluate, so the bounds need no
override. LinNF's flow parameters are global (as in Pythae); IAF's MADE blocks also take the
encoder's context h (as in Kingma et al.). The latent point for maps is f(μ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from vaecore.components.flows import IAF, FlowPosterior, build_transforms
from vaecore.components.kinds import PosteriorKind
from vaecore.components.posteriors import DiagonalGaussian, Posterior
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import LOGVAR_RANGE
from vaecore.models.base import Capabilities, register_model_type
from vaecore.models.vae import PYTHAE, VAE, VAEConfig, gaussian
from vaecore.presets import register_preset

LIN_NF_FLOWS = ("planar", "radial")
DEFAULT_LIN_NF = ["planar", "radial"] * 5


def _refuse_vamp(cfg: VAEConfig) -> None:
    if cfg.prior == "vamp":
        raise ValueError("setting 'prior': the VampPrior mixes the pseudo-inputs' Gaussian posteriors, and a flow "
                         "posterior is not Gaussian; use prior 'normal'")


@dataclass
class VAELinNFConfig(VAEConfig):
    """VAE-LinNF: `flows` lists the transforms applied in order ('planar' or 'radial')."""

    model_type: str = "vae-linnf"
    flows: list[str] = setting(factory=lambda: list(DEFAULT_LIN_NF))

    def validate(self) -> None:
        super().validate()
        _refuse_vamp(self)
        bad = [f for f in self.flows if f not in LIN_NF_FLOWS] if isinstance(self.flows, list) else self.flows
        if bad or not self.flows:
            raise ValueError(f"setting 'flows' must be a non-empty list of {list(LIN_NF_FLOWS)}, got {self.flows!r}")


@dataclass
class VAEIAFConfig(VAEConfig):
    """VAE-IAF: `iaf_blocks` MADE blocks of `iaf_layers` hidden layers × `iaf_hidden` units, each
    conditioned on `context_dim` extra encoder outputs (0: unconditioned, as in Pythae)."""

    model_type: str = "vae-iaf"
    iaf_blocks: int = setting(2, lo=1, hi=64)
    iaf_layers: int = setting(3, lo=1, hi=16)
    iaf_hidden: int = setting(128, lo=1, hi=10_000)
    context_dim: int = setting(16, lo=0, hi=4096)

    def validate(self) -> None:
        super().validate()
        _refuse_vamp(self)


class _FlowVAE(VAE):
    """A VAE whose posterior is a FlowPosterior over the encoder's Gaussian."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=True, prior_samples=True, latent_shape=(self.latent_dim,),
                            posterior=PosteriorKind.FLOW, prior=self.prior.kind)

    def _base(self, h: Tensor) -> DiagonalGaussian:
        d = self.latent_dim
        return DiagonalGaussian(h[:, :d], h[:, d:2 * d].clamp(*LOGVAR_RANGE))


@register_model_type
class VAELinNF(_FlowVAE):
    """VAE + K planar/radial flows on the posterior sample, their log-dets in the ELBO."""

    model_type: ClassVar[str] = "vae-linnf"
    title: ClassVar[str] = "VAE-LinNF"
    what: ClassVar[str] = "a variational autoencoder with planar and radial flows on its posterior"
    tags: ClassVar[tuple[str, ...]] = ("variational", "flow")
    group: ClassVar[str] = "richer-posteriors"
    config_class: ClassVar[type[ModelConfig]] = VAELinNFConfig
    config: VAELinNFConfig

    def __init__(self, config: dict[str, Any] | Any) -> None:
        super().__init__(config)
        self.flows = build_transforms(self.config.flows, self.latent_dim)

    def make_posterior(self, h: Tensor) -> Posterior:
        return FlowPosterior(self._base(h), list(self.flows))


@register_model_type
class VAEIAF(_FlowVAE):
    """VAE + an inverse autoregressive flow posterior conditioned on the encoder's context h."""

    model_type: ClassVar[str] = "vae-iaf"
    title: ClassVar[str] = "VAE-IAF"
    pythae: ClassVar[str] = (
        "Ours is Kingma et al.'s gated IAF update with the encoder's context; Pythae's is an affine, "
        "unconditioned flow (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder with an inverse autoregressive flow on its posterior"
    tags: ClassVar[tuple[str, ...]] = ("variational", "flow")
    group: ClassVar[str] = "richer-posteriors"
    config_class: ClassVar[type[ModelConfig]] = VAEIAFConfig
    config: VAEIAFConfig

    def __init__(self, config: dict[str, Any] | Any) -> None:
        super().__init__(config)
        c = self.config
        self.iaf = IAF(self.latent_dim, c.iaf_blocks, c.iaf_hidden, c.iaf_layers, c.context_dim)

    def encoder_features(self) -> int:
        return 2 * self.latent_dim + self.config.context_dim

    def make_posterior(self, h: Tensor) -> Posterior:
        context = h[:, 2 * self.latent_dim:] if self.config.context_dim else None
        return FlowPosterior(self._base(h), [self.iaf], context)


register_preset("vae-linnf", "VAE with K = 10 planar/radial flows (alternated) on the posterior sample "
                "(Rezende & Mohamed), σ-VAE decoder", PYTHAE, model_type="vae-linnf",
                flows=list(DEFAULT_LIN_NF), **gaussian("optimal"))
register_preset("vae-iaf", "VAE with an inverse autoregressive flow posterior: 2 MADE blocks of 3 × 128, "
                "conditioned on a 16-d encoder context (Kingma et al.), σ-VAE decoder", PYTHAE,
                model_type="vae-iaf", iaf_blocks=2, iaf_layers=3, iaf_hidden=128, context_dim=16,
                **gaussian("optimal"))
