"""The VampPrior of a vamp model, as a sampler."""

from __future__ import annotations

import torch
from torch import nn

from vaecore.components.priors import VampPrior
from vaecore.samplers.base import Progress, Sampler, expect_shapes, model_fingerprint


class VampSampler(Sampler):
    """The model's own VampPrior (1/K) Σ_k q(z | u_k): only for models trained with `prior="vamp"`.

    `fit` snapshots the K posterior components of the pseudo-inputs, so sampling (and a saved
    copy) draws exactly what `model.sample_latents` draws for the same generator.
    """

    name = "vamp"
    description = "the model's VampPrior (mixture of the pseudo-inputs' posteriors); vamp models only"

    def __init__(self) -> None:
        super().__init__()
        self.mu = torch.zeros(0)
        self.logvar = torch.zeros(0)

    def fit(self, model: nn.Module, x_train: torch.Tensor | None = None, *, seed: int = 0,
            progress: Progress | bool | None = None) -> VampSampler:
        """Take the VampPrior components from `model` (x_train is not needed)."""
        prior = getattr(model, "prior", None)
        if not isinstance(prior, VampPrior):
            preset = getattr(getattr(model, "config", None), "preset", type(model).__name__)
            raise ValueError(f"the 'vamp' sampler needs a model trained with a VampPrior (prior='vamp', e.g. the "
                             f"'vamp-vae' preset); {preset!r} has prior "
                             f"{getattr(model.config, 'prior', type(prior).__name__)!r}. "
                             "Use 'gmm', 'maf' or "
                             "'two-stage' to fit a sampler to its latents instead.")
        was_training = model.training
        model.eval()
        with torch.no_grad():
            components = prior.components()
            self.mu, self.logvar = components.mu.detach().float(), components.logvar.detach().float()
        model.train(was_training)
        self.latent_dim = int(self.mu.shape[1])
        self.device = self.mu.device
        self.fit_info = {"seed": int(seed), "n_train": 0, "model": model_fingerprint(model)}
        return self

    def fit_latents(self, z: torch.Tensor, *, seed: int = 0, progress: Progress | bool | None = None) -> Sampler:
        raise ValueError("the 'vamp' sampler is not fitted on latents: it copies a vamp model's prior; "
                         "call fit(model)")

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        k = torch.randint(self.mu.shape[0], (n,), generator=generator, device=device)
        eps = torch.randn((n, self.mu.shape[1]), generator=generator, device=device)
        return self.mu.to(device)[k] + torch.exp(0.5 * self.logvar.to(device)[k]) * eps

    def _state(self) -> dict[str, torch.Tensor]:
        return {"mu": self.mu, "logvar": self.logvar}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        k = tensors.get("mu", torch.zeros(0)).shape[0]
        expect_shapes(tensors, {"mu": (k, self.latent_dim or 0), "logvar": (k, self.latent_dim or 0)})
        if k < 1:
            raise ValueError("no VampPrior components")
        self.mu, self.logvar = tensors["mu"], tensors["logvar"]
