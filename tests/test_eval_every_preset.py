"""`eval` over every preset: each metric is a number where the model defines it and None with the
reason where it does not (issue: every family comparable on the same metrics)."""

from __future__ import annotations

import math

import pytest
import torch

import vaecore
from vaecore.evaluation import metrics

NAMES = [m for m in metrics.METRICS if m not in ("knn", "classifier-score")]


@pytest.fixture(scope="module")
def mnist() -> vaecore.Dataset:
    return vaecore.load_dataset("mnist", limit=600)


def _is_number(v: object) -> bool:
    if isinstance(v, list):
        return all(_is_number(e) for e in v)
    return isinstance(v, int | float) and math.isfinite(v)


@pytest.mark.parametrize("name", sorted(vaecore.PRESETS))
def test_every_metric_is_defined_or_says_why(name: str, mnist: vaecore.Dataset) -> None:
    model = vaecore.build_preset(name, input_shape=mnist.shape, arch="mlp", latent_dim=4, seed=0).eval()
    torch.manual_seed(0)
    out = metrics.evaluate(model, mnist, NAMES, n_test=16, iwae_k=4, n_samples=64, batch_size=16)
    caps = model.capabilities
    for metric in NAMES:
        value, note = out[metric], out["notes"].get(metric)
        if value is None:
            assert note, f"{name}: {metric} is None without a reason"
        else:
            assert _is_number(value), f"{name}: {metric} = {value!r}"
    bounds = ("elbo", "iwae")  # defined with a posterior density, unless the likelihood cannot score these images
    scores = metrics.undefined_reason(model, "elbo", mnist) is None or not caps.elbo
    assert all((out[m] is not None) == (caps.elbo and scores) for m in bounds), \
        (name, {m: out[m] for m in bounds}, out["notes"])
    assert out["mse"] is not None
    assert (out["fd"] is not None) == caps.prior_samples, (name, out["notes"].get("fd"))
