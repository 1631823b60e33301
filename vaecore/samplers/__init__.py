"""Post-hoc latent samplers: where generation draws z when the prior is not good enough.

A VAE's aggregate posterior q(z) rarely matches its prior, and AE/RAE models have no prior at
all, so the papers fit a density to the training latent means after training and sample from
it (AR-ELBO Table 3, Pythae's samplers, Ghosh et al.'s GMM, Dai & Wipf's 2-stage VAE).

Every sampler follows one contract (scikit-learn style):

    sampler = build_sampler("gmm", components=10).fit(model, x_train, seed=0)
    z = sampler.sample_latents(n, generator)        # (n, d) on the model's device
    sampler.save(folder); GMMSampler.load(folder)    # safetensors + JSON, never pickle

`load_or_fit` keeps a fitted sampler next to the model folder and refits only when the
settings, the training subset or the model weights changed.
"""

from vaecore.latent.encode import latent_means
from vaecore.samplers.base import (
    FORMAT,
    FORMAT_VERSION,
    NormalSampler,
    Progress,
    Sampler,
    SamplerLoadError,
    model_fingerprint,
)
from vaecore.samplers.iaf import IAFSampler
from vaecore.samplers.maf import MAFSampler
from vaecore.samplers.mixture import GMMSampler
from vaecore.samplers.registry import (
    SAMPLERS,
    build_sampler,
    fit_sampler,
    load_or_fit,
    load_sampler,
    sampler_cache,
)
from vaecore.samplers.two_stage import TwoStageSampler
from vaecore.samplers.vamp import VampSampler

__all__ = [
    "FORMAT", "FORMAT_VERSION", "SAMPLERS", "GMMSampler", "IAFSampler", "MAFSampler", "NormalSampler", "Progress",
    "Sampler",
    "SamplerLoadError", "TwoStageSampler", "VampSampler", "build_sampler", "fit_sampler", "latent_means",
    "load_or_fit", "load_sampler", "model_fingerprint", "sampler_cache",
]
