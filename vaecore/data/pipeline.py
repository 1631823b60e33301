"""Training batches: this rank's shard of each global batch of an epoch's permutation, read from the
dataset's store — directly for data in memory, through a `torch.utils.data.DataLoader` with worker
processes for data on disk — with per-batch augmentation drawn for the whole global batch from a
generator seeded by (seed, epoch, batch) alone, each rank taking its slice: a resumed run, any number of
workers and any number of ranks see the same images.

- `shard_rows`: rank r of w takes the r-th contiguous slice of batch_size / w rows of each global batch
  (the ranks' rows are disjoint and together are the global batch);
- horizontal flip: each image flipped with probability ½ (on uint8, exact);
- uniform dequantisation for continuous likelihoods: x = (k + u) / 256, u ~ U[0, 1) per value, on the
  device, instead of k / 255 (8-bit data only);
- binarization (`vaecore.data.binarize`): Bernoulli bits of the grey levels, drawn for the whole training
  set per epoch ("dynamic") or once ("static"), for data in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vaecore.data.storage import ImageStore, to_unit

__all__ = ["Augment", "BatchStream", "TrainBatches", "batch_generator", "dequantize", "hflip", "shard_rows"]


@dataclass(frozen=True)
class Augment:
    """Per-batch training augmentation: horizontal flips, uniform dequantisation, and binarization (the
    training images drawn as Bernoulli bits of their grey levels per epoch or once, `vaecore.data.binarize`)."""

    hflip: bool = False
    dequantize: bool = False
    binarize: str = "none"


def shard_rows(perm: Tensor, index: int, batch_size: int, rank: int = 0, world: int = 1) -> Tensor:
    """Rows of rank `rank`'s shard of global batch `index` of the permutation `perm`."""
    local = batch_size // world
    start = index * batch_size + rank * local
    return perm[start:start + local]


def batch_generator(seed: int, epoch: int, index: int, tag: int, device: torch.device | str = "cpu"
                    ) -> torch.Generator:
    """A generator seeded by (seed, epoch, batch, tag) alone."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index), int(tag)])
    return torch.Generator(device=device).manual_seed(int(state.generate_state(1, np.uint64)[0] >> 1))


def hflip(x: Tensor, generator: torch.Generator, offset: int = 0, total: int | None = None) -> Tensor:
    """Images (B, C, H, W) mirrored left-right with probability ½ each: the draws are made for a global batch
    of `total` images (on the CPU) and x is its part from `offset`."""
    total = x.shape[0] if total is None else total
    mask = (torch.rand(total, generator=generator) < 0.5)[offset:offset + x.shape[0]].to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def dequantize(x: Tensor, generator: torch.Generator, offset: int = 0, total: int | None = None) -> Tensor:
    """uint8 `k` → float32 `(k + u) / 256`, u ~ U[0, 1) drawn for a global batch of `total` images (on x's
    device), x being its part from `offset`."""
    if x.dtype != torch.uint8:
        raise ValueError("dequantisation needs 8-bit data (uint8 images); this dataset is stored as floats")
    total = x.shape[0] if total is None else total
    u = torch.rand((total, *x.shape[1:]), generator=generator, device=x.device, dtype=torch.float32)
    return (x.to(torch.float32) + u[offset:offset + x.shape[0]]).div_(256)


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
            x = hflip(x, batch_generator(self.seed, self.epoch, index, 1), self.rank * x.shape[0], self.batch_size)
        return x


class BatchStream:
    """The batches of one epoch from batch `start`, as float32 on `device`: `next_batch()` in order."""

    def __init__(self, store: ImageStore, perm: Tensor, batch_size: int, *, start: int, stop: int, seed: int,
                 epoch: int, rank: int = 0, world: int = 1, augment: Augment = Augment(), workers: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seed, self.epoch, self.rank, self.augment, self.batch_size = seed, epoch, rank, augment, batch_size
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
            gen = batch_generator(self.seed, self.epoch, self.index, 2, self.device)
            x = dequantize(x, gen, self.rank * x.shape[0], self.batch_size)
        else:
            x = to_unit(x)
        self.index += 1
        return x


class TrainBatches:
    """The training batches of a run, by (epoch, index): rank `rank`'s shard of global batch `index` of the
    epoch's permutation (`datasets.epoch_permutation(n, seed, epoch)`), float32 on `device`.

    A dataset in memory is indexed directly (its uint8 images moved to a CUDA device once when they take
    under a quarter of its free memory); a dataset on disk streams through a DataLoader with `workers`
    processes, restarted where a resumed run asks.
    """

    def __init__(self, store: ImageStore, *, batch_size: int, seed: int, device: torch.device | str,
                 rank: int = 0, world: int = 1, augment: Augment = Augment(), workers: int = 0) -> None:
        self.device = torch.device(device)
        self.n, self.batch_size, self.seed = len(store), batch_size, seed
        self.rank, self.world, self.augment, self.workers = rank, world, augment, workers
        if augment.dequantize and store.dtype != torch.uint8:
            raise ValueError("dequantize needs 8-bit data (uint8 images); this dataset is stored as floats")
        if augment.dequantize and augment.binarize != "none":
            raise ValueError("dequantize and binarize do not combine: binarized images are 0 or 1")
        if store.in_memory and self.device.type == "cuda" and store.device != self.device:
            free, _ = torch.cuda.mem_get_info(self.device)
            store = store.to(self.device) if store.nbytes < free // 4 else store
        self.store = store
        self.binarizer = None
        if augment.binarize != "none":
            from vaecore.data.binarize import Binarizer

            if not store.in_memory:
                raise ValueError("binarize draws the whole training set each epoch: use data storage 'memory'")
            self.binarizer = Binarizer(store.take(slice(None)).to(self.device), augment.binarize, seed)
        self._perm: tuple[int, Tensor] | None = None
        self._stream: BatchStream | None = None

    def permutation(self, epoch: int) -> Tensor:
        from vaecore.data.datasets import epoch_permutation

        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, epoch_permutation(self.n, self.seed, epoch))
        return self._perm[1]

    def batch(self, epoch: int, index: int) -> Tensor:
        """Batch `index` of epoch `epoch` (this rank's shard), float32 in [0, 1] (or dequantised)."""
        steps = self.n // self.batch_size
        if not self.store.in_memory:
            s = self._stream
            if s is None or s.epoch != epoch or s.index != index:
                self._stream = s = BatchStream(self.store, self.permutation(epoch), self.batch_size, start=index,
                                               stop=max(steps, index + 1), seed=self.seed, epoch=epoch,
                                               rank=self.rank, world=self.world, augment=self.augment,
                                               workers=self.workers, device=self.device)
            return s.next_batch()
        rows = shard_rows(self.permutation(epoch), index, self.batch_size, self.rank, self.world)
        if self.binarizer is not None:
            x = self.binarizer.batch(epoch, rows.to(self.device))
        else:
            x = self.store.take(rows)
            x = x.to(self.device, non_blocking=x.device.type == "cpu" and x.is_pinned())
        offset = self.rank * x.shape[0]
        if self.augment.hflip:
            x = hflip(x, batch_generator(self.seed, epoch, index, 1), offset, self.batch_size)
        if self.binarizer is not None:
            return x
        if self.augment.dequantize:
            return dequantize(x, batch_generator(self.seed, epoch, index, 2, self.device), offset, self.batch_size)
        return to_unit(x)
