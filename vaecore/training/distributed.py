"""Data-parallel training over several processes: `torchrun --nproc_per_node N -m vaecore train …`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `setup()` reads them, joins the process group
(nccl when every rank has a GPU, gloo on CPUs) and gives each rank its device. The Trainer then
wraps the model in DistributedDataParallel, gives each rank its contiguous shard of every
global batch, reduces validation sums over ranks, and lets rank 0 alone write the run folder.
Without those variables everything here is a no-op on one process.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: `rank` of `world_size`, its `local_rank` on the node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (once per process) and pick this rank's device."""
    if not launched():
        return DistContext()
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} was asked for, but this machine has no CUDA GPU")
    per_node, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", world)), torch.cuda.device_count()
    if device.startswith("cuda") and gpus < per_node:
        raise ValueError(f"--device {device} with {per_node} processes per machine needs a GPU each, and this "
                         f"machine has {gpus}: launch `torchrun --nproc_per_node {gpus}` or use --device cpu")
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available() and gpus >= per_node  # else all on gloo
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
        atexit.register(teardown)
    return DistContext(rank, world, local, dev)


def teardown() -> None:
    """Leave the process group (at the end of a torchrun process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over every rank (in place; returned for chaining)."""
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def average_gradients(params: list[torch.nn.Parameter], ctx: DistContext) -> None:
    """Average `.grad` over ranks in one flat all-reduce (for parameter groups stepped without DDP)."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def gather_rng_states(state: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """Every rank's RNG state (a uint8 tensor of the same length on each rank), in rank order."""
    if not ctx.enabled:
        return [state]
    dev = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    local = state.to(dev)
    out = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(out, local)
    return [t.cpu() for t in out]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def finish(ctx: DistContext) -> None:
    """End a run that succeeded on every rank: wait for all of them, then leave the group, so no rank
    tears its connections down while another still uses them (left to interpreter exit, gloo's threads
    can abort a process whose work was already saved)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        teardown()
