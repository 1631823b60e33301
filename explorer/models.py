"""What a model can do, in one place: the app asks these helpers, never the config's fields.

Works with the engine's model contract v2 (`model.capabilities`, `model.embed`) when present and
falls back to the v1 config fields (`deterministic`, `regulariser`, `prior`) otherwise, so the
switch to the new contract is this file only. No Streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from vaecore import PretrainedModel


@dataclass(frozen=True)
class ModelFacts:
    """What the app needs to know about a model: bounds, prior sampling, why not."""

    elbo: bool
    prior_samples: bool
    latent_dim: int
    gaussian_posterior: bool
    why_no_elbo: str = ""
    why_no_prior: str = ""


def facts(model: PretrainedModel) -> ModelFacts:
    """A model's capabilities (contract v2's `capabilities`, else read from the v1 config)."""
    caps = getattr(type(model), "capabilities", None)
    latent = int(getattr(model, "latent_dim", getattr(model.config, "latent_dim", 0)) or 0)
    if isinstance(caps, property):
        c = model.capabilities
        shape = tuple(c.latent_shape)
        return ModelFacts(elbo=bool(c.elbo), prior_samples=bool(c.prior_samples),
                          latent_dim=int(math.prod(shape)) if shape else latent,
                          gaussian_posterior=getattr(c, "posterior", "gaussian") == "gaussian",
                          why_no_elbo=c.why_no_elbo, why_no_prior="" if c.prior_samples else _no_prior(model))
    config = model.config
    deterministic = bool(getattr(config, "deterministic", False))
    regulariser = getattr(config, "regulariser", "kl")
    why = (f"the encoder of {config.preset!r} is deterministic (regulariser {regulariser!r}): there is no q(z|x), "
           "so no bound or estimate") if deterministic else ""
    prior = regulariser not in ("none", "rae")
    return ModelFacts(elbo=not deterministic, prior_samples=prior, latent_dim=latent,
                      gaussian_posterior=not deterministic, why_no_elbo=why,
                      why_no_prior="" if prior else _no_prior(model))


def _no_prior(model: PretrainedModel) -> str:
    return (f"{model.config.preset!r} is trained without a prior on z, so decoding N(0, I) draws gives noise; "
            "use a fitted sampler (GMM, 2-stage) instead")


def has_elbo(model: PretrainedModel) -> bool:
    """Whether the model defines ELBO, IWAE and −log p (a posterior density and a likelihood)."""
    return facts(model).elbo


def has_prior_samples(model: PretrainedModel) -> bool:
    """Whether decoding draws from the model's own prior gives meaningful images."""
    return facts(model).prior_samples


def family(model_or_config: Any) -> str:
    """The model family: `model_type` when it names one ('iwae', 'ae', 'wae', …), else from the v1 regulariser."""
    config = getattr(model_or_config, "config", model_or_config)
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    kind = get("model_type", "vae") or "vae"
    if kind != "vae":
        return str(kind)
    return {"iwae": "iwae", "none": "ae", "mmd": "wae", "rae": "rae"}.get(get("regulariser", "kl") or "kl", "vae")


@torch.no_grad()
def embed(model: PretrainedModel, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """The latent point of each image (B, d) on the CPU: `model.embed` (v2) or the posterior mean."""
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(model.device)
        z = model.embed(xb) if hasattr(model, "embed") else model.encode(xb)[0]
        out.append(z.reshape(len(xb), -1).cpu())
    return torch.cat(out) if out else torch.zeros(0, facts(model).latent_dim)


@torch.no_grad()
def gaussian_posterior(model: PretrainedModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mu, logvar) of a diagonal-Gaussian posterior on the CPU, or None for other posteriors."""
    if not facts(model).gaussian_posterior:
        return None
    model.eval()
    try:
        mu, logvar = model.encode(x.to(model.device))
    except (ValueError, NotImplementedError):
        return None
    return mu.cpu(), logvar.cpu()
