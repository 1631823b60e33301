"""The rate–distortion plane (`vaecore.evaluation.rate_distortion`) and sweeps queued from the training page."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from streamlit.testing.v1 import AppTest

from explorer import sweeps
from explorer.jobs import JobError, JobManager
from vaecore import build_model, load_dataset, model_config
from vaecore.evaluation import rate_distortion as rd
from vaecore.evaluation.metrics.latent import kl_per_image
from vaecore.evaluation.metrics.likelihood import elbo
from vaecore.hub import bundled_names, checkpoints_dir

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"data": "digits", "max_steps": 6, "log_every": 2, "val_limit": 50, "batch_size": 32, "sample_grids": False}


def test_rate_plus_distortion_is_minus_the_elbo_on_the_same_draws() -> None:
    model = build_model(model_config("sigma-vae", input_shape=(1, 8, 8), dataset="digits", latent_dim=3,
                                     arch="mlp").to_dict(), seed=0).eval()
    x = load_dataset("digits").x_test[:64]
    point = rd.measure(model, x, seed=3)
    kl = kl_per_image(model, x, generator=torch.Generator().manual_seed(3))
    values = elbo(model, x, seed=3)
    assert point.rate == pytest.approx(float(kl.mean()), rel=1e-12)
    assert point.rate + point.distortion == pytest.approx(-float(values.mean()), rel=1e-12)
    assert point.elbo == pytest.approx(float(values.mean()), rel=1e-12) and point.n == 64
    assert point.rate_se == pytest.approx(float(kl.std() / 8), rel=1e-9)
    assert point.family == rd.DENSITY
    for c, xs, ys in rd.iso_elbo_lines((0.0, 10.0), points=[point]):
        assert [r + d for r, d in zip(xs, ys, strict=True)] == pytest.approx([c, c])


def test_families_follow_what_the_likelihood_scores() -> None:
    assert rd.family({"likelihood": "bernoulli"}) == rd.BINARY
    assert rd.family({"likelihood": "categorical"}) == rd.PROBABILITY
    assert rd.family({"likelihood": "gaussian", "likelihood_kwargs": {"sigma": "optimal"}}) == rd.DENSITY
    ae = build_model(model_config("ae", input_shape=(1, 8, 8), dataset="digits", arch="mlp").to_dict(), seed=0)
    with pytest.raises(ValueError, match="no rate–distortion point"):
        rd.measure(ae, torch.rand(4, 1, 8, 8))


def test_a_stored_evaluation_gives_its_point() -> None:
    if "gaussian-vae" not in bundled_names():
        pytest.skip("needs the bundled gaussian-vae")
    folder = checkpoints_dir() / "gaussian-vae"
    result = json.loads((folder / "eval.json").read_text())
    point = rd.from_evaluation(result, json.loads((folder / "config.json").read_text()))
    kl = result.get("kl", result.get("kl-per-dim_total"))
    assert point.rate == kl and point.distortion == pytest.approx(-result["elbo"] - kl, rel=1e-12)


def test_a_sweep_trains_one_value_after_the_other_and_is_one_curve(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    manager = JobManager(tmp_path / "runs", max_running=2, threads=1)
    with pytest.raises(JobError, match="2 to"):
        manager.start_sweep("sess01", "beta-vae", QUICK, "beta", [1.0])
    folders = manager.start_sweep("sess01", "beta-vae", QUICK, "beta", [0.5, 4.0], arch="mlp", latent_dim=3)
    assert [json.loads((f / "app_run.json").read_text())["overrides"]["beta"] for f in folders] == [0.5, 4.0]
    with pytest.raises(JobError, match="still training|still waiting"):
        manager.start("sess01", "sigma-vae", QUICK)
    end = time.monotonic() + seconds(300)
    while len([r for r in manager.runs("sess01") if r.status == "finished"]) < 2 and time.monotonic() < end:
        assert len(manager.training()) <= 1  # one run of the sweep at a time
        time.sleep(0.1)
    found = sweeps.sweeps(manager.runs("sess01"))
    assert len(found) == 1 and [sweeps.value_of(r) for r in found[0].runs] == ["0.5", "4.0"]
    points = [sweeps.rate_distortion_point(r) for r in found[0].finished]
    assert len(points) == 2 and all(np.isfinite([p.rate, p.distortion]).all() for p in points)


def test_the_training_page_queues_a_sweep_and_draws_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=seconds(120)).run()
    at.selectbox(key="tm_preset").set_value("beta-vae").run()
    at.selectbox(key="tm_data").set_value("digits")
    at.number_input(key="tm_max_steps").set_value(6)
    at.selectbox(key="tm_sweep_setting").set_value("latent_dim").run()
    at.text_input(key="tm_sweep_values_latent_dim").input("2, 4")
    at.button(key="tm_sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    session = tmp_path / "runs" / at.session_state["vae_session_id"]
    end = time.monotonic() + seconds(300)
    while time.monotonic() < end:
        events = [(f / "metrics.jsonl").read_text() for f in session.iterdir() if (f / "metrics.jsonl").is_file()]
        if sum('"finished"' in e for e in events) == 2:
            break
        time.sleep(0.3)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    chart = next(c for c in at.get("plotly_chart") if "tm_sweep_" in c.proto.id)
    curve = [t for t in json.loads(chart.proto.spec)["data"] if t.get("mode") == "lines+markers+text"]
    assert len(curve) == 1 and curve[0]["text"] == ["2", "4"]
