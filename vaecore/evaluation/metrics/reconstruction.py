"""Reconstruction metrics: the squared error of the decoded latent point (AR-ELBO's and Pythae's MSE)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vaecore.evaluation.registry import Direction, EvalContext, Metric, register_metric, register_pass
from vaecore.evaluation.runtime import batches, device_of
from vaecore.utils import evaluating

MSE = register_metric(Metric(
    "mse", "MSE, summed over pixels", "MSE", "squared [0, 1] pixel values", Direction.LOWER, "reconstruction",
    "reconstruction error ‖x − μθ(μφ(x))‖² summed over the D pixels (values in [0,1]), mean over images",
    pass_name="mse", per_image=True))


def reconstruction_mse(model: torch.nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """‖x − decode(μφ(x))‖² summed over the pixels, per example (N,): the AR-ELBO tables' MSE."""
    device = device_of(model)
    out = []
    with evaluating(model):
        for s in batches(x.shape[0], batch_size, "mse", None):
            xb = x[s].to(device, torch.float32)
            out.append(((model.reconstruct(xb) - xb) ** 2).flatten(1).sum(dim=1).double().cpu())
    return torch.cat(out)


@register_pass("mse")
def _mse_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    values = reconstruction_mse(ctx.model, ctx.x, ctx.batch_size)
    ctx.out["mse"], ctx.per_image["mse"] = float(values.mean()), values
