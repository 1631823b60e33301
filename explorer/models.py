"""What a model can do, in one place: the app asks these helpers, never the config's fields.

They read the engine's model contract (`model.capabilities`, `model.embed`, `model.model_type`). No
Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vaecore import PretrainedModel
from vaecore.components.likelihood_facts import PerImageSigma
from vaecore.latent.encode import encode
from vaecore.models.families import family_title
from vaecore.utils import evaluating


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
    """A model's capabilities, from `model.capabilities`."""
    c = model.capabilities
    return ModelFacts(elbo=bool(c.elbo), prior_samples=bool(c.prior_samples),
                      latent_dim=c.latent_size if c.latent_shape else int(getattr(model.config, "latent_dim", 0)),
                      gaussian_posterior=c.diagonal_gaussian_posterior, why_no_elbo=c.why_no_elbo,
                      why_no_prior="" if c.prior_samples else _no_prior(model))


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
    """The model family's display name from the engine ('VAE', 'VQ-VAE', 'AE', …; the model_type if unknown)."""
    config = getattr(model_or_config, "config", model_or_config)
    kind = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    kind = str(kind or getattr(model_or_config, "model_type", "vae") or "vae")
    try:
        return family_title(kind)
    except ValueError:
        return kind


def embed(model: PretrainedModel, x: torch.Tensor, batch: int = 500,
          progress: Callable[[float, str], None] | None = None) -> torch.Tensor:
    """The latent point of each image (B, d) on the CPU (`model.embed`: the posterior mean, an AE's code)."""
    return encode(model, x, batch, progress)


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


@torch.no_grad()
def kl_to_prior(model: PretrainedModel, x: torch.Tensor) -> torch.Tensor | None:
    """KL(q(z|x) ‖ p(z)) per image on the CPU, in the engine's closed form (`Posterior.kl`: registered by
    posterior and prior type); None where the engine has none (a point mass, a VampPrior, a flow)."""
    prior = getattr(model, "prior", None)
    if prior is None or not model.capabilities.elbo:
        return None
    model.eval()
    kl = model.posterior(x.to(model.device)).kl(prior)
    return None if kl is None else kl.float().cpu()


def decoder_sigma_kind(model: PretrainedModel) -> str | None:
    """How a model's decoder σ varies per image, as its likelihood publishes it (`sigma_trace.per_image`), or None
    when it does not (a shared or fixed σ, no σ): 'predicted' (a Gaussian decoder predicting σ(z) per pixel or per
    image) or 'mle' (AR-ELBO's Iso-D / Diag-D, whose σx² is the maximum-likelihood value of each image's residual)."""
    likelihood = getattr(model, "likelihood", None)
    return None if likelihood is None else likelihood.sigma_trace.per_image


@torch.no_grad()
def decoder_log_sigma(model: PretrainedModel, x: torch.Tensor, batch: int = 500) -> torch.Tensor | None:
    """Per image, the mean over pixels of the decoder's ln σ at the posterior mean (B,), on the CPU, from the
    engine (`Likelihood.log_sigma_per_image`); None where σ does not vary per image (`decoder_sigma_kind`)."""
    if decoder_sigma_kind(model) is None:
        return None
    out = []
    with evaluating(model):  # the engine's inference path (measured kernels and memory format)
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].to(model.device, torch.float32)
            params = model.decode_params(model.embed(xb))
            out.append(model.likelihood.log_sigma_per_image(params, xb).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def decoder_sigma_note(model: PretrainedModel) -> str:
    """What the map's 'decoder ln σ' colour means for this model ('' where it is not offered)."""
    kind = decoder_sigma_kind(model)
    if kind == PerImageSigma.PREDICTED:
        return ("ln σ(z) predicted by the decoder at the posterior mean, averaged over the pixels: high where the "
                "model is unsure of the image.")
    if kind == PerImageSigma.MLE:
        return ("AR-ELBO sets σx²(z) to each image's maximum-likelihood value, the mean squared residual: this ln σx "
                "follows the reconstruction error.")
    return ""
