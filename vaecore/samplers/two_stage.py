"""The 2-stage VAE sampler (Dai & Wipf): a second VAE fitted to the first one's latents."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vaecore.samplers.base import Progress, Sampler, expect_shapes
from vaecore.samplers.networks import Standardise, mlp, train_loop


class _MLPVAE(nn.Module):
    """The second-stage VAE: MLP encoder/decoder, latent of the same size, optimal shared σ (σ-VAE)."""

    def __init__(self, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.encoder = mlp([d] + [hidden] * layers + [2 * d])
        self.decoder = mlp([d] + [hidden] * layers + [d])

    def _errors(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        logvar = logvar.clamp(-30, 20)
        u = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return (self.decoder(u) - z).pow(2), mu, logvar

    @staticmethod
    def log_sigma(err: torch.Tensor) -> torch.Tensor:
        """σ-VAE's optimal shared log σ for these squared errors, soft-clipped below at −6."""
        return -6 + nn.functional.softplus(0.5 * err.mean().log() + 6)

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        err, mu, logvar = self._errors(z)
        log_sigma = self.log_sigma(err)
        nll = (0.5 * err * torch.exp(-2 * log_sigma) + log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
        return (nll + kl).mean()

    @torch.no_grad()
    def fitted_log_sigma(self, z: torch.Tensor) -> torch.Tensor:
        """The optimal log σ over all of z (the decoder noise of the fitted model)."""
        return self.log_sigma(torch.cat([self._errors(z[i:i + 4096])[0] for i in range(0, z.shape[0], 4096)]))


class TwoStageSampler(Sampler):
    """Dai & Wipf's 2-stage VAE: a small MLP VAE fitted on the latent means; u ~ N(0, I) → decoder mean.

    The first VAE's aggregate posterior is usually far from N(0, I); the second VAE, with a
    latent of the same size, learns a map from N(0, I) onto it. Its Gaussian decoder uses the
    σ-VAE optimal shared σ (recomputed per batch) instead of Dai & Wipf's learned γ. Samples are
    the decoder mean plus that Gaussian noise (σ over the standardised latents, fitted on the
    whole training set); `decoder_noise=False` gives the bare decoder mean, which under-disperses
    by σ² in every direction. The MLPs are Pythae's: 2 hidden layers × 1024.
    """

    name = "two-stage"
    description = "2-stage VAE (Dai & Wipf): an MLP VAE fitted on the training latent means"
    uses_validation = True

    def __init__(self, hidden: int = 1024, layers: int = 2, steps: int = 3000, batch_size: int = 256,
                 lr: float = 2e-3, decoder_noise: bool = True) -> None:
        super().__init__()
        self.hidden, self.layers, self.steps = int(hidden), int(layers), int(steps)
        self.batch_size, self.lr, self.decoder_noise = int(batch_size), float(lr), bool(decoder_noise)
        self.net: _MLPVAE | None = None
        self.shift = torch.zeros(0)
        self.scale = torch.zeros(0)
        self.log_sigma = torch.zeros(())

    def settings(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "layers": self.layers, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr, "decoder_noise": self.decoder_noise}

    def _build(self, d: int) -> _MLPVAE:
        return _MLPVAE(d, self.hidden, self.layers)

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        self.shift, self.scale = Standardise.stats(z)
        data = (z - self.shift) / self.scale
        with torch.random.fork_rng(devices=[z.device] if z.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.net = self._build(z.shape[1]).to(z.device)
            with torch.enable_grad():
                train_loop(list(self.net.parameters()), self.net.loss, data, self.steps, self.batch_size, self.lr,
                           seed, progress, "2-stage VAE", val=self._standardised_validation())
            self.net.eval()
            self.log_sigma = self.net.fitted_log_sigma(data)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.net is not None and self.latent_dim is not None
        u = self._randn((n, self.latent_dim), generator)
        s = self.net.decoder(u)
        if self.decoder_noise:
            s = s + self.log_sigma.exp() * self._randn((n, self.latent_dim), generator)
        return s * self.scale + self.shift

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.net is not None
        return {"shift": self.shift, "scale": self.scale, "log_sigma": self.log_sigma,
                **{f"net.{k}": v for k, v in self.net.state_dict().items()}}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        d = self.latent_dim or 0
        expect_shapes({k: v for k, v in tensors.items() if not k.startswith("net.")},
                {"shift": (d,), "scale": (d,), "log_sigma": ()})
        self.shift, self.scale, self.log_sigma = tensors["shift"], tensors["scale"], tensors["log_sigma"]
        self.net = self._build(d)
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        self.net.eval()
