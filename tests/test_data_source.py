"""A run folder reads back the data it trained on (name, folder, limit and the seed of its splits), the one way
the CLI, resume and the app read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore import TrainConfig
from vaecore.files import APP_RUN
from vaecore.training import run_folder as rf


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, vaecore.Dataset]:
    data = vaecore.load_dataset("digits", limit=300, seed=3)
    out = tmp_path_factory.mktemp("run")
    vaecore.train("sigma-vae", data, out, TrainConfig(max_steps=2, batch_size=32, log_every=1, val_limit=50, seed=0),
                  arch="mlp", latent_dim=2)
    return out, data


def test_the_data_source_reads_back_what_the_run_used(run: tuple[Path, vaecore.Dataset]) -> None:
    folder, data = run
    source = rf.read_data_source(folder)
    assert source == rf.DataSource("digits", None, 300, 3) and not source.built_in_python
    again = source.load()
    for split in ("train", "val", "test"):
        assert torch.equal(again.split(split)[0], data.split(split)[0]), split
    assert source.load(limit=None).x_train.shape[0] > 300


def test_the_app_reads_the_same_source_with_its_seed(run: tuple[Path, vaecore.Dataset], tmp_path: Path) -> None:
    from explorer import caches

    folder, data = run
    assert caches.run_source(folder) == rf.read_data_source(folder)
    assert torch.equal(caches.run_dataset(folder).x_val, data.x_val)  # the seed's split, not seed 0's
    assert not torch.equal(vaecore.load_dataset("digits", limit=300, seed=0).x_val, data.x_val)
    pending = tmp_path / "pending"  # a run the app started that has not written train.json yet
    pending.mkdir()
    (pending / APP_RUN).write_text(json.dumps({"preset": "sigma-vae", "data": "digits",
                                                             "data_dir": None, "train": {"seed": 5, "limit": 100}}))
    assert caches.run_source(pending) == rf.DataSource("digits", None, 100, 5)


def test_a_dataset_built_in_python_cannot_be_reloaded(tmp_path: Path) -> None:
    digits = vaecore.load_dataset("digits")
    handmade = vaecore.Dataset("mine", digits.x_train[:64], None, digits.x_val[:16], None, digits.x_test[:16], None)
    vaecore.train("sigma-vae", handmade, tmp_path, TrainConfig(max_steps=1, batch_size=32, val_limit=16),
                  arch="mlp", latent_dim=2)
    source = rf.read_data_source(tmp_path)
    assert source.built_in_python
    with pytest.raises(rf.RunFolderError, match="built in Python"):
        source.load()


def test_resume_reloads_the_recorded_data(run: tuple[Path, vaecore.Dataset]) -> None:
    from vaecore.training.trainer import Trainer

    folder, data = run
    trainer = Trainer.resume(folder)
    for split in ("train", "val", "test"):
        assert torch.equal(trainer.dataset.split(split)[0], data.split(split)[0]), split
