"""Shared fixtures: real MNIST and short real trainings, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("VAE_TEST_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))))

from vaecore import Dataset, TrainConfig, load_dataset, train  # noqa: E402
from vaecore.hub import load_folder  # noqa: E402


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The bundled MNIST with the training set cut to 10k images (val and test are full)."""
    return load_dataset("mnist", limit=10_000)


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """sklearn's 8×8 digits: the fastest real dataset."""
    return load_dataset("digits")


def _trained(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset, preset: str, steps: int,
             **overrides: object) -> Path:
    out = tmp_path_factory.mktemp(preset)
    train(preset, mnist, out, TrainConfig(max_steps=steps, log_every=25, val_limit=1000, seed=0), **overrides)
    return out


@pytest.fixture(scope="session")
def sigma_vae_dir(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> Path:
    """Run folder of a σ-VAE trained for 400 steps on MNIST (about half a minute on 2 cores)."""
    return _trained(tmp_path_factory, mnist, "sigma-vae", 400)


@pytest.fixture(scope="session")
def sigma_vae(sigma_vae_dir: Path):
    return load_folder(sigma_vae_dir)
