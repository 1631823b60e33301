"""Pieces the learned samplers share: standardising latents, MLPs, a seeded Adam loop."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vaecore.samplers.base import Progress


class Standardise:
    """Per-dimension shift and scale of the training latents, so the fitted nets see unit-scale data."""

    @staticmethod
    def stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z.mean(0), z.std(0).clamp_min(1e-6)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _held_out_loss(loss_fn: Callable[[torch.Tensor], torch.Tensor], val: torch.Tensor, batch_size: int) -> float:
    with torch.no_grad():
        total = sum(float(loss_fn(val[i:i + batch_size])) * val[i:i + batch_size].shape[0]
                    for i in range(0, val.shape[0], batch_size))
    return total / val.shape[0]


def train_loop(params: list[nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor,
                steps: int, batch_size: int, lr: float, seed: int, progress: Progress | None, what: str,
                val: torch.Tensor | None = None) -> None:
    """Adam with cosine decay on random minibatches drawn with a seeded generator. With `val`, the
    loss on it is checked 20 times over the run and the parameters end at the best check (as
    Pythae's trainers keep the best model on eval_data)."""
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    g = torch.Generator(device=data.device).manual_seed(seed)
    batch_size = min(batch_size, data.shape[0])
    every = max(1, steps // 20)
    best: tuple[float, list[torch.Tensor]] | None = None
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
            progress((step + 1) / steps, f"{what}: step {step + 1}/{steps}, loss {loss.item():.3f}")
        if val is not None and ((step + 1) % every == 0 or step + 1 == steps):
            held_out = _held_out_loss(loss_fn, val, batch_size)
            if math.isfinite(held_out) and (best is None or held_out < best[0]):
                best = (held_out, [p.detach().clone() for p in params])
    if best is not None:
        with torch.no_grad():
            for p, kept in zip(params, best[1], strict=True):
                p.copy_(kept)
