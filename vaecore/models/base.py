"""The composed VAE: encoder × likelihood × latent regulariser × prior, and safe save/load.

One class covers the VAE, β-VAE, σ-VAE, AR-ELBO, IWAE, AE, WAE-MMD and RAE presets; a
preset (presets.py) is only a `ModelConfig`. Other model types (T-VAE) subclass
`PretrainedModel` and register under their `model_type` so `vaecore.load` finds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from vaecore.components import objectives as reg
from vaecore.components.likelihoods import Likelihood, build_likelihood
from vaecore.components.nets import build_decoder, build_encoder
from vaecore.config import ModelConfig
from vaecore.utils import atomic_save_safetensors

MODEL_TYPES: dict[str, type[PretrainedModel]] = {}
DETERMINISTIC_LOGVAR = -20.0


def register_model_type(cls: type[PretrainedModel]) -> type[PretrainedModel]:
    """Class decorator: make a model type loadable by its `model_type` name."""
    MODEL_TYPES[cls.model_type] = cls
    return cls


def _scalar(t: torch.Tensor) -> float:
    return float(t.detach())


@dataclass
class LossOutput:
    """A training step's objective and the scalar terms worth logging."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class PretrainedModel(nn.Module, PyTorchModelHubMixin, library_name="vaecore",
                      repo_url="https://huggingface.co/docs/huggingface_hub", tags=["vae", "vaecore"]):
    """nn.Module with safetensors + JSON config save/load through `PyTorchModelHubMixin`.

    `save_pretrained(dir)` writes `model.safetensors` (atomically), `config.json` and a model
    card; `from_pretrained(dir_or_repo)` loads strictly. Nothing is ever unpickled.
    """

    model_type: ClassVar[str] = "base"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    config: ModelConfig

    def _save_pretrained(self, save_directory: Path) -> None:
        atomic_save_safetensors(self.state_dict(), Path(save_directory) / "model.safetensors",
                                metadata={"format": "pt", "model_type": self.model_type})

    def save_pretrained(self, save_directory: str | Path, *, config: dict | None = None,
                        metrics: dict[str, Any] | None = None, **kwargs: Any) -> str | None:
        """Save weights, config and a model card that states the model, data and metrics."""
        from vaecore.hub import write_model_card

        out = super().save_pretrained(save_directory, config=config or self.config.to_dict(),
                                      **kwargs)
        write_model_card(Path(save_directory), self.config.to_dict(), metrics)
        return out

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs: Any) -> PretrainedModel:
        """Build from config and load the safetensors weights strictly (all keys must match)."""
        from huggingface_hub import hf_hub_download
        from safetensors.torch import load_file

        if Path(model_id).is_dir():
            weights = Path(model_id) / "model.safetensors"
        else:
            weights = Path(hf_hub_download(model_id, "model.safetensors", revision=revision, cache_dir=cache_dir,
                                           force_download=force_download, local_files_only=local_files_only,
                                           token=token))
        model = cls(**model_kwargs)
        model.load_state_dict(load_file(str(weights), device=map_location), strict=strict)
        return model

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images as float32 (B, C, H, W) on the model's device, or a ValueError naming the expected shape."""
        want = tuple(self.config.input_shape)
        if x.dim() == 3 and want[0] == 1:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"this model takes images of shape (B, {', '.join(map(str, want))}); "
                             f"got {tuple(x.shape)}")
        return x.to(self.device, torch.float32)

    def summary(self) -> str:
        """One line: type, likelihood, architecture, latent size, parameter count."""
        n = sum(p.numel() for p in self.parameters())
        c = self.config
        return (f"{c.preset} ({self.model_type}): likelihood={c.likelihood} {c.likelihood_kwargs or ''} "
                f"arch={c.arch} latent={c.latent_dim} regulariser={c.regulariser} params={n / 1e6:.2f}M")


