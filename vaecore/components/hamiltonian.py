"""Hamiltonian flows on the latent space: the HVAE's tempered leapfrog (Caterini et al., 2018) and
the RHVAE's generalized leapfrog on a learned Riemannian metric (Chadebec et al., 2020).

Both flows map a posterior draw z_0 and a momentum ρ_0 to (z_K, ρ_K) by K integrator steps on the
potential U(z) = −log p(x, z), each followed by tempering ρ ← (√β_{k−1}/√β_k)·ρ with
1/√β_k = (1 − 1/√β_0)(k/K)² + 1/√β_0 (so β_K = 1). The integrators preserve volume, and tempering
scales it by β_0^{d/2} over the whole flow; with ρ_0 = L γ/√β_0, γ ~ N(0, I) and L Lᵀ the
momentum covariance (I for the HVAE, G(z_0) for the RHVAE), the density of (z_K, ρ_K) is
q(z_0|x)·N(γ; 0, I)·|det L|⁻¹, so the importance weight of one flow is

    log w = log p(x, z_K) + log N(ρ_K; 0, G(z_K)) − log q(z_0|x) − log N(γ; 0, I) + ½ log det G(z_0).

The RHVAE metric is G⁻¹(z) = Σ_i M_i exp(−‖z − c_i‖²/T²) + λI with M_i = L_i L_iᵀ from a metric
network at training points and c_i their posterior means (`LocalMetric`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)
GradFn = Callable[[Tensor], Tensor]


def tempering(sqrt_beta_zero: Tensor | float, k: int, n_steps: int) -> Tensor | float:
    """√β_k of the quadratic tempering schedule: √β_0 at k = 0, 1 at k = K."""
    inv = (1 - 1 / sqrt_beta_zero) * (k / n_steps) ** 2 + 1 / sqrt_beta_zero
    return 1 / inv


def potential_gradient(log_joint: Callable[[Tensor], Tensor], z: Tensor, create_graph: bool) -> Tensor:
    """∇_z U(z) = −∇_z log p(x, z) for each row of z; also under `torch.no_grad()` (evaluation)."""
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(-log_joint(z).sum(), z, create_graph=create_graph)
    return g


def leapfrog(z: Tensor, rho: Tensor, grad_u: GradFn, eps: Tensor | float,
             g: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One leapfrog step of H = U(z) + ½‖ρ‖²: returns (z', ρ', ∇U(z')); `g` reuses ∇U(z)."""
    g = grad_u(z) if g is None else g
    rho_half = rho - 0.5 * eps * g
    z_new = z + eps * rho_half
    g_new = grad_u(z_new)
    return z_new, rho_half - 0.5 * eps * g_new, g_new


def tempered_leapfrog_flow(z0: Tensor, rho0: Tensor, grad_u: GradFn, eps: Tensor | float,
                           sqrt_beta_zero: Tensor | float, n_steps: int) -> tuple[Tensor, Tensor]:
    """The HVAE flow: K leapfrog steps, each followed by tempering; returns (z_K, ρ_K)."""
    z, rho, g, old = z0, rho0, None, sqrt_beta_zero
    for k in range(1, n_steps + 1):
        z, rho, g = leapfrog(z, rho, grad_u, eps, g)
        new = tempering(sqrt_beta_zero, k, n_steps)
        rho = (old / new) * rho
        old = new
    return z, rho


def standard_normal_log_prob(v: Tensor) -> Tensor:
    """log N(v; 0, I) over the last dimension."""
    return -0.5 * (v.pow(2) + LOG_2PI).sum(dim=-1)


