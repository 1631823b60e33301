"""An inverse autoregressive flow fitted to the training latents (Pythae's IAFSampler)."""

from __future__ import annotations

import torch

from vaecore.components.flows import IAF
from vaecore.samplers.flow_sampler import FlowSampler


class IAFSampler(FlowSampler):
    """An IAF (`components.flows.IAF`, Kingma's gated MADE blocks, order reversed between blocks)
    from a N(0, I) base onto the standardised latent means, fitted by maximum likelihood.

    The mirror of the MAF sampler: sampling is one pass per block, while the density of a
    latent needs the inverse, d passes per block, so fitting is the slow direction. Pythae's
    settings: 2 MADE blocks of 3 hidden layers × 128. Before fitting `log_prob` is the standard normal.
    """

    name = "iaf"
    description = "inverse autoregressive flow (MADE blocks, reversed orders) fitted on the training latent means"
    flow_class = IAF

    def _to_base(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.inverse(s)

    def _from_base(self, u: torch.Tensor) -> torch.Tensor:
        return self.flow(u)[0]
