"""One optimisation step over a model's parameter groups, and one validation batch.

Several groups (adversarial and coupled families, as Pythae's adversarial / coupled-optimizer
trainers): one forward gives `LossOutput.group_losses[name]`; each group's gradients come from
its own loss w.r.t. its own parameters only, all of them computed before any optimizer steps
(a step changes weights the other groups' graphs still need), then the optimizers step in the
order the model declares, each group clipped on its own. One group uses `LossOutput.loss`
and a plain `backward()` (so DistributedDataParallel's hooks all-reduce it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vaecore.components.context import StepContext
from vaecore.training import distributed

__all__ = ["StepContext", "group_step", "validation_batch"]


def group_step(groups: Sequence[Any], optimizers: Sequence[torch.optim.Optimizer], out: Any,
               grad_clip: float | None, scaler: torch.amp.GradScaler | None = None,
               dist: distributed.DistContext | None = None) -> None:
    """Gradients of `out` for every group, then each optimizer's step in the declared order."""
    scale = scaler.scale if scaler is not None else (lambda t: t)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    if len(groups) == 1:
        scale(out.loss).backward()
    else:
        losses = [out.for_group(g.name) for g in groups]
        grads = [torch.autograd.grad(scale(loss), g.params, retain_graph=i < len(groups) - 1, allow_unused=True)
                 for i, (g, loss) in enumerate(zip(groups, losses, strict=True))]
        for g, gs in zip(groups, grads, strict=True):
            for p, grad in zip(g.params, gs, strict=True):
                p.grad = grad
            if dist is not None:
                distributed.average_gradients(g.params, dist)
    for g, opt in zip(groups, optimizers, strict=True):
        if scaler is not None:
            scaler.unscale_(opt)
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(g.params, grad_clip)
        if scaler is not None:
            scaler.step(opt)
        else:
            opt.step()
    if scaler is not None:
        scaler.update()


@torch.no_grad()
def validation_batch(model: Any, x: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
    """`model.validate`: batch-mean `loss`, per-example `mse` and, where defined, `elbo`, from one pass."""
    validate = getattr(model, "validate", None)
    if validate is None:
        raise TypeError(f"{type(model).__name__} has no validate(x, ctx) giving 'loss', 'mse' (and 'elbo'); "
                        "subclass AutoEncoder or define it")
    return validate(x, ctx)
