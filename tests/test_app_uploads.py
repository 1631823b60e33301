"""Uploads on the Latent map page: forgetting and removing files drops their images, a new upload's image count is
the one shown, labels come from PNG file names, and an image's ELBO does not depend on how many images are shown."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from PIL import Image

from explorer import sources
from explorer.latents import per_image_elbo
from explorer.uploads import UNLABELLED, label_from_name, parse_uploads
from vaecore import build_model, load_dataset, model_config

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = seconds(120)
SHAPE = (1, 8, 8)


@pytest.mark.parametrize(("name", "label"), [
    ("3.png", 3), ("7_001.png", 7), ("12-a.png", 12), ("img_label4.png", 4), ("x class_9.png", 9),
    ("digit-2.png", 2), ("scan y=5.png", 5), ("img_0012.png", None), ("0012.png", None), ("photo.png", None),
    ("dir/8_b.png", 8),
])
def test_label_from_name(name: str, label: int | None) -> None:
    assert label_from_name(name) == label


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _digit_pngs(n: int) -> list[tuple[str, bytes, str]]:
    """n real 8×8 digits as PNGs named '<label>_<index>.png' (light on dark, as the model saw them)."""
    x, y = load_dataset("digits").split("test")
    return [(f"{int(y[i])}_{i:03d}.png", _png(np.round(x[i, 0].numpy() * 255).astype(np.uint8)), "image/png")
            for i in range(n)]


def test_png_labels_come_from_their_names_and_mix_with_unlabelled_files() -> None:
    files = [(name, data) for name, data, _ in _digit_pngs(3)] + [("photo.png", _digit_pngs(1)[0][1])]
    up = parse_uploads(files, SHAPE, invert=False)
    assert up.labels is not None and up.named_labels == 3
    assert up.labels.tolist() == [int(name.split("_")[0]) for name, _ in files[:3]] + [UNLABELLED]
    assert parse_uploads(files[3:], SHAPE, invert=False).labels is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("upload_model") / "tiny"
    build_model(model_config("sigma-vae", input_shape=SHAPE, arch="mlp", latent_dim=4, dataset="digits").to_dict()
                ).save_pretrained(folder)
    return folder


def test_an_images_elbo_does_not_depend_on_how_many_are_shown(tiny: Path) -> None:
    from vaecore.hub import load_folder

    model = load_folder(tiny)
    x, _ = load_dataset("digits").split("test")
    few, many = per_image_elbo(model, x[:18]), per_image_elbo(model, x[:64])
    assert np.array_equal(few, many[:18])
    assert len(np.unique(many)) == 64 and np.isfinite(many).all()  # per image, not one number repeated


def _map_page(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages/2_Latent_map.py"), default_timeout=TIMEOUT)
    at.session_state["vae_pick"] = {"source": "Folder", "folder": str(tiny)}
    return at.run()


def _uploader(at):
    return at.get("file_uploader")[0]


def test_uploads_count_forget_and_removal(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _map_page(tiny, monkeypatch, tmp_path)
    assert not at.exception
    pngs = _digit_pngs(64)
    _uploader(at).set_value(pngs[:18]).run()
    at.segmented_control(key="map_source").set_value("uploaded").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("18 uploaded images (with labels, 18 read from file names)" in c.value for c in at.caption)
    assert at.number_input(key="map_n").value == 18
    # a new, larger upload: the map shows all of it, not the old count
    _uploader(at).set_value(pngs).run()
    assert not at.exception
    assert at.number_input(key="map_n").value == 64
    labels = at.multiselect(key="map_labels_uploaded").value
    assert sorted(labels) == sorted({int(name.split("_")[0]) for name, _, _ in pngs})
    # removing every file from the uploader removes their images
    _uploader(at).set_value(None).run()
    assert not at.exception
    assert sources.UPLOADS_KEY not in at.session_state
    assert "uploaded" not in at.segmented_control(key="map_source").options
    # "Forget" with the files still in the uploader: the images go and stay gone, the uploader is emptied
    _uploader(at).set_value(pngs[:5]).run()
    assert any("5 uploaded images" in c.value for c in at.caption)
    at.button(key="map_upload_forget").click().run()
    at.run()
    assert not at.exception
    assert not any("uploaded image" in c.value for c in at.caption)
    assert "uploaded" not in at.segmented_control(key="map_source").options
    assert not _uploader(at).value
