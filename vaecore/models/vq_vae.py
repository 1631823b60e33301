"""The vector-quantised VAE (van den Oord et al., 2017): the encoder's map of vectors z_e is
replaced by the nearest codebook vectors z_q before decoding.

    loss = recon(x | dec(z_q)) + Σ_positions [‖sg z_e − z_q‖² + β‖z_e − sg z_q‖²]

with straight-through gradients (the decoder's gradient at z_q is passed to z_e unchanged); with
`ema` the codebook term is replaced by moving-average codebook updates (the paper's appendix).
Unused codes are restarted at encoder outputs (`code_restart`, an addition to the paper that
keeps short trainings from collapsing onto a few codes).
The posterior is a point (a codebook lookup), so there is no ELBO or IWAE; the paper's prior over
codes is uniform during training, which is what `sample_latents` draws from, and generation is done
with a prior fitted afterwards over the code maps (the 'pixelcnn' sampler).

Latents are spatial with a convolutional arch: two stride-2 convolutions and two residual blocks
(the paper's layout at 64 channels) give a (D, H/4, W/4) map of codes, D = `latent_dim`; any conv
arch name selects this net. With arch 'mlp' the encoder gives one code vector per image (shape
(D,)). `embed(x)` is z_q, flattened; `decode` takes it flattened or as a map. `model.latent_dim`
is the flattened size D·h·w (the width of `embed`), `model.code_dim` is D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaecore.components.context import StepContext
from vaecore.components.kinds import Geometry, PosteriorKind, PriorKind
from vaecore.components.nets import ARCHITECTURES, build_decoder, build_encoder
from vaecore.components.posteriors import PointMass, Posterior
from vaecore.components.quantizers import Quantized, VectorQuantizer
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import Capabilities, LossOutput, register_model_type, scalar
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset

HIDDEN = 64
MIN_SIZE = 4


@dataclass
class VQVAEConfig(ModelConfig):
    """A VQ-VAE: `num_codes` code vectors of dimension `latent_dim`, commitment weight `beta`, and
    either EMA codebook updates (`ema`, decay `ema_decay`) or the codebook loss; `code_restart`
    starts the codebook from the first batch's vectors and restarts unused codes (quantizers.py)."""

    model_type: str = "vqvae"
    latent_dim: int = setting(16, lo=1, hi=1024)
    num_codes: int = setting(128, lo=2, hi=65_536)
    beta: float = setting(0.25, lo=0, cli=True, app="model", label="β (commitment weight)", app_hi=100,
                          help="weight of the commitment loss ‖z_e − sg z_q‖² (the paper's β = 0.25)")
    ema: bool = True
    ema_decay: float = setting(0.99, lo=0, hi=0.9999)
    code_restart: bool = True


class ResidualBlock(nn.Module):
    """x + conv1×1(ReLU(conv3×3(ReLU(x)))), the VQ-VAE paper's block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def spatial_encoder(channels: int, dim: int, hidden: int = HIDDEN) -> nn.Sequential:
    """(B, C, H, W) → (B, dim, ⌊⌊H/2⌋/2⌋, ⌊⌊W/2⌋/2⌋)."""
    return nn.Sequential(nn.Conv2d(channels, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden, hidden, 3, padding=1), ResidualBlock(hidden), ResidualBlock(hidden),
                         nn.ReLU(), nn.Conv2d(hidden, dim, 1))


def spatial_decoder(dim: int, out_channels: int, size: tuple[int, int], hidden: int = HIDDEN) -> nn.Sequential:
    """The encoder's mirror; output padding restores odd sizes exactly to `size` (H, W)."""
    h, w = size
    h1, w1 = h // 2, w // 2
    h2, w2 = h1 // 2, w1 // 2
    return nn.Sequential(nn.Conv2d(dim, hidden, 3, padding=1), ResidualBlock(hidden), ResidualBlock(hidden),
                         nn.ReLU(),
                         nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1,
                                            output_padding=(h1 - 2 * h2, w1 - 2 * w2)), nn.ReLU(),
                         nn.ConvTranspose2d(hidden // 2, out_channels, 4, stride=2, padding=1,
                                            output_padding=(h - 2 * h1, w - 2 * w1)))


