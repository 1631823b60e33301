"""Normalizing flows shared by posteriors and samplers: planar, radial, MADE, IAF and MAF.

Every posterior transform maps z → (f(z), log|det ∂f/∂z|) per sample and takes an optional
`context` (the encoder's per-example features, Kingma et al.'s h); leading sample dimensions
(n, B, d) broadcast. `FlowPosterior` is a diagonal Gaussian pushed through such transforms:

    z_K = f_K ∘ … ∘ f_1(z_0),  z_0 ~ N(μ, σ²),  log q(z_K|x) = log N(z_0; μ, σ²) − Σ_k log|det J_k|

Planar flows have no closed-form inverse, so log q(z_K|x) is only known at the draws the
posterior produced: `rsample` remembers them and `log_prob` answers for those exact tensors
(which is all the ELBO, the IWAE bound and the KL estimate ever ask for), and refuses others.

Why not `zuko`: it has no planar or radial flow, its masked autoregressive transform is the
affine y = x·exp(s) + m rather than Kingma's gated IAF update, and keeping our own MADE lets
saved MAF samplers keep loading. One MADE serves the IAF posterior, the IAF sampler and the
MAF sampler.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaecore.components.posteriors import DiagonalGaussian, Posterior

MAF_LOG_SCALE_BOUND = 3.0
IAF_FORGET_BIAS = 2.0
_LOGDET_FLOOR = 1e-12
_CACHE_SIZE = 8


class Transform(nn.Module):
    """A bijection of R^d with its log|det J| per sample."""

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class PlanarFlow(Transform):
    """f(z) = z + û·tanh(wᵀz + b) (Rezende & Mohamed); û keeps wᵀû ≥ −1 so f is invertible."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.randn(dim) * 0.1)
        self.w = nn.Parameter(torch.randn(dim) * 0.1)
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> Tensor:
        """u moved along w until m(wᵀu) = −1 + softplus(wᵀu) ≥ −1 holds for wᵀû."""
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / self.w.pow(2).sum().clamp_min(_LOGDET_FLOOR)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u = self.u_hat()
        a = torch.tanh(z @ self.w + self.b)
        psi_u = (1 - a.pow(2)) * (self.w @ u)
        return z + a.unsqueeze(-1) * u, (1 + psi_u).abs().clamp_min(_LOGDET_FLOOR).log()


