"""The app's latent map, interpolation and transformation pages and their engine modules.

Pages run through `streamlit.testing.v1.AppTest` on the bundled models when checkpoints/ holds a T-VAE
and a plain VAE, else on quick models trained here for a few steps (pointed at with VAE_CHECKPOINTS).
The engine functions behind them (projection, interpolation, uploads) are tested directly.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from PIL import Image
from plotly_json import values

from explorer.uploads import parse_png, parse_uploads
from vaecore import build_model, load_dataset, model_config
from vaecore.hub import CHECKPOINTS_DIR, load_folder
from vaecore.latent import interpolation as interp
from vaecore.latent import projection as proj

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
TIMEOUT = seconds(240)


def _zoo_ready(root: Path) -> bool:
    """Whether a checkpoints folder has what the three pages need: a T-VAE and a plain VAE."""
    types = set()
    for cfg in root.glob("*/config.json"):
        if (cfg.parent / "model.safetensors").is_file():
            types.add(json.loads(cfg.read_text()).get("model_type", "vae"))
    return {"tvae", "vae"} <= types


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled checkpoints, or stand-ins when they are not there yet.

    The stand-ins are the real σ-VAE, T-VAE and VAE architectures with seeded random weights, saved
    like checkpoints: the pages only need models that load, encode and decode, and training even a few
    steps (with the trainer's validation and sample grid) costs more than all the page tests together.
    """
    if _zoo_ready(CHECKPOINTS_DIR) and not os.environ.get("VAE_TEST_QUICK_MODELS"):
        return CHECKPOINTS_DIR
    from vaecore.models import tvae  # noqa: F401  (registers the tvae and vae presets)

    root = tmp_path_factory.mktemp("zoo")
    for seed, preset in enumerate(("sigma-vae", "tvae", "vae")):
        torch.manual_seed(seed)
        build_model(model_config(preset, input_shape=(1, 28, 28), dataset="mnist").to_dict()).save_pretrained(
            root / preset)
    return root


@pytest.fixture
def app_env(zoo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAE_CHECKPOINTS", str(zoo))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path_factory.getbasetemp() / "app_runs"))


@pytest.fixture(scope="session")
def model(zoo: Path):
    names = [p.parent.name for p in sorted(zoo.glob("*/config.json"))]
    return load_folder(zoo / ("sigma-vae" if "sigma-vae" in names else names[0]))


def _app(page: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT)


def _no_exceptions(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _figure(at, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)




def _image_url(at, caption_start: str) -> str:
    for img in at.image:
        for url, caption in zip(img.value, img.captions, strict=True):
            if caption.startswith(caption_start):
                return url
    raise AssertionError(f"no image captioned {caption_start!r}: {[c for i in at.image for c in i.captions]}")


# engine: interpolation ------------------------------------------------------------------------------
def test_slerp_endpoints_and_norms() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    assert torch.allclose(interp.slerp(z0, z1, 0.0), z0, atol=1e-5)
    assert torch.allclose(interp.slerp(z0, z1, 1.0), z1, atol=1e-5)
    a, b = z0 / z0.norm() * 3.0, z1 / z1.norm() * 3.0
    norms = interp.slerp(a, b, torch.linspace(0, 1, 11)).norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, 3.0), atol=1e-4)
    assert interp.lerp(a, b, 0.5).norm() < 3.0 - 1e-3
    assert torch.allclose(interp.slerp(z0, 2 * z0, 0.5), interp.lerp(z0, 2 * z0, 0.5))
    assert interp.path(z0, z1, 7, "spherical").shape == (7, 16)
    with pytest.raises(ValueError, match="unknown interpolation"):
        interp.interpolate(z0, z1, 0.5, "cubic")  # type: ignore[arg-type]