# the Riemannian metric of the RHVAE ---------------------------------------------------------------
class LocalMetric:
    """G⁻¹(z) = Σ_i M_i exp(−‖z − c_i‖²/T²) + λI over N centres c_i (N, d) with SPD M_i (N, d, d)."""

    def __init__(self, matrices: Tensor, centroids: Tensor, temperature: float, lbd: float) -> None:
        self.matrices, self.centroids = matrices, centroids
        self.temperature, self.lbd = float(temperature), float(lbd)

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[-1])

    def weights(self, z: Tensor) -> Tensor:
        """w_i(z) = exp(−‖z − c_i‖²/T²), (B, N)."""
        c = self.centroids.to(z.dtype)
        d2 = (z.pow(2).sum(-1, keepdim=True) + c.pow(2).sum(-1) - 2 * z @ c.T).clamp_min(0)
        return torch.exp(-d2 / self.temperature ** 2)

    def inverse(self, z: Tensor) -> Tensor:
        """G⁻¹(z) for each row of z (B, d) → (B, d, d)."""
        eye = torch.eye(self.dim, device=z.device, dtype=z.dtype)
        return torch.einsum("bn,nij->bij", self.weights(z), self.matrices.to(z.dtype)) + self.lbd * eye

    def kinetic_grad(self, z: Tensor, rho: Tensor) -> Tensor:
        """∂_z [½ log det G(z) + ½ ρᵀG⁻¹(z)ρ] in closed form, (B, d): with ∂w_i/∂z = −2(z − c_i)w_i/T²,
        it is Σ_i ∂w_i/∂z · ½(ρᵀM_iρ − tr(G(z) M_i))."""
        m = self.matrices.to(z.dtype)
        w = self.weights(z)
        g = torch.cholesky_inverse(torch.linalg.cholesky(self.inverse(z)))
        s = 0.5 * (torch.einsum("bj,njk,bk->bn", rho, m, rho) - torch.einsum("bjk,nkj->bn", g, m))
        ws = w * s
        return -2 / self.temperature ** 2 * (ws.sum(-1, keepdim=True) * z - ws @ self.centroids.to(z.dtype))

    def metric(self, z: Tensor) -> Tensor:
        """G(z) (B, d, d)."""
        return torch.cholesky_inverse(torch.linalg.cholesky(self.inverse(z)))

    def log_det(self, z: Tensor) -> Tensor:
        """log det G(z) = −log det G⁻¹(z), (B,)."""
        chol = torch.linalg.cholesky(self.inverse(z))
        return -2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)

    def sample_momentum(self, z: Tensor, gamma: Tensor) -> Tensor:
        """ρ with ρᵀG⁻¹(z)ρ = ‖γ‖²: ρ = C⁻ᵀγ for G⁻¹ = C Cᵀ, so ρ ~ N(0, G(z)) when γ ~ N(0, I)."""
        chol = torch.linalg.cholesky(self.inverse(z))
        return torch.linalg.solve_triangular(chol.mT, gamma.unsqueeze(-1), upper=True).squeeze(-1)

    def momentum_log_prob(self, z: Tensor, rho: Tensor) -> Tensor:
        """log N(ρ; 0, G(z)), (B,)."""
        g_inv = self.inverse(z)
        quad = (rho.unsqueeze(-2) @ g_inv @ rho.unsqueeze(-1)).squeeze(-1).squeeze(-1)
        return -0.5 * (quad + self.log_det(z) + self.dim * LOG_2PI)


def kinetic_energy(metric: LocalMetric, z: Tensor, rho: Tensor) -> Tensor:
    """½ log det G(z) + ½ ρᵀG⁻¹(z)ρ per row: the position-dependent part of the RHVAE's Hamiltonian
    H(z, ρ) = U(z) + ½ log det G(z) + ½ ρᵀG⁻¹(z)ρ (the constant ½ d log 2π dropped)."""
    g_inv = metric.inverse(z)
    quad = (rho.unsqueeze(-2) @ g_inv @ rho.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    chol = torch.linalg.cholesky(g_inv)
    return torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1).neg() + 0.5 * quad


def _velocity(metric: LocalMetric, z: Tensor, rho: Tensor) -> Tensor:
    """∂_ρH = G⁻¹(z)ρ."""
    return (metric.inverse(z) @ rho.unsqueeze(-1)).squeeze(-1)


def generalized_leapfrog(z: Tensor, rho: Tensor, grad_u: GradFn, metric: LocalMetric, eps: float,
                         fixed_point_steps: int = 3, g: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the generalized (implicit) leapfrog for H(z, ρ) = U(z) + kinetic_energy(z, ρ):

        ρ½ = ρ − ε/2 ∂_zH(z, ρ½)                       (fixed-point iterations)
        z' = z + ε/2 [∂_ρH(z, ρ½) + ∂_ρH(z', ρ½)]       (fixed-point iterations)
        ρ' = ρ½ − ε/2 ∂_zH(z', ρ½)

    ∇U is computed once per position (`g` reuses it at z); returns (z', ρ', ∇U(z')).
    """
    g = grad_u(z) if g is None else g
    rho_half = rho
    for _ in range(fixed_point_steps):
        rho_half = rho - 0.5 * eps * (g + metric.kinetic_grad(z, rho_half))
    v0 = _velocity(metric, z, rho_half)
    z_new = z
    for _ in range(fixed_point_steps):
        z_new = z + 0.5 * eps * (v0 + _velocity(metric, z_new, rho_half))
    g_new = grad_u(z_new)
    rho_new = rho_half - 0.5 * eps * (g_new + metric.kinetic_grad(z_new, rho_half))
    return z_new, rho_new, g_new


def riemannian_flow(z0: Tensor, rho0: Tensor, grad_u: GradFn, metric: LocalMetric, eps: float,
                    sqrt_beta_zero: float, n_steps: int, fixed_point_steps: int = 3) -> tuple[Tensor, Tensor]:
    """The RHVAE flow: K generalized leapfrog steps, each followed by tempering; returns (z_K, ρ_K)."""
    z, rho, g, old = z0, rho0, None, sqrt_beta_zero
    for k in range(1, n_steps + 1):
        z, rho, g = generalized_leapfrog(z, rho, grad_u, metric, eps, fixed_point_steps, g)
        new = tempering(sqrt_beta_zero, k, n_steps)
        rho = (old / new) * rho
        old = new
    return z, rho
