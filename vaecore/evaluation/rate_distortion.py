"""The rate–distortion plane of a VAE (Alemi et al. 2018, "Fixing a Broken ELBO"): the rate R = E_x KL(q(z|x) ‖ p(z))
and the distortion D = −E_x E_q[log p(x|z)], both in nats per image, so that −ELBO = R + D and models on one line
R + D = c have the same ELBO. A σ = 1 Gaussian VAE sits at low rate and high distortion, a β-VAE moves along its
curve with β, the σ-VAE finds its own point.

D is the value of the decoder's likelihood, so it compares only models whose likelihoods score the same thing
(`family`: a density on [0, 1]^D, the probability of 8-bit values, or a Bernoulli on grey levels).

    point = from_evaluation(eval_result, per_image=store)   # from a stored evaluation (elbo and kl)
    point = measure(model, x, seed=0)                        # computed on images x
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vaecore.components.likelihoods import likelihood_of
from vaecore.evaluation.metrics.latent import kl_per_image
from vaecore.evaluation.metrics.likelihood import elbo
from vaecore.evaluation.registry import undefined_reason

DENSITY = "density on [0, 1]^D"
PROBABILITY = "probability of 8-bit values"
BINARY = "Bernoulli (binary data)"


@dataclass(frozen=True)
class RatePoint:
    """A model's place on the plane: rate and distortion (nats per image), their standard errors over the images
    (None where unknown), the number of images and the likelihood family D is comparable within."""

    rate: float
    distortion: float
    rate_se: float | None
    distortion_se: float | None
    n: int
    family: str

    @property
    def elbo(self) -> float:
        """ELBO = −(R + D)."""
        return -(self.rate + self.distortion)


def family(config: Mapping[str, Any]) -> str:
    """Which distortions a model's can be compared with, from what its likelihood scores (`Likelihood.scoring`)."""
    scoring = likelihood_of(dict(config)).scoring
    if scoring.binary_only:
        return BINARY
    return DENSITY if scoring.density else PROBABILITY


def _se(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None


def from_values(kl: np.ndarray, elbo_values: np.ndarray, family_name: str) -> RatePoint:
    """The point of per-image KL and ELBO values on the same images (distortion_i = −elbo_i − kl_i)."""
    kl = np.asarray(kl, dtype=np.float64)
    d = -np.asarray(elbo_values, dtype=np.float64) - kl
    if kl.shape != d.shape or kl.ndim != 1 or not len(kl):
        raise ValueError(f"need one KL and one ELBO value per image, got {kl.shape} and {d.shape}")
    return RatePoint(float(kl.mean()), float(d.mean()), _se(kl), _se(d), len(kl), family_name)


def from_evaluation(result: Mapping[str, Any], config: Mapping[str, Any], per_image: Any = None) -> RatePoint | None:
    """The point of a stored evaluation with both `elbo` and `kl` (None otherwise); with its per-image values (a
    `PerImage`), the standard errors of R and D over the images."""
    kl, value = result.get("kl"), result.get("elbo")
    if not isinstance(kl, int | float):  # an older evaluation: the N(0, I) prior's KL summed over dimensions
        kl = result.get("kl-per-dim_total")
    if not isinstance(kl, int | float) or not isinstance(value, int | float):
        return None
    fam = family(config)
    values = getattr(per_image, "values", None) or {}
    if "kl" in values and "elbo" in values:
        return from_values(values["kl"], values["elbo"], fam)
    n = int((result.get("settings") or {}).get("n_test") or result.get("n_test") or 0)
    se = ((result.get("uncertainty") or {}).get("kl") or {}).get("se")
    return RatePoint(float(kl), float(-value - kl), se, None, n, fam)


@torch.no_grad()
def measure(model: torch.nn.Module, x: torch.Tensor, seed: int = 0, batch_size: int = 500) -> RatePoint:
    """R and D of a model on images x: the engine's per-image KL (closed form where registered) and its ELBO (one
    seeded draw per image). ValueError for a model without an ELBO."""
    reason = undefined_reason(model, "elbo") or undefined_reason(model, "kl")
    if reason:
        raise ValueError(f"no rate–distortion point: {reason}")
    kl = kl_per_image(model, x, batch_size, generator=torch.Generator(device=x.device).manual_seed(seed))
    values = elbo(model, x, batch_size, seed=seed)
    return from_values(kl.numpy(), values.numpy(), family(model.config.to_dict()))


def iso_elbo_lines(rates: tuple[float, float], levels: int = 5,
                   points: list[RatePoint] | None = None) -> list[tuple[float, list[float], list[float]]]:
    """Lines of equal ELBO across a rate range: (−ELBO, [R0, R1], [D0, D1]) with D = −ELBO − R, at `levels` values
    spread over the points' −ELBO (or over the rate range when there are none)."""
    lo, hi = rates
    if points:
        neg = sorted(-p.elbo for p in points)
        values = np.linspace(neg[0], neg[-1], levels) if neg[-1] > neg[0] else np.array([neg[0]])
    else:
        values = np.linspace(lo, hi, levels)
    return [(float(c), [lo, hi], [float(c - lo), float(c - hi)]) for c in values]


__all__ = ["BINARY", "DENSITY", "PROBABILITY", "RatePoint", "family", "from_evaluation", "from_values",
           "iso_elbo_lines", "measure"]
