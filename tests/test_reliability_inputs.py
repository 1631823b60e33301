"""Inputs the Python API must refuse with a message that says what to fix: pixels at the model boundary,
weights and configs at load, names that are neither folders nor Hub repos, data files, train settings."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import vaecore
from vaecore import TrainConfig
from vaecore.hub import ModelLoadError


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inputs") / "run"
    vaecore.train("sigma-vae", vaecore.load_dataset("digits"), out, TrainConfig(max_steps=2, batch_size=64),
                  arch="mlp", latent_dim=4)
    return out


@pytest.fixture()
def model(run: Path):
    return vaecore.load(run)


@pytest.mark.parametrize("bad", [
    torch.full((2, 1, 8, 8), 3, dtype=torch.uint8),
    torch.full((2, 1, 8, 8), 200.0),
    torch.full((2, 1, 8, 8), -0.5),
    torch.full((2, 1, 8, 8), float("nan")),
    torch.full((2, 1, 8, 8), float("inf")),
], ids=["uint8", "0-255", "negative", "nan", "inf"])
def test_pixels_outside_the_unit_range_are_refused(model, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]|NaN"):
        model.encode(bad)
    with pytest.raises(ValueError):
        model.loss(bad)


def test_elbo_needs_at_least_one_sample(model) -> None:
    with pytest.raises(ValueError, match="n_samples"):
        model.elbo(torch.rand(2, 1, 8, 8), n_samples=0)


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def test_non_finite_and_non_float_weights_do_not_load(run: Path, tmp_path: Path) -> None:
    for name, change in (("nan", lambda t: t * float("nan")), ("int", lambda t: t.to(torch.int64))):
        folder = _copy(run, tmp_path / name)
        weights = load_file(str(folder / "model.safetensors"))
        key = next(k for k, v in weights.items() if v.is_floating_point() and v.dim() == 2)
        weights[key] = change(weights[key])
        save_file(weights, str(folder / "model.safetensors"))
        with pytest.raises(ModelLoadError, match=key.split(".")[0]):
            vaecore.load(folder)


def _edit_config(run: Path, dest: Path, **changes: object) -> Path:
    folder = _copy(run, dest)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_a_string_beta_does_not_load(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="beta"):
        vaecore.load(_edit_config(run, tmp_path / "beta", beta="4"))


def test_a_huge_latent_dim_is_named_not_called_a_weights_mismatch(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="latent_dim") as e:
        vaecore.load(_edit_config(run, tmp_path / "huge", latent_dim=10**9))
    assert "does not match" not in str(e.value)


def test_a_latin1_config_names_the_file(run: Path, tmp_path: Path) -> None:
    folder = _copy(run, tmp_path / "latin1")
    (folder / "config.json").write_bytes(json.dumps({"model_type": "vae", "preset": "café"}).encode("latin-1")
                                         .replace(b"caf\\u00e9", "café".encode("latin-1")))
    with pytest.raises(ModelLoadError, match="config.json"):
        vaecore.load(folder)


def test_a_local_path_typo_is_not_reported_as_a_hub_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelLoadError) as e:
        vaecore.load("runs/typo")
    assert "Hub repo" not in str(e.value) and "runs/typo" in str(e.value)


@pytest.mark.parametrize("name", ["a/b/c", "bad name!/x", "owner/" + "x" * 200, "-x/y"])
def test_invalid_hub_ids_raise_the_load_error(name: str) -> None:
    with pytest.raises(ModelLoadError):
        vaecore.load(name)


def test_model_type_cannot_be_overridden_by_a_preset() -> None:
    from vaecore import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--model", "sigma-vae", "--data", "digits", "--arch", "mlp", "--set", "model_type=tvae",
                  "--out", "/tmp/never-written", "--no-progress"])
    assert e.value.code == 2
    with pytest.raises(ValueError, match="model_type"):
        vaecore.model_config("sigma-vae", model_type="tvae")


def test_array_files_are_read_safely(tmp_path: Path) -> None:
    (tmp_path / "text.npy").write_text("hello\n")
    with pytest.raises(ValueError, match="neither a NumPy .npy array nor a .npz") as e:
        vaecore.load_dataset(str(tmp_path / "text.npy"))
    assert "pickle" not in str(e.value)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**12, 28, 28)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue())
    with pytest.raises(ValueError, match="GiB"):
        vaecore.load_dataset(str(tmp_path / "huge.npy"))
    np.save(tmp_path / "short.npy", np.zeros((50, 8, 8), np.uint8))
    raw = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="truncated"):
        vaecore.load_dataset(str(tmp_path / "short.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        vaecore.load_dataset(str(tmp_path / "obj.npy"))


@pytest.mark.parametrize("changes", [
    {"batch_size": 0}, {"batch_size": -4}, {"lr": 0.0}, {"lr": -1.0}, {"lr": float("nan")}, {"epochs": 0},
    {"max_steps": 0}, {"val_limit": 0}, {"grad_clip": -1.0}, {"kl_warmup_steps": -1}, {"log_every": 0},
    {"device": "nosuch"}, {"batch_size": "64"}, {"lr": True},
])
def test_train_settings_are_checked_once_in_the_config(changes: dict) -> None:
    key = next(iter(changes))
    with pytest.raises(ValueError, match=key):
        TrainConfig(**changes)
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **changes})
