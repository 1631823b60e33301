"""The Poincaré-disk sampler (Pythae's PoincareDiskSampler): draws from a Poincaré VAE's own prior,
the wrapped normal N_W(0, σ²I) on its ball."""

from __future__ import annotations

import torch
from torch import nn

from vaecore.components.hyperbolic import Ball, WrappedNormalPrior
from vaecore.samplers.base import Progress, Sampler, expect_shapes, model_fingerprint


class PoincareDiskSampler(Sampler):
    """The wrapped-normal prior of a Poincaré VAE (its curvature and prior scale, copied by `fit`)."""

    name = "poincare-disk"
    description = "the Poincaré VAE's wrapped-normal prior on the ball; poincare-vae models only"

    def __init__(self) -> None:
        super().__init__()
        self.constants = torch.ones(2)

    def fit(self, model: nn.Module, x_train: torch.Tensor | None = None, *, seed: int = 0,
            progress: Progress | bool | None = None) -> PoincareDiskSampler:
        """Take the ball's curvature and the prior's scale from `model` (x_train is not needed)."""
        prior = getattr(model, "prior", None)
        if not isinstance(prior, WrappedNormalPrior):
            preset = getattr(getattr(model, "config", None), "preset", type(model).__name__)
            raise ValueError(f"the 'poincare-disk' sampler needs a model with latents on the Poincaré ball (e.g. the "
                             f"'poincare-vae' preset); {preset!r} has a {type(prior).__name__} prior. Use 'gmm', "
                             "'maf' or 'two-stage' to fit a sampler to its latents instead.")
        self.constants = torch.tensor([prior.ball.c, prior.scale])
        self.latent_dim = int(prior.latent_dim)
        self.device = getattr(model, "device", torch.device("cpu"))
        n = 0 if x_train is None else int(x_train.shape[0])
        self.fit_info = {"seed": int(seed), "n_train": n, "model": model_fingerprint(model)}
        return self

    def fit_latents(self, z: torch.Tensor, *, seed: int = 0, progress: Progress | bool | None = None) -> Sampler:
        raise ValueError("the 'poincare-disk' sampler is not fitted on latents: it copies a Poincaré VAE's prior; "
                         "call fit(model)")

    def prior(self) -> WrappedNormalPrior:
        assert self.latent_dim is not None
        return WrappedNormalPrior(self.latent_dim, Ball(float(self.constants[0])), float(self.constants[1]))

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        return self.prior().sample(n, generator=generator, device=device)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N_W(z; 0, σ²I) with respect to the ball's Riemannian volume, per row."""
        return self.prior().log_prob(z)

    def _state(self) -> dict[str, torch.Tensor]:
        return {"constants": self.constants}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        expect_shapes(tensors, {"constants": (2,)})
        if not bool((tensors["constants"] > 0).all()):
            raise ValueError("the curvature and the prior scale must be positive")
        self.constants = tensors["constants"]
