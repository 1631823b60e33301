"""Every analysis page runs on the new families (VQ, sphere, ball, flow, Hamiltonian, adversarial, MS-SSIM)
and says "not defined for this model" where a view or metric does not apply, instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from budget import seconds

import vaecore

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["2_Latent_map.py", "3_Interpolation.py", "5_Likelihood_comparison.py"]
FAMILIES = ["vqvae", "svae", "poincare-vae", "vae-iaf", "hvae", "factor-vae", "msssim-vae"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("families")
    for seed, preset in enumerate(FAMILIES):
        torch.manual_seed(seed)
        vaecore.build_preset(preset, input_shape=(1, 28, 28), dataset="mnist", seed=seed).save_pretrained(root / preset)
    return root


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("preset", FAMILIES)
def test_page_runs_on_family(page: str, preset: str, zoo: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_CHECKPOINTS", str(zoo))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=seconds(240))
    at.query_params["model"] = preset
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(str(e.value) for e in [*at.error, *at.warning, *at.info, *at.markdown, *at.caption])
    assert "Traceback" not in text


def test_training_monitor_offers_every_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages" / "1_Training_monitor.py"), default_timeout=seconds(240))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(at.selectbox(key="tm_preset").options) == list(vaecore.PRESETS)
