"""Priors p(z): `log_prob(z)` over the last dimension and `sample(n)`.

N(0, I) has a closed-form KL with the diagonal Gaussian posterior (registered here); the
VampPrior (Tomczak & Welling) is a mixture of the posteriors of learned pseudo-inputs, so its
KL is estimated by Monte Carlo. Priors are modules: their parameters train and save with the
model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from vaecore.components.kinds import PriorKind
from vaecore.components.posteriors import (
    LOG_2PI,
    DiagonalGaussian,
    register_kl,
    standard_normal_log_prob,
)


class Prior(nn.Module):
    """The contract of p(z) over latents of shape (d,); `kind` is what capabilities report."""

    kind: ClassVar[PriorKind]

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        raise NotImplementedError


class StandardNormal(Prior):
    """N(0, I)."""

    kind = PriorKind.STANDARD_NORMAL

    def log_prob(self, z: Tensor) -> Tensor:
        return standard_normal_log_prob(z)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=device)


@register_kl(DiagonalGaussian, StandardNormal)
def _kl_diag_normal(q: DiagonalGaussian, p: StandardNormal) -> Tensor:
    return q.kl_per_dimension().sum(dim=-1)


def diag_mixture_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log (1/K) Σ_k N(z; μ_k, diag exp(logvar_k)) over the last dimension of z (..., d), for K components (K, d).

    The quadratic forms Σ_j (z_j − μ_kj)² / σ_kj² of all z against all components are three matrix products
    (z² · P − 2 z · (μ P) + μ² · P, P = 1/σ²) rather than a (..., K, d) broadcast, in float64 so the expanded
    square loses nothing to cancellation; the result has z's dtype.
    """
    d, k = z.shape[-1], mu.shape[0]
    zf = z.reshape(-1, d).double()
    mu, logvar = mu.double(), logvar.double()
    prec = torch.exp(-logvar)
    quad = (zf * zf) @ prec.T - 2.0 * zf @ (mu * prec).T + (mu * mu * prec).sum(dim=-1)
    lp = -0.5 * (quad.clamp_min(0.0) + logvar.sum(dim=-1) + d * LOG_2PI)
    return (torch.logsumexp(lp, dim=-1) - math.log(k)).to(z.dtype).reshape(z.shape[:-1])


class VampPrior(Prior):
    """(1/K) Σ_k q(z | u_k) over K learned pseudo-inputs u_k = sigmoid(pseudo_inputs_k).

    `encode` maps images to a DiagonalGaussian; it is the model's own encoder, held as a plain
    callable so its weights are not saved twice.
    """

    kind = PriorKind.VAMP

    def __init__(self, latent_dim: int, components: int, input_shape: tuple[int, int, int],
                 encode: Callable[[Tensor], DiagonalGaussian]) -> None:
        super().__init__(latent_dim)
        if components < 1:
            raise ValueError(f"the VampPrior needs at least 1 component, got {components}")
        self.pseudo_inputs = nn.Parameter(torch.randn(components, *input_shape) * 0.1 - 1.0)
        self._encode = [encode]  # a list keeps nn.Module from registering the encoder as a child

    def components(self) -> DiagonalGaussian:
        """The K mixture components q(z | u_k)."""
        return self._encode[0](torch.sigmoid(self.pseudo_inputs))

    def log_prob(self, z: Tensor) -> Tensor:
        comp = self.components()
        return diag_mixture_log_prob(z, comp.mu, comp.logvar)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        comp = self.components()
        k = torch.randint(comp.mu.shape[0], (n,), generator=generator, device=comp.mu.device)
        return DiagonalGaussian(comp.mu[k], comp.logvar[k]).rsample(generator=generator)
