"""What the flow samplers share: a normalising flow from N(0, I) onto the standardised latent
means, fitted by maximum likelihood, kept at its best validation state, saved as safetensors."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from vaecore.samplers.base import Progress, Sampler, expect_shapes
from vaecore.samplers.networks import Standardise, train_loop


class FlowSampler(Sampler):
    """Base of the MAF and IAF samplers; a subclass names its `flow_class` and the two directions."""

    flow_class: ClassVar[type]
    uses_validation = True

    def __init__(self, blocks: int = 2, hidden: int = 128, layers: int = 3, steps: int = 2000,
                 batch_size: int = 256, lr: float = 1e-3) -> None:
        super().__init__()
        self.blocks, self.hidden, self.layers = int(blocks), int(hidden), int(layers)
        self.steps, self.batch_size, self.lr = int(steps), int(batch_size), float(lr)
        self.flow: Any = None
        self.shift = torch.zeros(0)
        self.scale = torch.zeros(0)

    def settings(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "hidden": self.hidden, "layers": self.layers, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr}

    def _build(self, d: int) -> Any:
        return self.flow_class(d, self.blocks, self.hidden, self.layers)

    def _to_base(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised latents → (base draws, log|det| of that map)."""
        raise NotImplementedError

    def _from_base(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _std_log_prob(self, s: torch.Tensor) -> torch.Tensor:
        assert self.flow is not None
        u, logdet = self._to_base(s)
        return -0.5 * (u.pow(2) + math.log(2 * math.pi)).sum(-1) + logdet

    @torch.no_grad()
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of each row of z: (N,). The standard normal before fitting."""
        if self.flow is None:
            return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1)
        z = z.to(self.device).float()
        return self._std_log_prob((z - self.shift) / self.scale) - self.scale.log().sum()

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        self.shift, self.scale = Standardise.stats(z)
        data = (z - self.shift) / self.scale
        with torch.random.fork_rng(devices=[z.device] if z.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.flow = self._build(z.shape[1]).to(z.device)
            with torch.enable_grad():
                train_loop(list(self.flow.parameters()), lambda b: -self._std_log_prob(b).mean(), data, self.steps,
                           self.batch_size, self.lr, seed, progress, self.name.upper(),
                           val=self._standardised_validation())
        self.flow.eval()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.flow is not None and self.latent_dim is not None
        u = self._randn((n, self.latent_dim), generator)
        return self._from_base(u) * self.scale + self.shift

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.flow is not None
        state = {k: v for k, v in self.flow.state_dict().items() if not k.endswith(".mask")}
        return {"shift": self.shift, "scale": self.scale, **{f"flow.{k}": v for k, v in state.items()}}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        d = self.latent_dim or 0
        expect_shapes({k: v for k, v in tensors.items() if not k.startswith("flow.")}, {"shift": (d,), "scale": (d,)})
        self.shift, self.scale = tensors["shift"], tensors["scale"]
        self.flow = self._build(d)
        masks = {k: v for k, v in self.flow.state_dict().items() if k.endswith(".mask")}
        weights = {k[5:]: v for k, v in tensors.items() if k.startswith("flow.")}
        self.flow.load_state_dict({**weights, **masks}, strict=True)
        self.flow.eval()
