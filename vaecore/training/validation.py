"""Validation during training: the epoch's single pass, and the guard's quick check between epochs.

Both run in eval mode without gradients, on a forked RNG seeded from the run's seed, so validating
never changes the training's random stream (resume stays exact) and the same weights give the
same numbers.
"""

from __future__ import annotations

import torch

from vaecore.models.base import PretrainedModel
from vaecore.training import distributed
from vaecore.training.runtime import Runtime
from vaecore.training.steps import StepContext, validation_batch
from vaecore.utils import evaluating

GUARD_VAL_IMAGES = 500
__all__ = ["GUARD_VAL_IMAGES", "Validation"]


class Validation:
    """This rank's validation images of a run and the two ways the trainer scores them."""

    def __init__(self, model: PretrainedModel, x_val: torch.Tensor, runtime: Runtime, seed: int, batch_size: int,
                 dataset_size: int) -> None:
        self.model = model
        self.x_val = x_val
        self.runtime = runtime
        self.seed = seed
        self.batch_size = batch_size
        self.dataset_size = dataset_size

    def run(self) -> dict[str, float]:
        """Validation loss, ELBO (where the model defines one) and reconstruction MSE summed over pixels,
        per example, from one pass (each rank its shard, summed over ranks)."""
        rt = self.runtime
        sums = torch.zeros(4, dtype=torch.float64, device=rt.device)  # loss·n, mse, elbo, n
        has_elbo = torch.zeros(1, device=rt.device)
        ctx = StepContext.evaluation(self.dataset_size)
        bs = self.batch_size
        with evaluating(self.model), torch.random.fork_rng(devices=rt.rng_devices):
            torch.manual_seed(self.seed + 1 + rt.dist.rank)
            for i in range(0, self.x_val.shape[0], bs):
                x = rt.prepare(self.x_val[i:i + bs])
                v = validation_batch(self.model, x, ctx)
                sums[0] += v["loss"].double() * x.shape[0]
                sums[1] += v["mse"].double().sum()
                if "elbo" in v:
                    sums[2] += v["elbo"].double().sum()
                    has_elbo.fill_(1)
                sums[3] += x.shape[0]
        distributed.all_reduce_sum(sums, rt.dist)
        distributed.all_reduce_sum(has_elbo, rt.dist)
        n = max(float(sums[3]), 1.0)
        out = {"val_loss": float(sums[0]) / n, "val_mse": float(sums[1]) / n}
        if float(has_elbo) > 0:
            out["val_elbo"] = float(sums[2]) / n
        return out

    def guard_loss(self) -> float | None:
        """The loss on the first validation images, for a checkpoint taken between epochs (None: no images)."""
        if self.x_val.shape[0] == 0:
            return None
        with evaluating(self.model), torch.random.fork_rng(devices=self.runtime.rng_devices):
            torch.manual_seed(self.seed + 1)
            return float(self.model.loss(self.x_val[:GUARD_VAL_IMAGES]).logs["loss"])
