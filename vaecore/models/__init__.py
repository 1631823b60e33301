"""Model families: each module defines its config, its class, and registers its presets.

Importing this package imports every family, so the registries (`MODEL_TYPES`, `PRESETS`) are
complete whatever the import order.
"""

from vaecore.models import (  # noqa: F401
    aae,
    autoencoders,
    beta_tc_vae,
    disentangled_beta_vae,
    factor_vae,
    flow_vae,
    hrq_vae,
    hvae,
    info_vae,
    iwae,
    iwae_variants,
    msssim_vae,
    poincare_vae,
    rhvae,
    svae,
    tvae,
    vae,
    vaegan,
    vq_vae,
)
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import MODEL_TYPES, Capabilities, LossOutput, ParamGroup, PretrainedModel

__all__ = ["MODEL_TYPES", "AutoEncoder", "Capabilities", "LossOutput", "ParamGroup", "PretrainedModel"]
