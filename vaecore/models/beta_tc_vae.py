"""β-TC-VAE (Chen et al., 2018): the KL's aggregate split into index-code mutual information, total
correlation and dimension-wise KL, each with its own weight,

    loss = recon + α·MI + β·TC + γ·DWKL
    MI   = E[log q(z|x) − log q(z)],  TC = E[log q(z) − Σ_j log q(z_j)],  DWKL = Σ_j E[log q(z_j) − log p(z_j)]

with q(z) the aggregate posterior over the N training images, estimated from the minibatch:
minibatch weighted sampling (MWS), log q(z_i) ≈ logsumexp_j log q(z_i|x_j) − log(N·B) as in the
paper, or minibatch stratified sampling (MSS) with the paper's stratified weights (rows summing
to 1). N is `ctx.dataset_size` (the batch size when unknown). Per example the three terms sum
exactly to log q(z|x) − log p(z), the one-sample KL estimate, whatever the estimator. MWS
weights every q(z_i|x_j) by 1/(N·B), so its weights sum to 1/N where MSS's sum to 1: its logged
MI, TC and DWKL are shifted against MSS's (their sum is not); read MSS's when the values matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.components.objectives import Forward
from vaecore.components.posteriors import LOG_2PI, DiagonalGaussian
from vaecore.config import ModelConfig, setting
from vaecore.models.base import LossOutput, register_model_type, scalar
from vaecore.models.vae import PYTHAE, VAE, VAEConfig, gaussian
from vaecore.presets import register_preset

ESTIMATORS = ("mws", "mss")


@dataclass
class BetaTCVAEConfig(VAEConfig):
    """β-TC-VAE: `alpha` weights MI, `beta` the total correlation, `gamma` the dimension-wise KL;
    `estimator` is 'mws' (minibatch weighted) or 'mss' (minibatch stratified sampling)."""

    model_type: str = "beta-tc-vae"
    alpha: float = setting(1.0, lo=0)
    beta: float = setting(6.0, lo=0, label="β (total-correlation weight)",
                          help="weight of the total correlation (the KL splits into α·MI + β·TC + γ·dim-wise KL)")
    gamma: float = setting(1.0, lo=0)
    estimator: str = setting("mws", choices=ESTIMATORS)

    def validate(self) -> None:
        super().validate()
        if self.prior != "normal":
            raise ValueError("setting 'prior': the dimension-wise KL needs a factorised prior; use 'normal'")


def stratified_log_weights(batch: int, dataset_size: int) -> Tensor:
    """log of the MSS importance weights (Chen et al., appendix C.2): w[i, j] weights q(z_i|x_j) in
    the estimate of q(z_i); 1/N on the own sample j = i, (N − M)/(N·M) on one other (j = i + 1),
    1/M on the rest, M = B − 1, so each row sums to 1. (The reference code puts the 1/N in column
    0 of every row instead of on the diagonal.)"""
    n, m = dataset_size, batch - 1
    w = torch.full((batch, batch), 1 / m)
    i = torch.arange(batch)
    w[i, (i + 1) % batch] = (n - m) / (n * m)
    w[i, i] = 1 / n
    return w.log()


def tc_decomposition(q: DiagonalGaussian, z: Tensor, dataset_size: int, estimator: str = "mws") -> dict[str, Tensor]:
    """Per-example MI, TC and DWKL of draws z (B, d) from q(z|x) (B posteriors), with q(z) and
    q(z_j) estimated over the batch. Also returns `log_qz_x` and `log_pz` (MI + TC + DWKL = their gap)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
    b = z.shape[0]
    n = max(int(dataset_size), b)
    var = q.logvar.exp()
    pair = -0.5 * ((z.unsqueeze(1) - q.mu.unsqueeze(0)) ** 2 / var.unsqueeze(0) + q.logvar.unsqueeze(0) + LOG_2PI)
    if estimator == "mss" and b > 1:
        log_w = stratified_log_weights(b, n).to(z.device, z.dtype)
        log_qz = torch.logsumexp(log_w + pair.sum(-1), dim=1)
        log_qzj = torch.logsumexp(log_w.unsqueeze(-1) + pair, dim=1)
    else:
        log_qz = torch.logsumexp(pair.sum(-1), dim=1) - math.log(n * b)
        log_qzj = torch.logsumexp(pair, dim=1) - math.log(n * b)
    log_qz_x = q.log_prob(z)
    log_pzj = -0.5 * (z.pow(2) + LOG_2PI)
    log_prod = log_qzj.sum(-1)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_prod, "dwkl": (log_qzj - log_pzj).sum(-1),
            "log_qz_x": log_qz_x, "log_pz": log_pzj.sum(-1)}


@register_model_type
class BetaTCVAE(VAE):
    """VAE posterior and N(0, I) prior; the KL replaced by α·MI + β·TC + γ·DWKL."""

    model_type: ClassVar[str] = "beta-tc-vae"
    title: ClassVar[str] = "β-TC-VAE"
    what: ClassVar[str] = ("a variational autoencoder whose KL is split into index-code MI, total correlation and "
                           "dimension-wise KL")
    tags: ClassVar[tuple[str, ...]] = ("variational", "disentangling")
    group: ClassVar[str] = "disentangling"
    config_class: ClassVar[type[ModelConfig]] = BetaTCVAEConfig
    config: BetaTCVAEConfig

    def build_terms(self) -> list:
        return []

    def objective(self, fwd: Forward, ctx: StepContext) -> LossOutput:
        out = super().objective(fwd, ctx)
        c = self.config
        parts = tc_decomposition(fwd.posterior, fwd.z, ctx.dataset_size, c.estimator)  # type: ignore[arg-type]
        mi, tc, dwkl = parts["mi"].mean(), parts["tc"].mean(), parts["dwkl"].mean()
        total = out.loss + ctx.kl_weight * (c.alpha * mi + c.beta * tc + c.gamma * dwkl)
        out.logs.update(mi=scalar(mi), tc=scalar(tc), dwkl=scalar(dwkl), loss=scalar(total))
        return LossOutput(total, out.logs)


register_preset("beta-tc-vae", "β-TC-VAE (Chen et al.): recon + MI + 6·TC + DWKL, minibatch weighted sampling, "
                "σ-VAE decoder", PYTHAE, model_type="beta-tc-vae", alpha=1.0, beta=6.0, gamma=1.0, estimator="mws",
                **gaussian("optimal"))
