"""The hypersphere-uniform sampler (Pythae's HypersphereUniformSampler): the uniform distribution on
S^{d−1}, the prior of sphere-latent models (SVAE). Fitting checks the latents lie on the sphere."""

from __future__ import annotations

import torch

from vaecore.components.hyperspherical import log_sphere_area
from vaecore.samplers.base import Progress, Sampler

SPHERE_TOLERANCE = 1e-3


class HypersphereUniformSampler(Sampler):
    """Uniform on the unit sphere of the latent space: normalised N(0, I) draws."""

    name = "hypersphere"
    description = "uniform on the unit sphere S^(d-1), the SVAE's prior; models with sphere latents only"

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        err = float((z.norm(dim=1) - 1).abs().max())
        if err > SPHERE_TOLERANCE:
            self.latent_dim = None
            raise ValueError(f"the 'hypersphere' sampler is for latents on the unit sphere (e.g. the 'svae' preset); "
                             f"these have norms up to {err:.3g} away from 1. Use 'gmm', 'maf' or 'two-stage' instead.")

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.latent_dim is not None
        z = self._randn((n, self.latent_dim), generator)
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """−log |S^{d−1}| for every row (the density with respect to the sphere's surface measure)."""
        assert self.latent_dim is not None
        return torch.full(z.shape[:-1], -log_sphere_area(self.latent_dim), device=z.device)


