"""The RHVAE manifold sampler (Chadebec et al.; Pythae's RHVAESampler): Hamiltonian Monte Carlo on
the density π(z) ∝ √det G⁻¹(z) of an RHVAE's learned metric, the inverse of its volume element,
which is large where the training latents lie.

`fit(model)` copies the model's metric (its centres, matrices, temperature and λ); chains start at
centres drawn at random, and each of `mcmc_steps` iterations runs `n_lf` leapfrog steps of size
`eps_lf` with momentum ρ ~ N(0, I) and a Metropolis–Hastings accept/reject (Pythae's default
β_0 = 1, i.e. no tempering, which keeps π invariant).
"""

from __future__ import annotations

import torch
from torch import nn

from vaecore.components.hamiltonian import LocalMetric, leapfrog, potential_gradient
from vaecore.samplers.base import Progress, Sampler, expect_shapes, model_fingerprint


class RHVAESampler(Sampler):
    """HMC on √det G⁻¹(z) of an RHVAE's metric; only for RHVAE models."""

    name = "rhvae"
    description = "HMC on the RHVAE's learned metric volume √det G⁻¹(z) (Pythae's RHVAESampler); RHVAE models only"

    def __init__(self, mcmc_steps: int = 100, n_lf: int = 15, eps_lf: float = 0.03) -> None:
        super().__init__()
        if mcmc_steps < 1 or n_lf < 1 or not eps_lf > 0:
            raise ValueError(f"the 'rhvae' sampler needs mcmc_steps >= 1, n_lf >= 1 and eps_lf > 0, got "
                             f"{mcmc_steps}, {n_lf}, {eps_lf}")
        self.mcmc_steps, self.n_lf, self.eps_lf = int(mcmc_steps), int(n_lf), float(eps_lf)
        self.matrices = torch.zeros(0)
        self.centroids = torch.zeros(0)
        self.constants = torch.zeros(2)
        self.acceptance: float | None = None

    def settings(self) -> dict[str, int | float]:
        return {"mcmc_steps": self.mcmc_steps, "n_lf": self.n_lf, "eps_lf": self.eps_lf}

    def fit(self, model: nn.Module, x_train: torch.Tensor | None = None, *, seed: int = 0,
            progress: Progress | bool | None = None) -> RHVAESampler:
        """Copy `model`'s metric (x_train is not needed; its size is recorded)."""
        if not callable(getattr(model, "metric", None)) or getattr(model, "model_type", "") != "rhvae":
            preset = getattr(getattr(model, "config", None), "preset", type(model).__name__)
            raise ValueError(f"the 'rhvae' sampler needs an RHVAE model (a learned metric G(z)); {preset!r} has "
                             "none. Use 'gmm', 'maf' or 'two-stage' to fit a sampler to its latents instead.")
        metric = model.metric()
        self.matrices = metric.matrices.detach().float().clone()
        self.centroids = metric.centroids.detach().float().clone()
        self.constants = torch.tensor([metric.temperature, metric.lbd])
        self.latent_dim = int(self.centroids.shape[1])
        self.device = self.centroids.device
        n = 0 if x_train is None else int(x_train.shape[0])
        self.fit_info = {"seed": int(seed), "n_train": n, "model": model_fingerprint(model),
                         "centres": int(self.centroids.shape[0])}
        return self

    def fit_latents(self, z: torch.Tensor, *, seed: int = 0, progress: Progress | bool | None = None) -> Sampler:
        raise ValueError("the 'rhvae' sampler is not fitted on latents: it uses an RHVAE's metric; call fit(model)")

    def metric(self) -> LocalMetric:
        return LocalMetric(self.matrices, self.centroids, float(self.constants[0]), float(self.constants[1]))

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log √det G⁻¹(z) (unnormalised log π), per row."""
        return -0.5 * self.metric().log_det(z)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        idx = torch.randint(self.centroids.shape[0], (n,), generator=generator, device=device).to(self.device)
        z = self.centroids[idx].clone()

        def grad_u(v: torch.Tensor) -> torch.Tensor:
            return potential_gradient(self.log_density, v, create_graph=False)

        accepted = 0.0
        for _ in range(self.mcmc_steps):
            rho = self._randn((n, self.latent_dim), generator)
            h0 = -self.log_density(z) + 0.5 * rho.pow(2).sum(-1)
            z_new, rho_new, g = z, rho, None
            for _ in range(self.n_lf):
                z_new, rho_new, g = leapfrog(z_new, rho_new, grad_u, self.eps_lf, g)
            h1 = -self.log_density(z_new) + 0.5 * rho_new.pow(2).sum(-1)
            u = torch.rand(n, generator=generator, device=device).to(self.device)
            accept = (torch.log(u) < h0 - h1) & torch.isfinite(h1)
            z = torch.where(accept.unsqueeze(-1), z_new, z)
            accepted += float(accept.float().mean())
        self.acceptance = accepted / self.mcmc_steps
        return z

    def _state(self) -> dict[str, torch.Tensor]:
        return {"matrices": self.matrices, "centroids": self.centroids, "constants": self.constants}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        n, d = tensors.get("centroids", torch.zeros(0, 0)).shape
        expect_shapes(tensors, {"matrices": (n, d, d), "centroids": (n, d), "constants": (2,)})
        if n < 1 or d != self.latent_dim:
            raise ValueError(f"{n} centres of dimension {d} for a latent dimension {self.latent_dim}")
        self.matrices, self.centroids, self.constants = tensors["matrices"], tensors["centroids"], tensors["constants"]
