"""The Disentanglement page (AppTest) on a model whose data has no ground-truth factors: it says which parts
need factors, shows the traversal grid in KL order with its downloads, and refuses the metrics in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from budget import seconds

from vaecore import build_model, model_config
from vaecore.evaluation.metrics.disentanglement import NO_FACTORS
from vaecore.hub import CHECKPOINTS_DIR

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "8_Disentanglement.py")


@pytest.fixture
def mnist_model(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bundled VAE when there is one, else a seeded stand-in of the same family."""
    if (CHECKPOINTS_DIR / "vae" / "model.safetensors").is_file() and not os.environ.get("VAE_TEST_QUICK_MODELS"):
        monkeypatch.setenv("VAE_CHECKPOINTS", str(CHECKPOINTS_DIR))
        return "vae"
    torch.manual_seed(0)
    build_model(model_config("vae", input_shape=(1, 28, 28), dataset="mnist").to_dict()).save_pretrained(
        tmp_path / "zoo" / "vae")
    monkeypatch.setenv("VAE_CHECKPOINTS", str(tmp_path / "zoo"))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    return "vae"


def test_page_on_mnist_says_what_needs_factors_and_shows_traversals(mnist_model: str) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=seconds(240))
    at.query_params["model"] = mnist_model
    at.session_state["dis_points"] = 1000
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Disentanglement"
    assert any("has no ground-truth factors" in i.value for i in at.info)
    captions = [c for img in at.image for c in img.captions]
    rows = [c for c in captions if c.startswith("z")]
    assert rows and all("KL" in c for c in rows)
    kls = [float(c.split("KL ")[1].split(" ")[0]) for c in rows]
    assert kls == sorted(kls, reverse=True)  # rows in KL order
    assert [e.value for e in at.error] == [f"Disentanglement metrics are undefined here: {NO_FACTORS}."]
    assert {b.label for b in at.get("download_button")} >= {"Grid as PNG", "Grid as GIF (animated)"}