def test_strip_traverse_and_ranking(model) -> None:
    x = load_dataset("digits").x_test[:2] if tuple(model.config.input_shape)[1] == 8 else \
        load_dataset("mnist", limit=1).x_test[:64]
    strip = interp.strip(model, x[0], x[1], 5, "spherical")
    assert strip.shape == (5, *model.config.input_shape) and 0 <= float(strip.min()) <= float(strip.max()) <= 1
    z = interp.encode_means(model, x[:1])[0]
    sweep = interp.traverse(model, z, 0, [-2.0, 2.0])
    assert sweep.shape[0] == 2 and not torch.equal(sweep[0], sweep[1])
    dims = interp.ranked_dims(model, x, k=5)
    assert len(dims) == 5 == len(set(dims))
    assert interp.rank_dims(np.array([[0.0, 1.0, 5.0], [0.0, -1.0, -5.0]]), k=2) == [2, 1]
    moved = interp.with_values(z, {0: 3.5})
    assert float(moved[0]) == 3.5 and float(z[0]) != 3.5


# engine: projection and selections --------------------------------------------------------------------
def test_projection_methods_shapes() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 8)).astype(np.float32)
    assert proj.project(z, "pca", 3).shape == (300, 3)
    tsne = proj.project(z[:80], "tsne", 2, max_iter=250, perplexity=10.0)
    assert tsne.shape == (80, 2) and np.isfinite(tsne).all()
    assert proj.project(z[:, :2], "pca", 3)[:, 2].tolist() == [0.0] * 300
    with pytest.raises(ValueError, match="unknown projection"):
        proj.project(z, "mds")
    with pytest.raises(ValueError, match="unknown umap parameter"):
        proj.project(z, "umap", n_neighbours=5)
    with pytest.raises(ValueError, match="NaN"):
        proj.project(np.full((5, 2), np.nan), "pca")


def test_tsne_runs_on_every_thread_and_stays_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    """t-SNE takes the pool at any size (its iterations pay for it), the others only on large maps; a t-SNE on
    several threads gives the same map twice (the app's cache and a refit show the same picture)."""
    monkeypatch.setattr(proj.torch, "get_num_threads", lambda: 2)
    pool = min(2, os.cpu_count() or 1)
    assert proj._threads(300, "tsne") == pool and proj._threads(300, "umap") == proj._threads(300, "pca") == 1
    assert proj._threads(proj.SMALL["umap"], "umap") == pool
    z = np.random.default_rng(2).normal(size=(400, 6)).astype(np.float32)
    assert np.array_equal(proj.project(z, "tsne", 3, max_iter=250), proj.project(z, "tsne", 3, max_iter=250))


def test_umap_gives_2d_coordinates_for_every_point(model) -> None:
    x = load_dataset("mnist", limit=1).x_test[:400]
    seen: list[float] = []
    z = proj.encode_images(model, x, batch_size=150, progress=lambda f, text: seen.append(f))
    assert z.shape == (400, model.latent_dim) and seen[-1] == 1.0 and len(seen) == 3
    coords, reducer = proj.fit_projection(z, "umap", 2, n_neighbors=10, min_dist=0.2, n_epochs=60)
    assert coords.shape == (400, 2) and np.isfinite(coords).all()
    assert np.ptp(coords, axis=0).min() > 0
    assert np.array_equal(coords, proj.project(z, "umap", 2, n_neighbors=10, min_dist=0.2, n_epochs=60))
    # UMAP's inverse brings a map point back near its own latent: nearer than the latents of other images
    back = reducer.inverse_transform(coords[:50])
    own = np.linalg.norm(back - z[:50], axis=1).mean()
    other = np.linalg.norm(back - z[50:100], axis=1).mean()
    assert own < 0.7 * other, (own, other)


