"""Deterministic autoencoders: AE, WAE-MMD (Tolstikhin et al.) and RAE (Ghosh et al.).

Their encoders give a point (a `PointMass` posterior), so they have no ELBO or likelihood bound;
they reconstruct with the decoder likelihood's objective (σ² = ½ Gaussian = squared error in the
presets) and differ only in the term that shapes the latent codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vaecore.components.objectives import DecoderPenaltyTerm, LatentNormTerm, MMDTerm, Term
from vaecore.config import ModelConfig, setting
from vaecore.models.autoencoder import AutoEncoder
from vaecore.models.base import register_model_type
from vaecore.models.vae import ARELBO, gaussian
from vaecore.presets import register_preset

MMD_KERNELS = ("imq", "rbf")
SQUARED_ERROR = gaussian("fixed", value=0.5**0.5)


@dataclass
class AEConfig(ModelConfig):
    """A plain autoencoder: reconstruction only."""

    model_type: str = "ae"


@dataclass
class WAEConfig(ModelConfig):
    """WAE-MMD: `mmd_weight` · MMD²(q(z), N(0, I)) with an 'imq' or 'rbf' kernel."""

    model_type: str = "wae"
    mmd_kernel: str = setting("imq", choices=MMD_KERNELS)
    mmd_weight: float = setting(10.0, lo=0, app="model", label="MMD weight",
                                help="weight of MMD²(q(z), prior) in the objective")


@dataclass
class RAEConfig(ModelConfig):
    """RAE: `embedding_weight` · ½‖z‖² + `penalty_weight` · (decoder weights² 'l2' or gradient penalty 'gp')."""

    model_type: str = "rae"
    embedding_weight: float = setting(1e-4, lo=0)
    penalty: str = setting("l2", choices=DecoderPenaltyTerm.KINDS)
    penalty_weight: float = setting(1e-7, lo=0)


@register_model_type
class AE(AutoEncoder):
    """Deterministic autoencoder; generates only through a fitted sampler (no prior)."""

    model_type: ClassVar[str] = "ae"
    title: ClassVar[str] = "AE"
    pythae: ClassVar[str] = (
        "Our squared error is the Gaussian with σ² = ½: Pythae's Σ(x − x̂)² plus ½D ln π (448.73 nats on "
        "MNIST), the same gradients (docs/pythae-differences.md).")
    what: ClassVar[str] = "a deterministic autoencoder (no posterior density and no prior)"
    tags: ClassVar[tuple[str, ...]] = ("autoencoder", "deterministic")
    group: ClassVar[str] = "deterministic"
    config_class: ClassVar[type[ModelConfig]] = AEConfig
    stochastic: ClassVar[bool] = False
    has_prior: ClassVar[bool] = False


@register_model_type
class WAE(AE):
    """Wasserstein autoencoder with the MMD penalty; its prior N(0, I) is what the codes are pulled to."""

    model_type: ClassVar[str] = "wae"
    title: ClassVar[str] = "WAE"
    what: ClassVar[str] = ("a Wasserstein autoencoder: a deterministic encoder whose codes are pulled to the prior "
                           "by MMD")
    tags: ClassVar[tuple[str, ...]] = ("autoencoder", "deterministic", "mmd")
    group: ClassVar[str] = "deterministic"
    config_class: ClassVar[type[ModelConfig]] = WAEConfig
    has_prior: ClassVar[bool] = True

    def build_terms(self) -> list[Term]:
        return [MMDTerm(self.config.mmd_kernel, self.config.mmd_weight)]


@register_model_type
class RAE(AE):
    """Regularised autoencoder: code norm + decoder smoothness; no prior."""

    model_type: ClassVar[str] = "rae"
    title: ClassVar[str] = "RAE"
    pythae: ClassVar[str] = (
        "RAE-L2: our λΣ‖W‖² on the decoder's weights is Pythae's reg_weight = 2λ (its weight decay also "
        "decays biases, and its default pipeline drops it); RAE-GP: ours penalises ‖∂μθ/∂z‖²_F, Pythae's "
        "‖∂(Σx̂)/∂x‖²: different quantities (docs/pythae-differences.md).")
    what: ClassVar[str] = "a regularised deterministic autoencoder (no posterior density and no prior)"
    tags: ClassVar[tuple[str, ...]] = ("autoencoder", "deterministic")
    group: ClassVar[str] = "deterministic"
    config_class: ClassVar[type[ModelConfig]] = RAEConfig

    def build_terms(self) -> list[Term]:
        c = self.config
        return [LatentNormTerm(c.embedding_weight), DecoderPenaltyTerm(c.penalty, c.penalty_weight)]


register_preset("ae", "Deterministic autoencoder, squared error (σ² = ½ Gaussian)", ARELBO,
                model_type="ae", **SQUARED_ERROR)
register_preset("wae-mmd-imq", "Wasserstein AE with MMD (inverse multiquadric kernel), λ = 10",
                ARELBO, model_type="wae", mmd_kernel="imq", mmd_weight=10.0, **SQUARED_ERROR)
register_preset("wae-mmd-rbf", "Wasserstein AE with MMD (RBF kernel), λ = 10",
                ARELBO, model_type="wae", mmd_kernel="rbf", mmd_weight=10.0, **SQUARED_ERROR)
register_preset("rae-l2", "Regularised AE: squared error + ‖z‖² + decoder weight decay",
                ARELBO, model_type="rae", penalty="l2", embedding_weight=1e-2, penalty_weight=1e-4, **SQUARED_ERROR)
register_preset("rae-gp", "Regularised AE: squared error + ‖z‖² + decoder gradient penalty",
                ARELBO, model_type="rae", penalty="gp", embedding_weight=1e-2, penalty_weight=1e-2, **SQUARED_ERROR)
