"""Per-layer choice of convolution kernel on the CPU: PyTorch's own (oneDNN) or a GEMM lowering.

oneDNN is fast on wide feature maps but slow on the small ones of MNIST-sized networks: Pythae's
ConvNet spends most of its time in a 512→1024 convolution whose output is 1×1 and in transposed
convolutions over 4×4 and 7×7 maps, which a single matrix product (unfold → GEMM, or GEMM →
fold for a transposed convolution) computes up to six times faster; on other layers oneDNN is twice as
fast. Which kernel wins depends on the shape, dtype, ISA and threads, so this module measures, like
`torch.backends.cudnn.benchmark`: the first call of a layer with a new input signature (shape, dtype,
layout, with or without backward) times both on the first `TRAIN_PROBE` (with backward) or `EVAL_PROBE`
(without) images of that batch, or on the whole batch where the layer is cheap (`timing.best_times`: a warm-up
call each, then interleaved calls until the choice is settled), and takes the GEMM only when it needs at most
`MARGIN` of oneDNN's time. The choice is kept per machine (`kernel_cache`: the signature covers CPU, ISA caps,
threads and torch), so the next run on this machine reads it instead of timing again. A batch of 64 or fewer, such as
a sample grid, takes the choice this machine made for a larger batch of the same images, when it made one.
Every choice comes from the machine's table and a key keeps its first choice for the life of the process, so
two instances of a model (one trained, one loaded) compute bit-identically.

The weights, their names and the function computed are those of the original modules (the
lowering differs only in float rounding), so checkpoints and loading are untouched. The choices
are part of a run's state (`choices` / `load_choices`), so a resumed run picks the same kernels
and stays exact. `vaecore.runtime.policy.deterministic()` runs keep PyTorch's kernels everywhere.
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaecore.runtime import kernel_cache, policy, timing

NATIVE, GEMM = "native", "gemm"
_CHOICES = "_vaecore_conv_choices"
_THREADS = "_vaecore_conv_threads"  # the thread count a layer's choices were made under
MARGIN = 0.9  # the GEMM is chosen only when it takes at most this fraction of oneDNN's time
SMALL_BATCH = 64  # a batch this small takes the choice of a tuned one of the same image shape, when there is one
EVAL_PROBE = 128  # a signature without backward is timed on at most this many of its images (inference batches are
# large: timing a whole batch of 500 through Pythae's ConvNet cost 8 passes' time once per machine, this a quarter)
TRAIN_PROBE = 32  # and one with backward on at most this many (timing all 100 images of the ConvNet's training
# batch cost 9 training steps once per machine; its large layers choose alike on 32, 50 and 100 images:
# `bench/kernel_probe.py`)
WHOLE_BELOW = 0.05  # seconds: a layer whose probe projects to less than this on the whole batch is timed again on
# the whole batch (cheap, and small layers' kernels do not scale with the batch alike: cache effects)
__all__ = ["GEMM", "NATIVE", "choices", "conv2d_gemm", "conv_transpose2d_gemm", "disable", "enable",
           "layer_geometry", "load_choices", "measure", "native_kernels"]
_native = threading.local()


def conv2d_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                padding: tuple[int, int]) -> Tensor:
    """`F.conv2d` (groups 1, dilation 1, zero padding) as unfold → one (B·L, C·k²) × (C·k², O) GEMM;
    the output has the input's memory format, as PyTorch's convolution's does."""
    x = x.to(_compute_dtype(x))
    b, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho = (h + 2 * padding[0] - kh) // stride[0] + 1
    wo = (w + 2 * padding[1] - kw) // stride[1] + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride).transpose(1, 2).reshape(b * ho * wo, -1)
    flat = weight.reshape(o, -1).t()
    y = cols @ flat if bias is None else torch.addmm(bias.to(cols.dtype), cols, flat.to(cols.dtype))
    y = y.reshape(b, ho, wo, o).permute(0, 3, 1, 2)  # a channels-last view
    return y if _channels_last(x) else y.contiguous()