class RadialFlow(Transform):
    """f(z) = z + β̂·h(r)(z − z_r), h = 1/(α + r), r = ‖z − z_r‖, β̂ = −α + softplus(β) ≥ −α."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.z_ref = nn.Parameter(torch.randn(dim) * 0.1)
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        alpha = F.softplus(self.alpha_raw)
        beta = -alpha + F.softplus(self.beta_raw)
        diff = z - self.z_ref
        r = diff.norm(dim=-1)
        h = 1 / (alpha + r)
        bh = beta * h
        logdet = (z.shape[-1] - 1) * torch.log1p(bh) + torch.log1p(bh - bh * h * r)
        return z + bh.unsqueeze(-1) * diff, logdet


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE's connectivity)."""

    def __init__(self, n_in: int, n_out: int, mask: Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """MADE (Germain et al.): two outputs per variable, output i depending only on x_<i (and on
    the unmasked `context`, added to the first hidden layer). The last layer starts at zero."""

    def __init__(self, dim: int, hidden: int, layers: int, context_dim: int = 0) -> None:
        super().__init__()
        deg_in = torch.arange(1, dim + 1)
        deg_h = torch.arange(hidden) % max(dim - 1, 1) + 1 if dim > 1 else torch.zeros(hidden, dtype=torch.long)
        mods: list[nn.Module] = []
        prev = deg_in
        for _ in range(layers):
            mods += [MaskedLinear(prev.numel(), hidden, deg_h[:, None] >= prev[None, :]), nn.ReLU()]
            prev = deg_h
        last = MaskedLinear(prev.numel(), 2 * dim, (deg_in[:, None] > prev[None, :]).repeat(2, 1))
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*mods, last)
        self.context = nn.Linear(context_dim, hidden) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(m, s), each shaped like x."""
        h = self.net[0](x)
        if self.context is not None:
            if context is None:
                raise ValueError("this MADE is conditioned on a context; pass one")
            h = h + self.context(context)
        for layer in self.net[1:]:
            h = layer(h)
        m, s = h.chunk(2, dim=-1)
        return m, s


def _column_update(x: Tensor, i: int, value: Tensor) -> Tensor:
    """x with its i-th variable replaced by value (out of place, so autograd can follow)."""
    onehot = F.one_hot(torch.tensor(i), x.shape[-1]).to(x.dtype).to(x.device)
    return x + onehot * (value - x[..., i]).unsqueeze(-1)


class IAF(Transform):
    """Inverse autoregressive flow (Kingma et al. 2016): per block (m, s) = MADE(z, h),
    g = sigmoid(s + forget bias), z ← g⊙z + (1 − g)⊙m, log|det| = Σ log g; the variable order
    is reversed between blocks. Forward is one pass per block; `inverse` is d passes per block."""

    def __init__(self, dim: int, blocks: int = 2, hidden: int = 128, layers: int = 3, context_dim: int = 0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MADE(dim, hidden, layers, context_dim) for _ in range(blocks))

    def _gate(self, made: MADE, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        m, s = made(z, context)
        return m, s + IAF_FORGET_BIAS

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
        for k, made in enumerate(self.blocks):
            if k:
                z = z.flip(-1)
            m, s = self._gate(made, z, context)
            g = torch.sigmoid(s)
            z = g * z + (1 - g) * m
            logdet = logdet + F.logsigmoid(s).sum(-1)
        return z, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """z with forward(z) = y, and log|det ∂z/∂y| per sample."""
        logdet = torch.zeros(y.shape[:-1], device=y.device, dtype=y.dtype)
        for k in reversed(range(len(self.blocks))):
            made = self.blocks[k]
            z = torch.zeros_like(y)
            for i in range(y.shape[-1]):
                m, s = self._gate(made, z, context)
                g = torch.sigmoid(s[..., i])
                z = _column_update(z, i, (y[..., i] - (1 - g) * m[..., i]) / g)
            m, s = self._gate(made, z, context)
            logdet = logdet - F.logsigmoid(s).sum(-1)
            y = z.flip(-1) if k else z
        return y, logdet


class MAF(nn.Module):
    """Masked autoregressive flow (Papamakarios et al.) from data x to base u: per block
    u = (x − m(x))·exp(−a(x)), a soft-bounded to ±3; the order is reversed after every block.
    Density evaluation is one pass per block; sampling (`from_base`) is d passes per block."""

    def __init__(self, dim: int, blocks: int = 2, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MADE(dim, hidden, layers) for _ in range(blocks))

    @staticmethod
    def _shift_log_scale(made: MADE, x: Tensor) -> tuple[Tensor, Tensor]:
        m, a = made(x)
        return m, MAF_LOG_SCALE_BOUND * torch.tanh(a / MAF_LOG_SCALE_BOUND)

    def to_base(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x → u with log|det ∂u/∂x| per row."""
        logdet = torch.zeros(x.shape[:-1], device=x.device, dtype=x.dtype)
        for made in self.blocks:
            m, a = self._shift_log_scale(made, x)
            x = ((x - m) * torch.exp(-a)).flip(-1)
            logdet = logdet - a.sum(-1)
        return x, logdet

    def from_base(self, u: Tensor) -> Tensor:
        """u → x, one variable at a time per block."""
        for made in reversed(self.blocks):
            u = u.flip(-1)
            x = torch.zeros_like(u)
            for i in range(u.shape[-1]):
                m, a = self._shift_log_scale(made, x)
                x = _column_update(x, i, u[..., i] * torch.exp(a[..., i]) + m[..., i])
            u = x
        return u


def build_transforms(kinds: Sequence[str], dim: int) -> nn.ModuleList:
    """Planar/radial transforms by name, e.g. ['planar', 'radial', ...]."""
    known = {"planar": PlanarFlow, "radial": RadialFlow}
    bad = [k for k in kinds if k not in known]
    if bad:
        raise ValueError(f"unknown flow(s) {bad}; choose from {sorted(known)}")
    return nn.ModuleList(known[k](dim) for k in kinds)


class FlowPosterior(Posterior):
    """A diagonal Gaussian base pushed through transforms; `log_prob` is exact at its own draws."""

    def __init__(self, base: DiagonalGaussian, transforms: Sequence[Transform], context: Tensor | None = None) -> None:
        self.base, self.transforms, self.context = base, list(transforms), context
        self._drawn: list[tuple[Tensor, Tensor]] = []
        self._mean: Tensor | None = None

    def push(self, z0: Tensor) -> tuple[Tensor, Tensor]:
        """(z_K, Σ_k log|det J_k|) for base points z0."""
        logdet = torch.zeros(z0.shape[:-1], device=z0.device, dtype=z0.dtype)
        z = z0
        for t in self.transforms:
            z, ld = t(z, self.context)
            logdet = logdet + ld
        return z, logdet

    @property
    def mean(self) -> Tensor:
        """The flowed base mean f(μ): the latent point maps use (the decoder's input space)."""
        if self._mean is None:
            self._mean = self.push(self.base.mu)[0]
        return self._mean

    def rsample_with_log_prob(self, n: int | None = None,
                              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draws z_K and log q(z_K|x) by the change of variables."""
        z0 = self.base.rsample(n, generator)
        z, logdet = self.push(z0)
        log_q = self.base.log_prob(z0) - logdet
        self._drawn = [*self._drawn[-(_CACHE_SIZE - 1):], (z, log_q)]
        return z, log_q

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        return self.rsample_with_log_prob(n, generator)[0]

    def log_prob(self, z: Tensor) -> Tensor:
        for drawn, log_q in reversed(self._drawn):
            if z is drawn:
                return log_q
        raise ValueError("a flow posterior knows log q(z|x) only at the draws its rsample returned "
                         "(planar flows have no closed-form inverse); pass one of those tensors")
