"""The MS-SSIM VAE (Snell et al., 2017): the VAE's reconstruction term replaced by a perceptual
similarity,

    loss = (1 − MS-SSIM(x, x̂)) + β·KL(q(z|x) ‖ N(0, I)),   x̂ = mean of the decoder's output,

per image. The decoder likelihood only maps decoder outputs to x̂ (a sigmoid for 'bernoulli', the
preset); no density p(x|z) is ever used, so there is no ELBO or IWAE. The scales and window fit
the image size (components/msssim.py): 3 scales with a 7-tap window for 28×28; 8×8 digits fall
back to 2 scales with a 3-tap window, and the loss logs say which (`msssim_scales`,
`msssim_window`). 1 − MS-SSIM lies in [0, 1] while the KL is in nats, hence the small β.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.components.kinds import PosteriorKind
from vaecore.components.msssim import ms_ssim, msssim_plan
from vaecore.components.objectives import kl_to_prior
from vaecore.config import ModelConfig, kl_weight, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import Capabilities, LossOutput, register_model_type, scalar
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset


@dataclass
class MSSSIMVAEConfig(ModelConfig):
    """An MS-SSIM VAE: `beta` weights the KL; `window` (odd), `scales` (1–5) and `window_sigma` are
    the MS-SSIM setting asked for, reduced where the images are too small (see `model.msssim`)."""

    model_type: str = "msssim-vae"
    beta: float = kl_weight(1e-3)
    window: int = setting(11, lo=3, hi=31)
    scales: int = setting(5, lo=1, hi=5)
    window_sigma: float = setting(1.5, lo=0, lo_open=True)

    def validate(self) -> None:
        super().validate()
        if self.window % 2 == 0:
            raise ValueError(f"setting 'window' must be odd, got {self.window}")


@register_model_type
class MSSSIMVAE(AutoEncoder):
    """Gaussian encoder, N(0, I) prior, reconstruction by 1 − MS-SSIM."""

    model_type: ClassVar[str] = "msssim-vae"
    title: ClassVar[str] = "MS-SSIM VAE"
    pythae: ClassVar[str] = (
        "Our MS-SSIM is computed per image with valid convolutions fitted to 28 × 28; Pythae's own "
        "implementation pads and averages over the batch: a different quantity "
        "(docs/pythae-differences.md).")
    what: ClassVar[str] = ("a variational autoencoder with a 1 − MS-SSIM reconstruction term instead of a likelihood"
                           " (no ELBO)")
    tags: ClassVar[tuple[str, ...]] = ("variational", "perceptual")
    group: ClassVar[str] = "perceptual"
    config_class: ClassVar[type[ModelConfig]] = MSSSIMVAEConfig
    config: MSSSIMVAEConfig

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        c = self.config
        self.msssim = msssim_plan(c.input_shape[1], c.input_shape[2], c.window, c.scales, c.window_sigma)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=False, prior_samples=True, latent_shape=(self.latent_dim,),
                            posterior=PosteriorKind.GAUSSIAN, prior=self.prior.kind,
                            why_no_elbo="1 − MS-SSIM is a similarity, not a log-likelihood: the decoder defines no "
                                        "density p(x|z), so there is no bound or estimate")

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        ctx = ctx or StepContext.evaluation()
        fwd = self.forward_pass(self._check_input(x))
        x_rec = self.likelihood.mean(fwd.params)
        similarity = ms_ssim(fwd.x, x_rec, self.msssim)
        recon = (1 - similarity).mean()
        kl = kl_to_prior(fwd.posterior, fwd.z, self.prior).mean()
        total = recon + self.config.beta * ctx.kl_weight * kl
        logs = {"recon": scalar(recon), "ms_ssim": scalar(similarity.mean()), "kl": scalar(kl),
                "loss": scalar(total), "msssim_scales": float(self.msssim.scales),
                "msssim_window": float(self.msssim.window)}
        return LossOutput(total, logs)


register_preset("msssim-vae", "MS-SSIM VAE: reconstruction by 1 − MS-SSIM (3 scales, 7-tap window at 28×28) "
                "+ β·KL (β = 1e-3), no likelihood density so no ELBO", PYTHAE, model_type="msssim-vae",
                beta=1e-3, likelihood="bernoulli")