def conv_transpose2d_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                          padding: tuple[int, int], output_padding: tuple[int, int]) -> Tensor:
    """`F.conv_transpose2d` (groups 1, dilation 1) as one (B·HW, C) × (C, O·k²) GEMM and a fold."""
    x = x.to(_compute_dtype(x))
    b, c, h, w = x.shape
    _, o, kh, kw = weight.shape
    ho = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    wo = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
    cols = (rows @ weight.reshape(c, -1).to(rows.dtype)).reshape(b, h * w, -1).transpose(1, 2)
    y = F.fold(cols, (ho, wo), (kh, kw), padding=padding, stride=stride)
    y = y if bias is None else y + bias.to(y.dtype)[:, None, None]
    return y.contiguous(memory_format=torch.channels_last) if _channels_last(x) else y


def _channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _compute_dtype(x: Tensor) -> torch.dtype:
    """autocast's dtype where it is on (cast before unfolding: the unfolded copy is k² times larger)."""
    return torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype


def _eligible(m: nn.Module) -> bool:
    """Layers the lowering covers: 2-D, ungrouped, undilated, zero-padded by a number per side."""
    if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or m.groups != 1 or m.dilation != (1, 1):
        return False
    return isinstance(m, nn.ConvTranspose2d) or (m.padding_mode == "zeros" and not isinstance(m.padding, str))


def _gemm_forward(m: nn.Module) -> Callable[[Tensor], Tensor]:
    if isinstance(m, nn.ConvTranspose2d):
        return lambda x: conv_transpose2d_gemm(x, m.weight, m.bias, m.stride, m.padding, m.output_padding)
    return lambda x: conv2d_gemm(x, m.weight, m.bias, m.stride, m.padding)


def _signature(m: nn.Module, x: Tensor) -> str:
    """What the kernel choice depends on: shape, dtype (autocast's where active), layout, and whether
    a backward pass will follow."""
    dtype = _compute_dtype(x)
    grad = torch.is_grad_enabled() and (x.requires_grad or m.weight.requires_grad)
    layout = "cl" if _channels_last(x) else "nc"
    return f"{'x'.join(map(str, x.shape))}/{str(dtype).removeprefix('torch.')}/{layout}/{'train' if grad else 'eval'}"


def layer_geometry(m: nn.Module) -> str:
    """The layer's shape of computation (what a cached choice applies to, whatever the module's name)."""
    kind = "convT" if isinstance(m, nn.ConvTranspose2d) else "conv"
    extra = f"o{m.output_padding}" if isinstance(m, nn.ConvTranspose2d) else ""
    return (f"{kind}{tuple(m.weight.shape)}s{m.stride}p{m.padding}{extra}b{int(m.bias is not None)}"
            .replace(" ", ""))


def _call(fn: Callable[[Tensor], Tensor], x: Tensor, m: nn.Module, grad: bool) -> Callable[[], object]:
    """One call of `fn` on `x`, with its backward when `grad` (off the real graph: nothing accumulates)."""
    def run() -> object:
        xi = x.detach().requires_grad_(x.requires_grad) if grad else x
        y = fn(xi)
        if not grad:
            return y
        inputs = [p for p in (m.weight, m.bias) if p is not None and p.requires_grad]
        return torch.autograd.grad(y, inputs + ([xi] if xi.requires_grad else []), torch.ones_like(y))
    return run


def measure(m: nn.Module, x: Tensor, grad: bool) -> tuple[str, dict[str, float]]:
    """Time oneDNN's kernel and the GEMM lowering of layer `m` on input `x` (with backward when `grad`):
    the chosen kernel and each one's best time in seconds."""
    calls = {NATIVE: _call(type(m).forward.__get__(m), x, m, grad), GEMM: _call(_gemm_forward(m), x, m, grad)}
    best = timing.best_times(calls, challenger=GEMM, baseline=NATIVE, margin=MARGIN)
    return (GEMM if best[GEMM] <= MARGIN * best[NATIVE] else NATIVE), best


