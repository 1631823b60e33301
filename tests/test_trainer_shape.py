"""The Trainer's shape: every attribute set in __init__, the caller's config untouched, its parts in their own
modules; VQ-VAEs built through AutoEncoder.__init__; conv_autotune reachable at its old path."""

from __future__ import annotations

from pathlib import Path

import pytest

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore.models.autoencoder import AutoEncoder
from vaecore.presets import model_config


def test_a_run_adds_no_attribute_and_leaves_the_callers_config_alone(tmp_path: Path,
                                                                    digits: vaecore.Dataset) -> None:
    model = vaecore.build_model(model_config("sigma-vae", input_shape=digits.shape, arch="mlp", latent_dim=4), seed=0)
    config = TrainConfig(data="digits", max_steps=4, batch_size=64, val_limit=100, log_every=2)
    before = config.to_dict()
    trainer = Trainer(model, digits, config, tmp_path / "run")
    attributes = set(vars(trainer))
    assert trainer.fit().status == "finished"
    assert set(vars(trainer)) == attributes, "an attribute appeared during the run"
    assert config.to_dict() == before and trainer.config is not config
    resumed = Trainer.resume(tmp_path / "run", max_steps=6)
    attributes = set(vars(resumed))
    resumed.fit()
    assert set(vars(resumed)) == attributes


def test_vq_families_build_through_the_autoencoder(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    init = AutoEncoder.__init__

    def counted(self: AutoEncoder, config: object) -> None:
        calls.append(type(self).__name__)
        init(self, config)

    monkeypatch.setattr(AutoEncoder, "__init__", counted)
    for preset in ("vqvae", "hrq-vae"):
        model = vaecore.build_preset(preset, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
        assert model.prior is None and model.latent_dim == 4
    # each is built twice (first on the meta device, to bound its size before allocating): order, not count
    assert list(dict.fromkeys(calls)) == ["VQVAE", "HRQVAE"]


def test_conv_autotune_keeps_its_old_import_path() -> None:
    from vaecore.components import conv_autotune as old
    from vaecore.runtime import conv_autotune

    assert old is conv_autotune and callable(old.enable)
