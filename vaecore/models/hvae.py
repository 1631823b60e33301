"""The Hamiltonian VAE (HVAE, Caterini et al. 2018): a diagonal-Gaussian draw z_0 ~ q(z|x) moved by K
tempered leapfrog steps on U(z) = −log p(x, z) (components/hamiltonian), trained on the bound

    log p(x, z_K) + log N(ρ_K; 0, I) − log q(z_0|x) − log N(γ; 0, I),   ρ_0 = γ/√β_0, γ ~ N(0, I)

(the −log N(ρ_0; 0, I/β_0) of the paper plus the tempering's log-volume d/2·log β_0). The same
weights are the model's importance weights (`log_importance_weights`) and its ELBO, so IWAE and
−log p numbers are the HVAE's own. The dynamics use the likelihood's density (`nll`); the bound
scores z_K with `nll_fitted` in training (the analytic σ fitted to the batch) and with any of the
likelihood's scores in evaluation.

`beta_zero` is β_0, as Pythae's HVAE setting of the same name (it takes √β_0 = beta_zero ** 0.5; Pythae's RHVAE,
unlike its HVAE, reads its beta_zero as √β_0: see rhvae.py); `eps_lf` and β_0 can be learned. Pythae 0.1.2's HVAE
differs in three places (docs/pythae-differences.md): its draw uses softplus(log σ²) as σ while log q uses log σ², its
position step moves z by ε·ρ instead of the half-step momentum, and its tempered momentum is overwritten by the
untempered one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaecore.components.context import StepContext
from vaecore.components.hamiltonian import potential_gradient, standard_normal_log_prob, tempered_leapfrog_flow
from vaecore.components.kinds import PosteriorKind
from vaecore.components.posteriors import Posterior
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import Capabilities, LossOutput, register_model_type, scalar
from vaecore.models.vae import PYTHAE
from vaecore.presets import register_preset

SCORES = ("nll",)
REFUSED = {"arelbo": "the Hamiltonian bound needs a per-sample density, and the AR-ELBO objective is not one; use "
                     "likelihood 'gaussian' (sigma 'optimal' is the Iso-I analogue)"}


@dataclass
class HVAEConfig(ModelConfig):
    """An HVAE: `n_lf` leapfrog steps of size `eps_lf`, initial inverse temperature `beta_zero` (β_0 in
    (0, 1]); `learn_eps_lf` / `learn_beta_zero` train them with the model."""

    model_type: str = "hvae"
    n_lf: int = setting(3, lo=1, hi=100)
    eps_lf: float = setting(0.001, lo=0, lo_open=True, hi=10)
    beta_zero: float = setting(0.3, lo=0, lo_open=True, hi=1)
    learn_eps_lf: bool = False
    learn_beta_zero: bool = False


class HamiltonianAutoEncoder(AutoEncoder):
    """What the HVAE and the RHVAE share: the bound is the flow's log weight, computed by `_log_weights`."""

    refused_likelihoods: ClassVar[dict[str, str]] = REFUSED
    posterior_kind: ClassVar[PosteriorKind] = PosteriorKind.HAMILTONIAN

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=True, prior_samples=True, latent_shape=(self.latent_dim,),
                            posterior=self.posterior_kind, prior=self.prior.kind)

    def _log_joint(self, xs: Tensor) -> Callable[[Tensor], Tensor]:
        """z ↦ log p(x, z) per row for the images xs (one per row of z): the flow's target."""
        def f(z: Tensor) -> Tensor:
            return -self.likelihood.nll(self.decode_params(z), xs) + self.prior_log_prob(z)
        return f

    def _scored(self, z_k: Tensor, xs: Tensor, reg: Tensor, scores: tuple[str, ...],
                for_loss: bool) -> dict[str, Tensor | None]:
        """log p(x|z_K) under each likelihood score minus `reg` (the rest of the negative log weight, (k, B))."""
        k, b = reg.shape
        params = self.decode_params(z_k)
        out: dict[str, Tensor | None] = {}
        for score in scores:
            nll = getattr(self.likelihood, score)(params, xs)
            out[score] = None if nll is None else -nll.reshape(k, b) - reg
            if for_loss:
                out["recon"], out["reg"] = nll.reshape(k, b), reg
        return out

    def _log_weights(self, x: Tensor, q: Posterior, k: int, generator: torch.Generator | None,
                     scores: tuple[str, ...], for_loss: bool = False) -> dict[str, Tensor | None]:
        """Log weights per score, (k, B); `for_loss` (the training loss) adds its `recon` and `reg` terms."""
        raise NotImplementedError

    def log_importance_weights(self, x: Tensor, k: int, generator: torch.Generator | None = None, *,
                               scores: tuple[str, ...] | None = None, posterior: Posterior | None = None) -> Any:
        """The flow's log weights for k flows per example, (k, B); see the module docstring."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"the number of importance samples must be a positive integer, got {k!r}")
        x = self._check_input(x)
        q = posterior if posterior is not None else self.posterior(x)
        out = self._log_weights(x, q, k, generator, tuple(scores or SCORES))
        return out if scores is not None else out["nll"]

    def elbo(self, x: Tensor, n_samples: int = 1) -> Tensor:
        """The Hamiltonian bound per example, averaged over n_samples flows."""
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        return self.log_importance_weights(x, n_samples).mean(dim=0)

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        """−bound (batch mean), the analytic σ fitted to this batch; `kl_weight` scales the
        log q − log p(z_K) − log N(ρ_K) part (KL warm-up)."""
        ctx = ctx or StepContext.evaluation()
        x = self._check_input(x)
        parts = self._log_weights(x, self.posterior(x), 1, None, ("nll_fitted",), for_loss=True)
        recon, reg = parts["recon"][0], parts["reg"][0]
        loss = recon.mean() + ctx.kl_weight * reg.mean()
        logs = {"recon": scalar(recon.mean()), "kl": scalar(reg.mean()), "bound": -scalar((recon + reg).mean()),
                "loss": scalar(loss), **self.flow_logs(), **self.likelihood.trace()}
        return LossOutput(loss, logs)

    def flow_logs(self) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def validate(self, x: Tensor, ctx: StepContext | None = None) -> dict[str, Tensor]:
        """`loss` (−bound), `mse` of the posterior-mean reconstruction and the bound as `elbo`, from one flow."""
        x = self._check_input(x)
        q = self.posterior(x)
        bound = self._log_weights(x, q, 1, None, ("nll",))["nll"][0]
        mse = ((self.decode(q.mean) - x) ** 2).flatten(1).sum(dim=1)
        return {"loss": -bound.mean(), "mse": mse, "elbo": bound}


@register_model_type
class HVAE(HamiltonianAutoEncoder):
    """Encoder → N(μ, σ²) → z_0 → tempered leapfrog flow → z_K → decoder."""

    model_type: ClassVar[str] = "hvae"
    title: ClassVar[str] = "HVAE"
    pythae: ClassVar[str] = (
        "Pythae's HVAE draws with softplus(log σ²) as σ while scoring log σ², steps z with the full-step "
        "momentum, and overwrites the tempered momentum; ours follows Caterini et al. "
        "(docs/pythae-differences.md).")
    what: ClassVar[str] = "a Hamiltonian variational autoencoder (leapfrog steps with tempering refine z)"
    tags: ClassVar[tuple[str, ...]] = ("variational", "hamiltonian")
    group: ClassVar[str] = "richer-posteriors"
    config_class: ClassVar[type[ModelConfig]] = HVAEConfig
    config: HVAEConfig

    def __init__(self, config: dict[str, Any] | HVAEConfig) -> None:
        super().__init__(config)
        c = self.config
        log_eps = torch.tensor(math.log(c.eps_lf))
        logit_beta = torch.tensor(math.log(c.beta_zero) - math.log1p(-c.beta_zero) if c.beta_zero < 1 else 20.0)
        if c.learn_eps_lf:
            self.log_eps = nn.Parameter(log_eps)
        else:
            self.register_buffer("log_eps", log_eps)
        if c.learn_beta_zero:
            self.logit_beta_zero = nn.Parameter(logit_beta)
        else:
            self.register_buffer("logit_beta_zero", logit_beta)

    @property
    def eps(self) -> Tensor:
        return self.log_eps.exp()

    @property
    def sqrt_beta_zero(self) -> Tensor:
        return torch.sigmoid(self.logit_beta_zero).sqrt()

    def flow_logs(self) -> dict[str, float]:
        return {"eps_lf": scalar(self.eps), "beta_zero": scalar(self.sqrt_beta_zero ** 2)}

    def flow(self, z0: Tensor, gamma: Tensor, xs: Tensor) -> tuple[Tensor, Tensor]:
        """(z_K, ρ_K) from z_0 and the standard-normal momentum draw γ, for images xs (one per row)."""
        create_graph = torch.is_grad_enabled()
        log_joint = self._log_joint(xs)
        return tempered_leapfrog_flow(z0, gamma / self.sqrt_beta_zero,
                                      lambda z: potential_gradient(log_joint, z, create_graph),
                                      self.eps, self.sqrt_beta_zero, self.config.n_lf)

    def _log_weights(self, x: Tensor, q: Posterior, k: int, generator: torch.Generator | None,
                     scores: tuple[str, ...], for_loss: bool = False) -> dict[str, Tensor | None]:
        z0 = q.rsample(k, generator=generator)
        gamma = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        b, d = x.shape[0], z0.shape[-1]
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])
        z_k, rho_k = self.flow(z0.reshape(-1, d), gamma.reshape(-1, d), xs)
        reg = (q.log_prob(z0) + standard_normal_log_prob(gamma)
               - (self.prior_log_prob(z_k) + standard_normal_log_prob(rho_k)).reshape(k, b))
        return self._scored(z_k, xs, reg, scores, for_loss)


register_preset("hvae", "Hamiltonian VAE: 3 tempered leapfrog steps on z (ε = 0.001, β_0 = 0.3), Bernoulli decoder",
                PYTHAE, model_type="hvae", likelihood="bernoulli")
