"""The Riemannian Hamiltonian VAE (RHVAE, Chadebec et al. 2020): the HVAE's flow with a learned,
position-dependent metric G(z) and the generalized leapfrog (components/hamiltonian).

    G⁻¹(z) = Σ_i L_ψ(x_i) L_ψ(x_i)ᵀ exp(−‖z − μ(x_i)‖²/T²) + λI

L_ψ is a metric network (lower triangular, positive diagonal). As in Pythae's RHVAE, a training
step builds G from its own batch (so L_ψ and the encoder learn through the bound) and stores the
batch's (L Lᵀ, μ), detached; `on_epoch_end` makes what was stored during the epoch (at most
`metric_memory` points, the latest) the model's metric, which evaluation, importance weights and
the manifold sampler use. Both the metric and the points stored so far are fixed-size buffers (with
their counts), so they save with the weights and a resumed run continues the same epoch.

The bound is the HVAE's with the momentum ρ_0 ~ N(0, G(z_0)/β_0) and ρ_K scored under N(0, G(z_K)):
log p(x, z_K) + log N(ρ_K; 0, G(z_K)) − log q(z_0|x) − log N(γ; 0, I) + ½ log det G(z_0). The implicit
steps are solved by `fixed_point_steps` fixed-point iterations (3, as Pythae), so volume is preserved
to that solver's tolerance.

`beta_zero` is β_0. Pythae's RHVAE setting of the same name is √β_0 (it divides the momentum by beta_zero itself,
`beta_zero_sqrt = beta_zero`), so Pythae's default 0.3 is β_0 = 0.09 here, and our preset's β_0 = 0.3 is Pythae's
beta_zero = √0.3 ≈ 0.548 (bench/pythae_check.py reads both off Pythae 0.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaecore.components.context import StepContext
from vaecore.components.hamiltonian import LocalMetric, potential_gradient, riemannian_flow, standard_normal_log_prob
from vaecore.components.kinds import PosteriorKind
from vaecore.components.posteriors import Posterior
from vaecore.config import ModelConfig, setting
from vaecore.models.base import register_model_type
from vaecore.models.hvae import HamiltonianAutoEncoder
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset


@dataclass
class RHVAEConfig(ModelConfig):
    """An RHVAE: `n_lf` generalized leapfrog steps of size `eps_lf`, β_0 = `beta_zero`; metric temperature
    T = `temperature`, regularisation λ = `regularization`, metric network width `metric_hidden`, and
    the number of training points kept as the metric's centres (`metric_memory`)."""

    model_type: str = "rhvae"
    n_lf: int = setting(3, lo=1, hi=100)
    eps_lf: float = setting(0.001, lo=0, lo_open=True, hi=10)
    beta_zero: float = setting(0.3, lo=0, lo_open=True, hi=1)
    temperature: float = setting(1.5, lo=0, lo_open=True)
    regularization: float = setting(0.01, lo=0, lo_open=True)
    metric_hidden: int = setting(400, lo=1, hi=100_000)
    fixed_point_steps: int = setting(3, lo=1, hi=100)
    metric_memory: int = setting(2000, lo=1, hi=1_000_000)


