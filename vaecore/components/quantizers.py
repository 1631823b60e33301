"""Vector quantisers: a codebook that maps continuous vectors to their nearest code (VQ-VAE), and a
stack of codebooks that each quantise the residual left by the ones above (HRQ-VAE).

Contract of a quantiser over vectors of dimension D (rows of a (N, D) tensor):

- `codes(z) -> (N, L)`: the nearest code of each of the L levels (L = 1 for one codebook);
- `lookup(codes) -> (N, D)`: the quantised vectors of given codes (summed over the levels);
- `forward(z, temperature=None) -> Quantized`: the training pass. Without a temperature it is the
  VQ-VAE pass: nearest codes, straight-through gradients z + sg(z_q − z), and per vector
  ‖sg(z) − e‖² + β‖z − sg(e)‖² (or, with `ema`, only the commitment term while the codebook
  follows exponential moving averages of its assigned vectors). With a temperature (HRQ-VAE in
  training) the codes are hard Gumbel-softmax draws from softmax(−‖z − e_k‖² / τ), so gradients
  reach the codebook and the encoder through the relaxation, and the loss is the KL of the code
  distribution to the uniform one.

Losses are per vector (N,), summed over D, so a model sums them over the positions of an image
like its reconstruction term, which is summed over pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EMA_EPS = 1e-5
USAGE_DECAY = 0.9
DEAD_USAGE = 0.01


@dataclass
class Quantized:
    """A quantiser's training pass over N vectors: the quantised vectors (with the training
    gradients attached), the codes (N, L), the loss per vector (N,), and code usage."""

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    perplexity: Tensor


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """‖z_i − e_k‖² for every vector and code: (N, K)."""
    return (z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)).clamp_min(0)


def perplexity(codes: Tensor, num_codes: int) -> Tensor:
    """exp(entropy) of the code frequencies: the effective number of codes in use."""
    p = torch.bincount(codes.flatten(), minlength=num_codes).float() / max(1, codes.numel())
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class VectorQuantizer(nn.Module):
    """One codebook of `num_codes` vectors of dimension `dim` (van den Oord et al., 2017).

    With `ema` the codebook is a buffer updated in training passes as e_k = m_k / N_k, where N_k
    and m_k are moving averages (decay `decay`) of the count and the sum of the vectors assigned
    to code k, with Laplace smoothing of the counts; each code starts as if it had been assigned
    its own initial value once, so rarely used codes stay where they are instead of jumping.
    Without it the codebook is a parameter trained by the codebook loss.
    """

    def __init__(self, num_codes: int, dim: int, *, beta: float = 0.25, ema: bool = False, decay: float = 0.99,
                 init: Tensor | None = None, restart: bool = False) -> None:
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError(f"a codebook needs num_codes >= 1 and dim >= 1, got {num_codes}, {dim}")
        if not 0 <= decay < 1:
            raise ValueError(f"the EMA decay must be in [0, 1), got {decay}")
        self.num_codes, self.dim, self.beta, self.ema, self.decay = num_codes, dim, beta, ema, decay
        self.restart = restart
        if init is None:
            init = torch.randn(num_codes, dim) if ema else torch.empty(num_codes, dim).uniform_(-1 / num_codes,
                                                                                             1 / num_codes)
        if ema:
            self.register_buffer("codebook", init.clone())
            self.register_buffer("cluster_size", torch.ones(num_codes))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init.clone())
        if restart:
            self.register_buffer("usage", torch.ones(num_codes))
            self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def restart_codes(self, z: Tensor, codes: Tensor | None) -> None:
        """Data-dependent codebook: the first training batch's vectors become the codes, and codes
        unused for a while (usage, a 0.9-decay moving count, under `DEAD_USAGE`) restart at a random
        vector of the batch, so the codebook does not collapse onto a few codes."""
        z = z.detach()
        if codes is None:
            dead = torch.ones(self.num_codes, dtype=torch.bool, device=z.device)
            self.initialised.fill_(True)
        else:
            count = torch.bincount(codes.reshape(-1), minlength=self.num_codes).to(self.usage.dtype)
            self.usage.mul_(USAGE_DECAY).add_(count, alpha=1 - USAGE_DECAY)
            dead = self.usage < DEAD_USAGE
        n = int(dead.sum())
        if n == 0:
            return
        pick = z[torch.randint(z.shape[0], (n,), device=z.device)]
        self.codebook.data[dead] = pick
        self.usage[dead] = 1.0
        if self.ema:
            self.embed_sum[dead] = pick
            self.cluster_size[dead] = 1.0

    def codes(self, z: Tensor) -> Tensor:
        """Index of the nearest code of each row: (N, 1)."""
        return squared_distances(z.detach(), self.codebook.detach()).argmin(dim=1, keepdim=True)

    def lookup(self, codes: Tensor) -> Tensor:
        """Code vectors of (N, 1) or (N,) indices: (N, D)."""
        return F.embedding(codes.reshape(-1), self.codebook)

    @torch.no_grad()
    def ema_update(self, z: Tensor, codes: Tensor) -> None:
        """Move each code towards the mean of the vectors assigned to it (one EMA step)."""
        onehot = F.one_hot(codes.reshape(-1), self.num_codes).to(z.dtype)
        count, total = onehot.sum(0), onehot.t() @ z
        self.cluster_size.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + EMA_EPS) / (n + self.num_codes * EMA_EPS) * n
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))

    def forward(self, z: Tensor, temperature: float | None = None) -> Quantized:
        """The training pass (see the module docstring); EMA updates happen only in training mode."""
        if temperature is not None:
            return self._relaxed(z, temperature)
        if self.restart and self.training and not bool(self.initialised):
            self.restart_codes(z, None)
        codes = self.codes(z)
        zq = self.lookup(codes)
        if self.restart and self.training:
            self.restart_codes(z, codes)
        commitment = (z - zq.detach()).pow(2).sum(1)
        if self.ema:
            if self.training:
                self.ema_update(z.detach(), codes)
            loss = self.beta * commitment
        else:
            loss = (z.detach() - zq).pow(2).sum(1) + self.beta * commitment
        return Quantized(z + (zq - z).detach(), codes, loss, perplexity(codes, self.num_codes))

    def _relaxed(self, z: Tensor, temperature: float) -> Quantized:
        """Hard Gumbel-softmax codes in training, the nearest code otherwise; loss KL(q(code) ‖ uniform)."""
        logits = -squared_distances(z, self.codebook)
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=temperature, hard=True, dim=1)
        else:
            onehot = F.one_hot(logits.argmax(1), self.num_codes).to(z.dtype)
        codes = onehot.argmax(dim=1, keepdim=True)
        log_q = F.log_softmax(logits, dim=1)
        kl_uniform = (log_q.exp() * log_q).sum(1) + math.log(self.num_codes)
        return Quantized(onehot @ self.codebook, codes, kl_uniform, perplexity(codes, self.num_codes))


class ResidualQuantizer(nn.Module):
    """A stack of `levels` codebooks; level l quantises z − Σ_{j<l} e_j, so the sum of the chosen
    codes approximates z ever more finely (Hosking et al., 2022).

    The codebook of level l starts on the sphere of radius `init_scale`·`init_decay`^l, so deeper
    levels begin with finer corrections. In the relaxed (Gumbel) pass a `norm_weight` penalty keeps
    each level's code shorter than the one above divided by `norm_scale`, and `depth_dropout`
    drops every level from a random depth on (in training), so coarse prefixes decode on their own;
    the relaxed loss is `kl_weight`·Σ_l KL(q_l ‖ uniform) plus that penalty.
    """

    def __init__(self, levels: int, num_codes: int, dim: int, *, beta: float = 0.25, ema: bool = False,
                 decay: float = 0.99, init_scale: float = 1.0, init_decay: float = 0.5, norm_weight: float = 0.0,
                 norm_scale: float = 1.5, depth_dropout: float = 0.0, kl_weight: float = 1.0) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"a residual quantiser needs at least one level, got {levels}")
        books = []
        for level in range(levels):
            init = F.normalize(torch.randn(num_codes, dim), dim=1) * init_scale * init_decay ** level
            books.append(VectorQuantizer(num_codes, dim, beta=beta, ema=ema, decay=decay, init=init))
        self.levels = nn.ModuleList(books)
        self.num_codes, self.dim = num_codes, dim
        self.norm_weight, self.norm_scale, self.depth_dropout = norm_weight, norm_scale, depth_dropout
        self.kl_weight = kl_weight

    def codes(self, z: Tensor) -> Tensor:
        """Greedy nearest codes of each level: (N, L)."""
        residual, out = z.detach(), []
        for book in self.levels:
            c = book.codes(residual)
            residual = residual - book.lookup(c).detach()
            out.append(c)
        return torch.cat(out, dim=1)

    def lookup(self, codes: Tensor) -> Tensor:
        """Σ_l e_l[codes[:, l]]: (N, D)."""
        return sum(book.lookup(codes[:, i]) for i, book in enumerate(self.levels))  # type: ignore[return-value]

    def errors(self, z: Tensor) -> Tensor:
        """Mean squared quantisation error ‖z − Σ_{j≤l} e_j‖² after each level l: (L,)."""
        residual, out = z.detach(), []
        for book in self.levels:
            residual = residual - book.lookup(book.codes(residual))
            out.append(residual.pow(2).sum(1).mean())
        return torch.stack(out)

    def forward(self, z: Tensor, temperature: Sequence[float] | None = None) -> Quantized:
        """The training pass; `temperature` (one per level) selects the relaxed Gumbel pass."""
        if temperature is not None and len(temperature) != len(self.levels):
            raise ValueError(f"need one temperature per level ({len(self.levels)}), got {len(temperature)}")
        relaxed = temperature is not None
        parts, codes, loss, perp = [], [], z.new_zeros(z.shape[0]), []
        residual = z
        for level, book in enumerate(self.levels):
            q = book(residual, None if temperature is None else temperature[level])
            # straight-through levels pass the hard code down, relaxed ones the differentiable draw
            part = q.quantized if relaxed else book.lookup(q.codes)
            parts.append(part)
            residual = residual - (part if relaxed else part.detach())
            codes.append(q.codes)
            loss = loss + (self.kl_weight * q.loss if relaxed else q.loss)
            perp.append(q.perplexity)
        stack = torch.stack(parts, dim=1)
        if relaxed and self.norm_weight > 0 and len(parts) > 1:
            norms = stack.norm(dim=2).clamp_min(1e-8)
            ratio = norms[:, 1:] / norms[:, :-1] * self.norm_scale
            loss = loss + self.norm_weight * ((ratio.clamp_min(1) - 1) ** 2).mean(1)
        if relaxed and self.training and self.depth_dropout > 0:
            keep = torch.bernoulli(torch.full(stack.shape[:2], 1 - self.depth_dropout, device=z.device))
            stack = stack * keep.cumprod(dim=1).unsqueeze(2)
        total = stack.sum(1)
        quantized = total if relaxed else z + (total - z).detach()
        return Quantized(quantized, torch.cat(codes, dim=1), loss, torch.stack(perp).mean())
