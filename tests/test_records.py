"""Every key a preset logs is described in vaecore.training.records, so readers never guess its meaning."""

from __future__ import annotations

import torch

import vaecore
from vaecore.components.context import StepContext
from vaecore.training.records import LOG_KEYS, describe


def test_every_logged_key_of_every_preset_is_described() -> None:
    missing: dict[str, list[str]] = {}
    x = torch.rand(8, 1, 8, 8)
    for name in vaecore.PRESETS:
        model = vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0).train()
        logs = model.loss(x, StepContext(step=1, total_steps=10, dataset_size=100)).logs
        unknown = sorted(set(logs) - set(LOG_KEYS))
        if unknown:
            missing[name] = unknown
    assert not missing, f"describe these keys in vaecore/training/records.py: {missing}"


def test_describe_falls_back_to_the_name() -> None:
    assert describe("log_sigma").scale_trace and describe("nosuch").label == "nosuch"
