"""The app's benchmark page, the σ page without an empty table, decoder σ on the latent map,
the traversal grid per latent dimension, VQ codebooks and the sphere / disk maps.

Pages run through `streamlit.testing.v1.AppTest` on the bundled checkpoints (read-only) or, for the
families the zoo does not bundle (VQ, sphere, ball, disentanglement), on seeded random-weight models
saved like checkpoints in a temporary folder.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from plotly_json import values

import vaecore
from vaecore.hub import CHECKPOINTS_DIR, bundled_names
from vaecore.latent import interpolation as interp

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
TIMEOUT = seconds(240)
SHAPE = (1, 28, 28)


def _bundled(*names: str) -> None:
    missing = [n for n in names if not (CHECKPOINTS_DIR / n / "model.safetensors").is_file()]
    if missing:
        pytest.skip(f"checkpoints/ has no {', '.join(missing)} yet")


def _app(page: str, model: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT)
    if model is not None:
        at.query_params["model"] = model
    return at


def _no_exceptions(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]




def _captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions]


@pytest.fixture
def bundled_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAE_CHECKPOINTS", raising=False)
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))


FAMILIES = ("factor-vae", "vqvae", "hrq-vae", "svae", "poincare-vae")


@pytest.fixture(scope="module")
def family_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded random-weight models of the families checkpoints/ does not bundle (mlp nets: fast)."""
    root = tmp_path_factory.mktemp("families_c")
    for seed, preset in enumerate(FAMILIES):
        torch.manual_seed(seed)
        vaecore.build_preset(preset, input_shape=SHAPE, dataset="mnist", seed=seed).save_pretrained(root / preset)
    return root


@pytest.fixture
def family_env(family_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAE_CHECKPOINTS", str(family_zoo))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    return family_zoo


# 1. benchmark ---------------------------------------------------------------------------------------
def _same(a: object, b: object) -> bool:
    fa = float("nan") if a is None else float(a)  # type: ignore[arg-type]
    fb = float("nan") if b is None else float(b)  # type: ignore[arg-type]
    return (math.isnan(fa) and math.isnan(fb)) or math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)


def test_benchmark_rows_from_entries_and_csv() -> None:
    from explorer import benchmark
    from explorer.downloads import csv_bytes

    entries = [{"name": "gaussian-vae", "epochs": 10, "config": {"preset": "gaussian-vae"},
                "eval": {"mse": 20.5, "fd": 300.0, "fd_gmm": 40.0, "knn": 0.9}},  # an older eval.json: no fd_maf
               {"name": "mine", "epochs": 3, "config": {"preset": "sigma-vae"},
                "eval": {"mse": 5.0, "fd": 100.0, "fd_gmm": 30.0, "fd_maf": 35.0, "probe": 0.9, "kmeans": 0.6}},
               {"name": "no-eval", "config": {}, "eval": {}}]
    rows = benchmark.benchmark_rows(entries)
    assert [r["model"] for r in rows] == ["gaussian-vae", "mine"]
    vae, mine = rows
    assert vae["FD MAF"] is None and vae["linear probe acc"] is None and vae["epochs"] == 10
    assert vae[f"{benchmark.PYTHAE_PREFIX}: prior"] == 28.5 and vae[f"{benchmark.PYTHAE_PREFIX}: MAF"] == 26.8
    assert vae["Pythae model"] == "VAE" and mine["Pythae model"] is None
    assert mine["k-means acc"] == 0.6 and mine["FD MAF"] == 35.0
    assert [r["model"] for r in benchmark.sorted_rows(rows, "FD MAF")] == ["mine", "gaussian-vae"]
    assert [r["model"] for r in benchmark.sorted_rows(rows, "MSE (reconstruction)", descending=True)] == \
        ["gaussian-vae", "mine"]
    lines = csv_bytes(rows).decode().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 3 and "FD MAF" in header and "epochs" in header
    assert lines[1].split(",")[header.index("FD MAF")] == ""  # empty, not "None"
    assert "None" not in csv_bytes(rows).decode()


