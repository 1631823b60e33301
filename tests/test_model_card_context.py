"""Model cards carry each number's context: the real latent shape, ± SE or s.d. with its n, the images and K, why a
metric is undefined, saturation, collapse, the budget, aliases, and how the family differs from Pythae 0.1.2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vaecore.hub import bundled_names, checkpoints_dir
from vaecore.model_card import write_model_card

EVAL = {"nll-discrete": 1427.1, "fd": 29.4, "elbo": None, "kl-per-dim": [0.001] * 16, "kl-per-dim_collapsed": 16,
        "mutual-info": 9.2103, "mutual-info_bound": 9.2103, "mutual-info_saturated": True, "fd_gmm": 30.1,
        "fd_features": "MNIST-classifier", "notes": {"elbo": "the reason it is undefined"},
        "settings": {"dataset": "mnist", "n_test": 2000, "iwae_k": 100, "n_samples": 2000, "sample_seeds": 3,
                     "fingerprint": "b40951266842e680"},
        "uncertainty": {"nll-discrete": {"se": 7.9, "n": 2000, "over": "images", "sd": 353.0},
                        "fd": {"se": 0.35, "n": 3, "over": "seeds", "sd": 0.6}}}


def card(name: str, tmp_path: Path, metrics: dict | None = None) -> str:
    if name not in bundled_names():
        pytest.skip(f"{name} is not bundled")
    folder = tmp_path / name
    shutil.copytree(checkpoints_dir() / name, folder)
    write_model_card(folder, json.loads((folder / "config.json").read_text()), metrics or EVAL)
    return (folder / "README.md").read_text()


def test_a_card_gives_every_number_its_context(tmp_path: Path) -> None:
    text = card("sigma-vae", tmp_path)
    assert "| 1427 ± 7.9 | 2000 test images (SE) |" in text and "| 29.4 ± 0.6 | 3 seeds (s.d.) |" in text
    assert "z from a 10-component GMM (`fd_gmm`)" in text
    assert "fingerprint b40951266842e680" in text and "K = 100" in text and "2 standard errors" in text
    assert "ELBO (`elbo`): the reason it is undefined" in text and "not Inception-v3" in text
    assert "saturated" in text and "Posterior collapse: every one" in text and "Budget: trained 10 epochs" in text


def test_a_card_states_the_real_latent_shape_aliases_and_pythae_differences(tmp_path: Path) -> None:
    assert "| latent size | 16 × 7 × 7 = 784 (codes of 16 values on a 7 × 7 grid) |" in card("vqvae", tmp_path)
    assert "The same model as preset `trainable-iso-i`" in card("sigma-vae-learned", tmp_path)
    rhvae = card("rhvae", tmp_path)
    assert "Differences from Pythae 0.1.2" in rhvae and "√β₀" in rhvae
    assert "½D ln π" in card("ae", tmp_path)  # the AE's squared error is a density, Pythae's drops the constant
