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


def test_a_bundled_study_model_shows_its_recorded_metrics_and_seat() -> None:
    """A bundled dSprites model's page reads the metrics its eval.json records under the study's protocol, names the
    protocol and the estimator settings, and circles the model among its family's seeds."""
    from explorer import disentanglement as dis

    bundled = sorted(p.parent.name for p in CHECKPOINTS_DIR.glob("dsprites-*/eval.json"))
    if not bundled:
        pytest.skip("no dSprites model is bundled")
    name = bundled[0]
    saved = dis.recorded(name)
    assert saved is not None
    rows = {r["metric"]: r["value"] for r in dis.metric_rows(saved)}
    assert len(rows) >= 6 and all(v[0].isdigit() or v.startswith("undefined") for v in rows.values())
    caption = dis.recorded_caption(saved)
    assert "dsprites-disentanglement-study" in caption and "10,000 test images" in caption and "bins 20" in caption
    family, seed, steps = dis.study_seat(name)
    assert name == f"dsprites-{family}" and seed == 0
    records = dis.study_records()
    mine = [r for r in records if (r["family"], r["seed"], r["steps"]) == (family, seed, steps)]
    assert mine and mine[0]["result"]["mig"] == saved["mig"]  # the bundle is the study's seed 0, same numbers
    fig = dis.strip_figure(records, "mig", (family, seed, steps))
    assert fig.data[-1].name == "this model" and fig.data[-1].y[0] == saved["mig"]
    assert dis.recorded("vae") is None and dis.study_seat("vae") is None  # an MNIST model records none
    titles = dis.family_titles()
    assert titles[family].endswith("on dSprites")
    assert titles[family] in [row["family"] for row in dis.study_rows(records, titles)]


def test_the_pages_study_table_keeps_budgets_apart() -> None:
    from explorer import disentanglement as dis

    recs = [{"family": "vae", "seed": 0, "steps": n, "result": {"mig": m}} for n, m in ((500, 0.01), (3000, 0.3))]
    rows = dis.study_rows(recs, {"vae": "VAE on dSprites"})
    assert [(r["steps"], r["seeds"], r["MIG ↑"]) for r in rows] == [(500, 1, "0.010"), (3000, 1, "0.300")]
    fig = dis.strip_figure(recs, "mig", ("vae", 0, 3000), {"vae": "VAE on dSprites"})
    assert [t.name for t in fig.data] == ["VAE on dSprites, 500 steps", "VAE on dSprites, 3000 steps", "this model"]
    assert fig.data[-1].x[0] == "VAE on dSprites, 3000 steps" and fig.data[-1].y[0] == 0.3
