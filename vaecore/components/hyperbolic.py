"""Distributions on the Poincaré ball of curvature −c (Mathieu et al., 2019), with geoopt's ball maps.

The wrapped normal N_W(μ, σ²): v ~ N(0, diag σ²) in the tangent space at the origin (as a vector of
Riemannian length ‖v‖), parallel transport to μ, exponential map. Its density with respect to the
ball's Riemannian volume is

    log N_W(z) = log N(u; 0, diag σ²) − (d − 1)·log(sinh(√c·r)/(√c·r)),   r = d_c(μ, z),

with u = λ_0·PT_{μ→0}(log_μ z) the tangent vector that reaches z. Prior and posterior densities are
both with respect to that volume, so their ratio (KL, importance weights) is the usual one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaecore.components.kinds import PriorKind
from vaecore.components.posteriors import LOG_2PI, Posterior
from vaecore.components.priors import Prior

MIN_DISTANCE = 1e-6


class Ball:
    """The Poincaré ball of curvature −c: geoopt's maps, held outside any nn.Module (nothing to save)."""

    def __init__(self, curvature: float = 1.0) -> None:
        if curvature <= 0:
            raise ValueError(f"the Poincaré ball needs a positive curvature c (curvature −c), got {curvature}")
        self.c = float(curvature)
        import geoopt  # here, not at the top: it imports scipy.optimize, ~0.5 s of every `import vaecore`

        self.manifold = geoopt.PoincareBall(c=self.c)

    @property
    def radius(self) -> float:
        """1/√c: the ball's Euclidean radius."""
        return 1 / math.sqrt(self.c)

    def expmap0(self, u: Tensor) -> Tensor:
        return self.manifold.expmap0(u)

    def logmap0(self, z: Tensor) -> Tensor:
        return self.manifold.logmap0(self.manifold.projx(z))

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        return self.manifold.expmap(x, u)

    def logmap(self, x: Tensor, z: Tensor) -> Tensor:
        return self.manifold.logmap(x, z)

    def dist(self, x: Tensor, z: Tensor) -> Tensor:
        return self.manifold.dist(x, z)

    def lambda_x(self, x: Tensor) -> Tensor:
        """The conformal factor λ_x = 2/(1 − c‖x‖²), (…, 1)."""
        return self.manifold.lambda_x(x, keepdim=True)

    def transp0(self, y: Tensor, v: Tensor) -> Tensor:
        """Parallel transport of v from the origin to y."""
        return self.manifold.transp0(y, v)

    def transp0back(self, y: Tensor, v: Tensor) -> Tensor:
        """Parallel transport of v from y to the origin."""
        return self.manifold.transp0back(y, v)

    def log_volume_ratio(self, r: Tensor) -> Tensor:
        """(d − 1)-free part log(sinh(√c r)/(√c r)) of the exponential map's volume change."""
        s = math.sqrt(self.c) * r.clamp_min(MIN_DISTANCE)
        return torch.log(torch.sinh(s) / s)


class WrappedNormal(Posterior):
    """N_W(loc, diag scale²) on the ball: `loc` (B, d) points, `scale` (B, d) or (B, 1) positive."""

    def __init__(self, loc: Tensor, scale: Tensor, ball: Ball) -> None:
        self.loc, self.scale, self.ball = loc, scale, ball
        self.d = loc.shape[-1]

    @property
    def mean(self) -> Tensor:
        """The centre μ (the latent point of maps and interpolation)."""
        return self.loc

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        shape = self.loc.shape if n is None else (n, *self.loc.shape)
        eps = torch.randn(shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return self.from_tangent(self.scale * eps)

    def from_tangent(self, u: Tensor) -> Tensor:
        """The point reached by the tangent vector u (Riemannian length ‖u‖) at the origin, moved to μ."""
        loc = self.loc.expand_as(u)
        v = u / self.ball.lambda_x(torch.zeros_like(u))
        return self.ball.expmap(loc, self.ball.transp0(loc, v))

    def to_tangent(self, z: Tensor) -> Tensor:
        """The inverse of `from_tangent`: u = λ_0·PT_{μ→0}(log_μ z)."""
        loc = self.loc.expand_as(z)
        v = self.ball.transp0back(loc, self.ball.logmap(loc, z))
        return v * self.ball.lambda_x(torch.zeros_like(v))

    def log_prob(self, z: Tensor) -> Tensor:
        u = self.to_tangent(z)
        log_normal = -0.5 * ((u / self.scale) ** 2 + 2 * torch.log(self.scale) + LOG_2PI).sum(-1)
        r = self.ball.dist(self.loc.expand_as(z), z)
        return log_normal - (self.d - 1) * self.ball.log_volume_ratio(r)


class WrappedNormalPrior(Prior):
    """N_W(0, scale²·I) on the ball: the Poincaré VAE's prior."""

    kind = PriorKind.WRAPPED_NORMAL

    def __init__(self, latent_dim: int, ball: Ball, scale: float = 1.0) -> None:
        super().__init__(latent_dim)
        self.ball, self.scale = ball, float(scale)

    def _dist(self, like: Tensor) -> WrappedNormal:
        zero = torch.zeros(self.latent_dim, device=like.device, dtype=like.dtype)
        return WrappedNormal(zero, torch.full_like(zero, self.scale), self.ball)

    def log_prob(self, z: Tensor) -> Tensor:
        return self._dist(z).log_prob(z)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        u = torch.randn(n, self.latent_dim, generator=generator, device=device) * self.scale
        return self._dist(u).from_tangent(u)
