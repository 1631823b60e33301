"""Decoder likelihoods p(x|z): how raw decoder outputs become a distribution over images.

Every likelihood reports per-example values summed over the D = C·H·W pixels, in nats.
`nll` is −log p(x|z) as the model defines it (a density for continuous likelihoods, a
probability for discrete ones); `nll_discrete` is always −log P of the 8-bit image
(bin-integrated for continuous likelihoods). `objective` is the training term: the batch
mean of `nll` unless the likelihood replaces σ by its maximum-likelihood estimate
(σ-VAE's optimal σ, Rybkin et al. 2021; the AR-ELBO objectives, Lin et al. 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vaecore.components import likelihood_facts as facts
from vaecore.components.likelihood_facts import LOG_SIGMA, PerImageSigma, Scoring, SigmaTrace, SigmaVaries
from vaecore.utils import flat_sum, softclip

LOG_2PI = math.log(2 * math.pi)
BIN = 1.0 / 255.0
MIN_LOG_SIGMA = -6.0


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32 when it has less precision (autocast's bfloat16 / float16), else as it is (float64 stays)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] images to integer levels 0..255."""
    return torch.round(x.clamp(0, 1) * 255).long()


def log_interval(log_cdf: Callable[[torch.Tensor], torch.Tensor], lo: torch.Tensor,
                 hi: torch.Tensor) -> torch.Tensor:
    """log(F(hi) − F(lo)) for a symmetric standardised CDF F, stable in both tails.

    Right of the centre the interval is mirrored (F(hi) − F(lo) = F(−lo) − F(−hi)) so the
    difference is always taken between small CDF values, in log space with expm1.
    """
    flip = (lo + hi) > 0
    upper = torch.where(flip, -lo, hi)
    lower = torch.where(flip, -hi, lo)
    lu, ll = log_cdf(upper), log_cdf(lower)
    return lu + torch.log(-torch.expm1((ll - lu).clamp(max=-1e-12)))


def _log_bin(log_cdf: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mu: torch.Tensor,
             log_scale: torch.Tensor) -> torch.Tensor:
    """Per-pixel log P(bin of x) under a location-scale law with the symmetric standardised CDF F. The first and
    last bins are open, log F(b) and log F(−a), computed directly: a finite stand-in for ±∞ would lose the tail
    mass of a wide law (a logistic mixture's components reach scales of e^8) and, in float32, give log_ndtr a NaN
    gradient (exp(x²/2) overflows)."""
    k = to_levels(x).to(x.dtype) * BIN
    inv = torch.exp(-log_scale)
    a, b = (k - BIN / 2 - mu) * inv, (k + BIN / 2 - mu) * inv
    interior = log_interval(log_cdf, a, b)
    return torch.where(k <= 0, log_cdf(b), torch.where(k >= 1, log_cdf(-a), interior))


