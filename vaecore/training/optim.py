"""Optimizers and learning-rate schedules chosen by name, from a `TrainConfig`.

Optimizers: adam, adamw, adamax, sgd, rmsprop (with `weight_decay`, `momentum`, `beta1`/`beta2`, `eps`).
Schedules, stepped once per epoch: none, plateau (on the validation loss), cosine (over the
run's epochs, down to `min_lr`), step (× `step_gamma` every `step_size` epochs), multistep
(× `step_gamma` at each epoch count in `milestones`). Every
schedule's state is a plain dict, so it is saved as JSON in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import lr_scheduler

from vaecore.config import OPTIMIZERS, SCHEDULERS


def build_optimizer(config: Any, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimizer `config.optimizer` names over `params`, at learning rate `lr`."""
    name = config.optimizer
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps,
                                weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps,
                                 weight_decay=config.weight_decay)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps,
                                  weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov and config.momentum > 0)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=config.beta2, eps=config.eps, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def scheduler_name(config: Any) -> str:
    """The configured schedule; the older `plateau: true` setting means 'plateau'."""
    return "plateau" if config.scheduler == "none" and config.plateau else config.scheduler


def build_scheduler(config: Any, optimizer: torch.optim.Optimizer) -> Any | None:
    """The schedule `config.scheduler` names for `optimizer`, or None for 'none'."""
    name = scheduler_name(config)
    if name == "none":
        return None
    if name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.plateau_factor,
                                              patience=config.plateau_patience, min_lr=config.min_lr)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs), eta_min=config.min_lr)
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.step_gamma)
    if name == "multistep":
        if not config.milestones:
            raise ValueError("the multistep schedule needs `milestones`: the epoch counts after which the learning "
                             "rate is multiplied by `step_gamma`")
        return lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.step_gamma)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def step_scheduler(scheduler: Any | None, val_loss: float) -> None:
    """Advance a schedule by one epoch (plateau reads the validation loss)."""
    if scheduler is None:
        return
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    else:
        scheduler.step()


def optimizer_state(optimizers: list[torch.optim.Optimizer],
                    schedulers: list[Any | None]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every optimizer's state as tensors (`optim.<i>.<name>` for the first, `optim<g>.<i>.<name>` for group
    g > 0) and their param groups and schedules as JSON-able metadata."""
    tensors: dict[str, torch.Tensor] = {}
    groups = []
    for g, opt in enumerate(optimizers):
        state = opt.state_dict()
        prefix = "optim" if g == 0 else f"optim{g}"
        for idx, values in state["state"].items():
            for name, value in values.items():
                if value is not None:
                    tensors[f"{prefix}.{idx}.{name}"] = torch.as_tensor(value)
        groups.append(state["param_groups"])
    scheds = [s.state_dict() if s is not None else None for s in schedulers]
    return tensors, {"param_groups": groups[0], "optimizers": groups, "scheduler": scheds[0], "schedulers": scheds}


def load_optimizer_state(optimizers: list[torch.optim.Optimizer], schedulers: list[Any | None],
                         tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device) -> None:
    """Restore what `optimizer_state` saved (older checkpoints hold one optimizer under `optim.`)."""
    groups = meta.get("optimizers") or [meta["param_groups"]]
    if len(groups) != len(optimizers):
        raise ValueError(f"the checkpoint holds {len(groups)} optimizer(s) but the model has {len(optimizers)} "
                         "parameter group(s); resume it with the model it was trained with")
    states: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in optimizers]
    for key, value in tensors.items():
        head, _, rest = key.partition(".")
        if not head.startswith("optim") or not rest:
            continue
        idx, name = rest.split(".", 1)
        states[int(head[5:] or 0)].setdefault(int(idx), {})[name] = value if name == "step" else value.to(device)
    for opt, state, param_groups in zip(optimizers, states, groups, strict=True):
        opt.load_state_dict({"state": state, "param_groups": param_groups})
    for sched, saved in zip(schedulers, meta.get("schedulers") or [meta.get("scheduler")], strict=False):
        if sched is not None and saved:
            if isinstance(sched, lr_scheduler.ReduceLROnPlateau) and saved.get("best") is None:
                saved = {**saved, "best": sched.mode_worse}  # strict JSON stored the initial ±inf as null
            if isinstance(sched, lr_scheduler.MultiStepLR):  # JSON made its Counter's int keys strings; config has them
                saved = {k: v for k, v in saved.items() if k != "milestones"}
            sched.load_state_dict(saved)
