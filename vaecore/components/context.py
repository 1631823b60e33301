"""The step context: what a training step knows beyond its batch.

The Trainer builds one per step and passes it to `model.loss(x, ctx)` and to the epoch hook;
schedules (KL warm-up, capacity, tempering) and estimators that need the dataset size read it.
Outside training (`ctx=None`) models use `StepContext.evaluation()`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepContext:
    """Where a step is in its run: `step` counts the steps done before this one."""

    step: int = 0
    epoch: int = 0
    total_steps: int = 0
    steps_per_epoch: int = 1
    dataset_size: int = 0
    kl_weight: float = 1.0
    training: bool = True

    @classmethod
    def evaluation(cls, dataset_size: int = 0) -> StepContext:
        """The context of a validation or evaluation pass: full KL weight, not training."""
        return cls(training=False, dataset_size=dataset_size)

    @property
    def progress(self) -> float:
        """Fraction of the run done, in [0, 1] (1 when the length is unknown)."""
        return min(1.0, self.step / self.total_steps) if self.total_steps else 1.0
