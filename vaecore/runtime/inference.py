"""The inference path: what every pass that only evaluates a model (reconstructions, latents, metrics, the app's
maps and comparisons) runs through, so it is at least as fast as a bare `model.eval()` loop.

`prepare(model)` (called by `vaecore.utils.evaluating`, which every evaluation pass uses) makes a model compute on
this machine's fastest exact-enough path: freed memory kept for reuse (`memory`: page faults cost 25-40 % of
inference otherwise), on the CPU the activations' memory format chosen by measurement (`layout`) and each conv
layer's kernel chosen by measurement (`conv_autotune`), all cached per machine. It changes nothing under
`policy.deterministic()`, and nothing about a model whose run pinned its own kernels (`pin`: the Trainer's model,
whose choices are recorded for an exact resume). Idempotent and cheap after the first call; a model prepared under
another thread count is prepared again, so it computes as a fresh instance of the same weights would.
"""

from __future__ import annotations

import torch
from torch import nn

from vaecore.runtime import conv_autotune, layout, memory, policy

__all__ = ["PINNED", "pin", "prepare", "unpin"]

PINNED = "_vaecore_runtime_pinned"
_PREPARED = "_vaecore_runtime_prepared"


def pin(model: nn.Module) -> None:
    """Mark a model whose kernels and memory format its owner chose (a training run): `prepare` leaves them."""
    setattr(model, PINNED, True)


def unpin(model: nn.Module) -> None:
    """Hand a model back to `prepare` (its run ended): from then on it computes like the same model loaded."""
    if hasattr(model, PINNED):
        delattr(model, PINNED)


def prepare(model: nn.Module) -> nn.Module:
    """The model on this machine's fastest exact-enough path for inference (see the module docstring)."""
    memory.keep_freed_memory()
    if getattr(model, PINNED, False):
        return model
    if policy.deterministic():
        if hasattr(model, _PREPARED):  # prepared before the switch: back to the reference format
            layout.set_format(model, False)
            delattr(model, _PREPARED)
        return model
    threads = torch.get_num_threads()
    if getattr(model, _PREPARED, None) == threads:
        return model
    params = next(model.parameters(), None)
    if params is None or params.device.type != "cpu" or not layout.conv_layers(model):
        return model
    # the choices hold per thread count (the machine's table is keyed by it): prepared under another, choose again
    pays = layout.channels_last_pays(model)
    if pays or hasattr(model, _PREPARED):  # (a model never prepared keeps the format its owner gave it)
        layout.set_format(model, pays)
    conv_autotune.enable(model)
    setattr(model, _PREPARED, threads)
    return model
