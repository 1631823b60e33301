"""The likelihoods over the 256 levels of each 8-bit value: a discretised Gaussian and logistic with one shared
learned scale, a mixture of discretised logistics (PixelCNN++ without channel coupling), a free 256-way categorical
and eight Bernoulli bits per value (σ-VAE appendix C). `nll` is −log P of the 8-bit image itself."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaecore.components.likelihood_base import (
    MIN_LOG_SIGMA,
    DiscreteLikelihood,
    at_least_float32,
    gaussian_log_bin,
    logistic_log_bin,
    to_levels,
)
from vaecore.components.likelihood_facts import LOG_SIGMA, SigmaTrace, SigmaVaries
from vaecore.utils import flat_sum, softclip


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


