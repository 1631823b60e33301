"""Posteriors q(z|x): what an encoder returns, as an object with one small contract.

Every posterior has `mean` (the latent point used for maps, KNN and interpolation),
`rsample(n)` (reparameterised draws, shape (B, d) or (n, B, d)), `log_prob(z)` (summed over the
event dimension, broadcasting over leading sample dimensions) and `kl(prior)`, the closed-form
KL per example when one is registered for the pair, else None (objectives then fall back to a
Monte-Carlo estimate). A point mass (AE, WAE, RAE) is `deterministic`: it has no density.

KL divergences are registered by type pair, as `torch.distributions.kl` does, so no if-chain
decides which one applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)
_KL: dict[tuple[type, type], Callable[[Any, Any], Tensor]] = {}


def register_kl(q_type: type, p_type: type) -> Callable[[Callable[[Any, Any], Tensor]], Callable[[Any, Any], Tensor]]:
    """Decorator: a closed-form KL(q ‖ p) per example for a (posterior type, prior type) pair."""
    def wrap(fn: Callable[[Any, Any], Tensor]) -> Callable[[Any, Any], Tensor]:
        _KL[(q_type, p_type)] = fn
        return fn
    return wrap


def kl_divergence(q: Posterior, p: Any) -> Tensor | None:
    """KL(q ‖ p) per example when a closed form is registered for their types (or a parent's), else None."""
    for q_cls in type(q).__mro__:
        for p_cls in type(p).__mro__:
            fn = _KL.get((q_cls, p_cls))
            if fn is not None:
                return fn(q, p)
    return None


class Posterior:
    """The contract of q(z|x) for a batch of B inputs."""

    deterministic: bool = False

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised draws: (B, d), or (n, B, d) when n is given."""
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) summed over the latent dimensions; z is (B, d) or (n, B, d)."""
        raise NotImplementedError

    def kl(self, prior: Any) -> Tensor | None:
        """Closed-form KL(q ‖ prior) per example, or None when there is none."""
        return kl_divergence(self, prior)


class DiagonalGaussian(Posterior):
    """N(μ, diag exp(logvar)): the posterior of the VAE family."""

    def __init__(self, mu: Tensor, logvar: Tensor) -> None:
        self.mu, self.logvar = mu, logvar

    @property
    def mean(self) -> Tensor:
        return self.mu

    @property
    def stddev(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        eps = torch.randn(shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + self.stddev * eps

    def log_prob(self, z: Tensor) -> Tensor:
        return diag_normal_log_prob(z, self.mu, self.logvar)

    def kl_per_dimension(self) -> Tensor:
        """KL to N(0, 1) for each latent dimension and example, (B, d)."""
        return 0.5 * (self.mu.pow(2) + self.logvar.exp() - self.logvar - 1)


class PointMass(Posterior):
    """A deterministic code: rsample returns it; it has no density and no KL."""

    deterministic = True

    def __init__(self, z: Tensor) -> None:
        self.z = z

    @property
    def mean(self) -> Tensor:
        return self.z

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        return self.z if n is None else self.z.unsqueeze(0).expand(n, *self.z.shape)

    def log_prob(self, z: Tensor) -> Tensor:
        raise ValueError("a point-mass posterior (deterministic encoder) has no density q(z|x)")


def diag_normal_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension (broadcasts)."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(dim=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(dim=-1)