@register_model_type
class VAE(PretrainedModel):
    """The VAE family by composition. `config` is a `ModelConfig` as a dict (saved as config.json)."""

    model_type: ClassVar[str] = "vae"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg = self.config_class.from_dict(dict(config))
        if cfg.model_type != self.model_type:
            raise ValueError(f"config is for model_type {cfg.model_type!r}, not {self.model_type!r}")
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        shape = cfg.input_shape
        self.likelihood: Likelihood = build_likelihood(cfg.likelihood, shape, **cfg.likelihood_kwargs)
        enc_out = cfg.latent_dim if cfg.deterministic else 2 * cfg.latent_dim
        self.encoder = build_encoder(cfg.arch, shape, cfg.latent_dim, out_features=enc_out)
        self.decoder = build_decoder(cfg.arch, shape, cfg.latent_dim, self.likelihood.channels(shape[0]))
        if cfg.regulariser not in ("kl", "iwae", "mmd", "rae", "none"):
            raise ValueError(f"unknown regulariser {cfg.regulariser!r}; choose kl, iwae, mmd, rae or none")
        if cfg.prior not in ("normal", "vamp"):
            raise ValueError(f"unknown prior {cfg.prior!r}; choose 'normal' or 'vamp'")
        if cfg.prior == "vamp":
            self.pseudo_inputs = nn.Parameter(torch.randn(cfg.vamp_components, *shape) * 0.1 - 1.0)

    # encoder / decoder ------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) as (mu, logvar); deterministic encoders give a point (logvar = −20)."""
        h = self.encoder(self._check_input(x))
        if self.config.deterministic:
            return h, torch.full_like(h, DETERMINISTIC_LOGVAR)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output: the likelihood's parameters for each pixel."""
        return self.decoder(z.to(self.device))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image in [0, 1] for each latent."""
        return self.likelihood.mean(self.decode_params(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean of x."""
        return self.decode(self.encode(x)[0])

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, n: int | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        shape = mu.shape if n is None else (n, *mu.shape)
        eps = torch.randn(shape, generator=generator, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    # prior ------------------------------------------------------------------------------
    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) over the last dimension: N(0, I) or the VampPrior mixture."""
        if self.config.prior == "normal":
            return reg.standard_normal_log_prob(z)
        mu_k, logvar_k = self._vamp_components()
        lp = reg.diag_normal_log_prob(z.unsqueeze(-2), mu_k, logvar_k)
        return torch.logsumexp(lp, dim=-1) - math.log(mu_k.shape[0])

    def _vamp_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.sigmoid(self.pseudo_inputs))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws from the model's prior."""
        if self.config.prior == "normal":
            return torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        mu_k, logvar_k = self._vamp_components()
        k = torch.randint(mu_k.shape[0], (n,), generator=generator, device=self.device)
        return self.reparameterize(mu_k[k], logvar_k[k], generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n generated images (decoder means of prior draws)."""
        return self.decode(self.sample_latents(n, generator))

    # bounds -----------------------------------------------------------------------------
    def _kl(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if self.config.prior == "normal":
            return reg.kl_standard_normal(mu, logvar)
        return reg.diag_normal_log_prob(z, mu, logvar) - self.prior_log_prob(z)

    def _require_stochastic(self, what: str) -> None:
        if self.config.deterministic:
            raise ValueError(f"{what} is undefined for {self.config.preset!r}: its encoder is deterministic "
                             f"(regulariser {self.config.regulariser!r})")

    def elbo(self, x: torch.Tensor, n_samples: int = 1) -> torch.Tensor:
        """Evidence lower bound per example, in nats, averaged over n_samples draws of z."""
        self._require_stochastic("the ELBO")
        x = self._check_input(x)
        mu, logvar = self.encode(x)
        total = torch.zeros(x.shape[0], device=x.device)
        for _ in range(n_samples):
            z = self.reparameterize(mu, logvar)
            total += -self.likelihood.nll(self.decode_params(z), x) - self._kl(z, mu, logvar)
        return total / n_samples

    def log_importance_weights(self, x: torch.Tensor, k: int,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x|z_k) + log p(z_k) − log q(z_k|x) for k draws per example: shape (k, B).

        The k draws go through the decoder as one batch of k·B latents.
        """
        self._require_stochastic("importance weighting")
        x = self._check_input(x)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, n=k, generator=generator)
        params = self.decode_params(z.reshape(-1, self.latent_dim))
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])
        log_px = -self.likelihood.nll(params, xs).reshape(k, -1)
        return log_px + self.prior_log_prob(z) - reg.diag_normal_log_prob(z, mu, logvar)

    # training objective -------------------------------------------------------------------
    def loss(self, x: torch.Tensor, kl_weight: float = 1.0) -> LossOutput:
        """The training objective for one batch (per-example mean) and its logged terms."""
        c = self.config
        x = self._check_input(x)
        lik = self.likelihood
        if c.regulariser == "iwae":
            log_w = self.log_importance_weights(x, c.iwae_k)
            bound = torch.logsumexp(log_w, dim=0) - math.log(c.iwae_k)
            loss = -bound.mean()
            logs = {"iwae_bound": _scalar(bound.mean())}
        elif c.deterministic:
            z, _ = self.encode(x)
            recon = lik.objective(self.decode_params(z), x)
            loss, logs = recon, {"recon": _scalar(recon)}
            if c.regulariser == "mmd":
                term = reg.mmd(z, torch.randn_like(z), c.mmd_kernel)
                loss = loss + c.mmd_weight * term
                logs["mmd"] = _scalar(term)
            elif c.regulariser == "rae":
                emb = 0.5 * z.pow(2).sum(dim=1).mean()
                pen = (reg.decoder_weight_l2(self.decoder) if c.rae_penalty == "l2"
                       else reg.decoder_gradient_penalty(self.decode, z))
                loss = loss + c.rae_embedding_weight * emb + c.rae_penalty_weight * pen
                logs.update(z_norm=_scalar(emb), penalty=_scalar(pen))
        else:
            mu, logvar = self.encode(x)
            z = self.reparameterize(mu, logvar)
            recon = lik.objective(self.decode_params(z), x)
            kl = self._kl(z, mu, logvar).mean()
            loss = recon + c.beta * kl_weight * kl
            logs = {"recon": _scalar(recon), "kl": _scalar(kl)}
        logs["loss"] = _scalar(loss)
        logs.update(lik.trace())
        return LossOutput(loss, logs)
