"""InfoVAE with the MMD divergence (Zhao et al., 2019): a stochastic encoder with both a KL and an
MMD term,

    loss = recon + (1 − α)·KL(q(z|x) ‖ p(z)) + (α + λ − 1)·MMD²(q(z), p(z)).

α = 1 drops the KL (the MMD-VAE); the codes the MMD sees are posterior samples. It is the model
that a "deterministic iff MMD" rule could not express.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vaecore.components.objectives import KLTerm, MMDTerm, Term
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoders import MMD_KERNELS
from vaecore.models.base import register_model_type
from vaecore.models.vae import PYTHAE, VAE, VAEConfig, gaussian
from vaecore.presets import register_preset


@dataclass
class InfoVAEConfig(VAEConfig):
    """InfoVAE-MMD: `alpha` and `lbd` (λ) as in Zhao et al.; KL weight 1 − α, MMD weight α + λ − 1."""

    model_type: str = "info-vae"
    mmd_kernel: str = setting("imq", choices=MMD_KERNELS)
    alpha: float = setting(0.0, lo=0, hi=1)
    lbd: float = setting(10.0, lo=0)

    def validate(self) -> None:
        super().validate()
        if self.alpha + self.lbd - 1 < 0:
            raise ValueError(f"alpha + lbd - 1 must be >= 0 (it weights the MMD), got {self.alpha + self.lbd - 1}")


@register_model_type
class InfoVAE(VAE):
    """VAE posterior and prior; the terms (1 − α)·KL and (α + λ − 1)·MMD."""

    model_type: ClassVar[str] = "info-vae"
    title: ClassVar[str] = "InfoVAE"
    what: ClassVar[str] = "a variational autoencoder with an MMD term between the aggregate posterior and the prior"
    tags: ClassVar[tuple[str, ...]] = ("variational", "mmd")
    group: ClassVar[str] = "aggregate-matching"
    config_class: ClassVar[type[ModelConfig]] = InfoVAEConfig
    config: InfoVAEConfig

    def build_terms(self) -> list[Term]:
        c = self.config
        return [KLTerm(c.beta * (1 - c.alpha)), MMDTerm(c.mmd_kernel, c.alpha + c.lbd - 1)]


for _kernel in MMD_KERNELS:
    register_preset(f"info-vae-{_kernel}", f"InfoVAE-MMD ({_kernel.upper()} kernel): KL + 9·MMD (α = 0, λ = 10), "
                    "stochastic encoder, σ-VAE decoder", PYTHAE, model_type="info-vae", mmd_kernel=_kernel,
                    alpha=0.0, lbd=10.0, **gaussian("optimal"))
