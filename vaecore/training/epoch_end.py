"""What happens after an epoch's validation: the best model so far, early stopping, sample grids.

`BestModel` tracks the lowest validation loss (its state travels in the checkpoint, so a resumed
run keeps counting), says when early stopping ends the run, and after the checkpoint of a better
epoch keeps that model in `best/` with `best.json`. `sample_grids` draws the sample and
reconstruction grids (eval mode, a forked RNG: training's random stream is untouched) and
`write_grids` saves them as `samples/epoch_NNNN.png`, `samples/recon_NNNN.png` and `samples.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaecore.files import BEST, GRIDS
from vaecore.models.base import PretrainedModel
from vaecore.training import run_folder as rf
from vaecore.utils import atomic_write_bytes, evaluating

__all__ = ["BEST", "BestModel", "sample_grids", "write_grids"]


class BestModel:
    """The best validation loss so far, early stopping, and the `best/` folder of a run."""

    def __init__(self, out_dir: Path, keep: bool, patience: int | None) -> None:
        self.out_dir = out_dir
        self.keep = keep
        self.patience = patience
        self.state: dict[str, Any] = {"val_loss": None, "step": None, "epoch": None, "bad_epochs": 0}
        self.pending = False  # a better epoch whose model is still to be copied into best/

    def update(self, val_loss: float, step: int, epoch: int) -> str | None:
        """Record an epoch's validation loss; returns the early-stopping message when the run should end."""
        best = self.state
        if best["val_loss"] is None or val_loss < best["val_loss"]:
            self.state = {"val_loss": val_loss, "step": step, "epoch": epoch, "bad_epochs": 0}
            self.pending = self.keep
        else:
            best["bad_epochs"] += 1
        if self.patience and self.state["bad_epochs"] >= self.patience:
            return (f"stopped early at epoch {epoch}: the validation loss has not improved for {self.patience} "
                    f"epochs (best {self.state['val_loss']:.4g} at epoch {self.state['epoch']}, kept in {BEST}/)")
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {**self.state, **state}

    def save(self, model: PretrainedModel, step: int) -> None:
        """best/ after the checkpoint of a better epoch (`run_folder.write_best`: its weights hard-linked to the model
        just saved, then best.json, the manifest that names their step, last)."""
        if not self.pending:
            return
        self.pending = False
        rf.write_best(self.out_dir, model, {**self.state, "step": step})


def sample_grids(model: PretrainedModel, x_val: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    """64 prior samples (where the model can draw them) and 32 validation images beside their reconstructions."""
    from vaecore.data.images import make_grid

    grids: dict[str, torch.Tensor] = {}
    with evaluating(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        caps = getattr(model, "capabilities", None)
        if caps is None or caps.prior_samples:
            g = torch.Generator(device=device).manual_seed(0)
            grids["samples"] = make_grid(model.sample(64, generator=g), nrow=8)
        x = x_val[:32].to(device)
        if x.shape[0]:
            pairs = torch.stack([x, model.reconstruct(x).to(x.dtype)], dim=1).reshape(-1, *x.shape[1:])
            grids["reconstructions"] = make_grid(pairs, nrow=8)
    return grids


def write_grids(out_dir: Path, grids: dict[str, torch.Tensor], epoch: int | None) -> None:
    """The epoch's grids under samples/ (none for `epoch` None), the latest sample grid as samples.png."""
    from vaecore.data.images import to_png_bytes

    for name, grid in grids.items():
        png = to_png_bytes(grid, scale=2)
        if epoch is not None:
            atomic_write_bytes(out_dir / GRIDS / f"{'epoch' if name == 'samples' else 'recon'}_{epoch:04d}.png",
                               png)
        if name == "samples":
            atomic_write_bytes(out_dir / rf.SAMPLES, png)
