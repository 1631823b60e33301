"""The hierarchical residual-quantised VAE (Hosking et al., 2022): the VQ-VAE with a stack of
`levels` codebooks, level l quantising what the levels above left over, so each position's code is
a path from coarse to fine and Σ_l e_l approximates z_e.

Training follows the paper's relaxation: at level l the code is a hard Gumbel-softmax draw from
softmax(−‖r_l − e_k‖²/τ_l), τ_l = max(exp(−epoch / (γ·1.5^l)), 0.5), so the codebooks and the
encoder get gradients through the relaxation (no straight-through, no commitment term); the loss
adds `kl_weight`·KL(q_l ‖ uniform) per level, the norm penalty that keeps each level's code shorter
than the one above (`norm_weight`, `norm_scale`) and depth dropout. Codebooks start on spheres
whose radius shrinks by `init_decay` per level. Outside training the codes are the greedy nearest
ones. No ELBO, as for the VQ-VAE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from vaecore.components.context import StepContext
from vaecore.components.quantizers import Quantized, ResidualQuantizer
from vaecore.config import ModelConfig, setting
from vaecore.models.base import register_model_type
from vaecore.models.vae import PYTHAE
from vaecore.models.vq_vae import VQVAE
from vaecore.presets import register_preset

MIN_TEMPERATURE = 0.5


@dataclass
class HRQVAEConfig(ModelConfig):
    """An HRQ-VAE: `levels` codebooks of `num_codes` vectors of dimension `latent_dim`, and the
    paper's training settings (defaults as in Pythae's HRQ-VAE)."""

    model_type: str = "hrq-vae"
    latent_dim: int = setting(16, lo=1, hi=1024)
    num_codes: int = setting(64, lo=2, hi=65_536)
    levels: int = setting(3, lo=1, hi=16)
    kl_weight: float = setting(0.1, lo=0)
    init_scale: float = setting(1.0, lo=0, lo_open=True)
    init_decay: float = setting(0.5, lo=0, lo_open=True, hi=1)
    norm_weight: float = setting(0.5, lo=0)
    norm_scale: float = setting(1.5, lo=0, lo_open=True)
    temperature_gamma: float = setting(33.333, lo=0, lo_open=True)
    depth_dropout: float = setting(0.1, lo=0, hi=0.99)


def temperatures(epoch: int, levels: int, gamma: float) -> list[float]:
    """The Gumbel temperature of each level at `epoch`: max(exp(−epoch/(γ·1.5^l)), 0.5)."""
    return [max(math.exp(-epoch / (gamma * 1.5**level)), MIN_TEMPERATURE) for level in range(levels)]


@register_model_type
class HRQVAE(VQVAE):
    """VQ-VAE encoder and decoder around a residual stack of codebooks."""

    model_type: ClassVar[str] = "hrq-vae"
    title: ClassVar[str] = "HRQ-VAE"
    pythae: ClassVar[str] = (
        "HRQ-VAE is not in Pythae 0.1.2 (only in its later sources) (docs/pythae-differences.md).")
    what: ClassVar[str] = ("a hierarchical residual-quantised autoencoder: a stack of codebooks quantises the "
                           "residuals (no posterior density; generation needs a prior over codes)")
    tags: ClassVar[tuple[str, ...]] = ("autoencoder", "deterministic", "quantised")
    group: ClassVar[str] = "quantised"
    config_class: ClassVar[type[ModelConfig]] = HRQVAEConfig
    config: HRQVAEConfig

    def build_quantizer(self) -> nn.Module:
        c = self.config
        return ResidualQuantizer(c.levels, c.num_codes, c.latent_dim, init_scale=c.init_scale,
                                 init_decay=c.init_decay, norm_weight=c.norm_weight, norm_scale=c.norm_scale,
                                 depth_dropout=c.depth_dropout, kl_weight=c.kl_weight)

    def quantize(self, rows: Tensor, ctx: StepContext) -> Quantized:
        c = self.config
        return self.quantizer(rows, temperatures(ctx.epoch, c.levels, c.temperature_gamma))

    @property
    def levels(self) -> int:
        return self.config.levels

    def codebooks(self) -> Tensor:
        return torch.stack([book.codebook.detach() for book in self.quantizer.levels])

    def quantisation_errors(self, x: Tensor) -> Tensor:
        """Mean ‖z_e − Σ_{j≤l} e_j‖² per position after each level l: (levels,)."""
        return self.quantizer.errors(self.encode_rows(x))


register_preset("hrq-vae", "HRQ-VAE (Hosking et al.): 3 levels of 64 codes, each quantising the residual of the "
                "level above, Gumbel relaxation with depth dropout; generate with the 'pixelcnn' sampler", PYTHAE,
                model_type="hrq-vae", num_codes=64, levels=3, likelihood="bernoulli")
