"""The divergence guard: stop a run whose loss turns non-finite or explodes, before a bad checkpoint is kept.

A training loss is "exploded" when it rises above the best loss seen by more than `factor` times the
loss scale (the largest magnitude among the first loss, the best loss and 1); `factor=None` (TrainConfig
`divergence_factor`, `--divergence-factor`) turns that check off and keeps only the non-finite one. A checkpoint is only
declared good when every weight is finite and the validation loss is finite and not exploded either
(against the best validation loss so far; at the first one, against the best training loss).
"""

from __future__ import annotations

import math
from typing import Any

import torch

EXPLOSION_FACTOR = 100.0


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite or exploded; the run folder keeps the last good checkpoint."""


ADVICE = "Try a lower learning rate (--lr), gradient clipping (--grad-clip) or KL warm-up (--kl-warmup)."


class DivergenceGuard:
    """Tracks the loss scale of a run and raises `TrainingDiverged` with a message that says what to change."""

    def __init__(self, factor: float | None = EXPLOSION_FACTOR) -> None:
        self.factor = factor
        self.first: float | None = None
        self.best: float | None = None
        self.best_val: float | None = None

    def _limit(self, best: float) -> float:
        scale = max(abs(self.first or 0.0), abs(best), 1.0)
        return best + self.factor * scale

    def check_step(self, loss: float, step: int, last_good: int) -> None:
        """After a training step's forward pass: its loss must be finite and not exploded."""
        where = f"at step {step}"
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss} {where}; the run folder keeps the last good checkpoint "
                                   f"(step {last_good}). {ADVICE}")
        if self.first is None:
            self.first = loss
        if self.factor is not None and self.best is not None and loss > self._limit(self.best):
            raise TrainingDiverged(f"loss exploded to {loss:.4g} {where} (best so far {self.best:.4g}); the run "
                                   f"folder keeps the last good checkpoint (step {last_good}). {ADVICE}")
        self.best = loss if self.best is None else min(self.best, loss)

    def check_checkpoint(self, model: torch.nn.Module, val_loss: float | None, step: int, last_good: int) -> None:
        """Before saving a checkpoint: every weight finite, the validation loss finite and not exploded."""
        bad = [name for name, p in model.state_dict().items()
               if torch.is_floating_point(p) and not bool(torch.isfinite(p).all())]
        keep = f"the run folder keeps the last good checkpoint (step {last_good}). {ADVICE}"
        if bad:
            raise TrainingDiverged(f"weights became non-finite at step {step} ({', '.join(bad[:3])}); {keep}")
        if val_loss is None:
            return
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"validation loss became {val_loss} at step {step}; {keep}")
        ref = self.best_val if self.best_val is not None else self.best  # before any: the training losses'
        if self.factor is not None and ref is not None and val_loss > self._limit(ref):
            raise TrainingDiverged(f"validation loss exploded to {val_loss:.4g} at step {step} (best "
                                   f"{'validation' if self.best_val is not None else 'training'} loss "
                                   f"{ref:.4g}); {keep}")
        self.best_val = val_loss if self.best_val is None else min(self.best_val, val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first, "best": self.best, "best_val": self.best_val}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.first, self.best, self.best_val = state.get("first"), state.get("best"), state.get("best_val")
