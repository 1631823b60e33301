"""A masked autoregressive flow (Papamakarios et al.) fitted to the training latents."""

from __future__ import annotations

import torch

from vaecore.components.flows import MAF
from vaecore.samplers.flow_sampler import FlowSampler


class MAFSampler(FlowSampler):
    """Masked autoregressive flow (Papamakarios et al.) with a N(0, I) base, fitted by maximum likelihood.

    Pythae's settings: 2 MADE blocks of 3 hidden ReLU layers × 128, the order reversed between
    blocks (the flow itself is `components.flows.MAF`). Latents are
    standardised first; `log_prob` includes that Jacobian, so it is a density over the raw latents.
    Before fitting the flow is the identity, i.e. `log_prob` is the standard normal.
    """

    name = "maf"
    description = "masked autoregressive flow (MADE blocks, reversed orders) fitted on the training latent means"
    flow_class = MAF

    def _to_base(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.to_base(s)

    def _from_base(self, u: torch.Tensor) -> torch.Tensor:
        return self.flow.from_base(u)
