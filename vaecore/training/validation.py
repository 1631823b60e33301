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
        from vaecore.evaluation.registry import undefined_reason

        # KL per latent dimension over training (the collapse heat map): where the engine defines it (a model
        # with its own validate() and no encode() has no such posterior to read)
        self.kl_dims = callable(getattr(model, "encode", None)) and undefined_reason(model, "kl-per-dim") is None

    def run(self) -> dict[str, float]:
        """Validation loss, ELBO (where the model defines one) and reconstruction MSE summed over pixels,
        per example, from one pass (each rank its shard, summed over ranks); `val_kl_dims`, the mean
        KL(q(z_j|x) ‖ N(0, 1)) of each latent dimension (the engine's `kl-per-dim`), where that is defined."""
        rt = self.runtime
        sums = torch.zeros(4, dtype=torch.float64, device=rt.device)  # loss·n, mse, elbo, n
        has_elbo = torch.zeros(1, device=rt.device)
        ctx = StepContext.evaluation(self.dataset_size)
        bs = self.batch_size
        kl_sums = torch.zeros(self.model.capabilities.latent_size, dtype=torch.float64, device=rt.device) \
            if self.kl_dims else None  # every rank reduces it, also one without validation images
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
                if kl_sums is not None:  # from validate()'s own pass where it gives it, else one encoder pass
                    kl_sums += v["kl_dims"].to(kl_sums) if "kl_dims" in v else self._kl_dims(x)
        distributed.all_reduce_sum(sums, rt.dist)
        distributed.all_reduce_sum(has_elbo, rt.dist)
        n = max(float(sums[3]), 1.0)
        out = {"val_loss": float(sums[0]) / n, "val_mse": float(sums[1]) / n}
        if float(has_elbo) > 0:
            out["val_elbo"] = float(sums[2]) / n
        if kl_sums is not None:
            distributed.all_reduce_sum(kl_sums, rt.dist)
        if kl_sums is not None and float(sums[3]) > 0:
            out["val_kl_dims"] = [float(v) / n for v in kl_sums]
        return out

    def _kl_dims(self, x: torch.Tensor) -> torch.Tensor:
        """Σ over the batch of KL(q(z_j|x) ‖ N(0, 1)) per latent dimension, (d,) float64."""
        from vaecore.components.posteriors import DiagonalGaussian

        mu, logvar = self.model.encode(x)
        return DiagonalGaussian(mu.flatten(1).double(), logvar.flatten(1).double()).kl_per_dimension().sum(0)

    def guard_loss(self) -> float | None:
        """The loss on the first validation images, for a checkpoint taken between epochs (None: no images)."""
        if self.x_val.shape[0] == 0:
            return None
        with evaluating(self.model), torch.random.fork_rng(devices=self.runtime.rng_devices):
            torch.manual_seed(self.seed + 1)
            return float(self.model.loss(self.x_val[:GUARD_VAL_IMAGES]).logs["loss"])