def gaussian_log_bin(x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """Per-pixel log P(bin of x) under N(mu, σ²) integrated over the bin (open first and last bins)."""
    return _log_bin(torch.special.log_ndtr, x, mu, log_sigma)


def logistic_log_bin(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Per-pixel log P(bin of x) under a logistic(mu, s) integrated over the bin (open first and last bins)."""
    return _log_bin(F.logsigmoid, x, mu, log_scale)


class Likelihood(nn.Module):
    """Base class. Subclasses say how many decoder channels they need and how to score x."""

    name = "likelihood"
    group = ""  # the zoo's group of a plain VAE with this decoder (a key suffix of models.families.GROUPS)
    discrete = False
    continuous_density = True
    zero_density_at_edges = False  # True where the density vanishes at pixel values 0 and 1 (−log pdf = +∞ there)
    binary_data = False  # True for a distribution over {0, 1}^D (grey levels are scored as probabilities)

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)

    @property
    def num_values(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    def channels(self, c: int) -> int:
        """Decoder output channels needed for an image of c channels."""
        return c

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def objective(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Training term per example, averaged over the batch."""
        return self.nll(params, x).mean()

    def nll_fitted(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per example with any MLE-defined scale first fitted to these outputs (in
        training); what a bound over several draws (IWAE) trains on. Equal to `nll` by default."""
        return self.nll(params, x)

    def nll_discrete(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """−log P of the 8-bit image; None where the likelihood defines no such probability."""
        return None

    def nll_interior(self, params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """−log pdf(y) at values strictly inside (0, 1) (dequantised data), with nothing clamped; `nll` unless the
        likelihood clamps its inputs for training."""
        return self.nll(params, y)

    def nll_discrete_values(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """−log P of each 8-bit value, the shape of x (its sum over a picture is `nll_discrete`); None where the
        likelihood does not split it by value."""
        return None

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def trace(self) -> dict[str, float]:
        """Scale parameters worth plotting over training (ln σ, σx² MLE): the keys `sigma_trace` names."""
        return {}

    @property
    def scoring(self) -> Scoring:
        """What this likelihood can score: a density, the 8-bit image's probability, binary data only."""
        return Scoring(density=self.continuous_density,
                       probability_8bit=self.discrete or type(self).nll_discrete is not Likelihood.nll_discrete,
                       binary_only=self.binary_data, zero_density_at_edges=self.zero_density_at_edges)

    @property
    def sigma_trace(self) -> SigmaTrace:
        """Which logged key is this likelihood's ln σ over training, and how its σ varies."""
        return SigmaTrace(SigmaVaries.NONE, why_none=facts.NO_SIGMA.format(name=repr(self.name)))

    def log_sigma_per_image(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """Per image, the mean over pixels of ln σ for these decoder outputs and images, (B,); None where σ does
        not vary per image (`sigma_trace.per_image`)."""
        return None


class DiscreteLikelihood(Likelihood):
    """A distribution over the 256 levels of each value: `nll` is already −log P of the 8-bit image."""

    group = "discrete"
    discrete = True
    continuous_density = False

    def nll_discrete(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.nll(params, x)


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


class _SharedScale(DiscreteLikelihood):
    """Discretized location-scale likelihood with one learned scale shared by all pixels."""

    log_bin: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

    def __init__(self, input_shape: tuple[int, int, int], init_log_scale: float = 0.0) -> None:
        super().__init__(input_shape)
        self.log_scale = nn.Parameter(torch.tensor(float(init_log_scale)))

    def _scale(self) -> torch.Tensor:
        return softclip(self.log_scale, MIN_LOG_SIGMA)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(self.nll_discrete_values(params, x))

    def nll_discrete_values(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = torch.sigmoid(at_least_float32(params))
        return -type(self).log_bin(x, mu, self._scale().expand_as(mu))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(at_least_float32(params))

    def trace(self) -> dict[str, float]:
        return {LOG_SIGMA: float(self._scale().detach())}

    @property
    def sigma_trace(self) -> SigmaTrace:
        return SigmaTrace(SigmaVaries.SHARED, LOG_SIGMA)


class DiscretizedGaussian(_SharedScale):
    """Gaussian integrated over the 256 bins of an 8-bit pixel."""

    name = "disc-gaussian"
    log_bin = staticmethod(gaussian_log_bin)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu = self.mean(params)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return torch.round((mu + torch.exp(self._scale()) * eps).clamp(0, 1) * 255) / 255


def _logistic_noise(shape: torch.Size, generator: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


class DiscretizedLogistic(_SharedScale):
    """Logistic integrated over the 256 bins (Kingma et al. 2016), without channel coupling."""

    name = "disc-logistic"
    log_bin = staticmethod(logistic_log_bin)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu = self.mean(params)
        noise = _logistic_noise(mu.shape, generator, mu.device)
        return torch.round((mu + torch.exp(self._scale()) * noise).clamp(0, 1) * 255) / 255


class LogisticMixture(DiscreteLikelihood):
    """Mixture of K discretized logistics per value (PixelCNN++ without autoregressive channels)."""

    name = "logistic-mixture"

    def __init__(self, input_shape: tuple[int, int, int], components: int = 5) -> None:
        super().__init__(input_shape)
        self.k = components

    def channels(self, c: int) -> int:
        return 3 * self.k * c

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, h, w = params.shape
        p = at_least_float32(params).reshape(b, 3, self.k, self.input_shape[0], h, w)
        logits = torch.log_softmax(p[:, 0], dim=1)
        mu = torch.sigmoid(p[:, 1])
        log_s = softclip(p[:, 2], -7.0)
        return logits, mu, log_s

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits, mu, log_s = self._split(params)
        xk = x.unsqueeze(1).expand_as(mu)
        return -flat_sum(torch.logsumexp(logits + logistic_log_bin(xk, mu, log_s), dim=1))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        logits, mu, _ = self._split(params)
        return (logits.exp() * mu).sum(dim=1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logits, mu, log_s = self._split(params)
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator, device=logits.device)
                                       .clamp(1e-6, 1 - 1e-6)))
        pick = F.one_hot((logits + gumbel).argmax(dim=1), self.k).movedim(-1, 1).to(mu.dtype)
        m, s = (pick * mu).sum(dim=1), (pick * log_s).sum(dim=1)
        noise = _logistic_noise(m.shape, generator, m.device)
        return torch.round((m + torch.exp(s) * noise).clamp(0, 1) * 255) / 255


class Categorical256(DiscreteLikelihood):
    """A free 256-way categorical distribution for every value."""

    name = "categorical"

    def channels(self, c: int) -> int:
        return 256 * c

    def _logits(self, params: torch.Tensor) -> torch.Tensor:
        b, _, h, w = params.shape
        return at_least_float32(params).reshape(b, 256, self.input_shape[0], h, w)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(F.cross_entropy(self._logits(params), to_levels(x), reduction="none"))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self._logits(params), dim=1)
        levels = torch.arange(256, device=probs.device, dtype=probs.dtype).view(1, 256, 1, 1, 1)
        return (probs * levels).sum(dim=1) / 255

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logits = self._logits(params).movedim(1, -1)
        flat = torch.softmax(logits.reshape(-1, 256), dim=-1)
        k = torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])
        return k.float() / 255


class Bitwise(DiscreteLikelihood):
    """Eight independent Bernoulli bits per 8-bit value (σ-VAE appendix C)."""

    name = "bitwise"

    def channels(self, c: int) -> int:
        return 8 * c

    def _logits(self, params: torch.Tensor) -> torch.Tensor:
        b, _, h, w = params.shape
        return at_least_float32(params).reshape(b, 8, self.input_shape[0], h, w)

    @staticmethod
    def _weights(device: torch.device) -> torch.Tensor:
        return (2 ** torch.arange(8, device=device)).view(1, 8, 1, 1, 1)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = self._logits(params)
        bits = ((to_levels(x).unsqueeze(1) // self._weights(x.device)) % 2).to(logits.dtype)
        return flat_sum(F.binary_cross_entropy_with_logits(logits, bits, reduction="none"))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self._logits(params))
        return (p * self._weights(p.device)).sum(dim=1) / 255

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        bits = torch.bernoulli(torch.sigmoid(self._logits(params)), generator=generator)
        return (bits * self._weights(bits.device)).sum(dim=1) / 255


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
