"""FactorVAE (Kim & Mnih, 2018): the VAE plus γ times a discriminator's estimate of the total
correlation of q(z), the discriminator trained with its own optimizer.

    VAE group:            recon + β·KL + γ·E_q[logit D(z)]       (logit D = log D/(1 − D) ≈ log q(z)/Π_j q(z_j))
    discriminator group:  BCE(D(z), 1) + BCE(D(perm(z)), 0)      (z detached; perm shuffles each dimension
                                                                   across the batch, a draw from Π_j q(z_j))

Both losses come from one forward pass; the Trainer steps the "model" group, then the
"discriminator" group, each on its own loss (`LossOutput.group_losses`). The discriminator
sees the same batch as the VAE (Kim & Mnih draw a second batch; one batch halves the cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaecore.components.context import StepContext
from vaecore.config import ModelConfig, setting
from vaecore.models.base import LossOutput, ParamGroup, register_model_type, scalar
from vaecore.models.vae import PYTHAE, VAE, VAEConfig, gaussian
from vaecore.presets import register_preset


@dataclass
class FactorVAEConfig(VAEConfig):
    """FactorVAE: `gamma` weights the total-correlation term; the discriminator is an MLP of
    `disc_layers` hidden layers of `disc_hidden` units (Kim & Mnih: 6 × 1000) with its own learning
    rate multiplier `disc_lr_scale`."""

    model_type: str = "factor-vae"
    gamma: float = setting(10.0, lo=0)
    disc_hidden: int = setting(256, lo=1, hi=10_000)
    disc_layers: int = setting(3, lo=1, hi=16)
    disc_lr_scale: float = setting(1.0, lo=0, lo_open=True)


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each latent dimension shuffled independently across the batch: a draw from Π_j q(z_j)."""
    b, d = z.shape
    idx = torch.argsort(torch.rand((b, d), generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, idx)


@register_model_type
class FactorVAE(VAE):
    """VAE + total-correlation penalty from a latent discriminator with its own optimizer."""

    model_type: ClassVar[str] = "factor-vae"
    title: ClassVar[str] = "FactorVAE"
    pythae: ClassVar[str] = (
        "Pythae's adversarial trainer steps the encoder on its loss plus the discriminator's (D(z) not "
        "detached); ours on its own loss only (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder with a discriminator penalising total correlation"
    tags: ClassVar[tuple[str, ...]] = ("variational", "disentangling", "adversarial")
    group: ClassVar[str] = "disentangling"
    config_class: ClassVar[type[ModelConfig]] = FactorVAEConfig
    config: FactorVAEConfig

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        c = self.config
        layers: list[nn.Module] = []
        width = c.latent_dim
        for _ in range(c.disc_layers):
            layers += [nn.Linear(width, c.disc_hidden), nn.LeakyReLU(0.2)]
            width = c.disc_hidden
        self.discriminator = nn.Sequential(*layers, nn.Linear(width, 1))

    def param_groups(self) -> list[ParamGroup]:
        disc = set(self.discriminator.parameters())
        vae = [p for p in self.parameters() if p not in disc]
        return [ParamGroup("model", vae), ParamGroup("discriminator", list(disc), self.config.disc_lr_scale)]

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        ctx = ctx or StepContext.evaluation()
        x = self._check_input(x)
        fwd = self.forward_pass(x)
        vae = self.objective(fwd, ctx)
        tc = self.discriminator(fwd.z).mean()
        z = fwd.z.detach()
        real, fake = self.discriminator(z), self.discriminator(permute_dims(z))
        disc = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        total = vae.loss + self.config.gamma * tc
        accuracy = 0.5 * ((real > 0).float().mean() + (fake < 0).float().mean())
        logs = {**vae.logs, "tc": scalar(tc), "loss": scalar(total), "disc_loss": scalar(disc),
                "disc_accuracy": scalar(accuracy)}
        return LossOutput(total, logs, {"model": total, "discriminator": disc})


register_preset("factor-vae", "FactorVAE: VAE + γ·total correlation from a latent discriminator (γ = 10), "
                "two optimizers, σ-VAE decoder", PYTHAE, model_type="factor-vae", gamma=10.0, **gaussian("optimal"))
