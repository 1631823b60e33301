"""Shared fixtures: real MNIST and short real trainings, built once per test session."""

from __future__ import annotations

import os
import random
import tempfile
import zlib
from pathlib import Path

import pytest

# Threads that wait for each other sleep instead of spinning: with the default (spin ~1 ms) two torch threads on a
# 2-core machine whose cores are also busy with other work ran a training 6x slower, burning 7x the CPU.
# Set before torch loads OpenMP; subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Kernel choices measured by the tests are kept apart from the user's (~/.cache/vaecore), across sessions.
os.environ.setdefault("VAECORE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "vaecore-test-cache"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("VAE_TEST_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))))

from budget import slowdown  # noqa: E402

from vaecore import Dataset, TrainConfig, load_dataset, train  # noqa: E402
from vaecore.hub import load_folder  # noqa: E402


def pytest_report_header() -> list[str]:
    return [f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
            f"time limits x{slowdown():.1f} (tests/budget.py)"]


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    """Each test starts from its own fixed random state (torch, NumPy, random), whatever ran before it and whichever
    tests were selected: a test that passes only for some draws then fails every time, not now and then."""
    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
