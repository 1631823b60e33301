"""VAE-GAN (Larsen et al., 2016): a VAE whose reconstruction is measured in the feature space of a
GAN discriminator, with three optimizers.

With x̃ = mean of p(x|z), z ~ q(z|x), x_p the decoded prior draw, Dis_l the discriminator's
layer-l features and L_feat = ½‖Dis_l(x) − Dis_l(x̃)‖² per image (a unit Gaussian on features):

    encoder:        KL(q(z|x) ‖ N(0, I)) + L_feat [+ ρ·recon]
    decoder:        γ·L_feat + BCE(D(x̃), 1) + BCE(D(x_p), 1) [+ ρ·recon]   (non-saturating −L_GAN)
    discriminator:  BCE(D(x), 1) + BCE(D(sg x̃), 0) + BCE(D(sg x_p), 0)

The Trainer takes each group's gradient of its own loss only, so L_feat does not train the
discriminator, as the paper prescribes. `pixel_weight` ρ adds the decoder likelihood's objective
(0 in the preset: Larsen's model); the likelihood is otherwise what maps decoder outputs to x̃ and
what the ELBO and IWAE of the trained model use (Gaussian posterior, N(0, I) prior). The loss
logged and validated as `loss` is the encoder's (the VAE objective in feature space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.components.discriminators import ImageDiscriminator
from vaecore.components.objectives import kl_to_prior
from vaecore.config import ModelConfig, kl_weight, setting
from vaecore.models.aae import bce_logits
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import LossOutput, ParamGroup, register_model_type, scalar
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset


@dataclass
class VAEGANConfig(ModelConfig):
    """A VAE-GAN: `gamma` weights the feature reconstruction in the decoder's loss, `beta` the KL in
    the encoder's, `pixel_weight` a pixel likelihood term in both; the discriminator has
    `disc_blocks` blocks of `disc_channels` channels (convolutional unless arch is 'mlp') and its
    block `feature_layer` gives Dis_l."""

    model_type: str = "vaegan"
    beta: float = kl_weight(1.0)
    gamma: float = setting(1.0, lo=0)
    pixel_weight: float = setting(0.0, lo=0)
    disc_channels: int = setting(32, lo=1, hi=4096)
    disc_blocks: int = setting(3, lo=1, hi=8)
    feature_layer: int = setting(2, lo=1, hi=8)
    disc_lr_scale: float = setting(1.0, lo=0, lo_open=True)


@register_model_type
class VAEGAN(AutoEncoder):
    """Gaussian encoder and N(0, I) prior; encoder, decoder and discriminator each with an optimizer."""

    model_type: ClassVar[str] = "vaegan"
    title: ClassVar[str] = "VAE-GAN"
    pythae: ClassVar[str] = (
        "Pythae's coupled trainer steps the encoder and decoder on their own losses plus the later ones; "
        "ours each on its own only (docs/pythae-differences.md).")
    what: ClassVar[str] = ("a variational autoencoder whose reconstruction is measured in a discriminator's "
                           "features, trained with a GAN term")
    tags: ClassVar[tuple[str, ...]] = ("variational", "adversarial")
    group: ClassVar[str] = "perceptual"
    config_class: ClassVar[type[ModelConfig]] = VAEGANConfig
    config: VAEGANConfig

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        c = self.config
        c_, h, w = c.input_shape
        conv = c.arch != "mlp" and min(h, w) >= 2 ** c.disc_blocks
        self.discriminator = ImageDiscriminator(c.input_shape, channels=c.disc_channels, blocks=c.disc_blocks,
                                                feature_layer=c.feature_layer, conv=conv)

    def param_groups(self) -> list[ParamGroup]:
        enc = list(self.encoder.parameters())
        disc = list(self.discriminator.parameters())
        taken = {id(p) for p in enc + disc}
        dec = [p for p in self.parameters() if p.requires_grad and id(p) not in taken]
        return [ParamGroup("encoder", enc), ParamGroup("decoder", dec),
                ParamGroup("discriminator", disc, self.config.disc_lr_scale)]

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        c = self.config
        ctx = ctx or StepContext.evaluation()
        fwd = self.forward_pass(self._check_input(x))
        x_rec = self.likelihood.mean(fwd.params)
        z_prior = self.prior.sample(x.shape[0], device=fwd.z.device).to(fwd.z.dtype)
        x_prior = self.decode(z_prior)
        logit_real, feat_real = self.discriminator(fwd.x)
        logit_rec, feat_rec = self.discriminator(x_rec)
        logit_prior, _ = self.discriminator(x_prior)
        feat = 0.5 * (feat_real - feat_rec).pow(2).sum(1).mean()
        kl = kl_to_prior(fwd.posterior, fwd.z, self.prior).mean()
        pixel = self.likelihood.objective(fwd.params, fwd.x) if c.pixel_weight > 0 else feat.new_zeros(())
        gan_gen = bce_logits(logit_rec, 1.0) + bce_logits(logit_prior, 1.0)
        encoder = c.beta * ctx.kl_weight * kl + feat + c.pixel_weight * pixel
        decoder = c.gamma * feat + gan_gen + c.pixel_weight * pixel
        real = logit_real
        rec, fake = (self.discriminator(t.detach())[0] for t in (x_rec, x_prior))
        disc = bce_logits(real, 1.0) + bce_logits(rec, 0.0) + bce_logits(fake, 0.0)
        accuracy = ((real > 0).float().mean() + (rec < 0).float().mean() + (fake < 0).float().mean()) / 3
        logs = {"kl": scalar(kl), "feature_recon": scalar(feat), "gan_generator": scalar(gan_gen),
                "loss": scalar(encoder), "disc_loss": scalar(disc), "disc_accuracy": scalar(accuracy),
                "encoder_loss": scalar(encoder), "decoder_loss": scalar(decoder)}
        if c.pixel_weight > 0:
            logs["recon"] = scalar(pixel)
        logs.update(self.likelihood.trace())
        return LossOutput(encoder, logs,
                          {"encoder": encoder, "decoder": decoder, "discriminator": disc})


register_preset("vaegan", "VAE-GAN (Larsen et al.): reconstruction in a discriminator's feature space, "
                "three optimizers (encoder, decoder, discriminator), Bernoulli-mean decoder", PYTHAE,
                model_type="vaegan", likelihood="bernoulli")
