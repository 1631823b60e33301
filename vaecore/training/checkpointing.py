"""A run's checkpoint: everything `--resume` needs to continue bit for bit.

`checkpoint.safetensors` holds the weights (`model.*`), every optimizer's and scheduler's state,
and every rank's RNG states (rank 0's under `rng.cpu` / `rng.cuda`, rank r's under `rng.cpu.r`);
its JSON metadata holds the step, the optimizers' and schedulers' scalars, the best validation
loss so far (`trainer`), the world size, the divergence guard's state and the convolution
kernels chosen (`conv_kernels`). The model files are written first, so a checkpoint always
implies a loadable model (`run_folder` writes both crash-safely).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaecore.models.base import PretrainedModel
from vaecore.runtime import conv_autotune
from vaecore.training import distributed
from vaecore.training import run_folder as rf
from vaecore.training.optim import load_optimizer_state, optimizer_state
from vaecore.training.runtime import Runtime

__all__ = ["Restored", "load", "save"]


@dataclass
class Restored:
    """The trainer's share of a loaded checkpoint (the model, optimizers and RNG are restored in place)."""

    step: int
    guard: dict[str, Any] | None
    best: dict[str, Any]


def save(out_dir: Path, model: PretrainedModel, optimizers: list[torch.optim.Optimizer], schedulers: list[Any],
         runtime: Runtime, step: int, guard: dict[str, Any], best: dict[str, Any]) -> None:
    """Write the model and the checkpoint of `step` (a collective: every rank calls it, rank 0 writes)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    rng = _rng_tensors(runtime)
    if not runtime.dist.is_main:
        return
    tensors.update(rng)
    optim, optim_meta = optimizer_state(optimizers, schedulers)
    tensors.update(optim)
    meta = {"step": step, **optim_meta, "trainer": dict(best), "world_size": runtime.dist.world_size,
            "guard": guard, "conv_kernels": conv_autotune.choices(model)}
    rf.save_model(out_dir, model, step=step)  # first: a checkpoint implies a loadable model
    rf.save_checkpoint(out_dir, tensors, meta)


def load(out_dir: Path, model: PretrainedModel, optimizers: list[torch.optim.Optimizer], schedulers: list[Any],
         runtime: Runtime) -> Restored:
    """Restore the weights, optimizers, schedulers, this rank's RNG and the conv kernels from `out_dir`."""
    tensors, meta = rf.load_checkpoint(out_dir)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    dist = runtime.dist
    world = int(meta.get("world_size", 1))
    if world != dist.world_size:
        raise rf.RunFolderError(
            f"{out_dir} was trained by {world} process(es) and resumes exactly only with as many; run "
            f"`torchrun --nproc_per_node {world} -m vaecore train --resume …` (this is {dist.world_size})")
    load_optimizer_state(optimizers, schedulers, tensors, meta, runtime.device)
    suffix = "" if dist.rank == 0 else f".{dist.rank}"
    torch.set_rng_state(tensors["rng.cpu" + suffix])
    if runtime.device.type == "cuda" and "rng.cuda" + suffix in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda" + suffix], runtime.device)
    conv_autotune.load_choices(model, meta.get("conv_kernels"))
    return Restored(step=int(meta["step"]), guard=meta.get("guard"), best=dict(meta.get("trainer") or {}))


def _rng_tensors(runtime: Runtime) -> dict[str, torch.Tensor]:
    """Every rank's RNG states (a collective: all ranks call it), rank 0's under the plain names."""
    out = {}
    kinds = [("cpu", torch.get_rng_state)]
    if runtime.device.type == "cuda":
        kinds.append(("cuda", lambda: torch.cuda.get_rng_state(runtime.device)))
    for kind, get in kinds:
        for rank, state in enumerate(distributed.gather_rng_states(get(), runtime.dist)):
            out[f"rng.{kind}" if rank == 0 else f"rng.{kind}.{rank}"] = state
    return out
