"""The composed autoencoder: encoder → posterior → z → decoder → likelihood, with a prior and
objective terms. Every family with that shape (VAE, β-VAE, σ-VAE, AR-ELBO, IWAE, AE, WAE, RAE,
InfoVAE, FactorVAE, SVAE, T-VAE) subclasses it and overrides only what differs: how encoder
outputs become a posterior, the prior, the objective terms, or the loss itself.

The bounds (`elbo`, `log_importance_weights`) are written once here in terms of the posterior's
`log_prob`, the prior's `log_prob` and the likelihood's `nll`, so a new posterior or prior gets
correct IWAE numbers without touching the metrics.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaecore.components.context import StepContext
from vaecore.components.kinds import Geometry, PosteriorKind
from vaecore.components.likelihoods import Likelihood, build_likelihood
from vaecore.components.nets import build_decoder, build_encoder
from vaecore.components.objectives import Forward, Term, kl_to_prior
from vaecore.components.posteriors import DiagonalGaussian, PointMass, Posterior
from vaecore.components.priors import Prior, StandardNormal
from vaecore.models.base import Capabilities, LossOutput, PretrainedModel, scalar

LOGVAR_RANGE = (-30.0, 20.0)
POINT_MASS_LOGVAR = -20.0
DECODE_BATCH = 1024  # latents decoded at once by `decode`, so activations stay bounded whatever B


class AutoEncoder(PretrainedModel):
    """Base of the encoder/decoder families. Subclasses set `stochastic` and `has_prior` and may
    override `make_posterior`, `build_prior`, `build_terms` or `loss`."""

    stochastic: ClassVar[bool] = True
    has_prior: ClassVar[bool] = True
    geometry: ClassVar[Geometry] = Geometry.EUCLIDEAN
    refused_likelihoods: ClassVar[dict[str, str]] = {}
    """Likelihoods this family cannot use, each with the reason (shown by `list-models` and model cards)."""

    def __init__(self, config: dict[str, Any] | Any) -> None:
        super().__init__()
        cfg = self._parse_config(config)
        if cfg.likelihood in self.refused_likelihoods:
            raise ValueError(f"a {self.model_type!r} model cannot use the {cfg.likelihood!r} likelihood: "
                             f"{self.refused_likelihoods[cfg.likelihood]}")
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        shape = cfg.input_shape
        self.likelihood: Likelihood = build_likelihood(cfg.likelihood, shape, **cfg.likelihood_kwargs)
        self.encoder, self.decoder = self.build_networks(self.likelihood.channels(shape[0]))
        self.prior: Prior | None = self.build_prior()
        self.terms: list[Term] = self.build_terms()

    # what subclasses choose -------------------------------------------------------------------
    def build_networks(self, out_channels: int) -> tuple[nn.Module, nn.Module]:
        """The encoder and the decoder (built in that order), from the config's `arch`; the decoder gives
        `out_channels` maps of likelihood parameters."""
        cfg = self.config
        return (build_encoder(cfg.arch, cfg.input_shape, cfg.latent_dim, out_features=self.encoder_features()),
                build_decoder(cfg.arch, cfg.input_shape, self.decoder_input_dim(), out_channels))

    def encoder_features(self) -> int:
        """Encoder outputs per image: (μ, log σ²) for a Gaussian posterior, the code for a point mass."""
        return 2 * self.latent_dim if self.stochastic else self.latent_dim

    def decoder_input_dim(self) -> int:
        return self.latent_dim

    def make_posterior(self, h: Tensor) -> Posterior:
        """Encoder outputs → q(z|x)."""
        if not self.stochastic:
            return PointMass(h)
        mu, logvar = h.chunk(2, dim=1)
        return DiagonalGaussian(mu, logvar.clamp(*LOGVAR_RANGE))

    def build_prior(self) -> Prior | None:
        """p(z); None for a family with no density over its latents."""
        return StandardNormal(self.latent_dim)

    def build_terms(self) -> list[Term]:
        return []

    # encoder / decoder ------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> Posterior:
        """q(z|x) for a batch of images."""
        return self.make_posterior(self.encoder(self._check_input(x)))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) as (mu, logvar) for diagonal-Gaussian posteriors; a point mass gives (z, −20)."""
        q = self.posterior(x)
        if isinstance(q, DiagonalGaussian):
            return q.mu, q.logvar
        if isinstance(q, PointMass):
            return q.z, torch.full_like(q.z, POINT_MASS_LOGVAR)
        raise ValueError(f"{self.config.preset!r} has a {type(q).__name__} posterior, not (mu, logvar); "
                         "use posterior(x) or embed(x)")

    def embed(self, x: Tensor) -> Tensor:
        """The latent point of each image, (B, d): the posterior mean (the code for an AE)."""
        return self.posterior(x).mean

    def decode_params(self, z: Tensor) -> Tensor:
        """Raw decoder output: the likelihood's parameters for each pixel."""
        return self.decoder(z.to(self.device))

    def decode(self, z: Tensor) -> Tensor:
        """Mean image in [0, 1] for each latent: z is (B, d) (or (B, *latent_shape)), finite, floating point;
        decoded DECODE_BATCH latents at a time."""
        z = self._check_latents(z)
        if z.shape[0] <= DECODE_BATCH:
            return self.likelihood.mean(self.decode_params(z))
        return torch.cat([self.likelihood.mean(self.decode_params(part)) for part in z.split(DECODE_BATCH)])

    def reconstruct(self, x: Tensor) -> Tensor:
        """Decode the latent point of x."""
        return self.decode(self.embed(x))

    # prior --------------------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        why = "" if self.stochastic else (f"the encoder of {self.config.preset!r} is deterministic: "
                                          "there is no q(z|x), so no bound or estimate")
        return Capabilities(elbo=self.stochastic, prior_samples=self.has_prior, latent_shape=(self.latent_dim,),
                            geometry=self.geometry,
                            posterior=PosteriorKind.GAUSSIAN if self.stochastic else PosteriorKind.POINT,
                            prior=self.prior.kind, why_no_elbo=why)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) over the last dimension."""
        return self.prior.log_prob(z)

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws from the model's prior (n a whole number within `vaecore.limits.SAMPLES`)."""
        return self.prior.sample(self._check_count(n), generator=generator, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n generated images (decoder means of prior draws); n a whole number within `vaecore.limits.SAMPLES`."""
        return self.decode(self.sample_latents(self._check_count(n), generator))

    # bounds -----------------------------------------------------------------------------------------
    def _require_elbo(self, what: str) -> None:
        caps = self.capabilities
        if not caps.elbo:
            raise ValueError(f"{what} is undefined for {self.config.preset!r}: {caps.why_no_elbo}")

    def elbo(self, x: Tensor, n_samples: int = 1) -> Tensor:
        """Evidence lower bound per example, in nats, averaged over n_samples draws of z."""
        self._require_elbo("the ELBO")
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        x = self._check_input(x)
        q = self.posterior(x)
        total = torch.zeros(x.shape[0], device=x.device)
        for _ in range(n_samples):
            z = q.rsample()
            total += -self.likelihood.nll(self.decode_params(z), x) - kl_to_prior(q, z, self.prior)
        return total / n_samples

    def log_importance_weights(self, x: Tensor, k: int, generator: torch.Generator | None = None, *,
                               scores: tuple[str, ...] | None = None,
                               posterior: Posterior | None = None) -> Any:
        """log p(x|z_k) + log p(z_k) − log q(z_k|x) for k draws per example: shape (k, B).

        The k draws go through the decoder as one batch of k·B latents. With `scores`, a dict of
        such tensors, one per likelihood method ("nll", "nll_discrete", "nll_fitted"; None where
        the likelihood defines no such score), all from the same draws. `posterior` reuses an
        already computed q(z|x) of these x.
        """
        self._require_elbo("importance weighting")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"the number of importance samples must be a positive integer, got {k!r}")
        x = self._check_input(x)
        q = posterior if posterior is not None else self.posterior(x)
        z = q.rsample(k, generator=generator)
        params = self.decode_params(z.reshape(-1, *z.shape[2:]))
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])
        log_pz_qz = self.prior_log_prob(z) - q.log_prob(z)
        out: dict[str, Tensor | None] = {}
        for score in scores or ("nll",):
            nll = getattr(self.likelihood, score)(params, xs)
            out[score] = None if nll is None else -nll.reshape(k, -1) + log_pz_qz
        return out if scores is not None else out["nll"]

    # training objective -------------------------------------------------------------------------------
    def forward_pass(self, x: Tensor) -> Forward:
        """Encode, draw one z per image, decode."""
        q = self.posterior(x)
        z = q.rsample()
        return Forward(x, q, z, self.decode_params(z))

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        """Reconstruction term + the config's objective terms, per-example mean, and their logs."""
        return self.objective(self.forward_pass(self._check_input(x)), ctx or StepContext.evaluation())

    def objective(self, fwd: Forward, ctx: StepContext) -> LossOutput:
        """The loss of an already computed forward pass."""
        recon = self.likelihood.objective(fwd.params, fwd.x)
        total, logs = recon, {"recon": scalar(recon)}
        for term in self.terms:
            value = term.value(self, fwd, ctx)
            total = total + term.weight(ctx) * value
            logs[term.name] = scalar(value)
        logs["loss"] = scalar(total)
        logs.update(self.likelihood.trace())
        return LossOutput(total, logs)

    @torch.no_grad()
    def validate(self, x: Tensor, ctx: StepContext | None = None) -> dict[str, Tensor]:
        """Validation values of a batch from one encoder and one decoder pass: `loss` (batch mean), and per
        example `mse` (squared error, summed over pixels, of the decoded posterior draw the loss uses: the
        posterior-mean reconstruction's error is `vaecore eval`'s `mse`), `elbo` where defined, and `kl_dims`
        (Σ over the batch of KL(q(z_j|x) ‖ N(0, 1)) per dimension, float64) for a diagonal Gaussian posterior."""
        ctx = ctx or StepContext.evaluation()
        x = self._check_input(x)
        fwd = self.forward_pass(x)
        own_loss = type(self).loss is AutoEncoder.loss
        out = {"loss": (self.objective(fwd, ctx) if own_loss else self.loss(x, ctx)).loss.detach()}
        out["mse"] = ((self.likelihood.mean(fwd.params) - x) ** 2).flatten(1).sum(dim=1)
        if self.capabilities.elbo:
            out["elbo"] = -self.likelihood.nll(fwd.params, x) - kl_to_prior(fwd.posterior, fwd.z, self.prior)
        if isinstance(fwd.posterior, DiagonalGaussian):  # the collapse heat map's KL per dimension, same pass
            post = fwd.posterior
            out["kl_dims"] = DiagonalGaussian(post.mu.flatten(1).double(),
                                              post.logvar.flatten(1).double()).kl_per_dimension().sum(0)
        return out


def iwae_bound(log_w: Tensor) -> Tensor:
    """log (1/K) Σ_k exp(log_w_k) per example from (K, B) log weights."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
