"""The σ page on the bundled models: curves that lie on each other are said to, each curve has its own style."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from budget import seconds
from streamlit.testing.v1 import AppTest

from vaecore.hub import bundled_names

ROOT = Path(__file__).resolve().parent.parent


def test_coinciding_curves_are_named_and_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = ["sigma-vae", "arelbo-iso-i", "gaussian-vae", "beta-vae"]
    if not set(wanted) <= set(bundled_names()):
        pytest.skip("needs the bundled σ-VAE, AR-ELBO Iso-I, Gaussian and β-VAE")
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages/4_Sigma_convergence.py"), default_timeout=seconds(120))
    at.session_state["sc_bundled"] = wanted
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(c.value for c in at.caption)
    assert "**sigma-vae** and **arelbo-iso-i** lie on one curve" in said
    assert "**gaussian-vae** and **beta-vae** lie on one curve" in said
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    curves = [t for t in traces if t.get("legendgroup") != "reference"]
    assert len({(t["line"]["color"], t["line"]["dash"]) for t in curves}) == len(curves) == 4


def test_the_rate_distortion_plane_shows_each_models_stored_point(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecore.evaluation import rate_distortion as rd
    from vaecore.hub import checkpoints_dir

    if not {"sigma-vae", "gaussian-vae"} <= set(bundled_names()):
        pytest.skip("needs the bundled σ-VAE and Gaussian VAE")
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages/4_Sigma_convergence.py"), default_timeout=seconds(120)).run()
    assert not at.exception, [e.value for e in at.exception]
    at.segmented_control(key="sc_rd_family").set_value(rd.DENSITY).run()
    chart = next(c for c in at.get("plotly_chart") if "sc_rd" in c.proto.id)
    traces = json.loads(chart.proto.spec)["data"]
    drawn = {t["name"]: (t["x"][0], t["y"][0]) for t in traces if t.get("mode") == "markers"}
    for name in ("sigma-vae", "gaussian-vae"):
        folder = checkpoints_dir() / name
        point = rd.from_evaluation(json.loads((folder / "eval.json").read_text()),
                                   json.loads((folder / "config.json").read_text()))
        assert drawn[name] == pytest.approx((point.rate, point.distortion), rel=1e-9)
    assert drawn["gaussian-vae"][0] < drawn["sigma-vae"][0] and drawn["gaussian-vae"][1] > drawn["sigma-vae"][1]