class MetricNet(nn.Module):
    """x ↦ L_ψ(x): lower-triangular (d, d) with exp of the network's outputs on the diagonal."""

    def __init__(self, input_size: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(input_size, hidden), nn.ReLU())
        self.diag = nn.Linear(hidden, latent_dim)
        self.lower = nn.Linear(hidden, latent_dim * (latent_dim - 1) // 2)
        self.register_buffer("tril", torch.tril_indices(latent_dim, latent_dim, offset=-1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x)
        d = self.latent_dim
        low = torch.zeros(x.shape[0], d, d, device=x.device, dtype=h.dtype)
        low = low.index_put((torch.arange(x.shape[0], device=x.device)[:, None], self.tril[0], self.tril[1]),
                            self.lower(h))
        return low + torch.diag_embed(self.diag(h).exp())


@register_model_type
class RHVAE(HamiltonianAutoEncoder):
    """Encoder → N(μ, σ²) → z_0 → generalized leapfrog on the learned metric → z_K → decoder."""

    model_type: ClassVar[str] = "rhvae"
    title: ClassVar[str] = "RHVAE"
    pythae: ClassVar[str] = (
        "Pythae's RHVAE beta_zero is √β₀: its default 0.3 is β₀ = 0.09 here; our preset's β₀ = 0.3 is "
        "Pythae's beta_zero ≈ 0.548 (docs/pythae-differences.md).")
    what: ClassVar[str] = "a Riemannian Hamiltonian variational autoencoder (leapfrog steps under a learned metric)"
    tags: ClassVar[tuple[str, ...]] = ("variational", "hamiltonian")
    group: ClassVar[str] = "richer-posteriors"
    config_class: ClassVar[type[ModelConfig]] = RHVAEConfig
    config: RHVAEConfig
    posterior_kind: ClassVar[PosteriorKind] = PosteriorKind.RIEMANNIAN_HAMILTONIAN

    def __init__(self, config: dict[str, Any] | RHVAEConfig) -> None:
        super().__init__(config)
        c, d = self.config, self.latent_dim
        size = c.input_shape[0] * c.input_shape[1] * c.input_shape[2]
        self.metric_net = MetricNet(size, d, c.metric_hidden)
        cap = c.metric_memory
        self.register_buffer("metric_matrices", torch.eye(d).expand(cap, d, d).clone())
        self.register_buffer("metric_centroids", torch.zeros(cap, d))
        self.register_buffer("metric_count", torch.ones((), dtype=torch.long))
        self.register_buffer("pending_matrices", torch.zeros(cap, d, d))
        self.register_buffer("pending_centroids", torch.zeros(cap, d))
        self.register_buffer("pending_count", torch.zeros((), dtype=torch.long))

    # the metric ---------------------------------------------------------------------------------
    def metric(self) -> LocalMetric:
        """The model's metric G(z): the centres stored at the last epoch end (one centre, M = I at 0, before)."""
        n = int(self.metric_count)
        return LocalMetric(self.metric_matrices[:n], self.metric_centroids[:n], self.config.temperature,
                           self.config.regularization)

    def _batch_metric(self, x: Tensor, mu: Tensor) -> LocalMetric:
        """A training step's metric from its own batch; the batch's centres are kept (a ring buffer of
        `metric_memory` points) for the epoch-end update."""
        low = self.metric_net(x)
        matrices = low @ low.mT
        with torch.no_grad():
            cap, b = self.config.metric_memory, x.shape[0]
            keep = min(b, cap)
            idx = (int(self.pending_count) + torch.arange(b - keep, b, device=x.device)) % cap
            self.pending_matrices[idx] = matrices[-keep:].detach().to(self.pending_matrices.dtype)
            self.pending_centroids[idx] = mu[-keep:].detach().to(self.pending_centroids.dtype)
            self.pending_count += b
        return LocalMetric(matrices, mu, self.config.temperature, self.config.regularization)

    def on_epoch_end(self, ctx: StepContext) -> None:
        """The centres stored during the epoch become the metric (Pythae's `update`)."""
        n = min(int(self.pending_count), self.config.metric_memory)
        if n == 0:
            return
        self.metric_matrices[:n] = self.pending_matrices[:n]
        self.metric_centroids[:n] = self.pending_centroids[:n]
        self.metric_count.fill_(n)
        self.pending_count.zero_()

    def flow_logs(self) -> dict[str, float]:
        return {"metric_centres": float(self.metric_count)}

    # the bound ------------------------------------------------------------------------------------
    def _log_weights(self, x: Tensor, q: Posterior, k: int, generator: torch.Generator | None,
                     scores: tuple[str, ...], for_loss: bool = False) -> dict[str, Tensor | None]:
        c = self.config
        metric = self._batch_metric(x, q.mean) if for_loss and self.training else self.metric()
        z0 = q.rsample(k, generator=generator)
        gamma = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        b, d = x.shape[0], z0.shape[-1]
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])
        z0f, gammaf = z0.reshape(-1, d), gamma.reshape(-1, d)
        sqrt_beta = c.beta_zero ** 0.5
        rho0 = metric.sample_momentum(z0f, gammaf) / sqrt_beta
        create_graph = torch.is_grad_enabled()
        log_joint = self._log_joint(xs)
        z_k, rho_k = riemannian_flow(z0f, rho0, lambda z: potential_gradient(log_joint, z, create_graph), metric,
                                     c.eps_lf, sqrt_beta, c.n_lf, c.fixed_point_steps)
        reg = (q.log_prob(z0) + standard_normal_log_prob(gamma)
               - (self.prior_log_prob(z_k) + metric.momentum_log_prob(z_k, rho_k)
                  + 0.5 * metric.log_det(z0f)).reshape(k, b))
        return self._scored(z_k, xs, reg, scores, for_loss)


register_preset("rhvae", "Riemannian Hamiltonian VAE: learned metric G(z), 3 generalized leapfrog steps "
                "(ε = 0.001, β_0 = 0.3, T = 1.5, λ = 0.01), metric updated each epoch, Bernoulli decoder",
                PYTHAE, model_type="rhvae", likelihood="bernoulli")
