"""The memory format of a conv model's activations on the CPU, chosen by measurement per machine and network.

oneDNN runs some convolutions faster on channels-last (NHWC) activations and others slower, depending on the
layer shapes and the ISA: the σ-VAE small conv's IWAE pass ran 1.3x faster channels-last with AVX-512 and 1.1x
with AVX2 on this project's machine. `channels_last_pays(model)` times the model's `reconstruct` on `PROBE` random
images in both formats (PyTorch's own kernels, timed by `timing.best_times`) and says whether channels-last
needs at most `MARGIN` of the default format's time; the answer is kept per machine and network geometry
(`kernel_cache`), so it is measured once. Both formats compute the same function; they differ in float rounding only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from vaecore.runtime import conv_autotune, kernel_cache, timing

__all__ = ["MARGIN", "PROBE", "channels_last_pays", "conv_layers", "geometry", "measure", "set_format"]

PROBE = 128  # images per timed call
MARGIN = 0.9  # channels-last is chosen only when it takes at most this fraction of the default format's time


def conv_layers(model: nn.Module) -> list[nn.Module]:
    """The 2-D convolutions of a model (what a memory format changes)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def geometry(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """A short hash of the model's conv layers (in order) and its image shape: what the choice applies to."""
    text = ";".join(conv_autotune.layer_geometry(m) for m in conv_layers(model)) + f"|{tuple(input_shape)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def set_format(model: nn.Module, channels_last: bool) -> None:
    """Put the model's 4-D parameters (and so its conv activations) in channels-last or the default format."""
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _is_channels_last(model: nn.Module) -> bool:
    weights = [m.weight for m in conv_layers(model)]
    return bool(weights) and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                                 for w in weights)


def measure(model: Any, input_shape: tuple[int, ...]) -> tuple[bool, dict[str, float]]:
    """Time `model.reconstruct` on PROBE random images in both formats: (channels-last pays, best seconds of
    each). The model's format is restored after."""
    before = _is_channels_last(model)
    x = torch.rand(PROBE, *input_shape, generator=torch.Generator().manual_seed(0)).to(model.device)
    try:
        with torch.no_grad(), conv_autotune.native_kernels():
            best = timing.best_times({"nc": lambda: model.reconstruct(x), "cl": lambda: model.reconstruct(x)},
                                     challenger="cl", baseline="nc", margin=MARGIN,
                                     before=lambda fmt: set_format(model, fmt == "cl"))
    finally:
        set_format(model, before)
    return best["cl"] <= MARGIN * best["nc"], best


def channels_last_pays(model: Any) -> bool:
    """Whether this machine runs `model` faster channels-last (measured once per machine and network geometry);
    False for a model without conv layers, an image shape or `reconstruct`, or not on the CPU."""
    shape = tuple(getattr(getattr(model, "config", None), "input_shape", ()) or ())
    if len(shape) != 3 or not conv_layers(model) or not hasattr(model, "reconstruct"):
        return False
    if next(model.parameters()).device.type != "cpu":
        return False
    key = f"layout|{geometry(model, shape)}"
    found = kernel_cache.lookup(key)
    if found in ("cl", "nc"):
        return found == "cl"
    pays, timings = measure(model, shape)
    return kernel_cache.store(key, "cl" if pays else "nc", timings) == "cl"
