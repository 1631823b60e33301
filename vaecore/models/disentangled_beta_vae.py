"""Disentangled β-VAE (Burgess et al., 2018): the KL is pulled towards a capacity C_t that grows
linearly from 0 to C_max over a warm-up,

    loss = recon + β·|KL(q(z|x) ‖ p(z)) − C_t|,   C_t = C_max · min(1, step / (warm-up epochs · steps per epoch)),

with KL the batch mean (the paper's form; Pythae takes |·| per example). The step and the epoch
length come from the `StepContext`; outside training (validation) C is C_max, the objective the
run converges to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.components.objectives import Forward, Term, kl_to_prior
from vaecore.config import ModelConfig, setting
from vaecore.models.base import LossOutput, register_model_type
from vaecore.models.vae import PYTHAE, VAE, VAEConfig, gaussian
from vaecore.presets import register_preset


@dataclass
class DisentangledBetaVAEConfig(VAEConfig):
    """`beta` weights |KL − C|; the capacity C rises to `capacity` nats over `capacity_warmup_epochs`."""

    model_type: str = "disentangled-beta-vae"
    beta: float = setting(10.0, lo=0, label="β (weight of |KL − C|)",
                          help="weight of the distance between the KL and the capacity C")
    capacity: float = setting(50.0, lo=0)
    capacity_warmup_epochs: float = setting(25.0, lo=0)


def capacity_at(ctx: StepContext, capacity: float, warmup_epochs: float) -> float:
    """C_t: linear in the step from 0 to `capacity` over the warm-up; `capacity` outside training."""
    warmup_steps = warmup_epochs * ctx.steps_per_epoch
    if not ctx.training or warmup_steps <= 0:
        return capacity
    return capacity * min(1.0, ctx.step / warmup_steps)


class CapacityKLTerm(Term):
    """β · warm-up · |E_batch KL − C_t|."""

    name = "kl_gap"

    def __init__(self, beta: float, capacity: float, warmup_epochs: float) -> None:
        self.beta, self.capacity, self.warmup_epochs = beta, capacity, warmup_epochs

    def weight(self, ctx: StepContext) -> float:
        return self.beta * ctx.kl_weight

    def value(self, model: Any, fwd: Forward, ctx: StepContext) -> Tensor:
        kl = kl_to_prior(fwd.posterior, fwd.z, model.prior).mean()
        return (kl - capacity_at(ctx, self.capacity, self.warmup_epochs)).abs()


@register_model_type
class DisentangledBetaVAE(VAE):
    """VAE whose KL is held near a growing capacity C_t."""

    model_type: ClassVar[str] = "disentangled-beta-vae"
    title: ClassVar[str] = "Disentangled β-VAE"
    what: ClassVar[str] = "a variational autoencoder whose KL is held at a growing capacity C"
    tags: ClassVar[tuple[str, ...]] = ("variational", "disentangling")
    group: ClassVar[str] = "disentangling"
    config_class: ClassVar[type[ModelConfig]] = DisentangledBetaVAEConfig
    config: DisentangledBetaVAEConfig

    def build_terms(self) -> list[Term]:
        c = self.config
        return [CapacityKLTerm(c.beta, c.capacity, c.capacity_warmup_epochs)]

    def objective(self, fwd: Forward, ctx: StepContext) -> LossOutput:
        out = super().objective(fwd, ctx)
        c = self.config
        out.logs["kl"] = float(kl_to_prior(fwd.posterior, fwd.z, self.prior).mean().detach())
        out.logs["capacity"] = capacity_at(ctx, c.capacity, c.capacity_warmup_epochs)
        return out


register_preset("disentangled-beta-vae", "Disentangled β-VAE (Burgess et al.): β·|KL − C| with β = 10 and C "
                "rising linearly to 50 nats over 25 epochs, σ-VAE decoder", PYTHAE,
                model_type="disentangled-beta-vae", beta=10.0, capacity=50.0, capacity_warmup_epochs=25.0,
                **gaussian("optimal"))
