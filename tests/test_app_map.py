"""The Latent map decodes the map as drawn, and its neighbour rings belong to the view they were asked on.

AppTest on small seeded models (an MLP VAE with a 2-D and one with a 3-D latent, whose PCA map is a rotation of
the latent itself, so decoding a plotted point's coordinates must give back that image's own decode exactly).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from plotly_json import values

from explorer import latents, widgets
from vaecore import build_model, load_dataset, model_config
from vaecore.hub import load_folder

ROOT = Path(__file__).resolve().parent.parent
N = 300


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("map_zoo")
    for d in (2, 3):
        build_model(model_config("vae", input_shape=(1, 28, 28), dataset="mnist", latent_dim=d, arch="mlp").to_dict(),
                    seed=d + 1).save_pretrained(root / f"vae-z{d}")
    build_model(model_config("vamp-vae", input_shape=(1, 28, 28), dataset="mnist", latent_dim=2, arch="mlp").to_dict(),
                seed=0).save_pretrained(root / "vamp-z2")
    return root


@pytest.fixture
def page(zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Latent map AppTest on one of the zoo's models; `decoded` records every image the page draws at 140 px."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_CHECKPOINTS", str(zoo))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    drawn: list[torch.Tensor] = []
    original = widgets.image_png

    def recording(x: torch.Tensor, size: int = 112) -> bytes:
        if size == 140:
            drawn.append(x.detach().clone())
        return original(x, size)

    monkeypatch.setattr(widgets, "image_png", recording)

    def make(name: str):
        at = AppTest.from_file(str(ROOT / "pages" / "2_Latent_map.py"), default_timeout=seconds(240))
        at.session_state["vae_pick"] = {"source": "Bundled", "bundled": name}
        at.session_state["map_n"] = N
        return at

    make.drawn = drawn
    return make


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _plotted(at, index: int) -> np.ndarray:
    """The map coordinates the figure draws for image `index` (found by its customdata)."""
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    for trace in fig["data"]:
        ids = values(trace["customdata"])[:, 0].astype(int)
        hit = np.flatnonzero(ids == index)
        if hit.size and trace.get("name") != "neighbours":
            axes = [a for a in ("x", "y", "z") if a in trace]
            return np.array([values(trace[a])[hit[0]] for a in axes], dtype=np.float64)
    raise AssertionError(f"image #{index} is not on the map")


@pytest.mark.parametrize(("name", "dim"), [("vae-z2", 2), ("vae-z3", 3)])
def test_decoding_a_plotted_point_gives_that_images_own_decode(page, zoo: Path, name: str, dim: int) -> None:
    at = page(name)
    at.session_state["map_dim"] = dim
    at.session_state[latents.MAP_SELECTION_KEY] = {"spec": name, "source": "test", "indices": [7]}
    at.run()
    _ok(at)
    plotted = _plotted(at, 7)
    sliders = [at.slider(key=f"map_dec_{a}_7").value for a in "xyz"[:dim]]
    assert np.allclose(sliders, plotted, atol=1e-5), (sliders, plotted)  # the sliders start at #7's point
    model = load_folder(zoo / name).eval()
    x = load_dataset("mnist", limit=1).x_test[7:8]
    with torch.no_grad():
        own = model.decode(model.embed(x))[0]
        flipped = model.decode(-model.embed(x))[0]
    decoded = page.drawn[-1]
    # the latent is the map rotated: its round trip through PCA loses only float32 rounding (~1e-7 of |z|), far
    # below what a sign-flipped inverse changes (the seeded decoder moves its pixels ~1e-3 between z and −z)
    tol = 1e-4
    assert float((decoded - own).abs().max()) < tol < float((flipped - own).abs().max())


def test_neighbour_rings_stay_with_the_view_they_were_asked_on(page) -> None:
    at = page("vae-z2")
    at.run()
    _ok(at)
    at.button(key="map_nn").click().run()
    _ok(at)
    assert any(m.value.startswith("**Nearest to #0**") for m in at.markdown)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any(t.get("name") == "neighbours" for t in fig["data"])
    at.session_state[latents.MAP_SELECTION_KEY] = {"spec": "vae-z2", "source": "test", "indices": list(range(50, 80))}
    at.run()
    at.button(key="map_isolate").click().run()
    _ok(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not any(t.get("name") == "neighbours" for t in fig["data"]), "rings of #0 drawn on a subset without #0"
    assert not any("Nearest to" in m.value for m in at.markdown)
    assert at.number_input(key="map_point_50").value == 50  # the point panel starts inside the subset


@pytest.mark.parametrize("name", ["vae-z3", "vamp-z2"])
def test_latent_usage_is_the_engines_on_the_same_images(page, zoo: Path, name: str) -> None:
    """Active units and KL per dimension equal `evaluate` on the map's images; a VampPrior model gets the engine's
    reason instead of KL numbers against N(0, 1)."""
    from vaecore.evaluation.metrics import evaluate
    from vaecore.evaluation.registry import undefined_reason

    at = page(name)
    at.run()
    _ok(at)
    model = load_folder(zoo / name).eval()
    result = evaluate(model, load_dataset("mnist", limit=1), ["active-units", "kl-per-dim"], n_test=N)
    headline = next(m.value for m in at.markdown if "active units" in m.value)
    assert headline.startswith(f"**{result['active-units']} of {model.capabilities.latent_size} active units**")
    kl_chart = [c for c in at.get("plotly_chart") if c.proto.id and "map_kl_dims" in c.proto.id]
    if result["kl-per-dim"] is None:
        reason = undefined_reason(model, "kl-per-dim")
        assert reason and any(reason in c.value for c in at.caption) and not kl_chart
    else:
        bars = json.loads(kl_chart[0].proto.spec)["data"][0]
        page_kl = dict(zip(bars["x"], values(bars["y"]), strict=True))
        assert np.allclose([page_kl[f"z{j}"] for j in range(len(result["kl-per-dim"]))], result["kl-per-dim"],
                           rtol=1e-9, atol=0)
        assert any(f"{result['kl-per-dim_collapsed']} dimension" in c.value for c in at.caption)
