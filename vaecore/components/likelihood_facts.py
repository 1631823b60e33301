"""What a likelihood publishes about itself, for metrics and the app: what it can score (`Scoring`) and its
decoder-scale trace over training (`SigmaTrace`: which logged key is ln σ, how σ varies across pixels and
images, the EMA and MLE keys). Each `Likelihood` returns these from its `scoring` and `sigma_trace`
properties (`components/likelihoods.py`); readers never infer them from the likelihood's name or settings.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scoring:
    """What a likelihood assigns a number to.

    `density`: a normalised continuous density on [0, 1]^D (−log pdf, `Likelihood.nll`); `probability_8bit`:
    the probability of the 8-bit image (−log p, `Likelihood.nll_discrete`); `binary_only`: a distribution over
    {0, 1}^D, so grey levels are scored as if they were probabilities, not data; `zero_density_at_edges`: the
    density vanishes at pixel values exactly 0 and 1 (−log pdf = +∞ there).
    """

    density: bool
    probability_8bit: bool
    binary_only: bool = False
    zero_density_at_edges: bool = False


LOG_SIGMA = "log_sigma"  # the logged ln σ of a step
LOG_SIGMA_EMA = "log_sigma_ema"  # σ-VAE's analytic σ: the EMA of σ* that defines the density after training
SIGMA2_MLE = "sigma2_mle"  # AR-ELBO: the step's σx² MLE (mean over pixels)
SIGMA2_EMA = "sigma2_ema"  # AR-ELBO: the EMA of σx² that defines the density after training


class SigmaVaries(enum.StrEnum):
    """How the decoder's σ varies."""

    NONE = "no decoder σ"
    FIXED = "one constant σ"
    SHARED = "one σ for every pixel and image"
    PER_PIXEL_SHARED = "one σ per pixel, shared by all images"
    PER_IMAGE = "one σ per image"
    PER_PIXEL = "one σ per pixel of every image"


class PerImageSigma(enum.StrEnum):
    """Where a per-image σ comes from."""

    PREDICTED = "predicted"  # σ(z), from the decoder's outputs
    MLE = "mle"  # AR-ELBO's Iso-D / Diag-D: the maximum-likelihood value of the image's residual


@dataclass(frozen=True)
class SigmaTrace:
    """The decoder-scale trace a likelihood logs in metrics.jsonl, and what it means.

    `log_sigma_key`: the ln σ of each step (None where no single σ exists, with `why_none`); `mle_key`: the
    step's σx² MLE (AR-ELBO), which defines ln σ = ½ ln σx² where a record has it; `ema_key`: the running value
    that defines the density after training; `per_image`: how a σ per image is obtained where σ varies per
    image.
    """

    varies: SigmaVaries
    log_sigma_key: str | None = None
    ema_key: str | None = None
    mle_key: str | None = None
    per_image: PerImageSigma | None = None
    why_none: str = ""

    @property
    def plotted(self) -> bool:
        """Whether training logs one ln σ per step (a curve to plot)."""
        return self.log_sigma_key is not None

    def log_sigma(self, record: Mapping[str, Any]) -> float | None:
        """ln σ of one metrics record: ½ ln of its σx² MLE where the trace has one and the record holds it, else
        its `log_sigma_key`; None when absent or not finite."""
        mle = record.get(self.mle_key) if self.mle_key else None
        value = 0.5 * math.log(mle) if _number(mle) and mle > 0 else (
            record.get(self.log_sigma_key) if self.log_sigma_key else None)
        return float(value) if _number(value) and math.isfinite(value) else None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


NO_SIGMA = "the {name} likelihood has no decoder σ"
LOGGED = SigmaTrace(SigmaVaries.SHARED, LOG_SIGMA, mle_key=SIGMA2_MLE)
"""What any run that logs a σ writes: for a reader that does not know the run's likelihood."""
