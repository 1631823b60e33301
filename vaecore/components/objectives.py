"""Latent regularisers: what keeps the aggregate posterior near the prior (DESIGN.md §3)."""

from __future__ import annotations

import math

import torch

MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) ‖ N(0, I)) per example, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL to N(0, 1) for every latent dimension, averaged over the batch: shape (d,)."""
    return (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).mean(dim=0)


def diag_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension (broadcasts)."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(dim=-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1)


def mmd_kernel(a: torch.Tensor, b: torch.Tensor, kernel: str, prior_var: float = 1.0) -> torch.Tensor:
    """Kernel matrix k(a_i, b_j): IMQ summed over scales, or RBF, with C = 2·d·σ²."""
    c = 2 * a.shape[1] * prior_var
    d2 = torch.cdist(a, b).pow(2)
    if kernel == "imq":
        return sum(s * c / (s * c + d2) for s in MMD_SCALES)  # type: ignore[return-value]
    if kernel == "rbf":
        return torch.exp(-d2 / c)
    raise ValueError(f"unknown MMD kernel {kernel!r}; choose 'imq' or 'rbf'")


def mmd(z: torch.Tensor, z_prior: torch.Tensor, kernel: str = "imq") -> torch.Tensor:
    """Unbiased estimate of MMD² between samples z and prior samples (WAE-MMD)."""
    n = z.shape[0]
    if n < 2:
        raise ValueError("MMD needs at least 2 samples per batch")
    off = 1 - torch.eye(n, device=z.device, dtype=z.dtype)
    kzz = (mmd_kernel(z, z, kernel) * off).sum() / (n * (n - 1))
    kpp = (mmd_kernel(z_prior, z_prior, kernel) * off).sum() / (n * (n - 1))
    kzp = mmd_kernel(z, z_prior, kernel).mean()
    return kzz + kpp - 2 * kzp


def decoder_weight_l2(module: torch.nn.Module) -> torch.Tensor:
    """Sum of squared decoder weights (RAE-L2)."""
    return sum(p.pow(2).sum() for n, p in module.named_parameters() if n.endswith("weight"))  # type: ignore[return-value]


def decoder_gradient_penalty(decode: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of E‖∂μθ/∂z‖²_F per example (RAE-GP), by a random projection.

    For v ~ N(0, I) in image space, E‖Jᵀv‖² = ‖J‖²_F, so one extra backward pass suffices.
    """
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():  # also under no_grad (validation, evaluation)
        z = z.detach().requires_grad_(True) if not z.requires_grad else z
        out = decode(z)
        v = torch.randn_like(out)
        (g,) = torch.autograd.grad((out * v).sum(), z, create_graph=create_graph)
        return g.pow(2).sum(dim=1).mean()