def _measure_batch(m: nn.Module, x: Tensor, grad: bool) -> tuple[str, dict[str, float]]:
    """`measure` on a probe of the batch (`TRAIN_PROBE` / `EVAL_PROBE` images), or on the whole batch when it is
    no larger or the layer is cheap on it (`WHOLE_BELOW`)."""
    probe = TRAIN_PROBE if grad else EVAL_PROBE
    if x.shape[0] <= probe:
        return measure(m, x, grad)
    choice, timings = measure(m, x[:probe], grad)
    if timings[NATIVE] * x.shape[0] / probe < WHOLE_BELOW:
        return measure(m, x, grad)
    return choice, timings


def _tuned_forward(self: nn.Module, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    native = type(self).forward.__get__(self)
    if args or kwargs or x.device.type != "cpu" or x.dim() != 4:  # e.g. ConvTranspose2d's output_size
        return native(x, *args, **kwargs)
    if policy.deterministic() or getattr(_native, "on", False):
        return native(x)
    table: dict[str, str] = getattr(self, _CHOICES)
    threads = torch.get_num_threads()
    if getattr(self, _THREADS, threads) != threads:  # chosen under another thread count: choose again, as a
        table.clear()  # fresh instance would (the machine's table is per thread count)
    setattr(self, _THREADS, threads)
    key = _signature(self, x)
    choice = table.get(key)
    if choice is None:  # from the machine's choices, so every instance of a layer computes alike in a process
        geometry = layer_geometry(self)
        shared = f"{geometry}|{key}"
        choice = kernel_cache.lookup(shared)
        if choice not in (NATIVE, GEMM) and x.shape[0] <= SMALL_BATCH:  # a sample grid: a larger batch's choice
            rest = key.split("x", 1)[1]
            prefix = f"{geometry}|"
            found = kernel_cache.find(lambda k: k.startswith(prefix) and k[len(prefix):].split("x", 1)[-1] == rest)
            choice = None if found is None else kernel_cache.store(shared, found, {})
        if choice not in (NATIVE, GEMM):
            grad = key.endswith("/train")
            choice, timings = _measure_batch(self, x, grad)
            choice = kernel_cache.store(shared, choice, timings)
        table[key] = choice
    return native(x) if choice == NATIVE else _gemm_forward(self)(x)


@contextlib.contextmanager
def native_kernels() -> Iterator[None]:
    """PyTorch's own kernels for every tuned layer, in this thread, for the block (e.g. while another choice is
    measured)."""
    before = getattr(_native, "on", False)
    _native.on = True
    try:
        yield
    finally:
        _native.on = before


def enable(model: nn.Module) -> int:
    """Let every eligible Conv2d / ConvTranspose2d of `model` pick its CPU kernel by measurement;
    returns how many layers take part. Idempotent; `disable` restores the modules' own forward."""
    n = 0
    for m in model.modules():
        if _eligible(m):
            if not hasattr(m, _CHOICES):
                setattr(m, _CHOICES, {})
                m.forward = types.MethodType(_tuned_forward, m)
            n += 1
    return n


def disable(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, _CHOICES):
            del m.forward
            delattr(m, _CHOICES)
            if hasattr(m, _THREADS):
                delattr(m, _THREADS)


def choices(model: nn.Module) -> dict[str, dict[str, str]]:
    """The kernels chosen so far, by module name and input signature (JSON-ready)."""
    return {name: dict(getattr(m, _CHOICES)) for name, m in model.named_modules()
            if getattr(m, _CHOICES, None)}


def load_choices(model: nn.Module, state: dict[str, Any] | None) -> None:
    """Re-apply recorded choices (a resumed run), so it computes with the kernels it had."""
    modules = dict(model.named_modules())
    for name, table in (state or {}).items():
        m = modules.get(name)
        if m is not None and hasattr(m, _CHOICES):
            getattr(m, _CHOICES).update({k: v for k, v in table.items() if v in (NATIVE, GEMM)})
            setattr(m, _THREADS, torch.get_num_threads())
