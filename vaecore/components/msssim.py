"""SSIM and multi-scale SSIM (Wang et al., 2003) for images in [0, 1], differentiable, per image.

At each scale the statistics are Gaussian-weighted over a `window`×`window` neighbourhood (no
padding, separable filter); the image is halved between scales by 2×2 average pooling (padding
odd sizes by one, as pytorch-msssim does). MS-SSIM = Π_{s<S} cs_s^{w_s} · ssim_S^{w_S}, each
term the spatial mean of its map clipped at 0, averaged over channels.

The standard setting (5 scales, an 11-tap window, σ = 1.5) needs images of more than 160 pixels
a side. `msssim_plan` picks what fits a smaller image: the requested window if at least
min(3, scales) scales fit, else the largest odd window that gives them (σ scaled with the
window), and as many scales as fit; the weights are the first scales' standard weights,
renormalised to sum to 1. For 28×28 that is 3 scales with a 7-tap window; for 8×8, 2 scales with
a 3-tap window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
K1, K2 = 0.01, 0.03


@dataclass(frozen=True)
class MSSSIMPlan:
    """The window, its σ and the per-scale weights used for one image size."""

    window: int
    sigma: float
    weights: tuple[float, ...]

    @property
    def scales(self) -> int:
        return len(self.weights)

    def describe(self) -> str:
        return f"MS-SSIM over {self.scales} scale(s), {self.window}-tap Gaussian window (σ = {self.sigma:.3g})"


def _pooled(n: int) -> int:
    return (n + 2 * (n % 2) - 2) // 2 + 1


def _scales_that_fit(h: int, w: int, window: int, wanted: int) -> int:
    n = 0
    while n < wanted and min(h, w) >= window:
        n += 1
        h, w = _pooled(h), _pooled(w)
    return n


def msssim_plan(h: int, w: int, window: int = 11, scales: int = 5, sigma: float = 1.5) -> MSSSIMPlan:
    """The MS-SSIM setting used for H×W images: the requested one when it fits, else the fallback
    described in the module docstring; ValueError for images under 3 pixels a side."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the SSIM window must be a positive odd size, got {window}")
    if not 1 <= scales <= len(WANG_WEIGHTS):
        raise ValueError(f"MS-SSIM uses 1 to {len(WANG_WEIGHTS)} scales, got {scales}")
    if min(h, w) < 3:
        raise ValueError(f"SSIM needs images at least 3 pixels a side, got {h}×{w}")
    need = min(3, scales)
    chosen = next((k for k in range(window, 2, -2) if _scales_that_fit(h, w, k, scales) >= need), 3)
    n = _scales_that_fit(h, w, chosen, scales)
    raw = WANG_WEIGHTS[:n]
    return MSSSIMPlan(chosen, sigma * chosen / window, tuple(v / sum(raw) for v in raw))


def gaussian_window(size: int, sigma: float, dtype: torch.dtype = torch.float32,
                    device: torch.device | None = None) -> Tensor:
    """Normalised 1-D Gaussian taps of length `size`."""
    t = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-t.pow(2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: Tensor, taps: Tensor) -> Tensor:
    """Separable Gaussian filter over the last two dimensions, no padding, as weighted sums of
    shifted slices (faster on CPU than a one-channel convolution for these small windows)."""
    k = taps.numel()
    w = x.shape[-1] - k + 1
    x = sum(taps[t] * x[..., t:t + w] for t in range(k))
    h = x.shape[-2] - k + 1  # type: ignore[union-attr]
    return sum(taps[t] * x[..., t:t + h, :] for t in range(k))  # type: ignore[index, return-value]


def ssim_terms(x: Tensor, y: Tensor, taps: Tensor, data_range: float = 1.0) -> tuple[Tensor, Tensor]:
    """(SSIM, contrast-structure) per image and channel, each the mean of its map: (B, C) each."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    c = x.shape[1]
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    mx, my, sxx, syy, sxy = stats.split(c, dim=1)
    vx, vy, cov = sxx - mx.pow(2), syy - my.pow(2), sxy - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    ssim = (2 * mx * my + c1) / (mx.pow(2) + my.pow(2) + c1) * cs
    return ssim.flatten(2).mean(-1), cs.flatten(2).mean(-1)


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Single-scale SSIM per image (B,), averaged over channels."""
    taps = gaussian_window(window, sigma, x.dtype, x.device)
    return ssim_terms(x, y, taps, data_range)[0].mean(1)


def ms_ssim(x: Tensor, y: Tensor, plan: MSSSIMPlan | None = None, data_range: float = 1.0,
            eps: float = 1e-8) -> Tensor:
    """MS-SSIM per image (B,) of (B, C, H, W) images; `plan` defaults to `msssim_plan(H, W)`.

    Terms are clipped below at `eps` (not 0) before the fractional powers, so the gradient stays
    finite where a term vanishes; above `eps` the value is pytorch-msssim's.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"MS-SSIM needs two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    plan = plan or msssim_plan(x.shape[2], x.shape[3])
    taps = gaussian_window(plan.window, plan.sigma, x.dtype, x.device)
    terms = []
    for s in range(plan.scales):
        sim, cs = ssim_terms(x, y, taps, data_range)
        if s < plan.scales - 1:
            terms.append(cs)
            pad = (x.shape[2] % 2, x.shape[3] % 2)
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        else:
            terms.append(sim)
    weights = torch.tensor(plan.weights, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    value = torch.prod(torch.stack(terms).clamp_min(eps) ** weights, dim=0)
    return value.mean(1)
