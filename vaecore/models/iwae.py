"""The importance-weighted autoencoder (Burda et al.): the VAE trained on the K-sample bound.

    L_K = E[log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)],  z_k ~ q(z|x)

With the analytic-σ Gaussian the shared σ is fitted to the residuals of all K·B draws each step
(`Likelihood.nll_fitted`), so it converges as the σ-VAE's does; the AR-ELBO likelihoods, whose
objective is not a per-sample density, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import iwae_bound
from vaecore.models.base import LossOutput, register_model_type, scalar
from vaecore.models.vae import PYTHAE, VAE, VAEConfig
from vaecore.presets import register_preset


@dataclass
class IWAEConfig(VAEConfig):
    """An IWAE: `k` importance samples per image in the training bound."""

    model_type: str = "iwae"
    k: int = setting(5, lo=1, hi=10_000, app="model", label="K (importance samples)", app_hi=100,
                     help="importance samples per image in the bound")


@register_model_type
class IWAE(VAE):
    """VAE posterior, prior and decoder; the loss is −L_K."""

    model_type: ClassVar[str] = "iwae"
    title: ClassVar[str] = "IWAE"
    pythae: ClassVar[str] = (
        "Pythae logs the self-normalised surrogate −Σ w̃ log w as the loss; we log the bound (the "
        "gradients agree) (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder trained on the importance-weighted bound"
    tags: ClassVar[tuple[str, ...]] = ("variational", "importance-weighted")
    group: ClassVar[str] = "importance-weighted"
    config_class: ClassVar[type[ModelConfig]] = IWAEConfig
    config: IWAEConfig

    refused_likelihoods: ClassVar[dict[str, str]] = {
        "arelbo": "the IWAE bound needs a per-sample density, and the AR-ELBO objective is not one; use likelihood "
                  "'gaussian' (sigma 'optimal' is the Iso-I analogue)"}

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        x = self._check_input(x)
        log_w = self.log_importance_weights(x, self.config.k, scores=("nll_fitted",))["nll_fitted"]
        bound = iwae_bound(log_w)
        loss = -bound.mean()
        logs = {"iwae_bound": scalar(bound.mean()), "loss": scalar(loss), **self.likelihood.trace()}
        return LossOutput(loss, logs)


register_preset("iwae", "Importance-weighted autoencoder, K = 5 samples, Bernoulli decoder",
                PYTHAE, model_type="iwae", k=5, likelihood="bernoulli")
