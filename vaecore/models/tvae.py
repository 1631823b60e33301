"""The transformation-aware VAE (T-VAE, paper 004: "No Representation without Transformation").

A triplet ``(x, x1 = f(x), x2 = f^-1(x))`` with a fresh random invertible affine f per example
(transforms.triplet) is encoded by one shared encoder q_phi into z0, z1, z2. A latent z comes
from q_psi(z | z1, z2) (a Gaussian from an MLP) and a latent transformation T = h_xi(z1, z2)
(a deterministic MLP, the paper's implicit q_xi(T | z1, z2)). The latent map is
r(z, T) = z + T, its inverse r(z, T^-1) = z - T and T_id = 0 (Sec. 2).

Objective (negative of Eq. 3 with the indirect coherence term substituted for the z0 term):

    -log p(x|z0) - log p(x1|z1) - log p(x2|z2)                     reconstructions (Eq. 3)
    + mmd_weight * (MMD[q_phi(z1|x1), z + T] + MMD[q_phi(z2|x2), z - T])    coherence D (Eq. 3)
    + KL(q_psi(z|z1, z2) || N(0, I))                                 last term of Eq. 3
    + coherence_weight * -log p(x|z) + KL(q_phi(z0|x) || N(0, I))   indirect term F_{x|z}

Both KL terms are scaled by `beta` and the trainer's warm-up `kl_weight`. MMD is the unbiased
batch estimate between the two sets of samples (`objectives.mmd`, IMQ kernel by default).

The model also exposes the plain-VAE interface of q_phi and p_theta (``encode``, ``decode``,
``elbo``, ...) so the app, metrics and samplers treat it like any other model. Module-level
functions (`extract_transformation`, `apply_transformation`, `interpolate_pair`) implement the
transfer experiments of Figures 3 and 4 for T-VAEs and, by latent differences, plain VAEs.

This module also registers the presets `tvae`, `tvae-100`, `vae` and `vae-plus` (Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaecore.components import objectives as reg
from vaecore.components.context import StepContext
from vaecore.components.objectives import kl_to_prior
from vaecore.components.posteriors import DiagonalGaussian
from vaecore.config import ModelConfig, setting
from vaecore.data.transforms import TransformRange, triplet
from vaecore.models.autoencoder import LOGVAR_RANGE
from vaecore.models.base import LossOutput, register_model_type, scalar
from vaecore.models.vae import VAE, VAEConfig
from vaecore.presets import register_preset
from vaecore.utils import evaluating

__all__ = [
    "TVAE", "TVAE_RANGE", "TVAEConfig", "apply_transformation", "extract_transformation", "interpolate_pair",
    "transform_range_dict",
]

TVAE_RANGE = TransformRange(rotation=30.0, translation=0.1, scale=(0.8, 1.2), shear=20.0)
"""Training transformations: they cover `transforms.AFFINE_TEST_RANGE` (the AffNIST stand-in)."""

TVAE_MMD_WEIGHT = 10.0
"""Weight of the MMD coherence terms; the paper gives none. MMD is trivially 0 once every posterior
collapses to the prior, so large weights invite collapse: with 1000 a 300-step MNIST run collapsed
(KL ~ 1 nat) where 10 and 100 trained normally and matched the marginals (MMD within noise of 0)."""


def transform_range_dict(rng: TransformRange) -> dict[str, Any]:
    """A TransformRange as a JSON-friendly dict (`TransformRange(**d)` rebuilds it)."""
    return {"rotation": float(rng.rotation), "translation": float(rng.translation),
            "scale": [float(s) for s in rng.scale], "shear": float(rng.shear), "kinds": list(rng.kinds)}


def _transform_range(d: dict[str, Any]) -> TransformRange:
    d = dict(d)
    if "scale" in d:
        d["scale"] = tuple(float(s) for s in d["scale"])
    if "kinds" in d:
        d["kinds"] = tuple(d["kinds"])
    return TransformRange(**d)


@dataclass
class TVAEConfig(VAEConfig):
    """The T-VAE's settings beside the VAE's: `mmd_weight` and `mmd_kernel` weight and define the
    two MMD coherence terms; `hidden` is the width of the q_psi and h_xi MLPs (1000 in Appendix B);
    `coherence_weight` weights the indirect term -log p(x|z); `transform` is the `TransformRange`
    (as a dict) the training triplets are drawn from. The prior is N(0, I).
    """

    model_type: str = "tvae"
    latent_dim: int = setting(10, lo=1, hi=4096)
    likelihood: str = "bernoulli"
    mmd_kernel: str = setting("imq", choices=("imq", "rbf"))
    mmd_weight: float = setting(TVAE_MMD_WEIGHT, lo=0)
    hidden: int = setting(1000, lo=1, hi=100_000)
    coherence_weight: float = setting(1.0, lo=0)
    transform: dict[str, Any] = field(default_factory=lambda: transform_range_dict(TVAE_RANGE))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prior != "normal":
            raise ValueError(f"the T-VAE needs prior 'normal', got {self.prior!r}")
        self.transform = transform_range_dict(_transform_range(self.transform))

    @property
    def transform_range(self) -> TransformRange:
        return _transform_range(self.transform)


def _mlp(n_in: int, hidden: int, layers: int, n_out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, n_out))


@register_model_type
class TVAE(VAE):
    """Transformation-aware VAE: the composed VAE (q_phi, p_theta) plus q_psi and h_xi.

    `config` is a `TVAEConfig` as a dict. Encoding, decoding, sampling and the ELBO are the
    plain VAE's; only the training objective differs.
    """

    model_type: ClassVar[str] = "tvae"
    title: ClassVar[str] = "T-VAE"
    what: ClassVar[str] = ("a transformation-aware variational autoencoder (a latent transformation T links an "
                           "image's transformed views)")
    tags: ClassVar[tuple[str, ...]] = ("variational", "transformations")
    group: ClassVar[str] = "tvae"
    config_class: ClassVar[type[ModelConfig]] = TVAEConfig
    config: TVAEConfig

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        d, hidden = self.config.latent_dim, self.config.hidden
        self.q_psi = _mlp(2 * d, hidden, 2, 2 * d)
        self.h_xi = _mlp(2 * d, hidden, 1, d)
        self.transform_range = self.config.transform_range

    # the T-VAE parts ---------------------------------------------------------------------
    def view_posterior(self, z1: Tensor, z2: Tensor) -> DiagonalGaussian:
        """q_psi(z | z1, z2), the latent of x inferred from its two transformed views."""
        mu, logvar = self.q_psi(torch.cat([z1, z2], dim=1)).chunk(2, dim=1)
        return DiagonalGaussian(mu, logvar.clamp(*LOGVAR_RANGE))

    def transformation(self, z1: Tensor, z2: Tensor) -> Tensor:
        """T = h_xi(z1, z2), the latent transformation taking z to z1 (z + T) and z2 (z - T)."""
        return self.h_xi(torch.cat([z1, z2], dim=1))

    def loss(self, x: Tensor, ctx: StepContext | None = None) -> LossOutput:
        """The T-VAE objective on triplets built from the batch (a fresh random f per example).

        `ctx.kl_weight` scales both KL terms (KL warm-up). Logged: `recon` (the three
        reconstructions), `recon_x`, `kl` (= `kl_z0` + `kl_z`), `mmd` (both coherence terms,
        unweighted), `indirect` (-log p(x|z)) and `loss`.
        """
        ctx = ctx or StepContext.evaluation()
        c = self.config
        x = self._check_input(x)
        b = x.shape[0]
        _, x1, x2, _ = triplet(x, self.transform_range)
        q = self.posterior(torch.cat([x, x1, x2]))
        z0, z1, z2 = q.rsample().chunk(3)
        q_z = self.view_posterior(z1, z2)
        z = q_z.rsample()
        t = self.transformation(z1, z2)
        params = self.decode_params(torch.cat([z0, z1, z2, z])).chunk(4)
        lik = self.likelihood
        recon_x, recon_x1, recon_x2, indirect = (
            lik.objective(p, target) for p, target in zip(params, (x, x1, x2, x), strict=True))
        kl_z0 = kl_to_prior(DiagonalGaussian(q.mu[:b], q.logvar[:b]), z0, self.prior).mean()
        kl_z = kl_to_prior(q_z, z, self.prior).mean()
        mmd = reg.mmd(z1, z + t, c.mmd_kernel) + reg.mmd(z2, z - t, c.mmd_kernel)
        recon = recon_x + recon_x1 + recon_x2
        loss = (recon + c.beta * ctx.kl_weight * (kl_z0 + kl_z) + c.mmd_weight * mmd
                + c.coherence_weight * indirect)
        logs = {"loss": scalar(loss), "recon": scalar(recon), "recon_x": scalar(recon_x),
                "kl": scalar(kl_z0 + kl_z), "kl_z0": scalar(kl_z0), "kl_z": scalar(kl_z),
                "mmd": scalar(mmd), "indirect": scalar(indirect), "t_norm": scalar(t.norm(dim=1).mean())}
        logs.update(lik.trace())
        return LossOutput(loss, logs)


# transfer API ----------------------------------------------------------------------------------

def _means(model: Any, x: Tensor) -> Tensor:
    return model.embed(x)


def extract_transformation(model: Any, x: Tensor, x1: Tensor, x2: Tensor) -> Tensor:
    """The latent transformation T (B, d) of triplets (x, x1 = f(x), x2 = f^-1(x)).

    T-VAE: T = h_xi(mu(x1), mu(x2)), the network the model learned (encoder means, not samples).
    Any other model with `encode` (plain VAE, VAE+): T = (mu(x1) - mu(x2)) / 2, the latent
    difference with the same meaning under r(z, T) = z + T when z sits half-way between z1 and
    z2. `x` is not used by either (T depends on the two views only, as h_xi does in the paper);
    it is accepted so callers pass whole triplets, and its batch size is checked.
    """
    if not (x.shape[0] == x1.shape[0] == x2.shape[0]):
        raise ValueError(f"triplet batch sizes differ: {x.shape[0]}, {x1.shape[0]}, {x2.shape[0]}")
    with evaluating(model):
        z1, z2 = _means(model, x1), _means(model, x2)
        if isinstance(model, TVAE):
            return model.transformation(z1, z2)
        return (z1 - z2) / 2


def apply_transformation(model: Any, images: Tensor, T: Tensor, steps: int = 1) -> Tensor:
    """Decode mu(images) + k·T for k = -steps..steps: shape (B, 2·steps + 1, C, H, W).

    Column `steps` (k = 0) is the reconstruction, k = +1 is r(z, T) = z + T (the image under f),
    k = -1 is r(z, T^-1) = z - T (under f^-1), |k| > 1 repeats the transformation (Figure 3).
    `T` is (d,), (1, d) or (B, d). z is the encoder mean (the paper samples from q(z|x)).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    with evaluating(model):
        z = _means(model, images)
        T = T.to(z.device, z.dtype).reshape(-1, z.shape[1]).expand_as(z)
        ks = torch.arange(-steps, steps + 1, device=z.device, dtype=z.dtype)
        zs = z[:, None, :] + ks[None, :, None] * T[:, None, :]
        out = model.decode(zs.reshape(-1, z.shape[1]))
    return out.reshape(z.shape[0], 2 * steps + 1, *out.shape[1:])


