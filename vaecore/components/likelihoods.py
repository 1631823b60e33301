"""Decoder likelihoods p(x|z): how raw decoder outputs become a distribution over images, and the registry of them
by name (`LIKELIHOODS`, `build_likelihood`).

This module holds the Bernoulli and the continuous densities: the Gaussian with its σ choices (σ-VAE's optimal σ,
Rybkin et al. 2021), the AR-ELBO Gaussian whose σx² is its maximum-likelihood estimate (Lin et al. 2021) and the
Beta. The contract is in `likelihood_base`, the likelihoods over 8-bit levels in `discrete_likelihoods`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vaecore.components import likelihood_facts as facts
from vaecore.components.discrete_likelihoods import (
    Bitwise,
    Categorical256,
    DiscretizedGaussian,
    DiscretizedLogistic,
    LogisticMixture,
)
from vaecore.components.likelihood_base import (
    LOG_2PI,
    MIN_LOG_SIGMA,
    DiscreteLikelihood,
    Likelihood,
    at_least_float32,
    gaussian_log_bin,
    logistic_log_bin,
    to_levels,
)
from vaecore.components.likelihood_facts import LOG_SIGMA, PerImageSigma, SigmaTrace, SigmaVaries
from vaecore.utils import flat_sum, softclip

__all__ = [
    "AR_ELBO_VARIANCES", "ARELBO", "Bernoulli", "Beta", "Bitwise", "Categorical256", "DiscreteLikelihood",
    "DiscretizedGaussian", "DiscretizedLogistic", "GAUSSIAN_SIGMAS", "LIKELIHOODS", "Gaussian", "Likelihood",
    "LogisticMixture", "at_least_float32", "build_likelihood", "gaussian_log_bin", "likelihood_of",
    "logistic_log_bin", "to_levels",
]


class Bernoulli(Likelihood):
    """Binary cross-entropy on logits; grey values are treated as probabilities."""

    name = "bernoulli"
    group = "bernoulli"
    continuous_density = False
    binary_data = True

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(F.binary_cross_entropy_with_logits(at_least_float32(params), x, reduction="none"))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(at_least_float32(params))

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.bernoulli(self.mean(params), generator=generator)


GAUSSIAN_SIGMAS = {
    "fixed": "a constant σ (σ = 1 is the classic Gaussian VAE; σ² = β is the β-VAE)",
    "learned": "one shared σ learned by gradient descent (σ-VAE 'learned')",
    "optimal": "one shared σ set to the batch RMS error every step (σ-VAE, analytic)",
    "learned-diag": "one learned σ per pixel, independent of z (AR-ELBO Diag-I, trainable)",
    "per-example": "σ(z) predicted by the decoder, one per image (AR-ELBO Iso-D, trainable)",
    "per-pixel": "σ(z) predicted by the decoder for every pixel (σ-VAE per-pixel, Diag-D trainable)",
}


class Gaussian(Likelihood):
    """N(x; μ(z), σ²) with the mean through a sigmoid and σ chosen by `sigma` (GAUSSIAN_SIGMAS)."""

    name = "gaussian"
    group = "gaussian"

    def __init__(self, input_shape: tuple[int, int, int], sigma: str = "optimal", value: float = 1.0,
                 init_log_sigma: float = 0.0, momentum: float = 0.99) -> None:
        super().__init__(input_shape)
        if sigma not in GAUSSIAN_SIGMAS:
            raise ValueError(f"unknown Gaussian sigma {sigma!r}; choose one of {sorted(GAUSSIAN_SIGMAS)}")
        self.sigma_mode = sigma
        self.momentum = momentum
        if sigma == "fixed":
            if value <= 0:
                raise ValueError(f"fixed sigma must be positive, got {value}")
            self.register_buffer("log_sigma", torch.tensor(math.log(value)))
        elif sigma == "learned":
            self.log_sigma = nn.Parameter(torch.tensor(float(init_log_sigma)))
        elif sigma == "learned-diag":
            self.log_sigma = nn.Parameter(torch.full(self.input_shape, float(init_log_sigma)))
        else:
            self.register_buffer("log_sigma", torch.tensor(float(init_log_sigma)))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("step_log_sigma", torch.tensor(float("nan")), persistent=False)

    def channels(self, c: int) -> int:
        return {"per-example": c + 1, "per-pixel": 2 * c}.get(self.sigma_mode, c)

    def mean_and_log_sigma(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and ln σ of the decoder for these outputs, ln σ broadcastable to the mean."""
        return self._split(params)

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = at_least_float32(params)
        c = self.input_shape[0]
        mu = torch.sigmoid(params[:, :c])
        if self.sigma_mode == "per-pixel":
            return mu, softclip(params[:, c:], MIN_LOG_SIGMA)
        if self.sigma_mode == "per-example":
            return mu, softclip(params[:, c:].mean(dim=(1, 2, 3), keepdim=True), MIN_LOG_SIGMA)
        if self.sigma_mode in ("learned", "learned-diag"):
            return mu, softclip(self.log_sigma, MIN_LOG_SIGMA).expand_as(mu)
        return mu, self.log_sigma.expand_as(mu)

    @staticmethod
    def _gaussian_nll(x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        return flat_sum(0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * LOG_2PI)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self._split(params)
        return self._gaussian_nll(x, mu, log_sigma)

    def optimal_log_sigma(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ln σ* = ln RMS(x − μ) over the batch and all pixels, soft-clipped at −6."""
        mu = torch.sigmoid(at_least_float32(params)[:, : self.input_shape[0]])
        return softclip(0.5 * torch.log(((x - mu) ** 2).mean()), MIN_LOG_SIGMA)

    def _fit_sigma(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """σ* of this batch (with its gradient, as the σ-VAE objective has); the buffer that defines
        the density outside training follows it as an EMA (`log_sigma_ema` in the trace)."""
        log_sigma = self.optimal_log_sigma(params, x)
        with torch.no_grad():
            m = self.momentum if int(self.updates) > 0 else 0.0
            self.log_sigma.mul_(m).add_((1 - m) * log_sigma.detach())
            self.updates += 1
            self.step_log_sigma.copy_(log_sigma.detach())
        return log_sigma

    def nll_fitted(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.sigma_mode != "optimal" or not self.training:
            return self.nll(params, x)
        log_sigma = self._fit_sigma(params, x)
        mu = torch.sigmoid(at_least_float32(params)[:, : self.input_shape[0]])
        return self._gaussian_nll(x, mu, log_sigma.expand_as(mu))

    def objective(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.nll_fitted(params, x).mean()

    def nll_discrete(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(self.nll_discrete_values(params, x))

    def nll_discrete_values(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self._split(params)
        return -gaussian_log_bin(x, mu, log_sigma.expand_as(mu))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self._split(params)[0]

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu, log_sigma = self._split(params)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return (mu + torch.exp(log_sigma) * eps).clamp(0, 1)

    def trace(self) -> dict[str, float]:
        """ln σ of the last step (for the analytic σ: that step's σ*, and its EMA apart)."""
        if self.sigma_mode in ("per-pixel", "per-example"):
            return {}
        log_sigma = self.log_sigma.detach()
        if self.sigma_mode in ("learned", "learned-diag"):
            log_sigma = softclip(log_sigma, MIN_LOG_SIGMA)
        if self.sigma_mode == "optimal":
            step = float(self.step_log_sigma)
            ema = float(log_sigma)
            return {LOG_SIGMA: step if math.isfinite(step) else ema, facts.LOG_SIGMA_EMA: ema}
        return {LOG_SIGMA: float(log_sigma.mean())}

    @property
    def sigma_trace(self) -> SigmaTrace:
        if self.sigma_mode in ("per-pixel", "per-example"):
            where = "pixel and image" if self.sigma_mode == "per-pixel" else "image"
            return SigmaTrace(SigmaVaries.PER_PIXEL if self.sigma_mode == "per-pixel" else SigmaVaries.PER_IMAGE,
                              per_image=PerImageSigma.PREDICTED,
                              why_none=f"its decoder predicts σ for every {where}, so there is no single σ to plot")
        varies = {"fixed": SigmaVaries.FIXED, "learned-diag": SigmaVaries.PER_PIXEL_SHARED}
        return SigmaTrace(varies.get(self.sigma_mode, SigmaVaries.SHARED), LOG_SIGMA,
                          ema_key=facts.LOG_SIGMA_EMA if self.sigma_mode == "optimal" else None)

    def log_sigma_per_image(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        if self.sigma_trace.per_image is None:
            return None
        mu, log_sigma = self._split(params)
        return log_sigma.expand_as(mu).flatten(1).mean(1)


AR_ELBO_VARIANCES = {
    "iso-i": "σx² I, one variance for all pixels and images (Iso-I)",
    "iso-d": "σx²(z) I, one variance per image (Iso-D)",
    "diag-i": "diag(σx²), one variance per pixel shared by all images (Diag-I)",
    "diag-d": "diag(σx²(z)), one variance per pixel of every image (Diag-D)",
}


class ARELBO(Likelihood):
    """Gaussian decoder whose variance is replaced by its MLE every step (AR-ELBO, Table 2).

    The objective is the paper's reconstruction term; the running MLE (EMA over training
    batches, pooled over images for the z-dependent variants) defines the density used
    for evaluation and sampling.
    """

    name = "arelbo"
    group = "arelbo"

    def __init__(self, input_shape: tuple[int, int, int], variance: str = "iso-i", eps: float = 1e-6,
                 momentum: float = 0.99) -> None:
        super().__init__(input_shape)
        if variance not in AR_ELBO_VARIANCES:
            raise ValueError(
                f"unknown AR-ELBO variance {variance!r}; choose one of {sorted(AR_ELBO_VARIANCES)}"
            )
        self.variance = variance
        self.eps = eps
        self.momentum = momentum
        shape = self.input_shape if variance.startswith("diag") else ()
        self.register_buffer("sigma2", torch.ones(shape))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("step_sigma2", torch.tensor(float("nan")), persistent=False)

    def batch_terms(self, params: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The AR-ELBO reconstruction objective for this batch and the MLE of σx² it implies."""
        sq = (x - torch.sigmoid(at_least_float32(params))) ** 2
        d = self.num_values
        if self.variance == "iso-i":
            s2 = sq.mean()
            return 0.5 * d * torch.log(s2.clamp_min(1e-30)), s2
        if self.variance == "iso-d":
            s2 = sq.reshape(sq.shape[0], -1).mean(dim=1)
            return 0.5 * d * torch.log(s2 + self.eps).mean(), s2.mean()
        if self.variance == "diag-i":
            s2 = sq.mean(dim=0)
            return 0.5 * torch.log(s2 + self.eps).sum(), s2
        return 0.5 * flat_sum(torch.log(sq + self.eps)).mean(), sq.mean(dim=0)

    def objective(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        obj, s2 = self.batch_terms(params, x)
        if self.training:
            with torch.no_grad():
                m = self.momentum if int(self.updates) > 0 else 0.0
                self.sigma2.mul_(m).add_((1 - m) * s2.detach())
                self.updates += 1
                self.step_sigma2.copy_(s2.detach().mean())
        return obj

    def nll_fitted(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise ValueError("the AR-ELBO objective is a single-sample bound with σx² replaced by its batch MLE; "
                             "it has no importance-weighted version: use the 'gaussian' likelihood "
                             "(sigma='optimal' is the Iso-I analogue) with IWAE-type models")
        return self.nll(params, x)

    def _log_sigma(self) -> torch.Tensor:
        return 0.5 * torch.log(self.sigma2.clamp_min(1e-12))

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = torch.sigmoid(at_least_float32(params))
        return Gaussian._gaussian_nll(x, mu, self._log_sigma().expand_as(mu))

    def nll_discrete(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(self.nll_discrete_values(params, x))

    def nll_discrete_values(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = torch.sigmoid(at_least_float32(params))
        return -gaussian_log_bin(x, mu, self._log_sigma().expand_as(mu))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(at_least_float32(params))

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu = self.mean(params)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return (mu + torch.exp(self._log_sigma()) * eps).clamp(0, 1)

    def trace(self) -> dict[str, float]:
        """The last step's σx² MLE (mean over pixels for the diagonal variants) and the EMA that
        defines the density outside training."""
        ema = float(self.sigma2.mean())
        step = float(self.step_sigma2)
        s2 = step if math.isfinite(step) else ema
        return {facts.SIGMA2_MLE: s2, LOG_SIGMA: 0.5 * math.log(max(s2, 1e-12)), facts.SIGMA2_EMA: ema}

    @property
    def sigma_trace(self) -> SigmaTrace:
        """ln σ = ½ ln of the step's σx² MLE (its EMA defines the density after training)."""
        varies = {"iso-i": SigmaVaries.SHARED, "iso-d": SigmaVaries.PER_IMAGE, "diag-i": SigmaVaries.PER_PIXEL_SHARED,
                  "diag-d": SigmaVaries.PER_PIXEL}[self.variance]
        return SigmaTrace(varies, LOG_SIGMA, ema_key=facts.SIGMA2_EMA, mle_key=facts.SIGMA2_MLE,
                          per_image=PerImageSigma.MLE if self.variance in ("iso-d", "diag-d") else None)

    def log_sigma_per_image(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """The per-image MLE its objective uses: Iso-D ½ ln(mean residual² + ε), Diag-D mean ½ ln(residual² + ε)."""
        if self.variance not in ("iso-d", "diag-d"):
            return None
        sq = (x.float() - torch.sigmoid(params.float())) ** 2
        if self.variance == "iso-d":
            return 0.5 * torch.log(sq.flatten(1).mean(1) + self.eps)
        return (0.5 * torch.log(sq + self.eps)).flatten(1).mean(1)


class Beta(Likelihood):
    """Beta density on [0, 1] with both concentrations 1 + softplus(·) (σ-VAE appendix C)."""

    name = "beta"
    group = "beta"
    zero_density_at_edges = True  # both concentrations > 1

    def __init__(self, input_shape: tuple[int, int, int], eps: float = 1e-3) -> None:
        super().__init__(input_shape)
        self.eps = eps

    def channels(self, c: int) -> int:
        return 2 * c

    def _concentrations(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.input_shape[0]
        params = at_least_float32(params)
        return 1 + F.softplus(params[:, :c]), 1 + F.softplus(params[:, c:])

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a, b = self._concentrations(params)
        xc = x.clamp(self.eps, 1 - self.eps)
        return -flat_sum(torch.distributions.Beta(a, b).log_prob(xc))

    def nll_interior(self, params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The exact −log pdf at y in (0, 1): no clamping into [eps, 1 − eps] (which the training term needs)."""
        if bool(((y <= 0) | (y >= 1)).any()):
            raise ValueError("nll_interior needs values strictly inside (0, 1)")
        a, b = self._concentrations(params)
        return -flat_sum(torch.distributions.Beta(a, b).log_prob(at_least_float32(y)))

    def nll_discrete(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Bin-integrated with the regularised incomplete beta function (SciPy; no gradient)."""
        from scipy.special import betainc

        a, b = (t.detach().cpu().double().numpy() for t in self._concentrations(params))
        k = to_levels(x).cpu().numpy()
        lo = np.clip((k - 0.5) / 255, 0, 1)
        hi = np.clip((k + 0.5) / 255, 0, 1)
        p = betainc(a, b, hi) - betainc(a, b, lo)
        logp = np.log(np.maximum(p, 1e-300))
        nll = -torch.from_numpy(logp.reshape(logp.shape[0], -1).sum(axis=1))
        return nll.to(x.device, at_least_float32(params).dtype)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        a, b = self._concentrations(params)
        return a / (a + b)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        a, b = self._concentrations(params)
        return torch.distributions.Beta(a, b).sample()


LIKELIHOODS: dict[str, tuple[type[Likelihood], str]] = {
    "bernoulli": (Bernoulli, "Bernoulli on logits (binary cross-entropy)"),
    "gaussian": (Gaussian, "Gaussian; choose sigma=" + "|".join(GAUSSIAN_SIGMAS)),
    "arelbo": (ARELBO, "Gaussian with σx² set to its MLE (AR-ELBO); variance=" + "|".join(AR_ELBO_VARIANCES)),
    "disc-gaussian": (DiscretizedGaussian, "discretized Gaussian over 256 bins, shared learned scale"),
    "disc-logistic": (DiscretizedLogistic, "discretized logistic over 256 bins, shared learned scale"),
    "logistic-mixture": (LogisticMixture, "mixture of discretized logistics per value"),
    "categorical": (Categorical256, "256-way categorical per value"),
    "bitwise": (Bitwise, "8 Bernoulli bits per value"),
    "beta": (Beta, "Beta density with concentrations 1 + softplus"),
}


def likelihood_of(config: Mapping[str, Any]) -> Likelihood:
    """The likelihood a model config (a config.json as a dict) names, with its settings (cheap: no decoder)."""
    return build_likelihood(str(config.get("likelihood")), tuple(config.get("input_shape") or (1, 28, 28)),
                            **(config.get("likelihood_kwargs") or {}))


def build_likelihood(name: str, input_shape: tuple[int, int, int], **kwargs: object) -> Likelihood:
    """The likelihood called `name`, with its keyword settings."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}")
    cls = LIKELIHOODS[name][0]
    try:
        return cls(tuple(input_shape), **kwargs)  # type: ignore[arg-type]
    except TypeError as e:
        raise ValueError(f"bad settings {kwargs} for likelihood {name!r}: {e}") from e
