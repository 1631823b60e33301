"""Prior holes: where the prior N(0, I) puts mass that the aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) leaves
empty. Decoding z from such a hole gives an image unlike the data — why samples from a sampler fitted to the
aggregate posterior (a GMM) beat samples from the prior (Ghosh et al. 2020, Dai & Wipf 2019).

A prior draw z is *in a hole* when log q(z) is below the `level` quantile of log q at draws from the aggregate
posterior itself. q(z) is the mixture of the diagonal-Gaussian posteriors of one half of the images; the reference
draws come from the posteriors of the other half, so no draw is scored by its own component. Per dimension, the
aggregate posterior's mean and variance (moment matched) and the KL of N(mean, var) from N(0, 1) say which
dimensions fill the prior and which do not (variance ≪ 1: a thin shell of mass; ≈ 0 and KL ≈ 0: collapsed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vaecore.evaluation.registry import undefined_reason
from vaecore.evaluation.uncertainty import Estimate, mean_se
from vaecore.utils import evaluating

__all__ = ["PriorHoles", "aggregate_log_density", "prior_holes"]

LEVEL = 0.01
MAX_COMPONENTS = 5000


@dataclass
class PriorHoles:
    """Prior draws, log q at them and at reference posterior draws, the hole threshold and per-dimension moments."""

    z_prior: Tensor
    log_q_prior: np.ndarray
    log_q_posterior: np.ndarray
    threshold: float
    level: float
    in_hole: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @property
    def fraction(self) -> Estimate:
        """Share of prior draws in a hole, ± its binomial SE (over the prior draws)."""
        return mean_se(self.in_hole.astype(np.float64))

    @property
    def kl_per_dim(self) -> np.ndarray:
        """KL(N(mean_j, var_j) ‖ N(0, 1)) per dimension, in nats: how far the moment-matched aggregate posterior of
        each dimension is from the prior."""
        v = np.maximum(self.var, 1e-12)
        return 0.5 * (v + self.mean ** 2 - 1.0 - np.log(v))


def aggregate_log_density(z: Tensor, mu: Tensor, logvar: Tensor, chunk: int = 256) -> Tensor:
    """log (1/N) Σ_n N(z; μ_n, diag exp(logvar_n)) at each row of z (M, d), in float64: the aggregate posterior's
    log density."""
    mu, logvar, z = mu.double(), logvar.double(), z.double()
    inv_var = torch.exp(-logvar)
    const = -0.5 * (logvar.sum(1) + mu.shape[1] * math.log(2 * math.pi))  # (N,)
    out = []
    for s in range(0, z.shape[0], chunk):
        zc = z[s:s + chunk]
        sq = ((zc[:, None, :] - mu[None]) ** 2 * inv_var[None]).sum(-1)  # (m, N)
        out.append(torch.logsumexp(const[None] - 0.5 * sq, dim=1) - math.log(mu.shape[0]))
    return torch.cat(out)


def prior_holes(model: torch.nn.Module, x: Tensor, n_prior: int = 1000, level: float = LEVEL,
                seed: int = 0) -> PriorHoles:
    """`PriorHoles` of a model with a diagonal-Gaussian posterior and a N(0, I) prior on the images x (N ≥ 4); the
    engine's reason (ValueError) for any other model."""
    why = undefined_reason(model, "kl-per-dim")
    if why is not None:
        raise ValueError(f"prior holes need a diagonal-Gaussian posterior and a N(0, I) prior: {why}")
    if not 0 < level < 0.5:
        raise ValueError(f"level must be in (0, 0.5), got {level}")
    if x.shape[0] < 4 or x.shape[0] > 2 * MAX_COMPONENTS:
        raise ValueError(f"need between 4 and {2 * MAX_COMPONENTS:,} images, got {x.shape[0]:,}")
    if not 1 <= n_prior <= 100_000:
        raise ValueError(f"n_prior must be between 1 and 100,000, got {n_prior}")
    with evaluating(model):
        mus, logvars = [], []
        for s in range(0, x.shape[0], 500):
            mu, logvar = model.encode(x[s:s + 500].to(next(model.parameters()).device))
            mus.append(mu.flatten(1).cpu())
            logvars.append(logvar.flatten(1).cpu())
    mu, logvar = torch.cat(mus).double(), torch.cat(logvars).double()
    half = mu.shape[0] // 2
    g = torch.Generator().manual_seed(seed)
    reference = mu[half:] + torch.exp(0.5 * logvar[half:]) * torch.randn(mu[half:].shape, generator=g,
                                                                        dtype=torch.float64)
    z_prior = torch.randn((n_prior, mu.shape[1]), generator=g, dtype=torch.float64)
    log_q_post = aggregate_log_density(reference, mu[:half], logvar[:half]).numpy()
    log_q_prior = aggregate_log_density(z_prior, mu[:half], logvar[:half]).numpy()
    threshold = float(np.quantile(log_q_post, level))
    var = (torch.exp(logvar) + mu ** 2).mean(0) - mu.mean(0) ** 2  # law of total variance over the mixture
    return PriorHoles(z_prior.float(), log_q_prior, log_q_post, threshold, level, log_q_prior < threshold,
                      mu.mean(0).numpy(), var.numpy())
