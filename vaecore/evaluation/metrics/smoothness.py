"""Decoder smoothness: AR-ELBO's expected gap Δ²(s²) and the expected local smoothness it estimates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vaecore.evaluation.registry import Direction, EvalContext, Metric, register_metric, register_pass
from vaecore.evaluation.runtime import ProgressFn, batches, device_of
from vaecore.utils import evaluating

GAP_S = 0.1

EXPECTED_GAP = register_metric(Metric(
    "expected-gap", "expected gap Δ²(s²)", "Δ²", "squared [0, 1] pixel values", Direction.NONE,
    "decoder smoothness",
    f"Δ²(s²) = E_x E_ε,ε' ‖μθ(μφ(x)+ε) − μθ(μφ(x)+ε')‖², ε, ε' ~ N(0, s²I), s = {GAP_S}; squared pixel units "
    "summed over D; expected-gap_smoothness = Δ²/(2 s² d_z), the expected local smoothness as AR-ELBO's Table 1 "
    "prints it (≈ E‖∇μθ‖²_F / d_z, their eq. 27)",
    pass_name="expected-gap",
    extras={"expected-gap_s": "the noise scale s of the latent perturbations",
            "expected-gap_smoothness": "Δ²/(2 s² d_z): the expected local smoothness (AR-ELBO Table 1)"}))


def expected_gap(model: torch.nn.Module, x: Tensor, s: float = GAP_S, n_pairs: int = 5, batch_size: int = 200,
                 generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> dict[str, float]:
    """AR-ELBO's expected gap Δ²(s²) and expected local smoothness Δ²/(2 s² d_z) of the decoder mean.

    Δ²(s²) = E_x E_{ε,ε'} ‖μθ(μφ(x)+ε) − μθ(μφ(x)+ε')‖² with ε, ε' ~ N(0, s²I), summed over pixels,
    averaged over x and `n_pairs` pairs per image. For small s, Δ²/(2s²) ≈ E_x ‖∇μθ(μφ(x))‖²_F; the
    paper's Table 1 prints that divided by the latent size d_z (its eq. 27), and so does "smoothness".
    Returns {"s", "gap", "smoothness"}.
    """
    if s <= 0 or n_pairs < 1:
        raise ValueError(f"need s > 0 and n_pairs >= 1, got s={s}, n_pairs={n_pairs}")
    device = device_of(model)
    total = torch.zeros((), dtype=torch.float64)
    with evaluating(model):
        for sl in batches(x.shape[0], batch_size, "expected-gap", progress):
            m = model.embed(x[sl])
            eps = torch.randn((2, n_pairs, *m.shape), generator=generator, device=device) * s
            out = model.decode((m.unsqueeze(0).unsqueeze(0) + eps).reshape(-1, m.shape[1]))
            a, b = out.reshape(2, n_pairs * m.shape[0], -1).double()
            total += ((a - b) ** 2).sum().cpu()
    gap = float(total) / (x.shape[0] * n_pairs)
    return {"s": float(s), "gap": gap, "smoothness": gap / (2 * s * s * m.shape[1])}


@register_pass("expected-gap")
def _expected_gap_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    gap = expected_gap(ctx.model, ctx.x, GAP_S, generator=ctx.generator(2), progress=ctx.progress)
    ctx.out["expected-gap"] = gap["gap"]
    ctx.out["expected-gap_s"] = gap["s"]
    ctx.out["expected-gap_smoothness"] = gap["smoothness"]