def code_layout(cfg: VQVAEConfig) -> tuple[bool, tuple[int, int]]:
    """Whether the codes form a spatial map (any conv arch: (D, H/4, W/4)) or one vector ('mlp'), and the map's
    (h, w); ValueError for an unknown arch or an image too small for the spatial net."""
    if cfg.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {cfg.arch!r}; choose one of {sorted(ARCHITECTURES)} "
                         "('mlp': one code per image, any conv arch: a spatial map of codes)")
    if cfg.arch == "mlp":
        return False, (1, 1)
    _, h, w = cfg.input_shape
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"the spatial VQ-VAE net needs H, W >= {MIN_SIZE}, got {h}×{w}; use arch 'mlp'")
    return True, ((h // 2) // 2, (w // 2) // 2)


@register_model_type
class VQVAE(AutoEncoder):
    """Encoder → nearest codes → decoder → likelihood; a point posterior in a discrete latent space."""

    model_type: ClassVar[str] = "vqvae"
    title: ClassVar[str] = "VQ-VAE"
    pythae: ClassVar[str] = (
        "Our codebook and commitment terms are summed over an image's 7 × 7 × 16 latent values: 784 × "
        "Pythae's mean over them (docs/pythae-differences.md).")
    what: ClassVar[str] = ("a vector-quantised autoencoder: a deterministic encoder whose code map snaps to a "
                           "learned codebook (no posterior density; generation needs a prior over codes)")
    tags: ClassVar[tuple[str, ...]] = ("autoencoder", "deterministic", "quantised")
    group: ClassVar[str] = "quantised"
    config_class: ClassVar[type[ModelConfig]] = VQVAEConfig
    stochastic: ClassVar[bool] = False
    has_prior: ClassVar[bool] = False
    geometry: ClassVar[Geometry] = Geometry.DISCRETE

    def __init__(self, config: dict[str, Any] | Any) -> None:
        super().__init__(config)
        self.code_dim = self.config.latent_dim
        self.spatial, self.map_size = code_layout(self.config)
        self.latent_dim = self.code_dim * self.map_size[0] * self.map_size[1]  # the width of embed(x)
        self.quantizer = self.build_quantizer()

    def build_networks(self, out_channels: int) -> tuple[nn.Module, nn.Module]:
        """The paper's spatial nets for any conv arch, MLPs for 'mlp'."""
        cfg = self.config
        spatial, _ = code_layout(cfg)
        c, h, w = cfg.input_shape
        d = cfg.latent_dim
        if spatial:
            return spatial_encoder(c, d), spatial_decoder(d, out_channels, (h, w))
        return (build_encoder("mlp", cfg.input_shape, d, out_features=d),
                build_decoder("mlp", cfg.input_shape, d, out_channels))

    def build_prior(self) -> None:
        """No density over the codes: the training-time prior is uniform (`sample_latents`); a prior over
        code maps is fitted afterwards (the 'pixelcnn' sampler)."""
        return None

    # what the VQ families choose ------------------------------------------------------------------
    def build_quantizer(self) -> nn.Module:
        c = self.config
        return VectorQuantizer(c.num_codes, c.latent_dim, beta=c.beta, ema=c.ema, decay=c.ema_decay,
                               restart=c.code_restart)

    def quantize(self, rows: Tensor, ctx: StepContext) -> Quantized:
        """The quantiser's training pass over (N, D) rows."""
        return self.quantizer(rows)

    @property
    def levels(self) -> int:
        """Codes per position (1 for one codebook)."""
        return 1

    def codebooks(self) -> Tensor:
        """The code vectors of each level: (levels, K, D)."""
        return self.quantizer.codebook.detach().unsqueeze(0)

    # latent layout ---------------------------------------------------------------------------------
    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one image's latent: (D, h, w) for a map, (D,) for one vector."""
        return (self.code_dim, *self.map_size) if self.spatial else (self.code_dim,)

    def encode_rows(self, x: Tensor) -> Tensor:
        """z_e of every position as rows (B·h·w, D), image-major."""
        z = self.encoder(self._check_input(x))
        return z.permute(0, 2, 3, 1).reshape(-1, self.code_dim) if self.spatial else z

    def rows_to_latents(self, rows: Tensor, batch: int) -> Tensor:
        """(B·h·w, D) rows → (B, D·h·w) flattened latents (channel-major, as a (D, h, w) map)."""
        h, w = self.map_size
        return rows.reshape(batch, h, w, self.code_dim).permute(0, 3, 1, 2).reshape(batch, -1)

    def code_map(self, x: Tensor) -> Tensor:
        """The codes of each image as a map (B, h, w·levels): position (i, j)'s levels side by side."""
        codes = self.quantizer.codes(self.encode_rows(x))
        h, w = self.map_size
        return codes.reshape(-1, h, w * self.levels)

    # the AutoEncoder hooks ----------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> Posterior:
        rows = self.encode_rows(x)
        zq = self.quantizer.lookup(self.quantizer.codes(rows))
        return PointMass(self.rows_to_latents(zq, rows.shape[0] // (self.map_size[0] * self.map_size[1])))

    def decode_params(self, z: Tensor) -> Tensor:
        z = z.to(self.device)
        if self.spatial:
            z = z.reshape(z.shape[0], *self.code_shape)
        return self.decoder(z)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=False, prior_samples=False, latent_shape=self.code_shape, geometry=Geometry.DISCRETE,
                            posterior=PosteriorKind.VECTOR_QUANTISED, prior=PriorKind.UNIFORM_CODES,
                            why_no_elbo=f"the encoder of {self.config.preset!r} is deterministic (a nearest-code "
                                        "lookup): there is no q(z|x) density, so no bound or estimate")

    def prior_log_prob(self, z: Tensor) -> Tensor:
        raise ValueError(f"{self.config.preset!r} has no density over its latents; fit the 'pixelcnn' sampler "
                         "for a prior over its codes")

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Codes drawn uniformly and independently at every position (the training-time prior; for
        realistic samples fit the 'pixelcnn' sampler)."""
        n = self._check_count(n)
        h, w = self.map_size
        codes = torch.randint(self.quantizer.num_codes, (n * h * w, self.levels), generator=generator,
                              device=generator.device if generator is not None else self.device)
        return self.rows_to_latents(self.quantizer.lookup(codes.to(self.device)), n)

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        ctx = ctx or StepContext.evaluation()
        x = self._check_input(x)
        rows = self.encode_rows(x)
        q = self.quantize(rows, ctx)
        params = self.decode_params(self.rows_to_latents(q.quantized, x.shape[0]))
        recon = self.likelihood.objective(params, x)
        vq = q.loss.reshape(x.shape[0], -1).sum(1).mean()
        total = recon + vq
        logs = {"recon": scalar(recon), "vq_loss": scalar(vq), "perplexity": scalar(q.perplexity),
                "loss": scalar(total), **self.likelihood.trace()}
        return LossOutput(total, logs)


register_preset("vqvae", "VQ-VAE: a 128-code codebook with EMA updates, commitment β = 0.25, straight-through "
                "gradients; spatial code maps with conv nets; generate with the 'pixelcnn' sampler", PYTHAE,
                model_type="vqvae", num_codes=128, beta=0.25, ema=True, likelihood="bernoulli")
