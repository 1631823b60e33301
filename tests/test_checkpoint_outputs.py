"""Every bundled checkpoint gives the outputs recorded when it was made.

`tests/data/bundled_outputs.json` holds, per checkpoint, a summary of the latent points, decoder
outputs and seeded importance weights of 8 MNIST test images. Entries of checkpoints from the first
engine (one flat ModelConfig) were recorded by that engine, so they also check the conversion to
per-family configs; `experiments/train_zoo.py` records the entry of every model it installs. A
change to the engine that alters what a saved model computes fails here.
"""

import json
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.hub import bundled_names

REFERENCE = json.loads((Path(__file__).parent / "data" / "bundled_outputs.json").read_text())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return vaecore.load_dataset("mnist").x_test[:8]


def _close(t: torch.Tensor, ref: dict, rel: float = 1e-6) -> None:
    t = t.detach().double().flatten()
    scale = max(1.0, abs(ref["abs_sum"]))
    assert float(t.sum()) == pytest.approx(ref["sum"], abs=1e-5 * scale)
    assert float(t.abs().sum()) == pytest.approx(ref["abs_sum"], rel=rel)
    assert [float(v) for v in t[:6]] == pytest.approx(ref["head"], rel=1e-5, abs=1e-6)


def test_every_bundled_checkpoint_has_a_reference() -> None:
    assert sorted(REFERENCE) == bundled_names()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_outputs_match_the_recorded_ones(name: str, images: torch.Tensor) -> None:
    model = vaecore.load(name)
    ref = REFERENCE[name]
    with torch.no_grad():
        z = model.embed(images)
        _close(z, ref["latent"])
        _close(model.decode_params(z), ref["decoder"])
        assert ("log_weights" in ref) == model.capabilities.elbo
        if model.capabilities.elbo:
            g = torch.Generator().manual_seed(0)
            # float32 sums over 784 pixels: another CPU's vector width reorders them by a few parts in 1e6
            _close(model.log_importance_weights(images, 4, generator=g), ref["log_weights"], rel=1e-5)
