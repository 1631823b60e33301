"""Training batches: this rank's shard of each global batch of an epoch's permutation, read from the
dataset's store — directly for data in memory, through a `torch.utils.data.DataLoader` with worker
processes for data on disk — with per-batch augmentation that depends only on (seed, epoch, batch,
rank), so a resumed run and any number of workers see the same batches.

- `shard_rows`: rank r of w takes the r-th contiguous slice of batch_size / w rows of each global batch
  (the ranks' rows are disjoint and together are the global batch);
- horizontal flip: each image flipped with probability ½ (on uint8, exact);
- uniform dequantisation for continuous likelihoods: x = (k + u) / 256, u ~ U[0, 1) per value, on the
  device, instead of k / 255 (8-bit data only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vaecore.data.storage import ImageStore, to_unit

__all__ = ["Augment", "BatchStream", "batch_generator", "dequantize", "hflip", "shard_rows"]


@dataclass(frozen=True)
class Augment:
    """Per-batch training augmentation: horizontal flips, uniform dequantisation."""

    hflip: bool = False
    dequantize: bool = False


def shard_rows(perm: Tensor, index: int, batch_size: int, rank: int = 0, world: int = 1) -> Tensor:
    """Rows of rank `rank`'s shard of global batch `index` of the permutation `perm`."""
    local = batch_size // world
    start = index * batch_size + rank * local
    return perm[start:start + local]


def batch_generator(seed: int, epoch: int, index: int, rank: int, tag: int, device: torch.device | str = "cpu"
                    ) -> torch.Generator:
    """A generator seeded by (seed, epoch, batch, rank, tag) alone."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index), int(rank), int(tag)])
    return torch.Generator(device=device).manual_seed(int(state.generate_state(1, np.uint64)[0] >> 1))


def hflip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image of (B, C, H, W) mirrored left-right with probability ½ (the draws from `generator`, on the CPU)."""
    mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def dequantize(x: Tensor, generator: torch.Generator) -> Tensor:
    """uint8 `k` → float32 `(k + u) / 256`, u ~ U[0, 1) drawn from `generator` (on x's device)."""
    if x.dtype != torch.uint8:
        raise ValueError("dequantisation needs 8-bit data (uint8 images); this dataset is stored as floats")
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return (x.to(torch.float32) + u).div_(256)


class _EpochBatches(torch.utils.data.Dataset):
    """Batches `start..stop` of one epoch as uint8/float tensors in the store's dtype (flipped if asked)."""

    def __init__(self, store: ImageStore, perm: Tensor, batch_size: int, rank: int, world: int, start: int,
                 stop: int, seed: int, epoch: int, augment: Augment) -> None:
        self.store, self.perm, self.batch_size = store, perm, batch_size
        self.rank, self.world, self.start, self.stop = rank, world, start, stop
        self.seed, self.epoch, self.augment = seed, epoch, augment

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> Tensor:
        index = self.start + i
        x = self.store.take(shard_rows(self.perm, index, self.batch_size, self.rank, self.world))
        if self.augment.hflip:
            x = hflip(x, batch_generator(self.seed, self.epoch, index, self.rank, 1))
        return x


class BatchStream:
    """The batches of one epoch from batch `start`, as float32 on `device`: `next_batch()` in order."""

    def __init__(self, store: ImageStore, perm: Tensor, batch_size: int, *, start: int, stop: int, seed: int,
                 epoch: int, rank: int = 0, world: int = 1, augment: Augment = Augment(), workers: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seed, self.epoch, self.rank, self.augment = seed, epoch, rank, augment
        self.index = start
        batches = _EpochBatches(store, perm.cpu(), batch_size, rank, world, start, stop, seed, epoch, augment)
        if store.in_memory or workers == 0:
            self._it: Iterator[Tensor] = (batches[i] for i in range(len(batches)))
        else:
            import multiprocessing

            loader = torch.utils.data.DataLoader(
                batches, batch_size=None, shuffle=False, num_workers=workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=4,
                multiprocessing_context=multiprocessing.get_context("fork"))
            self._it = iter(loader)

    def next_batch(self) -> Tensor:
        """The next batch, float32 in [0, 1] (dequantised when asked) on the device."""
        x = next(self._it)
        x = x.to(self.device, non_blocking=x.is_pinned())
        if self.augment.dequantize:
            x = dequantize(x, batch_generator(self.seed, self.epoch, self.index, self.rank, 2, self.device))
        else:
            x = to_unit(x)
        self.index += 1
        return x
