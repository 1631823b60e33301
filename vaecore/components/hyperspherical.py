"""Distributions on the unit sphere S^{d−1}: the von Mises–Fisher posterior and the uniform prior (SVAE).

vMF(μ, κ) has density C_d(κ)·exp(κ μᵀz) with
    log C_d(κ) = (d/2 − 1) log κ − (d/2) log 2π − log I_{d/2−1}(κ)
and KL(vMF ‖ Uniform) = κ·I_{d/2}(κ)/I_{d/2−1}(κ) + log C_d(κ) + log |S^{d−1}|.
The modified Bessel function of arbitrary order has no torch kernel, so `log_bessel_iv` evaluates
scipy's exponentially scaled `ive` in float64 and supplies its derivative
d/dκ log I_ν(κ) = I_{ν+1}(κ)/I_ν(κ) + ν/κ (Davidson et al., 2018).

Sampling follows Wood (1994): w = μᵀz by rejection, a uniform direction orthogonal to e₁, then
a Householder reflection e₁ → μ. The accepted proposal is kept fixed and w is differentiated
through its dependence on κ (the reparameterised part of Davidson et al.'s gradient; their
correction term for the rejection step is omitted, as in their reference implementation's default).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special
from torch import Tensor

from vaecore.components.kinds import PriorKind
from vaecore.components.posteriors import Posterior, register_kl
from vaecore.components.priors import Prior

MAX_REJECTION_ROUNDS = 1000


SERIES_TERMS = 60
UNDERFLOW = 1e-250


def _log_iv(nu: float, k: np.ndarray) -> np.ndarray:
    """log I_ν(k) in float64: scipy's scaled `ive` where it is representable, else the power series
    I_ν(k) = Σ_m (k/2)^{2m+ν} / (m! Γ(m+ν+1)) summed in log space (small k, large ν)."""
    ive = special.ive(nu, k)
    out = np.log(np.maximum(ive, UNDERFLOW)) + k
    small = ive < UNDERFLOW
    if small.any():
        m = np.arange(SERIES_TERMS)[:, None]
        half = np.log(k[small] / 2)[None, :]
        terms = (2 * m + nu) * half - special.gammaln(m + 1) - special.gammaln(m + nu + 1)
        out[small] = special.logsumexp(terms, axis=0)
    return out


class _LogBesselI(torch.autograd.Function):
    """log I_ν(κ) elementwise for a fixed order ν ≥ 0, κ > 0."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, nu: float, kappa: Tensor) -> Tensor:  # type: ignore[override]
        k = np.atleast_1d(kappa.detach().double().cpu().numpy())
        log_i = _log_iv(nu, k)
        ratio = np.exp(_log_iv(nu + 1, k) - log_i)
        ratio_t = torch.as_tensor(ratio, dtype=kappa.dtype, device=kappa.device).reshape(kappa.shape)
        ctx.save_for_backward(kappa, ratio_t)
        ctx.nu = nu
        return torch.as_tensor(log_i, dtype=kappa.dtype, device=kappa.device).reshape(kappa.shape)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]
        kappa, ratio = ctx.saved_tensors
        return None, grad * (ratio + ctx.nu / kappa)


def log_bessel_iv(nu: float, kappa: Tensor) -> Tensor:
    """log I_ν(κ), differentiable in κ."""
    return _LogBesselI.apply(float(nu), kappa)


def bessel_ratio(nu: float, kappa: Tensor) -> Tensor:
    """I_{ν+1}(κ) / I_ν(κ), differentiable in κ."""
    return torch.exp(log_bessel_iv(nu + 1, kappa) - log_bessel_iv(nu, kappa))


def log_sphere_area(d: int) -> float:
    """log |S^{d−1}| = log(2 π^{d/2} / Γ(d/2)), the surface area of the unit sphere in R^d."""
    return math.log(2) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


class VonMisesFisher(Posterior):
    """vMF(loc, κ) on S^{d−1}: `loc` (B, d) unit vectors, `kappa` (B, 1) concentrations."""

    def __init__(self, loc: Tensor, kappa: Tensor) -> None:
        self.loc, self.kappa = loc, kappa
        self.d = loc.shape[-1]

    @property
    def mean(self) -> Tensor:
        """The mean direction μ (the latent point on the sphere)."""
        return self.loc

    def log_normaliser(self) -> Tensor:
        """log C_d(κ), (B,)."""
        k = self.kappa.squeeze(-1)
        nu = self.d / 2 - 1
        return nu * torch.log(k) - (self.d / 2) * math.log(2 * math.pi) - log_bessel_iv(nu, k)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.log_normaliser() + self.kappa.squeeze(-1) * (z * self.loc).sum(dim=-1)

    def mean_resultant_length(self) -> Tensor:
        """E[μᵀz] = I_{d/2}(κ) / I_{d/2−1}(κ), (B,)."""
        return bessel_ratio(self.d / 2 - 1, self.kappa.squeeze(-1))

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        shape = (1 if n is None else n, *self.loc.shape[:-1])
        w = self._sample_w(shape, generator)
        v = torch.randn((*shape, self.d - 1), generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        z = torch.cat([w.unsqueeze(-1), torch.sqrt((1 - w * w).clamp_min(0)).unsqueeze(-1) * v], dim=-1)
        z = self._householder(z)
        return z[0] if n is None else z

    def _sample_w(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """w = μᵀz by Wood's rejection sampler; ε ~ Beta((d−1)/2, (d−1)/2) as a ratio of χ²(d−1) draws."""
        m = self.d - 1
        kappa = self.kappa.squeeze(-1).expand(shape)
        root = torch.sqrt(4 * kappa * kappa + m * m)
        b = m / (2 * kappa + root)
        a = (m + 2 * kappa + root) / 4
        d0 = 4 * a * b / (1 + b) - m * math.log(m)
        eps = torch.zeros(shape, device=kappa.device, dtype=kappa.dtype)
        todo = torch.ones(shape, dtype=torch.bool, device=kappa.device)
        for _ in range(MAX_REJECTION_ROUNDS):
            g = torch.randn((2, *shape, m), generator=generator, device=kappa.device, dtype=kappa.dtype).pow(2).sum(-1)
            e = g[0] / (g[0] + g[1])
            u = torch.rand(shape, generator=generator, device=kappa.device, dtype=kappa.dtype)
            with torch.no_grad():
                t = 2 * a * b / (1 - (1 - b) * e)
                accept = todo & (m * torch.log(t) - t + d0 >= torch.log(u))
            eps = torch.where(accept, e, eps)
            todo = todo & ~accept
            if not bool(todo.any()):
                break
        else:
            raise RuntimeError("the von Mises–Fisher rejection sampler did not converge")
        return (1 - (1 + b) * eps) / (1 - (1 - b) * eps)

    def _householder(self, z: Tensor) -> Tensor:
        """Reflect samples around e₁ onto samples around μ."""
        e1 = torch.zeros_like(self.loc)
        e1[..., 0] = 1
        u = e1 - self.loc
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return z - 2 * (z * u).sum(dim=-1, keepdim=True) * u


class HypersphericalUniform(Prior):
    """The uniform distribution on S^{d−1}."""

    kind = PriorKind.HYPERSPHERICAL_UNIFORM

    def log_prob(self, z: Tensor) -> Tensor:
        return torch.full(z.shape[:-1], -log_sphere_area(self.latent_dim), device=z.device, dtype=z.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(q: VonMisesFisher, p: HypersphericalUniform) -> Tensor:
    k = q.kappa.squeeze(-1)
    return k * q.mean_resultant_length() + q.log_normaliser() + log_sphere_area(q.d)
