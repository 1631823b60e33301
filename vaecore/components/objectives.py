"""Objective terms: what a family adds to the reconstruction term (KL: Kingma & Welling 2014; MMD: WAE, Tolstikhin et
al. 2018; the RAE penalties: Ghosh et al. 2020).

A family's loss is `likelihood.objective(params, x) + Σ_t t.weight(ctx) · t.value(model, fwd, ctx)`
over the terms its config selects (KL with β and warm-up, MMD, the RAE penalties); each term
logs its unweighted value under its `name`. The functions below are the terms' math, tested
against closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vaecore.components.context import StepContext
from vaecore.components.posteriors import Posterior

MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) ‖ N(0, I)) per example, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL to N(0, 1) for every latent dimension, averaged over the batch: shape (d,)."""
    return (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).mean(dim=0)


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


# terms ----------------------------------------------------------------------------------------------
@dataclass
class Forward:
    """One forward pass of a batch: what the terms read."""

    x: Tensor
    posterior: Posterior
    z: Tensor
    params: Tensor


class Term:
    """One weighted piece of an objective; `value` is a batch mean, logged under `name`."""

    name = "term"

    def weight(self, ctx: StepContext) -> float:
        raise NotImplementedError

    def value(self, model: Any, fwd: Forward, ctx: StepContext) -> Tensor:
        raise NotImplementedError


def kl_to_prior(posterior: Posterior, z: Tensor, prior: Any) -> Tensor:
    """KL(q ‖ p) per example: closed form where registered, else the one-sample estimate log q(z) − log p(z)."""
    kl = posterior.kl(prior)
    return kl if kl is not None else posterior.log_prob(z) - prior.log_prob(z)


class KLTerm(Term):
    """β · warm-up · KL(q(z|x) ‖ p(z)), the VAE regulariser."""

    name = "kl"

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def weight(self, ctx: StepContext) -> float:
        return self.beta * ctx.kl_weight

    def value(self, model: Any, fwd: Forward, ctx: StepContext) -> Tensor:
        return kl_to_prior(fwd.posterior, fwd.z, model.prior).mean()


class MMDTerm(Term):
    """λ · MMD²(q(z), p(z)) between the batch's codes and as many prior draws (WAE, InfoVAE)."""

    name = "mmd"

    def __init__(self, kernel: str = "imq", weight: float = 10.0) -> None:
        mmd_kernel(torch.zeros(1, 1), torch.zeros(1, 1), kernel)  # rejects an unknown kernel now
        self.kernel, self._weight = kernel, weight

    def weight(self, ctx: StepContext) -> float:
        return self._weight

    def value(self, model: Any, fwd: Forward, ctx: StepContext) -> Tensor:
        z = fwd.z
        return mmd(z, model.prior.sample(z.shape[0], device=z.device).to(z.dtype), self.kernel)


class LatentNormTerm(Term):
    """β · ½‖z‖², the RAE's embedding penalty."""

    name = "z_norm"

    def __init__(self, weight: float) -> None:
        self._weight = weight

    def weight(self, ctx: StepContext) -> float:
        return self._weight

    def value(self, model: Any, fwd: Forward, ctx: StepContext) -> Tensor:
        return 0.5 * fwd.z.pow(2).sum(dim=1).mean()


class DecoderPenaltyTerm(Term):
    """λ · decoder smoothness: squared weights (RAE-L2) or the gradient penalty (RAE-GP)."""

    name = "penalty"
    KINDS = ("l2", "gp")

    def __init__(self, kind: str, weight: float) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown RAE penalty {kind!r}; choose 'l2' or 'gp'")
        self.kind, self._weight = kind, weight

    def weight(self, ctx: StepContext) -> float:
        return self._weight

    def value(self, model: Any, fwd: Forward, ctx: StepContext) -> Tensor:
        if self.kind == "l2":
            return decoder_weight_l2(model.decoder)
        return decoder_gradient_penalty(model.decode, fwd.z)
