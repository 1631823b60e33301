"""Every bundled checkpoint gives the outputs recorded when it was made.

`tests/data/bundled_outputs.json` holds, per checkpoint, a summary (count, sum, sum of magnitudes, first values)
of the latent points, decoder outputs and seeded importance weights of 8 MNIST test images;
`experiments/train_zoo.py:reference_outputs` computes it, when a model is installed and here. A change to the
engine that alters what a saved model computes fails here.

Why float64, and the tolerance. In float32 two CPUs give different last bits: another vector width (AVX-512,
AVX2, SSE) or another BLAS kernel sums in another order. A model multiplies that rounding error by its condition
number κ: the Poincaré ball's distance (1 / (1 - |z|²) near the boundary) reaches κ ≈ 700, so its float32 log
weights differed by 4e-5 relative between an AVX-512 and an AVX2 CPU (700 × u32, u32 = 6e-8), and no float32
tolerance both passes everywhere and still notices a change. So the reference and the check are computed in
float64 (the same weights, converted exactly with `.double()`): the error becomes κ · u64 (u64 = 1.1e-16).
We allow κ up to KAPPA = 1e6, 1000 times the worst one seen, giving REL = 1.1e-10; a change to what a model
computes (a weight, a constant, a formula) moves the outputs by at least float32 resolution (6e-8), far above
it. Sums are checked against REL × the sum of magnitudes (the bound for a sum whose terms carry relative error
REL), single values against REL relative or REL × their mean magnitude.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.hub import bundled_names

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from zoo_common import reference_outputs  # noqa: E402

REFERENCE = json.loads((Path(__file__).parent / "data" / "bundled_outputs.json").read_text())
KAPPA = 1e6
REL = KAPPA * torch.finfo(torch.float64).eps / 2


def _close(got: dict, ref: dict) -> None:
    assert got["n"] == ref["n"]
    assert got["abs_sum"] == pytest.approx(ref["abs_sum"], rel=REL)
    assert got["sum"] == pytest.approx(ref["sum"], abs=REL * ref["abs_sum"])
    assert got["head"] == pytest.approx(ref["head"], rel=REL, abs=REL * ref["abs_sum"] / ref["n"])


def test_every_bundled_checkpoint_has_a_reference() -> None:
    assert sorted(REFERENCE) == bundled_names()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_outputs_match_the_recorded_ones(name: str) -> None:
    model = vaecore.load(name)
    got, ref = reference_outputs(model), REFERENCE[name]
    assert sorted(got) == sorted(ref), "importance weights are recorded exactly for the models with an ELBO"
    for key in ref:
        _close(got[key], ref[key])
    assert next(model.parameters()).dtype == torch.float32, "the check converts a copy, not the model"


def test_the_float64_check_still_sees_float32_sized_changes() -> None:
    """The tolerance is far below what a real change does: nudging every weight by one float32 ulp (the smallest
    change a saved float32 model can undergo) is caught."""
    model = vaecore.load("vae")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    got, ref = reference_outputs(model), REFERENCE["vae"]
    with pytest.raises(AssertionError):
        _close(got["decoder"], ref["decoder"])
