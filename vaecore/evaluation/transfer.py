"""The T-VAE's transfer check: does z + k·T decode to the ground truth f^k(x) better than doing nothing (the k = 0
reconstruction at every k)? Squared errors per image, paired differences and verdicts by the uncertainty rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from vaecore.evaluation.uncertainty import Difference, mean_se
from vaecore.evaluation.uncertainty import verdict as rule_verdict
from vaecore.models.tvae import apply_transformation

__all__ = ["TransferCheck", "transfer_check"]


@dataclass(frozen=True)
class TransferCheck:
    """How well z + k·T decodes to the ground truth f^k(x), against doing nothing.

    `moved[b, j]`: squared error (summed over pixels) of decode(μ(x_b) + k_j·T) to f^{k_j}(x_b);
    `still[b, j]`: the same for the "do nothing" baseline, the k = 0 decode (the reconstruction) for every k.
    A T that transfers the transformation beats the baseline at k = ±1; a T that changes something else (the
    digit's identity) does not.
    """

    ks: tuple[int, ...]
    moved: Tensor
    still: Tensor

    def error(self, k: int, baseline: bool = False) -> Any:
        """Mean squared error at step k over the images, ± its SE (an `uncertainty.Estimate`)."""
        return mean_se((self.still if baseline else self.moved)[:, self.ks.index(k)].double().numpy())

    def gain(self, k: int) -> Any:
        """moved − still at step k, paired over the same images (negative: T does better than doing nothing)."""
        e = mean_se((self.moved - self.still)[:, self.ks.index(k)].double().numpy())
        return Difference(e.value, e.se, e.n, True)

    def verdict(self, k: int) -> Any:
        """'better' / 'worse' / 'undecided' for z + k·T against doing nothing, by `uncertainty.RULE`."""
        return rule_verdict(self.gain(k), "lower")


def transfer_check(model: Any, images: Tensor, T: Tensor, truth: Tensor, steps: int = 1) -> TransferCheck:
    """`TransferCheck` of T on `images` (B, C, H, W), with `truth` (B, 2·steps + 1, C, H, W) the images under
    f^k for k = -steps..steps (column `steps` is the images themselves)."""
    out = apply_transformation(model, images, T, steps).cpu().double()
    truth = truth.to(out.dtype).cpu()
    if truth.shape != out.shape:
        raise ValueError(f"the ground truth has shape {tuple(truth.shape)}, expected {tuple(out.shape)} "
                         f"(images × k = -{steps}..{steps} × C × H × W)")
    moved = ((out - truth) ** 2).flatten(2).sum(-1)
    still = ((out[:, steps:steps + 1] - truth) ** 2).flatten(2).sum(-1)
    return TransferCheck(tuple(range(-steps, steps + 1)), moved, still)
