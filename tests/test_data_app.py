"""The app on colour data: uploads keep colour for a colour model and say what they converted for a grey one; an
RGB 32x32 (and a 64x64) image folder trains from the training monitor and the map, interpolation and likelihood
pages open on that run with colour images."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.uploads import parse_uploads

ROOT = Path(__file__).resolve().parent.parent


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_keep_colour_and_note_every_conversion() -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 40  # red-ish, dark border: not inverted
    files = [("red.png", _png(rgb))]
    colour = parse_uploads(files, (3, 32, 32))
    assert colour.notes == {} and colour.images.shape == (1, 3, 32, 32)
    assert torch.allclose(colour.images[0, :, 5, 5], torch.tensor([200, 0, 40]) / 255.0)
    grey = parse_uploads(files, (1, 28, 28))
    assert grey.images.shape == (1, 1, 28, 28)
    assert grey.notes == {"colour → grey": 1, "resized 32×32 → 28×28": 1}
    arrays = io.BytesIO()
    np.save(arrays, np.full((3, 1, 32, 32), 9, np.uint8))
    both = parse_uploads([*files, ("g.npy", arrays.getvalue())], (3, 32, 32))
    assert both.notes == {"grey → colour (RGB)": 3} and len(both) == 4


def _colourful_folder(folder: Path, n: int = 48, side: int = 32) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    q = side // 4
    for i in range(n):
        img = np.zeros((side, side, 3), np.uint8)
        img[..., i % 3] = 60 + rng.integers(0, 190)  # one strong colour channel per image
        img[q:3 * q, q:3 * q, (i + 1) % 3] = 220
        Image.fromarray(img).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.parametrize("side", [32, 64])
def test_an_rgb_folder_trains_from_the_monitor_and_the_pages_show_it_in_colour(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    from budget import seconds
    from streamlit.testing.v1 import AppTest

    from explorer import widgets
    from vaecore import read_metrics

    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "app_cache"))
    monkeypatch.setenv("VAECORE_CACHE", str(tmp_path / "data_cache"))
    folder = _colourful_folder(tmp_path / "rgb", side=side)
    timeout = seconds(90)
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=timeout).run()
    at.selectbox(key="tm_data").set_value("imagefolder").run()
    at.text_input(key="tm_data_dir").input(str(folder))
    at.number_input(key="tm_epochs").set_value(1)
    at.select_slider(key="tm_batch_size").set_value(16)
    at.button(key="tm_start").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    run = next((tmp_path / "runs" / at.session_state["vae_session_id"]).iterdir())
    end = time.monotonic() + seconds(300)
    while time.monotonic() < end and not any(r.get("event") == "finished" for r in read_metrics(run)):
        time.sleep(0.5)
    events = [r.get("event") for r in read_metrics(run) if r.get("kind") == "event"]
    assert events[-1] == "finished", events
    recorded = json.loads((run / "train.json").read_text())
    assert recorded["data"] == "imagefolder" and recorded["data_dir"] == str(folder.resolve())
    assert json.loads((run / "config.json").read_text())["input_shape"] == [3, side, side]

    grids: list[tuple[int, ...]] = []
    real = widgets.make_grid

    def recording(images, *args, **kwargs):
        out = real(images, *args, **kwargs)
        grids.append(out.shape)
        return out

    monkeypatch.setattr(widgets, "make_grid", recording)
    pages = ["2_Latent_map.py", "3_Interpolation.py", "5_Likelihood_comparison.py"]
    pages += ["4_Sigma_convergence.py", "6_Transformations.py"] if side == 32 else []  # 64 px: the acceptance three
    for page in pages:
        grids.clear()
        p = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=timeout)
        p.query_params["model"] = str(run)
        p.run()
        assert not p.exception, (page, [e.value for e in p.exception])
        assert not any("could not be loaded" in w.value for w in p.warning), page
        if page in ("2_Latent_map.py", "3_Interpolation.py"):
            assert grids and all(len(s) == 3 and s[2] == 3 for s in grids), (page, grids)  # colour images
