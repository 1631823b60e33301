"""The adversarial autoencoder (Makhzani et al., 2016): the VAE's KL replaced by a discriminator
that tells the codes z ~ q(z|x) from prior draws, each side with its own optimizer.

    autoencoder group:    recon + λ·BCE(D(z), 1)                        (fool D: codes look like p(z))
    discriminator group:  ½·[BCE(D(z_p), 1) + BCE(D(sg z), 0)]          (z_p ~ N(0, I), z detached)

The encoder is the VAE's Gaussian one (as in Pythae), so q(z|x) has a density and the ELBO and
IWAE of the trained model are defined, although it is not trained on them. The reconstruction
term is summed over pixels, so λ is larger than in per-pixel-mean implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.components.discriminators import latent_discriminator
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import LossOutput, ParamGroup, register_model_type, scalar
from vaecore.models.vae import PYTHAE, gaussian
from vaecore.presets import register_preset


@dataclass
class AAEConfig(ModelConfig):
    """An AAE: `adversarial_weight` λ; the latent discriminator is an MLP of `disc_layers` hidden
    layers of `disc_hidden` units with learning rate multiplier `disc_lr_scale`."""

    model_type: str = "aae"
    adversarial_weight: float = setting(10.0, lo=0)
    disc_hidden: int = setting(256, lo=1, hi=10_000)
    disc_layers: int = setting(2, lo=1, hi=16)
    disc_lr_scale: float = setting(1.0, lo=0, lo_open=True)


def bce_logits(logits: Tensor, target: float) -> Tensor:
    """Mean binary cross-entropy of logits against a constant label."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@register_model_type
class AAE(AutoEncoder):
    """Gaussian encoder → z → decoder; a discriminator on z against N(0, I) draws stands in for the KL."""

    model_type: ClassVar[str] = "aae"
    title: ClassVar[str] = "AAE"
    pythae: ClassVar[str] = (
        "Our discriminator loss is the mean of its two cross-entropies, ½ × Pythae's sum "
        "(docs/pythae-differences.md).")
    what: ClassVar[str] = "an adversarial autoencoder: a discriminator on z against prior draws stands in for the KL"
    tags: ClassVar[tuple[str, ...]] = ("autoencoder", "adversarial")
    group: ClassVar[str] = "aggregate-matching"
    config_class: ClassVar[type[ModelConfig]] = AAEConfig
    config: AAEConfig

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        c = self.config
        self.discriminator = latent_discriminator(c.latent_dim, c.disc_hidden, c.disc_layers)

    def param_groups(self) -> list[ParamGroup]:
        disc = list(self.discriminator.parameters())
        ids = {id(p) for p in disc}
        model = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [ParamGroup("model", model), ParamGroup("discriminator", disc, self.config.disc_lr_scale)]

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        ctx = ctx or StepContext.evaluation()
        fwd = self.forward_pass(self._check_input(x))
        recon = self.likelihood.objective(fwd.params, fwd.x)
        fool = bce_logits(self.discriminator(fwd.z), 1.0)
        total = recon + self.config.adversarial_weight * fool
        z_prior = self.prior.sample(fwd.z.shape[0], device=fwd.z.device).to(fwd.z.dtype)
        real, fake = self.discriminator(z_prior), self.discriminator(fwd.z.detach())
        disc = 0.5 * (bce_logits(real, 1.0) + bce_logits(fake, 0.0))
        accuracy = 0.5 * ((real > 0).float().mean() + (fake < 0).float().mean())
        logs = {"recon": scalar(recon), "adversarial": scalar(fool), "loss": scalar(total),
                "disc_loss": scalar(disc), "disc_accuracy": scalar(accuracy), **self.likelihood.trace()}
        return LossOutput(total, logs, {"model": total, "discriminator": disc})


register_preset("aae", "Adversarial autoencoder: a latent discriminator against N(0, I) replaces the KL "
                "(λ = 10), two optimizers, σ-VAE decoder", PYTHAE, model_type="aae", adversarial_weight=10.0,
                **gaussian("optimal"))