def interpolate_pair(model: Any, x1: Tensor, x2: Tensor, n: int = 5) -> Tensor:
    """Decode (1 - t)·mu(x1) + t·mu(x2) for n values of t evenly in [0, 1]: shape (B, n, C, H, W).

    With x1 = f(x) and x2 = f^-1(x), the middle frame (t = 1/2, present when n is odd) decodes
    (z1 + z2) / 2, the paper's Figure 4 interpolation, which under r(z, T) = z ± T should give
    back x itself for a T-VAE.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    with evaluating(model):
        z1, z2 = _means(model, x1), _means(model, x2)
        t = torch.linspace(0, 1, n, device=z1.device, dtype=z1.dtype)[None, :, None]
        zs = (1 - t) * z1[:, None, :] + t * z2[:, None, :]
        out = model.decode(zs.reshape(-1, z1.shape[1]))
    return out.reshape(z1.shape[0], n, *out.shape[1:])


# presets (Table 1) ---------------------------------------------------------------------------

PAPER = "T-VAE (Giannone et al.), Table 1"
_COMMON = {"likelihood": "bernoulli", "arch": "sigma-conv", "latent_dim": 10}

register_preset("tvae", "Transformation-aware VAE: triplets f(x), x, f^-1(x); latent T with r(z, T) = z + T",
                PAPER, model_type="tvae", mmd_weight=TVAE_MMD_WEIGHT, **_COMMON)
register_preset("tvae-100", "T-VAE with 100 latent dimensions", PAPER, model_type="tvae",
                mmd_weight=TVAE_MMD_WEIGHT, **{**_COMMON, "latent_dim": 100})
register_preset("vae", "Bernoulli VAE with the T-VAE's encoder and decoder: the paper's VAE baseline",
                PAPER, model_type="vae", group="tvae", **_COMMON)
register_preset("vae-plus", "VAE+: the `vae` preset trained on images augmented with the T-VAE's transformations",
                PAPER, group="tvae", model_type="vae", train={"augment": transform_range_dict(TVAE_RANGE)}, **_COMMON)
