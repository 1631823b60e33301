"""How metric passes run: the model's device, seeded generators, batches with progress (the kernels and memory
format: `vaecore.utils.evaluating`, through `vaecore.runtime.inference`).

Shared by every metric module (`vaecore/evaluation/metrics/`); nothing here knows a metric.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch

ProgressFn = Callable[[str, int, int], None]
"""Progress callback: (stage, batches done, batches in this stage)."""


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device


def generator_for(model: torch.nn.Module, seed: int) -> torch.Generator:
    """A generator on the model's device seeded `seed`."""
    return torch.Generator(device=device_of(model)).manual_seed(int(seed))


def batches(n: int, batch_size: int, stage: str, progress: ProgressFn | None) -> Iterator[slice]:
    """Slices of `batch_size` over n items, reporting (stage, done, total) after each."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = max(1, math.ceil(n / batch_size))
    for i, start in enumerate(range(0, n, batch_size)):
        yield slice(start, min(n, start + batch_size))
        if progress is not None:
            progress(stage, i + 1, total)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Fork and seed the global RNG (for model methods that take no generator)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        yield


class TqdmProgress:
    """A ProgressFn that shows one tqdm bar per stage."""

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="batch", dynamic_ncols=True, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def as_progress(progress: ProgressFn | bool | None) -> ProgressFn | None:
    """True: tqdm bars; a callable: itself; False/None: no progress."""
    if progress is True:
        return TqdmProgress()
    return progress or None
