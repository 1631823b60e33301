"""A run's runtime options: where and how its steps compute, apart from what they compute.

`Runtime(config)` joins the torchrun process group (a no-op on one process), picks the device,
sets the CPU threads, and decides mixed precision: on CUDA bf16 where supported (else fp16 with a
GradScaler) for "auto"; on the CPU only an explicit "bf16", so CPU runs stay fp32 by default.
`place(model)` moves a model to the device, in the memory format asked for, with measured CPU
convolution kernels (`vaecore.runtime.conv_autotune`, on by default; not under torch.compile) and
pins it, so evaluation passes during the run do not change its kernels (`vaecore.runtime.inference`);
`release(model)` undoes that when the run ends, so the model handed back computes like the same model loaded.
`deterministic` (`vaecore.runtime.policy`) turns every measured choice off: PyTorch's own kernels on the
CPU, cuDNN's deterministic algorithms on CUDA; otherwise cuDNN picks its kernels by measurement too.
The process keeps freed memory for reuse (`vaecore.runtime.memory`). `loss_function` gives the step's
loss: through DistributedDataParallel (one parameter group on several processes), torch.compile, or
the model's own `loss`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from vaecore.config import TrainConfig
from vaecore.models.base import LossOutput, PretrainedModel
from vaecore.runtime import conv_autotune, inference, memory
from vaecore.training import distributed
from vaecore.training.steps import StepContext
from vaecore.utils import default_device

LossFunction = Callable[[torch.Tensor, StepContext], LossOutput]
__all__ = ["LossFunction", "Runtime", "amp_dtype"]


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for TrainConfig `amp` on `device` (None: no autocast)."""
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16  # fast on CPUs with AMX or AVX-512 BF16
    if device.type != "cuda" or amp == "none":
        return None
    if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class Runtime:
    """The device, processes and numerics of one run, from its TrainConfig."""

    def __init__(self, config: TrainConfig) -> None:
        self.dist = distributed.setup(config.device)
        self.device = self.dist.device or default_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.channels_last = config.channels_last
        self.compile = config.compile
        self.deterministic = config.deterministic
        self.conv_autotune = (config.conv_autotune and not config.deterministic and self.device.type == "cpu"
                              and not config.compile)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.deterministic
            if config.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
        memory.keep_freed_memory()
        self.amp_dtype = amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    @property
    def rng_devices(self) -> list[torch.device]:
        """The devices whose RNG `torch.random.fork_rng` must save besides the CPU's."""
        return [self.device] if self.device.type == "cuda" else []

    def place(self, model: PretrainedModel) -> PretrainedModel:
        """The model on this device, in this memory format, with measured conv kernels where asked."""
        model = model.to(self.device)
        model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if self.conv_autotune:
            conv_autotune.enable(model)
        else:
            conv_autotune.disable(model)
        inference.pin(model)
        return model

    def release(self, model: PretrainedModel) -> dict[str, dict[str, str]]:
        """Undo `place`'s kernels, format and pin when the run ends, so the model it hands back computes
        exactly like the same weights loaded from its folder; returns the kernel choices, for `place` again."""
        chosen = conv_autotune.choices(model)
        conv_autotune.disable(model)
        model.to(memory_format=torch.contiguous_format)
        inference.unpin(model)
        return chosen

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the model's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for a forward pass where it is on."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def loss_function(self, model: PretrainedModel, several_groups: bool) -> tuple[LossFunction, bool]:
        """The training step's loss, and whether DistributedDataParallel reduces its gradients (else a
        multi-group model averages each group's own, in `group_step`). `model.loss` is looked up at
        each call, so a patched loss takes effect."""
        if self.dist.enabled and not several_groups:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(_LossModule(model), device_ids=ids)

            def through_ddp(x: torch.Tensor, ctx: StepContext) -> LossOutput:
                loss, out = ddp(x, ctx)
                out.loss = loss
                return out

            return through_ddp, True
        if self.compile:
            return torch.compile(model.loss), False
        return (lambda x, ctx: model.loss(x, ctx)), False


class _LossModule(torch.nn.Module):
    """The model's loss as a forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model: PretrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, Any]:
        out = self.model.loss(x, ctx)
        return out.loss, out