def test_selection_to_indices() -> None:
    points = [{"curve_number": 3, "point_index": 0, "customdata": [17, 3]},
              {"curve_number": 5, "point_index": 0, "customdata": [4, 5]},
              {"curve_number": 5, "point_index": 1, "customdata": [17, 3]},
              {"point_index": 9}, {"customdata": ["x"]}, {"customdata": [99]}]
    assert proj.indices_from_points(points) == [4, 9, 17, 99]
    assert proj.indices_from_points(points, n=50) == [4, 9, 17]
    # a click on a Scattergl trace whose customdata was a numpy array: the row arrives as a typed array's keys
    clicked = [{"curve_number": 4, "point_index": 170, "customdata": {"0": 1529, "1": 4}}]
    assert proj.indices_from_points(clicked) == [1529]
    coords = np.array([[0, 0], [1, 1], [2, 2], [5, 5], [0.6, 0.1]], dtype=np.float32)
    assert proj.points_in_box(coords, (1.5, 0.5), (0.0, 2.5)).tolist() == [1, 4]
    assert proj.points_in_polygon(coords, [-0.5, 1.5, -0.5], [-0.5, -0.5, 1.5]).tolist() == [0, 4]
    assert proj.points_in_polygon(coords, [0, 1], [0, 1]).tolist() == []
    sel = {"points": [], "box": [{"x": [-1, 1.5], "y": [-1, 1.5]}],
           "lasso": [{"x": [4, 6, 6, 4], "y": [4, 4, 6, 6]}]}
    assert proj.selection_indices(sel, coords) == [0, 1, 3, 4]
    assert proj.selection_indices({"points": points[:2]}, coords) == [4]
    assert proj.selection_indices(None, coords) == []
    assert proj.nearest(coords, [4.8, 4.9]) == [3]


# engine: uploads ------------------------------------------------------------------------------------
def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=array.dtype.hasobject)
    return buf.getvalue()


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


SHAPE = (1, 28, 28)


def test_upload_arrays() -> None:
    x = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    up = parse_uploads([("digits.npz", _npz(x=x, y=np.arange(5)))], SHAPE)
    assert up.images.shape == (5, 1, 28, 28) and up.images.dtype == torch.float32
    assert torch.allclose(up.images[:, 0] * 255, torch.from_numpy(x).float(), atol=1e-3)
    assert up.labels.tolist() == [0, 1, 2, 3, 4]
    nhwc = parse_uploads([("a.npy", _npy(np.full((3, 28, 28, 3), 0.5, dtype=np.float32)))], SHAPE)
    assert nhwc.images.shape == (3, 1, 28, 28) and nhwc.labels is None
    assert torch.allclose(nhwc.images, torch.full((3, 1, 28, 28), 0.5), atol=1e-5)
    splits = parse_uploads([("s.npz", _npz(x_train=x[:3], y_train=np.arange(3), x_test=x[3:], y_test=np.arange(2)))],
                           SHAPE)
    assert len(splits) == 5 and splits.labels.tolist() == [0, 1, 2, 0, 1]
    one = parse_uploads([("one.npy", _npy(x[0]))], SHAPE)
    assert one.images.shape == (1, 1, 28, 28)


def test_upload_png_resized_and_inverted() -> None:
    paper = np.full((56, 40, 3), 255, dtype=np.uint8)
    paper[10:46, 15:25] = 0
    x = parse_png("ink.png", _png(paper), SHAPE)
    assert x.shape == SHAPE and float(x[0, 0, 0]) == 0.0 and float(x[0, 14, 14]) > 0.9
    kept = parse_png("ink.png", _png(paper), SHAPE, invert=False)
    assert float(kept[0, 0, 0]) == 1.0
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = 0
    rgba[5:20, 5:20] = (255, 255, 255, 255)
    up = parse_uploads([("a.png", _png(rgba, "RGBA")), ("b.png", _png(np.zeros((28, 28), np.uint8)))], SHAPE)
    assert up.images.shape == (2, 1, 28, 28) and up.labels is None and up.names == ["a.png", "b.png"]


