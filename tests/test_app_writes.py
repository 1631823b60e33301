"""The app writes only under its own folders (runs and cache): never into a bundled model or a picked folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaecore import build_model, model_config


def _files(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_fitting_a_sampler_for_a_bundled_model_writes_to_the_cache_only(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import caches, catalog

    zoo = tmp_path / "zoo"  # writable, as checkpoints/ is in a clone
    build_model(model_config("vae", input_shape=(1, 28, 28), dataset="mnist", latent_dim=2, arch="mlp").to_dict(),
                seed=0).save_pretrained(zoo / "tiny")
    monkeypatch.setenv("VAE_CHECKPOINTS", str(zoo))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    before = _files(zoo)
    sampler = caches.fitted_sampler("tiny", "gmm", n_train=300)
    assert sampler.sample_latents(4).shape == (4, 2)
    assert _files(zoo) == before, "the bundled model's folder changed"
    written = caches.sampler_folder("tiny")
    assert written.is_relative_to(catalog.cache_root()) and any(written.glob("sampler-*"))
    picked = tmp_path / "elsewhere" / "model"  # a folder picked in the sidebar is not the app's either
    build_model(model_config("vae", input_shape=(1, 28, 28), dataset="mnist", latent_dim=2, arch="mlp").to_dict(),
                seed=1).save_pretrained(picked)
    assert caches.sampler_folder(str(picked)).is_relative_to(catalog.cache_root())
    run = catalog.runs_root() / "sid" / "run-1"
    run.parent.mkdir(parents=True)
    build_model(model_config("vae", input_shape=(1, 28, 28), dataset="mnist", latent_dim=2, arch="mlp").to_dict(),
                seed=2).save_pretrained(run)
    assert caches.sampler_folder(str(run)) == run  # an app run keeps its samplers with it
