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

from __future__ import annotations

import hashlib
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from vaecore.evaluation.metrics import latent_means
from vaecore.utils import atomic_save_safetensors, atomic_write_json

__all__ = [
    "SAMPLERS", "GMMSampler", "MAFSampler", "NormalSampler", "Progress", "Sampler", "SamplerLoadError",
    "TwoStageSampler", "VampSampler", "build_sampler", "fit_sampler", "latent_means", "load_or_fit",
    "load_sampler", "model_fingerprint",
]

FORMAT = "vaecore-sampler"
FORMAT_VERSION = 1

Progress = Callable[[float, str], None]
"""Progress callback: (fraction done in [0, 1], short message)."""


class SamplerLoadError(ValueError):
    """A saved sampler is missing, corrupt or does not match what was asked for."""


def _report(progress: Progress | bool | None) -> Progress | None:
    if progress is True:
        return lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr, flush=True)
    return progress or None


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of the model's weights, so a sampler saved for other weights is not reused."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _files(folder: str | Path, name: str) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / f"sampler-{name}.safetensors", folder / f"sampler-{name}.json"


class Sampler:
    """Base class: a density over latents fitted on training latent means, with safe save/load."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.latent_dim: int | None = None
        self.device = torch.device("cpu")
        self.fit_info: dict[str, Any] = {}

    # the contract ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable; saved and compared by `load_or_fit`."""
        return {}

    @property
    def fitted(self) -> bool:
        return self.latent_dim is not None

    def fit(self, model: nn.Module, x_train: torch.Tensor, *, seed: int = 0,
            progress: Progress | bool | None = None) -> Sampler:
        """Fit on the posterior means of `x_train` under `model`; samples land on the model's device."""
        z = latent_means(model, x_train)
        self.fit_latents(z, seed=seed, progress=progress)
        self.fit_info.update(model=model_fingerprint(model), n_train=int(x_train.shape[0]))
        return self

    def fit_latents(self, z: torch.Tensor, *, seed: int = 0, progress: Progress | bool | None = None) -> Sampler:
        """Fit directly on latent codes z: (N, d); the device of z is where samples are drawn."""
        if z.ndim != 2 or z.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs latents of shape (N >= 2, d), got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("the training latents contain NaN or inf; the model may have diverged")
        self.latent_dim = int(z.shape[1])
        self.device = z.device
        self.fit_info = {"seed": int(seed), "n_train": int(z.shape[0])}
        self._fit(z.detach().float(), seed, _report(progress))
        return self

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent draws, (n, d) on the sampler's device; a generator makes them repeatable."""
        if not self.fitted:
            raise RuntimeError(f"the {self.name!r} sampler is not fitted: call fit(model, x_train) first")
        with torch.no_grad():
            return self._sample(int(n), generator).to(self.device)

    def to(self, device: torch.device | str) -> Sampler:
        """Move the sampler's tensors (and future samples) to `device`."""
        self.device = torch.device(device)
        for key, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor | nn.Module):
                setattr(self, key, value.to(self.device))
        return self

    # persistence ------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write `sampler-<name>.safetensors` and `sampler-<name>.json` into folder; returns the JSON path."""
        if not self.fitted:
            raise RuntimeError(f"the {self.name!r} sampler is not fitted; nothing to save")
        weights, meta = _files(folder, self.name)
        tensors = {k: v.detach().cpu() for k, v in self._state().items()}
        atomic_save_safetensors(tensors or {"_empty": torch.zeros(0)}, weights,
                                metadata={"format": FORMAT, "sampler": self.name})
        atomic_write_json(meta, {"format": FORMAT, "version": FORMAT_VERSION, "sampler": self.name,
                                 "description": self.description, "settings": self.settings(),
                                 "latent_dim": self.latent_dim, "fit": self.fit_info})
        return meta

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> Sampler:
        """Load a saved sampler of this kind strictly; errors name the file and what to do."""
        if not cls.name:
            raise TypeError("call load on a concrete sampler class, or use load_sampler(folder, name)")
        weights, meta_path = _files(folder, cls.name)
        for path in (meta_path, weights):
            if not path.is_file():
                raise SamplerLoadError(f"{path} is missing: no fitted {cls.name!r} sampler in {folder}")
        hint = "delete it (and its .json/.safetensors partner) to fit the sampler again"
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if meta.get("sampler") != cls.name:
                raise ValueError(f"it holds a {meta.get('sampler')!r} sampler, not {cls.name!r}")
            if int(meta.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(f"format version {meta.get('version')} is newer than this vaecore reads")
            sampler = cls(**meta.get("settings", {}))
            sampler.latent_dim = int(meta["latent_dim"])
            sampler.fit_info = dict(meta.get("fit", {}))
        except (ValueError, TypeError, KeyError) as e:
            raise SamplerLoadError(f"{meta_path} is not a valid {cls.name!r} sampler file ({e}); {hint}") from e
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as e:
            raise SamplerLoadError(f"{weights} is corrupt or truncated ({e}); {hint}") from e
        tensors.pop("_empty", None)
        bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise SamplerLoadError(f"{weights} holds non-finite values in {bad}; {hint}")
        try:
            sampler._load_state(tensors)
        except (KeyError, ValueError, RuntimeError) as e:
            raise SamplerLoadError(f"{weights} does not match {meta_path} ({e}); {hint}") from e
        return sampler.to(device or "cpu")

    # for subclasses -------------------------------------------------------------------------
    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise ValueError(f"unexpected tensors {sorted(tensors)}")

    def _randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=device).to(self.device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        state = f"latent_dim={self.latent_dim}" if self.fitted else "not fitted"
        return f"{type(self).__name__}({args}) [{state}]"


def _expect(tensors: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> None:
    extra = sorted(set(tensors) - set(shapes))
    missing = sorted(set(shapes) - set(tensors))
    if extra or missing:
        raise ValueError(f"missing tensors {missing}, unexpected tensors {extra}")
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != shape:
            raise ValueError(f"tensor {key!r} has shape {tuple(tensors[key].shape)}, expected {shape}")


# --------------------------------------------------------------------------------------------------
class NormalSampler(Sampler):
    """The standard normal N(0, I): the prior of every normal-prior model; fitting only records d."""

    name = "prior"
    description = "the N(0, I) prior (no fitting)"

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        pass

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.latent_dim is not None
        return self._randn((n, self.latent_dim), generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) per row."""
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1)


# --------------------------------------------------------------------------------------------------
class GMMSampler(Sampler):
    """Gaussian mixture with full covariances fitted by EM (scikit-learn), as in Ghosh et al.'s RAE.

    Only the weights, means and covariances are kept, and sampling is done in torch, so a
    loaded sampler needs no scikit-learn object.
    """

    name = "gmm"
    description = "Gaussian mixture (full covariance, EM) fitted on the training latent means"

    def __init__(self, components: int = 10, max_iter: int = 200, reg_covar: float = 1e-6) -> None:
        super().__init__()
        if int(components) < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        self.components = int(components)
        self.max_iter = int(max_iter)
        self.reg_covar = float(reg_covar)
        self.weights = torch.zeros(0)
        self.means = torch.zeros(0)
        self.covariances = torch.zeros(0)

    def settings(self) -> dict[str, Any]:
        return {"components": self.components, "max_iter": self.max_iter, "reg_covar": self.reg_covar}

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        k = min(self.components, z.shape[0])
        if progress:
            progress(0.0, f"fitting a {k}-component GMM on {z.shape[0]} latents")
        gmm = GaussianMixture(k, covariance_type="full", max_iter=self.max_iter, reg_covar=self.reg_covar,
                              random_state=seed)
        with warnings.catch_warnings(), threadpool_limits(1):  # BLAS threads only slow EM's tiny d×d solves
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            gmm.fit(z.cpu().double().numpy())
        self.weights = torch.as_tensor(gmm.weights_, dtype=torch.float64)
        self.means = torch.as_tensor(gmm.means_, dtype=torch.float64)
        self.covariances = torch.as_tensor(gmm.covariances_, dtype=torch.float64)
        self._prepare()
        self.to(self.device)
        if progress:
            progress(1.0, "GMM fitted")

    def _prepare(self) -> None:
        self._scale_tril = torch.linalg.cholesky(self.covariances.double().cpu()).float()
        self._weights = (self.weights / self.weights.sum()).float().cpu()
        self._means = self.means.float().cpu()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        k = torch.multinomial(self._weights.to(device), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, 1, generator=generator, device=device)
        z = self._means.to(device)[k] + (self._scale_tril.to(device)[k] @ eps).squeeze(-1)
        return z

    @torch.no_grad()
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log of the mixture density per row."""
        comps = torch.distributions.MultivariateNormal(self._means.to(z.device),
                                                       scale_tril=self._scale_tril.to(z.device))
        lp = comps.log_prob(z.unsqueeze(-2)) + self._weights.to(z.device).log()
        return torch.logsumexp(lp, dim=-1)

    def _state(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        k = tensors.get("weights", torch.zeros(0)).shape[0]
        d = self.latent_dim or 0
        _expect(tensors, {"weights": (k,), "means": (k, d), "covariances": (k, d, d)})
        if k < 1 or (tensors["weights"] < 0).any():
            raise ValueError("the mixture weights are empty or negative")
        self.weights, self.means, self.covariances = tensors["weights"], tensors["means"], tensors["covariances"]
        self._prepare()


# --------------------------------------------------------------------------------------------------
class _Standardise:
    """Per-dimension shift and scale of the training latents, so the fitted nets see unit-scale data."""

    @staticmethod
    def stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z.mean(0), z.std(0).clamp_min(1e-6)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _train_loop(params: list[nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor,
                steps: int, batch_size: int, lr: float, seed: int, progress: Progress | None, what: str) -> None:
    """Adam with cosine decay on random minibatches drawn with a seeded generator."""
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    g = torch.Generator(device=data.device).manual_seed(seed)
    batch_size = min(batch_size, data.shape[0])
    every = max(1, steps // 20)
    for step in range(steps):
        idx = torch.randint(data.shape[0], (batch_size,), generator=g, device=data.device)
        loss = loss_fn(data[idx])
        if not torch.isfinite(loss):
            raise RuntimeError(f"{what} training diverged at step {step + 1} (loss {float(loss)})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and ((step + 1) % every == 0 or step + 1 == steps):
            progress((step + 1) / steps, f"{what}: step {step + 1}/{steps}, loss {float(loss):.3f}")


class _MLPVAE(nn.Module):
    """The second-stage VAE: MLP encoder/decoder, latent of the same size, optimal shared σ (σ-VAE)."""

    def __init__(self, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.encoder = _mlp([d] + [hidden] * layers + [2 * d])
        self.decoder = _mlp([d] + [hidden] * layers + [d])

    def _errors(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        logvar = logvar.clamp(-30, 20)
        u = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return (self.decoder(u) - z).pow(2), mu, logvar

    @staticmethod
    def log_sigma(err: torch.Tensor) -> torch.Tensor:
        """σ-VAE's optimal shared log σ for these squared errors, soft-clipped below at −6."""
        return -6 + nn.functional.softplus(0.5 * err.mean().log() + 6)

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        err, mu, logvar = self._errors(z)
        log_sigma = self.log_sigma(err)
        nll = (0.5 * err * torch.exp(-2 * log_sigma) + log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
        return (nll + kl).mean()

    @torch.no_grad()
    def fitted_log_sigma(self, z: torch.Tensor) -> torch.Tensor:
        """The optimal log σ over all of z (the decoder noise of the fitted model)."""
        return self.log_sigma(torch.cat([self._errors(z[i:i + 4096])[0] for i in range(0, z.shape[0], 4096)]))


class TwoStageSampler(Sampler):
    """Dai & Wipf's 2-stage VAE: a small MLP VAE fitted on the latent means; u ~ N(0, I) → decoder mean.

    The first VAE's aggregate posterior is usually far from N(0, I); the second VAE, with a
    latent of the same size, learns a map from N(0, I) onto it. Its Gaussian decoder uses the
    σ-VAE optimal shared σ (recomputed per batch) instead of Dai & Wipf's learned γ. Samples are
    the decoder mean plus that Gaussian noise (σ over the standardised latents, fitted on the
    whole training set); `decoder_noise=False` gives the bare decoder mean, which under-disperses
    by σ² in every direction.
    """

    name = "two-stage"
    description = "2-stage VAE (Dai & Wipf): an MLP VAE fitted on the training latent means"

    def __init__(self, hidden: int = 256, layers: int = 2, steps: int = 3000, batch_size: int = 256,
                 lr: float = 2e-3, decoder_noise: bool = True) -> None:
        super().__init__()
        self.hidden, self.layers, self.steps = int(hidden), int(layers), int(steps)
        self.batch_size, self.lr, self.decoder_noise = int(batch_size), float(lr), bool(decoder_noise)
        self.net: _MLPVAE | None = None
        self.shift = torch.zeros(0)
        self.scale = torch.zeros(0)
        self.log_sigma = torch.zeros(())

    def settings(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "layers": self.layers, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr, "decoder_noise": self.decoder_noise}

    def _build(self, d: int) -> _MLPVAE:
        return _MLPVAE(d, self.hidden, self.layers)

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        self.shift, self.scale = _Standardise.stats(z)
        data = (z - self.shift) / self.scale
        with torch.random.fork_rng(devices=[z.device] if z.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.net = self._build(z.shape[1]).to(z.device)
            with torch.enable_grad():
                _train_loop(list(self.net.parameters()), self.net.loss, data, self.steps, self.batch_size, self.lr,
                            seed, progress, "2-stage VAE")
            self.net.eval()
            self.log_sigma = self.net.fitted_log_sigma(data)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.net is not None and self.latent_dim is not None
        u = self._randn((n, self.latent_dim), generator)
        s = self.net.decoder(u)
        if self.decoder_noise:
            s = s + self.log_sigma.exp() * self._randn((n, self.latent_dim), generator)
        return s * self.scale + self.shift

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.net is not None
        return {"shift": self.shift, "scale": self.scale, "log_sigma": self.log_sigma,
                **{f"net.{k}": v for k, v in self.net.state_dict().items()}}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        d = self.latent_dim or 0
        _expect({k: v for k, v in tensors.items() if not k.startswith("net.")},
                {"shift": (d,), "scale": (d,), "log_sigma": ()})
        self.shift, self.scale, self.log_sigma = tensors["shift"], tensors["scale"], tensors["log_sigma"]
        self.net = self._build(d)
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        self.net.eval()


# --------------------------------------------------------------------------------------------------
class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class _MADE(nn.Module):
    """MADE (Germain et al.): outputs shift m_i and log-scale a_i that depend only on x_<i."""

    def __init__(self, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        deg_in = torch.arange(1, d + 1)
        deg_h = torch.arange(hidden) % max(d - 1, 1) + 1 if d > 1 else torch.zeros(hidden, dtype=torch.long)
        mods: list[nn.Module] = []
        prev = deg_in
        for _ in range(layers):
            mods += [_MaskedLinear(prev.numel(), hidden, deg_h[:, None] >= prev[None, :]), nn.ReLU()]
            prev = deg_h
        out_mask = (deg_in[:, None] > prev[None, :]).repeat(2, 1)
        last = _MaskedLinear(prev.numel(), 2 * d, out_mask)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*mods, last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, a = self.net(x).chunk(2, dim=1)
        return m, 3.0 * torch.tanh(a / 3.0)


class _MAF(nn.Module):
    """A stack of MADE blocks; the variable order is reversed between blocks."""

    def __init__(self, d: int, blocks: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_MADE(d, hidden, layers) for _ in range(blocks))

    def to_base(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x → u with log|det ∂u/∂x| per row."""
        logdet = torch.zeros(x.shape[0], device=x.device)
        for made in self.blocks:
            m, a = made(x)
            x = ((x - m) * torch.exp(-a)).flip(1)
            logdet = logdet - a.sum(1)
        return x, logdet

    def from_base(self, u: torch.Tensor) -> torch.Tensor:
        """u → x, one variable at a time per block (d passes through each MADE)."""
        for made in reversed(self.blocks):
            u = u.flip(1)
            x = torch.zeros_like(u)
            for i in range(u.shape[1]):
                m, a = made(x)
                x[:, i] = u[:, i] * torch.exp(a[:, i]) + m[:, i]
            u = x
        return u


class MAFSampler(Sampler):
    """Masked autoregressive flow (Papamakarios et al.) with a N(0, I) base, fitted by maximum likelihood.

    As in Pythae: MADE blocks of ReLU MLPs, the order reversed between blocks. Latents are
    standardised first; `log_prob` includes that Jacobian, so it is a density over the raw latents.
    Before fitting the flow is the identity, i.e. `log_prob` is the standard normal.
    """

    name = "maf"
    description = "masked autoregressive flow (MADE blocks, reversed orders) fitted on the training latent means"

    def __init__(self, blocks: int = 4, hidden: int = 128, layers: int = 2, steps: int = 2000,
                 batch_size: int = 256, lr: float = 1e-3) -> None:
        super().__init__()
        self.blocks, self.hidden, self.layers = int(blocks), int(hidden), int(layers)
        self.steps, self.batch_size, self.lr = int(steps), int(batch_size), float(lr)
        self.flow: _MAF | None = None
        self.shift = torch.zeros(0)
        self.scale = torch.zeros(0)

    def settings(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "hidden": self.hidden, "layers": self.layers, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr}

    def _build(self, d: int) -> _MAF:
        return _MAF(d, self.blocks, self.hidden, self.layers)

    def _std_log_prob(self, s: torch.Tensor) -> torch.Tensor:
        assert self.flow is not None
        u, logdet = self.flow.to_base(s)
        return -0.5 * (u.pow(2) + math.log(2 * math.pi)).sum(1) + logdet

    @torch.no_grad()
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of each row of z: (N,). The standard normal before fitting."""
        if self.flow is None:
            return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1)
        z = z.to(self.device).float()
        return self._std_log_prob((z - self.shift) / self.scale) - self.scale.log().sum()

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        self.shift, self.scale = _Standardise.stats(z)
        data = (z - self.shift) / self.scale
        with torch.random.fork_rng(devices=[z.device] if z.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.flow = self._build(z.shape[1]).to(z.device)
            with torch.enable_grad():
                _train_loop(list(self.flow.parameters()), lambda b: -self._std_log_prob(b).mean(), data, self.steps,
                            self.batch_size, self.lr, seed, progress, "MAF")
        self.flow.eval()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        assert self.flow is not None and self.latent_dim is not None
        u = self._randn((n, self.latent_dim), generator)
        return self.flow.from_base(u) * self.scale + self.shift

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.flow is not None
        state = {k: v for k, v in self.flow.state_dict().items() if not k.endswith(".mask")}
        return {"shift": self.shift, "scale": self.scale, **{f"flow.{k}": v for k, v in state.items()}}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        d = self.latent_dim or 0
        _expect({k: v for k, v in tensors.items() if not k.startswith("flow.")}, {"shift": (d,), "scale": (d,)})
        self.shift, self.scale = tensors["shift"], tensors["scale"]
        self.flow = self._build(d)
        masks = {k: v for k, v in self.flow.state_dict().items() if k.endswith(".mask")}
        weights = {k[5:]: v for k, v in tensors.items() if k.startswith("flow.")}
        self.flow.load_state_dict({**weights, **masks}, strict=True)
        self.flow.eval()


# --------------------------------------------------------------------------------------------------
class VampSampler(Sampler):
    """The model's own VampPrior (1/K) Σ_k q(z | u_k): only for models trained with `prior="vamp"`.

    `fit` snapshots the K posterior components of the pseudo-inputs, so sampling (and a saved
    copy) draws exactly what `model.sample_latents` draws for the same generator.
    """

    name = "vamp"
    description = "the model's VampPrior (mixture of the pseudo-inputs' posteriors); vamp models only"

    def __init__(self) -> None:
        super().__init__()
        self.mu = torch.zeros(0)
        self.logvar = torch.zeros(0)

    def fit(self, model: nn.Module, x_train: torch.Tensor | None = None, *, seed: int = 0,
            progress: Progress | bool | None = None) -> VampSampler:
        """Take the VampPrior components from `model` (x_train is not needed)."""
        config = getattr(model, "config", None)
        prior = getattr(config, "prior", None)
        if prior != "vamp":
            preset = getattr(config, "preset", type(model).__name__)
            raise ValueError(f"the 'vamp' sampler needs a model trained with a VampPrior (prior='vamp', e.g. the "
                             f"'vamp-vae' preset); {preset!r} has prior {prior!r}. Use 'gmm', 'maf' or 'two-stage' "
                             "to fit a sampler to its latents instead.")
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.mu, self.logvar = (t.detach().float() for t in model._vamp_components())
        model.train(was_training)
        self.latent_dim = int(self.mu.shape[1])
        self.device = self.mu.device
        self.fit_info = {"seed": int(seed), "n_train": 0, "model": model_fingerprint(model)}
        return self

    def fit_latents(self, z: torch.Tensor, *, seed: int = 0, progress: Progress | bool | None = None) -> Sampler:
        raise ValueError("the 'vamp' sampler is not fitted on latents: it copies a vamp model's prior; "
                         "call fit(model)")

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        k = torch.randint(self.mu.shape[0], (n,), generator=generator, device=device)
        eps = torch.randn((n, self.mu.shape[1]), generator=generator, device=device)
        return self.mu.to(device)[k] + torch.exp(0.5 * self.logvar.to(device)[k]) * eps

    def _state(self) -> dict[str, torch.Tensor]:
        return {"mu": self.mu, "logvar": self.logvar}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        k = tensors.get("mu", torch.zeros(0)).shape[0]
        _expect(tensors, {"mu": (k, self.latent_dim or 0), "logvar": (k, self.latent_dim or 0)})
        if k < 1:
            raise ValueError("no VampPrior components")
        self.mu, self.logvar = tensors["mu"], tensors["logvar"]


# --------------------------------------------------------------------------------------------------
_CLASSES: dict[str, type[Sampler]] = {c.name: c for c in (NormalSampler, GMMSampler, TwoStageSampler, MAFSampler,
                                                           VampSampler)}
SAMPLERS: dict[str, str] = {name: cls.description for name, cls in _CLASSES.items()}


def _sampler_class(name: str) -> type[Sampler]:
    if name not in _CLASSES:
        known = "; ".join(f"{k!r}: {v}" for k, v in SAMPLERS.items())
        raise KeyError(f"unknown sampler {name!r}; known samplers: {known}")
    return _CLASSES[name]


def build_sampler(name: str, **kwargs: Any) -> Sampler:
    """An unfitted sampler by name (see `SAMPLERS`); kwargs are its settings, e.g. components=10."""
    cls = _sampler_class(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad settings {kwargs} for sampler {name!r}: {e}") from e


def _training_subset(x: torch.Tensor, n_train: int | None, seed: int) -> torch.Tensor:
    if n_train is None or n_train >= x.shape[0]:
        return x
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n_train]
    return x[idx]


def fit_sampler(model: nn.Module, dataset: Any, name: str, *, n_train: int | None = 10_000, seed: int = 0,
                progress: Progress | bool | None = None, **kwargs: Any) -> Sampler:
    """Build sampler `name` and fit it on the latent means of (a seeded subset of) the training images."""
    sampler = build_sampler(name, **kwargs)
    x = _training_subset(dataset.x_train, n_train, seed)
    sampler.fit(model, x, seed=seed, progress=progress)
    sampler.fit_info["dataset"] = getattr(dataset, "name", None)
    return sampler


def load_sampler(folder: str | Path, name: str, device: torch.device | str | None = None) -> Sampler:
    """Load `folder`'s saved sampler called `name`."""
    return _sampler_class(name).load(folder, device)


def load_or_fit(model: nn.Module, folder: str | Path, name: str, dataset: Any, *, n_train: int | None = 10_000,
                seed: int = 0, progress: Progress | bool | None = None, **kwargs: Any) -> Sampler:
    """The sampler saved in `folder` when it matches (settings, seed, data, weights), else fit and save it.

    A corrupt or stale file is replaced (with a warning for a corrupt one).
    """
    wanted = build_sampler(name, **kwargs)
    cls = type(wanted)
    weights, meta = _files(folder, name)
    if weights.is_file() and meta.is_file():
        try:
            saved = cls.load(folder, device=getattr(model, "device", None))
        except SamplerLoadError as e:
            warnings.warn(f"refitting the {name!r} sampler: {e}", stacklevel=2)
        else:
            n_all = dataset.x_train.shape[0]
            n_expected = 0 if name == "vamp" else (n_all if n_train is None else min(n_train, n_all))
            info = saved.fit_info
            same = (saved.settings() == wanted.settings() and info.get("seed") == seed
                    and info.get("model") == model_fingerprint(model)
                    and info.get("dataset") == getattr(dataset, "name", None)
                    and info.get("n_train") == n_expected)
            if same:
                return saved
    sampler = fit_sampler(model, dataset, name, n_train=n_train, seed=seed, progress=progress, **kwargs)
    sampler.save(folder)
    return sampler
