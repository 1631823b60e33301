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

from vaecore.training import distributed

try:
    from vaecore.components.context import StepContext
except ImportError:  # TRANSITION: until engine contract v2 lands on main
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class StepContext:  # type: ignore[no-redef]
        step: int = 0
        epoch: int = 0
        total_steps: int = 0
        steps_per_epoch: int = 1
        dataset_size: int = 0
        kl_weight: float = 1.0
        training: bool = True

        @classmethod
        def evaluation(cls, dataset_size: int = 0) -> StepContext:
            return cls(training=False, dataset_size=dataset_size)

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
    if hasattr(model, "validate"):
        return model.validate(x, ctx)
    out = {"loss": model.loss(x).loss, "mse": ((model.reconstruct(x) - x) ** 2).flatten(1).sum(dim=1)}  # TRANSITION
    if not model.config.deterministic:
        out["elbo"] = model.elbo(x)
    return out


def call_loss(model: Any, x: torch.Tensor, ctx: StepContext) -> Any:
    """`model.loss(x, ctx)`; TRANSITION: models before contract v2 take `kl_weight`."""
    import inspect

    if "ctx" in inspect.signature(model.loss).parameters:
        return model.loss(x, ctx)
    return model.loss(x, kl_weight=ctx.kl_weight)
