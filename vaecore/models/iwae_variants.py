"""The IWAE variants of Rainforth et al. (2018), "Tighter variational bounds are not necessarily better":

    MIWAE(M, K) = (1/M) Σ_m log (1/K) Σ_k w_mk                 (M independent K-sample bounds)
    CIWAE(β, K) = β·ELBO_K + (1 − β)·IWAE_K                     (ELBO_K = (1/K) Σ_k log w_k, same draws)
    PIWAE(M, K): the encoder trained on MIWAE(M, K), the decoder on IWAE(M·K), from the same draws

with w = p(x|z) p(z) / q(z|x), z ~ q(z|x). PIWAE has two parameter groups, "encoder" and
"decoder" (decoder, likelihood and prior), each stepped on its own loss by the Trainer. All three
share the VAE posterior, prior and decoder, so their IWAE / ELBO metrics are the generic ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import iwae_bound
from vaecore.models.base import LossOutput, ParamGroup, register_model_type, scalar
from vaecore.models.iwae import IWAE, IWAEConfig
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset


@dataclass
class MIWAEConfig(IWAEConfig):
    """MIWAE: `m` bounds of `k` importance samples each (Pythae: M = 5, K = 10)."""

    model_type: str = "miwae"
    k: int = setting(10, lo=1, hi=10_000)
    m: int = setting(5, lo=1, hi=10_000)


@dataclass
class PIWAEConfig(MIWAEConfig):
    """PIWAE: the encoder on MIWAE(`m`, `k`), the decoder on IWAE(`m`·`k`)."""

    model_type: str = "piwae"


@dataclass
class CIWAEConfig(IWAEConfig):
    """CIWAE: `ciwae_beta`·ELBO + (1 − `ciwae_beta`)·IWAE over `k` draws (Pythae: β = 0.5, K = 10)."""

    model_type: str = "ciwae"
    k: int = setting(10, lo=1, hi=10_000)
    ciwae_beta: float = setting(0.5, lo=0, hi=1)


def miwae_bound(log_w: Tensor, m: int) -> Tensor:
    """(1/M) Σ_m log (1/K) Σ_k w_mk per example from (M·K, B) log weights."""
    k = log_w.shape[0] // m
    return (log_w.reshape(m, k, -1).logsumexp(dim=1) - math.log(k)).mean(dim=0)


class _WeightedVAE(IWAE):
    """An IWAE whose loss is built from one call of the log weights."""

    def draws(self) -> int:
        return self.config.k

    def _log_weights(self, x: Tensor) -> Tensor:
        return self.log_importance_weights(x, self.draws(), scores=("nll_fitted",))["nll_fitted"]


@register_model_type
class MIWAE(_WeightedVAE):
    """Trained on the average of M independent K-sample IWAE bounds."""

    model_type: ClassVar[str] = "miwae"
    title: ClassVar[str] = "MIWAE"
    pythae: ClassVar[str] = (
        "Pythae normalises MIWAE's weights over the M axis of its (M, K): our MIWAE(M, K) is Pythae's "
        "with M and K swapped (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder trained on M averaged importance-weighted bounds"
    tags: ClassVar[tuple[str, ...]] = ("variational", "importance-weighted")
    group: ClassVar[str] = "importance-weighted"
    config_class: ClassVar[type[ModelConfig]] = MIWAEConfig
    config: MIWAEConfig

    def draws(self) -> int:
        return self.config.m * self.config.k

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        bound = miwae_bound(self._log_weights(self._check_input(x)), self.config.m)
        loss = -bound.mean()
        return LossOutput(loss, {"miwae_bound": scalar(bound.mean()), "loss": scalar(loss), **self.likelihood.trace()})


@register_model_type
class PIWAE(MIWAE):
    """Encoder on MIWAE(M, K), decoder on IWAE(M·K): two parameter groups, two losses."""

    model_type: ClassVar[str] = "piwae"
    title: ClassVar[str] = "PIWAE"
    pythae: ClassVar[str] = (
        "Pythae's coupled trainer steps PIWAE's encoder on MIWAE plus IWAE gradients; ours on MIWAE's "
        "only (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder whose encoder trains on MIWAE's bound and decoder on IWAE's"
    tags: ClassVar[tuple[str, ...]] = ("variational", "importance-weighted")
    group: ClassVar[str] = "importance-weighted"
    config_class: ClassVar[type[ModelConfig]] = PIWAEConfig
    config: PIWAEConfig

    def param_groups(self) -> list[ParamGroup]:
        enc = {id(p) for p in self.encoder.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in enc]
        return [ParamGroup("encoder", [p for p in self.encoder.parameters() if p.requires_grad]),
                ParamGroup("decoder", rest)]

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        log_w = self._log_weights(self._check_input(x))
        miwae, iwae = miwae_bound(log_w, self.config.m).mean(), iwae_bound(log_w).mean()
        loss = -(miwae + iwae)
        logs = {"miwae_bound": scalar(miwae), "iwae_bound": scalar(iwae), "loss": scalar(loss),
                **self.likelihood.trace()}
        return LossOutput(loss, logs, {"encoder": -miwae, "decoder": -iwae})


@register_model_type
class CIWAE(_WeightedVAE):
    """Trained on the convex combination β·ELBO_K + (1 − β)·IWAE_K of the same K draws."""

    model_type: ClassVar[str] = "ciwae"
    title: ClassVar[str] = "CIWAE"
    pythae: ClassVar[str] = (
        "Pythae logs the self-normalised surrogate of the IWAE part as the loss; we log the bound (the "
        "gradients agree) (docs/pythae-differences.md).")
    what: ClassVar[str] = "a variational autoencoder trained on a convex combination of the ELBO and the IWAE bound"
    tags: ClassVar[tuple[str, ...]] = ("variational", "importance-weighted")
    group: ClassVar[str] = "importance-weighted"
    config_class: ClassVar[type[ModelConfig]] = CIWAEConfig
    config: CIWAEConfig

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        log_w = self._log_weights(self._check_input(x))
        elbo, iwae = log_w.mean(dim=0).mean(), iwae_bound(log_w).mean()
        beta = self.config.ciwae_beta
        loss = -(beta * elbo + (1 - beta) * iwae)
        logs = {"elbo_k": scalar(elbo), "iwae_bound": scalar(iwae), "loss": scalar(loss), **self.likelihood.trace()}
        return LossOutput(loss, logs)


register_preset("miwae", "MIWAE (Rainforth et al.): the mean of M = 5 bounds of K = 10 importance samples, "
                "Bernoulli decoder", PYTHAE, model_type="miwae", m=5, k=10, likelihood="bernoulli")
register_preset("piwae", "PIWAE (Rainforth et al.): encoder on MIWAE(5, 10), decoder on IWAE(50), two optimizers, "
                "Bernoulli decoder", PYTHAE, model_type="piwae", m=5, k=10, likelihood="bernoulli")
register_preset("ciwae", "CIWAE (Rainforth et al.): 0.5·ELBO + 0.5·IWAE over K = 10 samples, Bernoulli decoder",
                PYTHAE, model_type="ciwae", k=10, ciwae_beta=0.5, likelihood="bernoulli")
