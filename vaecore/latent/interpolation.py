"""Paths through latent space: linear and spherical interpolation, strips, and latent traversals.

Everything works on latent points (`embed(x)`: posterior means), the point a VAE maps an image to, and decodes
with `model.decode` (the decoder mean in [0, 1]). Functions run without gradients and move inputs to
the model's device, so the app can call them on every slider move.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Method = Literal["linear", "spherical"]
METHODS: dict[str, str] = {
    "linear": "straight line z(t) = (1 − t)·z₀ + t·z₁",
    "spherical": "great-circle arc (slerp): keeps the norm when both ends have the same norm",
}

_EPS = 1e-7


def _as_t(t: float | Tensor, like: Tensor) -> Tensor:
    """t as a float tensor on `like`'s device, shaped (T, 1) for a batch of t or () for one."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, 1) if t.dim() > 0 else t


def lerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Linear interpolation of two (d,) latents: (d,) for a scalar t, (T, d) for a (T,) tensor t."""
    t = _as_t(t, z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation of two (d,) latents along the arc between them (White, 2016).

    Gaussian latents concentrate near a sphere, and the straight line between two of them passes
    through the low-density middle; slerp stays at the endpoints' radius. Nearly parallel (or zero)
    vectors fall back to `lerp`, where the arc and the line coincide.
    """
    t = _as_t(t, z0)
    n0, n1 = z0.norm(), z1.norm()
    if n0 < _EPS or n1 < _EPS:
        return lerp(z0, z1, t)
    cos = torch.clamp(torch.dot(z0 / n0, z1 / n1), -1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    if sin.abs() < 1e-4:
        return lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) / sin) * z0 + (torch.sin(t * omega) / sin) * z1


def interpolate(z0: Tensor, z1: Tensor, t: float | Tensor, method: Method = "linear") -> Tensor:
    """`lerp` or `slerp` by name."""
    if method == "linear":
        return lerp(z0, z1, t)
    if method == "spherical":
        return slerp(z0, z1, t)
    raise ValueError(f"unknown interpolation method {method!r}; choose one of {list(METHODS)}")


def path(z0: Tensor, z1: Tensor, steps: int, method: Method = "linear") -> Tensor:
    """`steps` latents from z0 to z1 inclusive, (steps, d)."""
    if steps < 2:
        raise ValueError(f"an interpolation strip needs at least 2 steps, got {steps}")
    return interpolate(z0, z1, torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device), method)


@torch.no_grad()
def encode_means(model: torch.nn.Module, images: Tensor) -> Tensor:
    """Posterior means (B, d) of images (B, C, H, W)."""
    with _single_thread(images.shape[0] <= 4 and model.device.type == "cpu"):
        return model.embed(images)


@contextlib.contextmanager
def _single_thread(active: bool) -> Iterator[None]:
    """Run a tiny CPU forward pass on one thread.

    Waking a second intra-op thread for a single 28×28 decode costs more than the decode itself, and on
    a busy machine it can stall for tens of milliseconds. With PyTorch's OpenMP backend the setting is
    per calling thread, so other sessions' batch work keeps its threads.
    """
    before = torch.get_num_threads()
    if not active or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def decode(model: torch.nn.Module, z: Tensor) -> Tensor:
    """Decoder means (B, C, H, W) in [0, 1] of latents (B, d) or one latent (d,)."""
    if z.dim() == 1:
        z = z.unsqueeze(0)
    with _single_thread(z.shape[0] <= 4 and model.device.type == "cpu"):
        return model.decode(z.to(model.device, torch.float32)).clamp(0, 1).cpu()


@torch.no_grad()
def strip(model: torch.nn.Module, x0: Tensor, x1: Tensor, steps: int, method: Method = "linear") -> Tensor:
    """Decoded interpolation from image x0 to image x1 ((C, H, W) each): (steps, C, H, W)."""
    z = encode_means(model, torch.stack([x0, x1]))
    return decode(model, path(z[0], z[1], steps, method))


@torch.no_grad()
def decode_at(model: torch.nn.Module, z0: Tensor, z1: Tensor, t: float, method: Method = "linear") -> Tensor:
    """The one decoded image (C, H, W) at position t ∈ [0, 1] between latents z0 and z1."""
    return decode(model, interpolate(z0.to(model.device), z1.to(model.device), float(t), method))[0]


@torch.no_grad()
def traverse(model: torch.nn.Module, z: Tensor, dim: int, values: Tensor | list[float]) -> Tensor:
    """Decode copies of latent z (d,) with coordinate `dim` set to each of `values`: (len(values), C, H, W)."""
    if not 0 <= dim < z.shape[-1]:
        raise ValueError(f"dimension {dim} is out of range for a {z.shape[-1]}-dimensional latent")
    values = torch.as_tensor(values, dtype=z.dtype, device=z.device)
    zs = z.reshape(1, -1).repeat(len(values), 1)
    zs[:, dim] = values
    return decode(model, zs)


def with_values(z: Tensor, values: dict[int, float]) -> Tensor:
    """A copy of latent z (d,) with the given coordinates replaced (what the traversal sliders set)."""
    out = z.detach().clone()
    for j, v in values.items():
        out[int(j)] = float(v)
    return out


def rank_dims(latents: Tensor | np.ndarray, k: int = 32) -> list[int]:
    """The k latent dimensions whose posterior means vary most over a set of latents (N, d), most active first.

    Collapsed dimensions (variance ~0) change nothing when moved, so a traversal shows the active ones
    first (the "active units" criterion Cov_x(E_q[z_j]) of Burda et al.).
    """
    mu = torch.as_tensor(np.asarray(latents) if not isinstance(latents, Tensor) else latents, dtype=torch.float32)
    var = mu.var(dim=0) if mu.shape[0] > 1 else mu.abs().reshape(-1)
    return [int(j) for j in torch.argsort(var, descending=True, stable=True)[:k]]


@torch.no_grad()
def ranked_dims(model: torch.nn.Module, images: Tensor, k: int = 32) -> list[int]:
    """`rank_dims` of the posterior means of `images`."""
    return rank_dims(encode_means(model, images).cpu(), k)


__all__ = [
    "METHODS", "decode", "decode_at", "encode_means", "interpolate", "lerp", "path", "rank_dims", "ranked_dims",
    "slerp", "strip", "traverse", "with_values",
]