def test_benchmark_page_has_one_row_per_bundled_model_with_its_eval_json(bundled_env: None) -> None:
    from explorer import benchmark
    from vaecore.evaluation.reference import PYTHAE_TABLE4_MNIST

    expected = [n for n in bundled_names() if (CHECKPOINTS_DIR / n / "eval.json").is_file()
                and json.loads((CHECKPOINTS_DIR / n / "eval.json").read_text())]
    if not expected:
        pytest.skip("no bundled model has an eval.json yet")
    at = _app("7_Benchmark.py")
    at.run()
    _no_exceptions(at)
    assert at.title[0].value == "Benchmark"
    frame = at.dataframe[0].value
    assert sorted(frame["model"]) == sorted(expected)
    raw = json.loads((CHECKPOINTS_DIR / "catalog.json").read_text())  # the zoo's rows and the dSprites study's
    catalog = {e["name"]: e for e in raw["models"] + raw.get("study_models", [])}
    for _, row in frame.iterrows():
        ev = json.loads((CHECKPOINTS_DIR / row["model"] / "eval.json").read_text())
        for key, column in benchmark.OURS:
            assert _same(row[column], ev.get(key)), (row["model"], column, row[column], ev.get(key))
        for key, column in benchmark.SPREAD.items():  # each value's ± from its eval.json, none on older evaluations
            stored = (ev.get("uncertainty") or {}).get(key)
            want = None if stored is None else stored["sd"] if stored.get("over") == "seeds" else stored["se"]
            assert _same(row[column], want), (row["model"], column)
        assert row[benchmark.EVALUATION] == (benchmark.CURRENT if ev.get("uncertainty") else benchmark.OLDER)
        assert _same(row["epochs"], catalog.get(row["model"], {}).get("epochs"))
        preset = json.loads((CHECKPOINTS_DIR / row["model"] / "config.json").read_text()).get("preset")
        paper = PYTHAE_TABLE4_MNIST.get(preset, {})
        for key, column in benchmark.PYTHAE:
            assert _same(row[column], paper.get(key)), (row["model"], column)
    columns = list(frame.columns)
    for _, theirs in benchmark.PYTHAE:  # each of Pythae's FIDs right beside our FD of the same sampler
        sampler = theirs.split(": ")[1]
        assert columns.index(theirs) == columns.index(f"FD {sampler}") + 1, columns
    assert max(len(c) for c in columns) <= 20, columns  # short headers: the table fits a 1400 px window
    formats = {name: c.get("type_config", {}).get("format")
               for name, c in json.loads(at.dataframe[0].proto.columns).items()}
    assert all(formats[c] == "%.3g" for c in columns if c not in ("model", "epochs", "Pythae model",
                                                                  benchmark.EVALUATION)), formats
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = chart["data"][0]
    assert bars["orientation"] == "h" and chart["layout"]["height"] >= 20 * len(bars["y"])
    assert any("not our FD with their FID in absolute value" in c.value for c in at.caption)
    proto = at.dataframe[0].proto
    assert proto.HasField("placeholder") and proto.placeholder == ""  # missing values are empty cells, not None
    assert "Table as CSV" in [d.proto.label for d in at.get("download_button")]
    at.selectbox(key="bm_sort").set_value("FD GMM").run()
    _no_exceptions(at)
    fd = at.dataframe[0].value["FD GMM"].to_numpy(dtype=float)
    present = fd[~np.isnan(fd)]
    assert (np.diff(present) >= 0).all() and not np.isnan(fd[:len(present)]).any()
    at.toggle(key="bm_desc").set_value(True).run()
    fd = at.dataframe[0].value["FD GMM"].to_numpy(dtype=float)
    assert (np.diff(fd[~np.isnan(fd)]) <= 0).all()