BAD_FILES = [
    ("big.npz", _npz(x=np.zeros((2, 32, 32), np.uint8)), "32×32 pixels, the model takes 28×28"),
    ("five.npy", _npy(np.zeros((2, 28, 28, 5), np.float32)), "channel axis"),
    ("range.npy", _npy(np.full((2, 28, 28), 3.0, np.float32)), r"\[0, 1\]"),
    ("complex.npy", _npy(np.zeros((2, 28, 28), np.complex64)), "dtype"),
    ("flat.npy", _npy(np.zeros(10, np.uint8)), "shape"),
    ("labels.npz", _npz(x=np.zeros((3, 28, 28), np.uint8), y=np.arange(2)), "2 labels for 3 images"),
    ("objects.npy", _npy(np.array([{"a": 1}], dtype=object)), "pickled"),  # numpy's own object (pickled) file
    ("fake.png", b"this is not an image at all", "not a valid .png"),
    ("notes.txt", b"hello", "unsupported file type"),
    ("empty.npy", b"", "empty"),
    ("bad.npz", b"PK\x03\x04broken", "could not read"),
]


@pytest.mark.parametrize("name, data, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_upload_rejects_bad_files(name: str, data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_uploads([(name, data)], SHAPE)


def test_upload_keeps_good_files_when_asked() -> None:
    errors: list[str] = []
    good = _npz(x=np.zeros((4, 28, 28), np.uint8), y=np.arange(4))
    up = parse_uploads([("bad.npy", _npy(np.zeros((2, 32, 32), np.uint8))), ("good.npz", good)], SHAPE,
                       errors=errors)
    assert len(up) == 4 and up.labels.tolist() == [0, 1, 2, 3]
    assert len(errors) == 1 and errors[0].startswith("bad.npy: images are 32×32")
    with pytest.raises(ValueError, match="no usable files"):
        parse_uploads([("notes.txt", b"hi")], SHAPE, errors=[])


def test_upload_limits() -> None:
    with pytest.raises(ValueError, match="too many images"):
        parse_uploads([("many.npy", _npy(np.zeros((30, 28, 28), np.uint8)))], SHAPE, max_images=20)
    with pytest.raises(ValueError, match="no files"):
        parse_uploads([], SHAPE)


# pages ------------------------------------------------------------------------------------------------
def test_latent_map_page_pca_then_umap(app_env: None) -> None:
    at = _app("2_Latent_map.py")
    at.session_state["map_n"] = 300
    at.run()
    _no_exceptions(at)
    assert at.title[0].value == "Latent map"
    fig = _figure(at)
    assert sum(len(values(t["x"])) for t in fig["data"]) == 300 and len(fig["data"]) >= 2
    at.segmented_control(key="map_method").set_value("umap")
    at.number_input(key="map_n").set_value(250).run()
    _no_exceptions(at)
    assert any("Showing the previous map (PCA" in i.value for i in at.info)
    assert len(_figure(at)["data"][0]["x"]) > 0
    at.button(key="map_compute").click().run()
    _no_exceptions(at)
    traces = _figure(at)["data"]
    xs = np.concatenate([values(t["x"]) for t in traces])
    ys = np.concatenate([values(t["y"]) for t in traces])
    assert len(xs) == len(ys) == 250 and np.isfinite(xs).all() and np.isfinite(ys).all()
    assert "z" not in traces[0]
    ids = np.sort(np.concatenate([values(t["customdata"])[:, 0] for t in traces]))
    assert ids.tolist() == list(range(250))
    # a 2-D UMAP map decodes through UMAP's inverse_transform, map positions and a manifold grid
    assert any("inverse_transform" in c.value for c in at.caption)
    assert any(sl.key.startswith("map_dec_x_") for sl in at.slider)
    assert "Grid as PNG" in [d.proto.label for d in at.get("download_button")]


def test_latent_map_page_uploaded_source(app_env: None, model) -> None:
    from explorer import sources

    at = _app("2_Latent_map.py")
    x = (np.random.default_rng(1).random((40, 28, 28)) * 255).astype(np.uint8)
    up = parse_uploads([("mine.npz", _npz(images=x, labels=np.arange(40) % 10))], tuple(model.config.input_shape))
    at.session_state[sources.UPLOADS_KEY] = {"signature": None, "shape": tuple(model.config.input_shape), "data": up,
                                        "token": "test"}
    at.session_state["map_source"] = "uploaded"
    at.session_state["map_dim"] = 3
    at.run()
    _no_exceptions(at)
    traces = _figure(at)["data"]
    assert sum(len(values(t["x"])) for t in traces) == 40 and traces[0]["type"] == "scatter3d"
    assert any("40 uploaded images" in c.value for c in at.caption)


def test_interpolation_slider_changes_decoded_image(app_env: None) -> None:
    at = _app("3_Interpolation.py")
    at.run()
    _no_exceptions(at)
    assert at.title[0].value == "Interpolation"
    caption = next(c for i in at.image for c in i.captions if " at t = 0.50" in c)
    label = caption.split(" at t = ")[0]
    before = _image_url(at, f"{label} at t = 0.50")
    at.slider(key="ip_t").set_value(0.0).run()
    _no_exceptions(at)
    after = _image_url(at, f"{label} at t = 0.00")
    assert after != before
    at.segmented_control(key="ip_method").set_value("spherical").run()
    _no_exceptions(at)
    assert _image_url(at, f"{label} at t = 0.00") == after


def test_traversal_slider_changes_decoded_image(app_env: None) -> None:
    at = _app("3_Interpolation.py")
    at.run()
    sliders = [s for s in at.slider if s.key and s.key.startswith("tr_")]
    assert sliders and len(sliders) <= 32
    before = _image_url(at, "decoded")
    target = sliders[0]
    target.set_value(-3.5 if target.value > 0 else 3.5).run()
    _no_exceptions(at)
    assert _image_url(at, "decoded") != before
    assert any("1 dimension moved" in c.value for c in at.caption)


@pytest.mark.parametrize("page", ["2_Latent_map.py", "3_Interpolation.py", "6_Transformations.py"])
def test_pages_render_on_the_bundled_models(page: str, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """Whatever checkpoints/ holds right now (a zoo without a T-VAE shows a hint, not an error)."""
    if not any((p.parent / "model.safetensors").is_file() for p in CHECKPOINTS_DIR.glob("*/config.json")):
        pytest.skip("checkpoints/ is empty; the other page tests use stand-in models")
    monkeypatch.delenv("VAE_CHECKPOINTS", raising=False)
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = _app(page)
    at.run()
    _no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == {"2_Latent_map.py": "Latent map", "3_Interpolation.py": "Interpolation",
                                 "6_Transformations.py": "Transformations"}[page]


def test_transformations_page_shows_extracted_T(app_env: None) -> None:
    at = _app("6_Transformations.py")
    at.run()
    _no_exceptions(at)
    assert at.title[0].value == "Transformations"
    labels = [m.label for m in at.metric]
    assert "‖T‖ T-VAE" in labels
    assert all(float(m.value) > 0 for m in at.metric)
    bars = _figure(at)["data"]
    assert any(t["name"].startswith("T-VAE") for t in bars)
    assert all(np.isfinite(values(t["y"])).all() for t in bars)
    assert any("Ground truth" in m.value for m in at.markdown)
    at.selectbox(key="tf_kind").set_value("translation").run()
    _no_exceptions(at)
    at.segmented_control(key="tf_mode").set_value("Choose x₁ and x₂").run()
    _no_exceptions(at)
    assert "‖T‖ T-VAE" in [m.label for m in at.metric]
    assert not any("Ground truth" in m.value for m in at.markdown)


# latent map tools ------------------------------------------------------------------------------------
def test_map_selection_follows_the_chart_and_clears_on_double_click() -> None:
    from explorer.latents import updated_selection

    assert updated_selection([1, 2], None, "box-a", [5, 6]) == [1, 2]  # a fresh chart keeps the stored one
    assert updated_selection([1, 2], "", "box-a", [5, 6]) == [5, 6]  # first box
    assert updated_selection([5, 6], "box-a", "box-b", [7]) == [7]  # second box is not ignored
    assert updated_selection([7], "box-b", "box-b", [7]) == [7]  # an unrelated rerun keeps it
    assert updated_selection([7], "box-b", "", []) == []  # double-click clears


def test_latent_map_tools_colour_neighbours_isolate_decode_and_download(app_env: None) -> None:
    from explorer import latents

    at = _app("2_Latent_map.py")
    at.session_state["map_n"] = 300
    at.run()
    _no_exceptions(at)
    options = at.selectbox(key="map_colour").options
    assert options[0] == "label" and any(o.startswith("reconstruction error") for o in options)
    at.selectbox(key="map_colour").set_value("recon").run()
    _no_exceptions(at)
    trace = _figure(at)["data"][0]
    assert trace["marker"]["showscale"] and trace["marker"]["colorbar"]["title"]["text"].startswith("reconstruction")
    at.button(key="map_nn").click().run()
    _no_exceptions(at)
    assert any("Nearest to #0" in m.value for m in at.markdown)
    assert any(t.get("name") == "neighbours" and len(values(t["x"])) == 8 for t in _figure(at)["data"])
    spec = at.session_state["vae_model_spec"]
    at.session_state[latents.MAP_SELECTION_KEY] = {"spec": spec, "source": "test", "indices": list(range(10, 60))}
    at.run()
    assert any(h.value.startswith("Selection: 50 points") for h in at.subheader)
    at.button(key="map_isolate").click().run()
    _no_exceptions(at)
    fig = _figure(at)
    ids = np.sort(np.concatenate([values(t["customdata"])[:, 0] for t in fig["data"]
                                  if t.get("name") != "neighbours"]))
    assert ids.tolist() == list(range(10, 60))
    at.button(key="map_unsubset").click().run()
    assert sum(len(values(t["x"])) for t in _figure(at)["data"] if t.get("name") != "neighbours") == 300
    assert any("decoded grid" in c for i in at.image for c in i.captions)
    downloads = {d.proto.label for d in at.get("download_button")}
    assert any(label.startswith("CSV") for label in downloads) and any(label.startswith(".npz") for label in downloads)
    assert "Grid as PNG" in downloads


def test_map_inverse_and_downloads_round_trip() -> None:
    import io

    from explorer.downloads import csv_bytes, latents_rows, npz_bytes
    from explorer.latents import MapInverse, manifold_grid, nearest_neighbours

    z = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    coords, fitted = proj.fit_projection(z, "pca", 2)
    inv = MapInverse(fitted, 2, "PCA")
    assert np.allclose(inv.inverse(coords), z, atol=1e-5)
    zg, grid = manifold_grid(inv, coords, 4)
    assert zg.shape == (16, 2) and grid.shape == (16, 2)
    near = nearest_neighbours(z, 3, 2)
    assert len(near) == 2 and near[0][1] <= near[1][1] and 3 not in [j for j, _ in near]
    rows = latents_rows(np.arange(3), z[:3], z[:3], np.array([1, 2, 3]))
    text = csv_bytes(rows).decode()
    assert text.splitlines()[0] == "index,label,map_x,map_y,z0,z1" and len(text.splitlines()) == 4
    loaded = np.load(io.BytesIO(npz_bytes(z=z, labels=None)), allow_pickle=False)
    assert loaded.files == ["z"] and loaded["z"].shape == (50, 2)


def test_interpolation_page_offers_png_downloads_and_a_traversal_grid(app_env: None) -> None:
    at = _app("3_Interpolation.py")
    at.run()
    _no_exceptions(at)
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Strip as PNG" in labels and "Sweep as PNG" in labels
    toggle = next(t for t in at.toggle if t.key.startswith("ip_dimgrid_"))
    toggle.set_value(True).run()
    _no_exceptions(at)
    assert "Traversal grid as PNG" in [d.proto.label for d in at.get("download_button")]
