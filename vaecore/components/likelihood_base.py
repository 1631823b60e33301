"""What every decoder likelihood p(x|z) is: the `Likelihood` contract, the `DiscreteLikelihood` over the 256 levels
of a value, and the probability of an 8-bit bin under a location-scale law (open first and last bins).

Every likelihood reports per-example values summed over the D = C·H·W pixels, in nats. `nll` is −log p(x|z) as the
model defines it (a density for continuous likelihoods, a probability for discrete ones); `nll_discrete` is always
−log P of the 8-bit image (bin-integrated for continuous likelihoods). `objective` is the training term: the batch
mean of `nll` unless the likelihood replaces σ by its maximum-likelihood estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaecore.components import likelihood_facts as facts
from vaecore.components.likelihood_facts import Scoring, SigmaTrace, SigmaVaries

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