# 2. σ convergence: no empty table under the chart ----------------------------------------------------
def test_sigma_page_draws_no_empty_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log whose σ records carry no epoch still draws its curve against steps, without a table of no rows."""
    _bundled("sigma-vae")
    zoo = tmp_path / "zoo"
    folder = zoo / "sigma-vae"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(CHECKPOINTS_DIR / "sigma-vae" / name, folder / name)
    records = [json.loads(line) for line in (CHECKPOINTS_DIR / "sigma-vae" / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    for r in records:
        r.pop("epoch", None)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("VAE_CHECKPOINTS", str(zoo))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = _app("4_Sigma_convergence.py")
    at.run()
    _no_exceptions(at)
    at.segmented_control(key="sc_x").set_value("step").run()
    _no_exceptions(at)
    assert len(at.get("plotly_chart")) == 1 and len(values(_figures(at)[0]["data"][0]["x"])) > 0
    assert all(len(df.value) > 0 for df in at.dataframe), "an empty table draws an empty grey box"
    assert not at.dataframe


def test_sigma_page_table_has_a_row_per_trace(bundled_env: None) -> None:
    _bundled("sigma-vae", "gaussian-vae")
    at = _app("4_Sigma_convergence.py")
    at.run()
    at.multiselect(key="sc_bundled").set_value(["sigma-vae", "gaussian-vae"]).run()
    _no_exceptions(at)
    assert len(at.dataframe) == 1 and sorted(at.dataframe[0].value["model"]) == ["gaussian-vae", "sigma-vae"]
    assert all(len(df.value) > 0 for df in at.dataframe)


# 3. decoder σ on the latent map ----------------------------------------------------------------------
def test_decoder_sigma_is_offered_where_it_varies_per_image() -> None:
    from explorer.models import decoder_log_sigma, decoder_sigma_kind

    x = vaecore.load_dataset("mnist", limit=1).x_test[:12]
    for preset, kind in (("sigma-vae-per-pixel", "predicted"), ("trainable-iso-d", "predicted"),
                         ("arelbo-iso-d", "mle"), ("arelbo-diag-d", "mle"), ("sigma-vae", None),
                         ("trainable-iso-i", None), ("bernoulli-vae", None)):
        torch.manual_seed(0)
        model = vaecore.build_preset(preset, input_shape=SHAPE, dataset="mnist", seed=0)
        assert decoder_sigma_kind(model) == kind, preset
        s = decoder_log_sigma(model, x)
        assert (s is None) == (kind is None), preset
        if s is not None:
            assert s.shape == (12,) and torch.isfinite(s).all()
    torch.manual_seed(0)
    model = vaecore.build_preset("sigma-vae-per-pixel", input_shape=SHAPE, dataset="mnist", seed=0).eval()
    got = decoder_log_sigma(model, x)  # first: the reference below then runs on the kernels this pass chose
    with torch.no_grad():
        _, log_sigma = model.likelihood._split(model.decode_params(model.embed(x)))
    assert torch.allclose(got, log_sigma.flatten(1).mean(1), atol=1e-5)


def test_latent_map_colours_by_decoder_sigma(bundled_env: None) -> None:
    _bundled("sigma-vae-per-pixel", "sigma-vae")
    from explorer.models import decoder_log_sigma

    at = _app("2_Latent_map.py", "sigma-vae-per-pixel")
    at.session_state["map_n"] = 200
    at.run()
    _no_exceptions(at)
    assert any(o.startswith("decoder ln σ") for o in at.selectbox(key="map_colour").options)
    at.selectbox(key="map_colour").set_value("sigma").run()
    _no_exceptions(at)
    trace = _figures(at)[0]["data"][0]
    assert trace["marker"]["colorbar"]["title"]["text"].startswith("decoder ln σ")
    assert any("predicted by the decoder" in c.value for c in at.caption)
    custom = values(trace["customdata"]).astype(float)
    ids, colour = custom[:, 0].astype(int), custom[:, 2]
    x = vaecore.load_dataset("mnist", limit=1).x_test[:200]
    expected = decoder_log_sigma(vaecore.load("sigma-vae-per-pixel"), x).numpy()
    assert len(ids) == 200 and np.allclose(colour, expected[ids], atol=1e-4)
    shared = _app("2_Latent_map.py", "sigma-vae")
    shared.session_state["map_n"] = 100
    shared.run()
    _no_exceptions(shared)
    options = shared.selectbox(key="map_colour").options
    assert not any(o.startswith("decoder ln σ") for o in options) and any(o.startswith("KL") for o in options)


# 4. traversal grid per latent dimension --------------------------------------------------------------
_ROW = re.compile(r"^z(\d+)( · KL ([0-9.e+-]+) nats)? · encoded ")


def _grid_rows(at) -> list[tuple[int, float | None]]:
    rows = []
    for caption in _captions(at):
        m = _ROW.match(caption)
        if m:
            rows.append((int(m.group(1)), None if m.group(3) is None else float(m.group(3))))
    return rows


def test_traversal_grid_has_a_row_per_dimension_with_its_stored_kl(bundled_env: None) -> None:
    _bundled("sigma-vae")
    at = _app("3_Interpolation.py", "sigma-vae")
    at.run()
    _no_exceptions(at)
    assert _grid_rows(at) == []  # not a disentanglement model: the grid waits for its toggle
    next(t for t in at.toggle if t.key.startswith("ip_dimgrid_")).set_value(True).run()
    _no_exceptions(at)
    rows = _grid_rows(at)
    model = vaecore.load("sigma-vae")
    kl = json.loads((CHECKPOINTS_DIR / "sigma-vae" / "eval.json").read_text())["kl-per-dim"]
    assert [d for d, _ in rows] == list(range(model.latent_dim))
    assert all(math.isclose(v, kl[d], rel_tol=2e-3) for d, v in rows)
    assert "Traversal grid as PNG" in [d.proto.label for d in at.get("download_button")]


def test_traversal_grid_is_highlighted_for_disentanglement_and_absent_for_codes(family_env: Path) -> None:
    from explorer import traversals

    at = _app("3_Interpolation.py", "factor-vae")
    at.run()
    _no_exceptions(at)
    rows = _grid_rows(at)
    assert [d for d, _ in rows] == list(range(16)) and all(v is not None for _, v in rows)  # KL from the images
    assert any("disentanglement model" in i.value for i in at.info)
    model = vaecore.load(str(family_env / "factor-vae"))
    z = torch.zeros(model.latent_dim)
    grid, steps = traversals.traversal_grid(model, z, [0, 5])
    assert grid.shape == (2, 11, *SHAPE) and steps[0] == -3 and steps[-1] == 3
    assert torch.allclose(grid[1], interp.traverse(model, z, 5, steps), atol=1e-6)
    vq = _app("3_Interpolation.py", "vqvae")
    vq.run()
    _no_exceptions(vq)
    assert _grid_rows(vq) == [] and any("no traversal grid" in c.value and "discrete codes" in c.value
                                        for c in vq.caption)


# 5. VQ codebooks -------------------------------------------------------------------------------------
def _usage_bars(at) -> list[dict]:
    return [t for f in _figures(at) if (f["layout"].get("xaxis", {}).get("title") or {}).get("text") == "code"
            for t in f["data"]]


@pytest.mark.parametrize("preset, levels", [("vqvae", 1), ("hrq-vae", 3)])
def test_codebook_usage_counts_every_position_and_decodes_codes(family_env: Path, preset: str, levels: int) -> None:
    from explorer import geometry

    n = 120
    at = _app("2_Latent_map.py", preset)
    at.session_state["map_n"] = n
    at.run()
    _no_exceptions(at)
    model = vaecore.load(str(family_env / preset))
    positions = model.map_size[0] * model.map_size[1]
    bars = _usage_bars(at)
    assert len(bars) == levels
    counts = np.stack([values(b["y"]).astype(np.int64) for b in bars])
    assert (counts.sum(1) == n * positions).all()
    x = vaecore.load_dataset("mnist", limit=1).x_test[:n]
    assert (counts == geometry.codebook_usage(model, x)).all()
    assert counts.shape[1] == model.config.num_codes
    assert any(c.startswith("Level 0 codes decoded") for c in _captions(at))
    assert "Usage as CSV" in [d.proto.label for d in at.get("download_button")]
    order = np.argsort(-counts[0], kind="stable")[:4]
    decoded = geometry.decoded_codes(model, order.tolist())
    rows = model.codebooks()[0][torch.as_tensor(order)].repeat_interleave(positions, dim=0)
    assert torch.allclose(decoded, model.decode(model.rows_to_latents(rows, 4)).detach(), atol=1e-6)


# 6. sphere and disk ----------------------------------------------------------------------------------
def test_svae_latents_on_the_sphere(family_env: Path) -> None:
    from explorer import geometry

    at = _app("2_Latent_map.py", "svae")
    at.session_state["map_n"] = 150
    at.run()
    _no_exceptions(at)
    assert any(h.value == "The latents on the sphere" for h in at.subheader)
    fig = next(f for f in _figures(at) if any(t["type"] == "surface" for t in f["data"]))
    pts = np.concatenate([np.stack([values(t[a]) for a in "xyz"], axis=1) for t in fig["data"]
                          if t["type"] == "scatter3d"])
    assert len(pts) == 150 and np.allclose(np.linalg.norm(pts, axis=1), 1.0, atol=1e-4)
    assert any("renormalised to unit length" in c.value for c in at.caption)
    p = geometry.sphere_coordinates(np.random.default_rng(0).normal(size=(40, 2)))  # fewer than 3 dims
    assert p.shape == (40, 3) and np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)


def test_poincare_latents_inside_the_unit_disk(family_env: Path) -> None:
    from explorer import geometry

    at = _app("2_Latent_map.py", "poincare-vae")
    at.session_state["map_n"] = 150
    at.run()
    _no_exceptions(at)
    assert any(h.value == "The latents in the Poincaré disk" for h in at.subheader)
    fig = next(f for f in _figures(at) if any(s.get("type") == "circle" for s in f["layout"].get("shapes", [])))
    pts = np.concatenate([np.stack([values(t["x"]), values(t["y"])], axis=1) for t in fig["data"]])
    model = vaecore.load(str(family_env / "poincare-vae")).eval()
    with torch.no_grad():
        z = model.embed(vaecore.load_dataset("mnist", limit=1).x_test[:150]).numpy()
    ids = np.concatenate([values(t["customdata"]) for t in fig["data"]]).astype(int)
    assert len(pts) == 150 and np.allclose(pts, geometry.disk_coordinates(z)[ids], atol=1e-5)
    assert (np.linalg.norm(pts, axis=1) < 1).all()
    ball = np.random.default_rng(1).normal(size=(200, 5))
    ball *= (0.999 / np.linalg.norm(ball, axis=1, keepdims=True)) * np.random.default_rng(2).random((200, 1))
    assert (np.linalg.norm(geometry.disk_coordinates(ball / 2.0, curvature=4.0), axis=1) < 1).all()
    assert any("inside the unit disk" in c.value for c in at.caption)
