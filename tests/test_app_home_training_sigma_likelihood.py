"""The app's home, training monitor, σ convergence and likelihood comparison pages, the shared UI
helpers and the background jobs. Pages run through AppTest on the bundled checkpoints (or quick digits
models when checkpoints/ holds fewer than two), with training runs written to a temporary folder."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from budget import seconds
from streamlit.testing.v1 import AppTest

import vaecore
from explorer import catalog, figures, tables
from explorer.jobs import JobError, JobManager, check_name, progress, run_status
from vaecore import TrainConfig, load_dataset, read_metrics, train
from vaecore.hub import bundled_names, checkpoints_dir

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = seconds(90)


def _usable_zoo(root: Path) -> list[str]:
    """Bundled models that have a training log with a decoder σ."""
    names = []
    for name in bundled_names():
        records = read_metrics(root / name)
        if tables.logs_sigma(records):
            names.append(name)
    return names


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two or more model names with σ logs: the bundled ones, else two quick digits models."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAE_APP_RUNS", str(tmp_path_factory.mktemp("app_runs")))
        mp.setenv("VAE_APP_CACHE", str(tmp_path_factory.mktemp("app_cache")))
        names = _usable_zoo(checkpoints_dir())
        if len(names) < 2:
            quick = tmp_path_factory.mktemp("zoo")
            digits = load_dataset("digits")
            for preset in ("sigma-vae", "gaussian-vae"):
                train(preset, digits, quick / preset, TrainConfig(max_steps=20, log_every=5, val_limit=100))
            mp.setenv("VAE_CHECKPOINTS", str(quick))
            names = _usable_zoo(quick)
        names.sort(key=lambda n: n not in ("sigma-vae", "gaussian-vae"))  # two models with an ELBO first
        yield names


@pytest.fixture
def runs_dir(zoo: list[str]) -> Path:
    return catalog.runs_root()


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll until `condition()` holds; fail with `what` after `timeout` seconds."""
    end = time.monotonic() + seconds(timeout)
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def last_event(folder: Path) -> str | None:
    return next((r.get("event") for r in reversed(read_metrics(folder)) if r.get("kind") == "event"), None)


def figure_traces(at: AppTest, index: int = 0) -> list[dict]:
    return json.loads(at.get("plotly_chart")[index].proto.spec)["data"]


# pages ---------------------------------------------------------------------------------------------
def test_home_shows_cards_and_sets_the_shared_picker(zoo: list[str]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    at.toggle(key="home_cards").set_value(True).run()
    use = [b for b in at.button if b.label == "Use this model"]
    assert len(use) == len(bundled_names()) >= 2
    assert len(at.image) >= len(zoo)
    other = bundled_names()[1]
    next(b for b in use if b.key == f"use_{other}").click().run()
    assert at.sidebar.selectbox(key="vae_picker_bundled").value == other
    assert at.query_params["model"] == other
    for page in ("pages/1_Training_monitor.py", "pages/4_Sigma_convergence.py", "pages/5_Likelihood_comparison.py"):
        at.switch_page(page).run()
        no_exceptions(at)


def test_home_cards_show_the_same_metrics_grouped_and_warn_of_collapse(zoo: list[str]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    at.toggle(key="home_cards").set_value(True).run()
    lines = [m.value for m in at.markdown if "−log p" in m.value and "MSE" in m.value]
    assert len(lines) == len(bundled_names())
    assert all([part.split("&nbsp;")[0] for part in line.split(" · ")] == ["−log p", "MSE", "FD", "active"]
               for line in lines)
    groups = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert len(groups) == len(set(groups)) >= (2 if len(bundled_names()) > 3 else 1)
    summary = at.sidebar.caption[0].value if at.sidebar.caption else ""
    assert "params=" not in summary and "latent" in summary
    if "arelbo-diag-d" in bundled_names():
        assert any("collapse" in w.value.lower() or "blank" in w.value.lower() for w in at.warning)
    if "sigma-vae" in bundled_names():
        assert len([w for w in at.warning]) < len(bundled_names()) / 2


def test_picker_explains_a_missing_folder_briefly(zoo: list[str]) -> None:
    at = AppTest.from_file(str(ROOT / "pages/5_Likelihood_comparison.py"), default_timeout=TIMEOUT).run()
    at.sidebar.segmented_control(key="vae_picker_source").set_value("Folder").run()
    at.sidebar.text_input(key="vae_picker_folder").input("/no/such/folder").run()
    no_exceptions(at)
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "No folder" in errors[0] and len(errors[0]) < 200
    page = AppTest.from_file(str(ROOT / "pages/2_Latent_map.py"), default_timeout=TIMEOUT)
    page.session_state["vae_pick"] = {"source": "Folder", "folder": "/no/such/folder"}
    page.run()
    no_exceptions(page)
    assert not any("Pick a model in the sidebar" in i.value for i in page.info)
    assert any("could not be loaded" in w.value for w in page.warning)


@pytest.mark.parametrize("page", ["pages/1_Training_monitor.py", "pages/4_Sigma_convergence.py",
                                  "pages/5_Likelihood_comparison.py"])
def test_pages_share_the_pick_and_restore_it_from_the_url(zoo: list[str], page: str) -> None:
    other = bundled_names()[1]
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    at.session_state["vae_pick"] = {"source": "Bundled", "bundled": other}
    at.run()
    no_exceptions(at)
    assert at.sidebar.selectbox(key="vae_picker_bundled").value == other
    fresh = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    fresh.query_params["model"] = other
    fresh.run()
    assert fresh.sidebar.selectbox(key="vae_picker_bundled").value == other


def test_picker_explains_an_unreachable_hub_repo(zoo: list[str]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.sidebar.segmented_control(key="vae_picker_source").set_value("Hub").run()
    at.sidebar.text_input(key="vae_picker_repo").input("nobody-xyz/no-such-vae").run()
    no_exceptions(at)
    assert any("could not load Hub repo" in e.value for e in at.sidebar.error)


def test_training_monitor_trains_stops_and_resumes(runs_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    assert any("No runs yet" in i.value for i in at.info)
    at.selectbox(key="tm_data").set_value("digits")
    at.number_input(key="tm_max_steps").set_value(20)
    at.number_input(key="tm_log_every").set_value(5)
    at.select_slider(key="tm_batch_size").set_value(32)
    at.button(key="tm_start").click().run()
    no_exceptions(at)
    session = runs_dir / at.session_state["vae_session_id"]
    first = next(session.iterdir())
    wait_for(lambda: any(r.get("kind") == "step" for r in read_metrics(first)), what="the first metric records")
    wait_for(lambda: last_event(first) == "finished", what="the short run to finish")
    at.run()
    no_exceptions(at)
    assert any("finished" in m.value for m in at.markdown)
    assert len(figure_traces(at)) >= 6
    assert at.progress[0].value == 100
    at.button(key="tm_explore").click().run()
    assert at.sidebar.selectbox(key="vae_picker_run").value == str(first)

    at.number_input(key="tm_max_steps").set_value(0)
    at.number_input(key="tm_epochs").set_value(500)
    at.button(key="tm_start").click().run()
    second = next(p for p in session.iterdir() if p != first)
    wait_for(lambda: any(r.get("kind") == "step" for r in read_metrics(second)), what="the long run's records")
    at.run()
    at.button(key="tm_action").click().run()
    wait_for(lambda: last_event(second) == "stopped", what="the stop")
    at.run()
    no_exceptions(at)
    assert any("stopped" in m.value for m in at.markdown)
    stopped_at = max(r["step"] for r in read_metrics(second))
    at.button(key="tm_action").click().run()
    wait_for(lambda: any(r.get("kind") == "step" and r["step"] > stopped_at for r in read_metrics(second)),
             what="steps after resuming")
    at.run()
    at.button(key="tm_action").click().run()
    wait_for(lambda: last_event(second) == "stopped", what="the second stop")
    assert [r["event"] for r in read_metrics(second) if r.get("kind") == "event"] == \
        ["started", "stopped", "resumed", "stopped"]
    stopped_at2 = max(r["step"] for r in read_metrics(second))

    reloaded = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=TIMEOUT)
    reloaded.query_params["sid"] = at.session_state["vae_session_id"]
    reloaded.run()
    no_exceptions(reloaded)
    options = next(b for b in reloaded.selectbox if b.label == "Run").options
    assert len(options) == 2 and all("sigma-vae on digits" in o for o in options)
    assert sorted(o.rsplit(" · ", 1)[1] for o in options) == ["finished at step 20", f"stopped at step {stopped_at2}"]
    rows = reloaded.dataframe[0].value
    assert {"preset", "data", "status", "lr", "epochs", "batch"} <= set(rows.columns)


def test_training_monitor_shows_a_diverged_run(runs_dir: Path) -> None:
    folder = runs_dir / "divergedsession" / "20250101-000000-sigma-vae"
    folder.mkdir(parents=True)
    events = [{"kind": "event", "event": "started", "step": 0, "total_steps": 100},
              {"kind": "step", "step": 10, "epoch": 0.1, "loss": 5.0, "recon": 4.0, "kl": 1.0, "log_sigma": -1.0,
               "lr": 1e-3, "images_per_s": 100.0, "eta_s": 9.0},
              {"kind": "event", "event": "diverged", "step": 11, "message": "loss became nan at step 11"}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=TIMEOUT)
    at.query_params["sid"] = "divergedsession"
    at.run()
    no_exceptions(at)
    assert any("diverged" in e.value and "loss became nan" in e.value for e in at.error)


def test_sigma_page_draws_one_trace_per_chosen_model(zoo: list[str]) -> None:
    at = AppTest.from_file(str(ROOT / "pages/4_Sigma_convergence.py"), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    at.multiselect(key="sc_bundled").set_value(zoo[:2]).run()
    no_exceptions(at)
    curves = lambda: [t for t in figure_traces(at) if t.get("legendgroup") != "reference"]  # noqa: E731
    assert sorted(t["name"] for t in curves()) == sorted(zoo[:2])
    at.multiselect(key="sc_bundled").set_value(zoo[:1]).run()
    assert [t["name"] for t in curves()] == zoo[:1]
    at.segmented_control(key="sc_y").set_value("sigma2").run()
    no_exceptions(at)
    assert len(curves()) == 1


def _wait_page(at: AppTest, done: Callable[[AppTest], bool], timeout: float = 240, what: str = "the page") -> None:
    end = time.monotonic() + seconds(timeout)
    while time.monotonic() < end:
        at.run()
        if done(at):
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def test_comparison_page_ranks_on_discrete_nll_and_computes_in_the_background(zoo: list[str]) -> None:
    at = AppTest.from_file(str(ROOT / "pages/5_Likelihood_comparison.py"), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    defaults = at.multiselect(key="lc_models").value
    assert defaults and not {"ae", "arelbo-diag-d"} & set(defaults)
    if all((checkpoints_dir() / m / "per_image.safetensors").is_file() for m in defaults):  # ranked with their SEs
        ranked = at.dataframe[0].value
        assert list(ranked["rank"]) == list(range(1, len(defaults) + 1))
        values = [float(str(v).replace(",", "")) for v in ranked["nll-discrete"]]
        assert values == sorted(values)
        assert not any(str(v) == "None" for v in ranked.to_numpy().ravel())
    mixed = [m for m in ("sigma-vae", "ae", "bernoulli-vae") if m in bundled_names()]
    if len(mixed) == 3:
        at.multiselect(key="lc_models").set_value(mixed).run()
        no_exceptions(at)
        unranked = at.dataframe[1].value
        assert set(unranked["model"]) == {"ae", "bernoulli-vae"} and "why not ranked" in unranked.columns
        assert any(c.value.startswith("Not meaningful") for c in at.caption)  # the AE's prior samples
    if "arelbo-diag-d" in bundled_names():
        at.multiselect(key="lc_models").set_value(["sigma-vae", "arelbo-diag-d"]).run()
        no_exceptions(at)
        warned = [w.value for w in at.warning]
        assert warned and all(w.startswith("**arelbo-diag-d**") for w in warned), warned
    at.multiselect(key="lc_models").set_value(zoo[:2])
    at.multiselect(key="lc_metrics").set_value(["elbo", "iwae", "nll-discrete", "mse", "active-units"])
    at.select_slider(key="lc_n_test").set_value(50)
    at.select_slider(key="lc_k").set_value(10)
    at.multiselect(key="lc_grid_samplers").set_value(["prior"])
    at.run()
    started = time.monotonic()
    at.button(key="lc_compute").click().run()
    no_exceptions(at)
    assert time.monotonic() - started < 20, "Compute blocked the page"
    _wait_page(at, lambda a: sum("computed here" in c.value for c in a.caption) == 2, what="both evaluations")
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    assert not any("None" == str(v) for df in at.dataframe for v in df.value.to_numpy().ravel())
    assert len(at.image) == 2
    at.multiselect(key="lc_grid_samplers").set_value(["prior", "maf"]).run()
    no_exceptions(at)
    assert any("not fitted" in c.value for c in at.caption)


# engine-side jobs ----------------------------------------------------------------------------------
def test_jobs_validate_names_and_report_errors(tmp_path: Path) -> None:
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(JobError):
            check_name(bad, "run name")
    manager = JobManager(tmp_path)
    job = manager.start("s123456", "sigma-vae", {"data": "fashion-mnist"})
    assert job.wait(60)
    assert job.status == "error" and "Fashion-MNIST" in job.message
    info = manager.runs("s123456")[0]
    assert info.status == "error" and "Fashion-MNIST" in info.message
    with pytest.raises(JobError, match="no checkpoint"):
        manager.resume("s123456", info.name)


def test_jobs_one_run_per_session_and_continue_finished(tmp_path: Path) -> None:
    manager = JobManager(tmp_path, max_running=1)
    job = manager.start("s123456", "gaussian-vae", {"data": "digits", "epochs": 500, "log_every": 5})
    try:
        with pytest.raises(JobError, match="still training"):
            manager.start("s123456", "sigma-vae", {"data": "digits"})
        queued = manager.start("other99", "sigma-vae", {"data": "digits"})
        assert queued.status == "queued" and manager.queue_position("other99", queued.name) == 1
        assert manager.run("other99", queued.name).label.endswith("queued (#1)")
    finally:
        manager.stop_all()
    assert job.status == "stopped" and queued.status == "cancelled"
    assert manager.runs("other99")[0].status == "cancelled"
    manager.delete("other99", queued.name)
    assert manager.runs("other99") == []
    short = manager.start("s123456", "sigma-vae", {"data": "digits", "epochs": 1, "batch_size": 300})
    assert short.wait(60) and short.status == "finished"
    more = manager.resume("s123456", short.name, more_epochs=1)
    assert more.wait(60) and more.status == "finished"
    p = progress(more.records())
    assert p["step"] == p["total_steps"] == 2 * 3 and p["fraction"] == 1.0


def test_run_status_and_progress_from_records() -> None:
    assert run_status([]) == ("empty", "")
    assert run_status([{"kind": "event", "event": "started"}])[0] == "interrupted"
    assert run_status([{"kind": "event", "event": "started"},
                       {"kind": "event", "event": "diverged", "message": "m"}]) == ("diverged", "m")
    p = progress([{"kind": "event", "event": "started", "total_steps": 10},
                  {"kind": "step", "step": 4, "epoch": 0.4, "images_per_s": 50.0, "eta_s": 3.0}])
    assert p == {"step": 4, "total_steps": 10, "fraction": 0.4, "images_per_s": 50.0, "eta_s": 3.0, "epoch": 0.4}


# shared UI helpers ---------------------------------------------------------------------------------
def test_sigma_trace_reads_log_sigma_and_arelbo_mle() -> None:
    records = [{"kind": "step", "step": 1, "epoch": 0.5, "log_sigma": -1.0},
               {"kind": "step", "step": 2, "epoch": 1.0, "sigma2_mle": 0.01, "log_sigma": 99.0},
               {"kind": "epoch", "step": 2, "epoch": 1.0, "val_loss": 3.0},
               {"kind": "step", "step": 3, "epoch": 1.5, "loss": 1.0}]
    xs, ys = tables.sigma_trace(records, "epoch")
    assert xs == [0.5, 1.0] and ys == pytest.approx([-1.0, 0.5 * np.log(0.01)])
    assert tables.sigma_trace(records, "step", "sigma2")[1] == pytest.approx([np.exp(-2.0), 0.01])
    fig = figures.sigma_figure({"a": records, "b": records[:1]}, beta=0.01)
    assert len([t for t in fig.data if t.legendgroup != "reference"]) == 2 and len(fig.layout.shapes) == 2
    assert fig.layout.shapes[1].y0 == pytest.approx(0.5 * np.log(0.01))
    assert not tables.logs_sigma([{"kind": "step", "loss": 1.0}])


def test_training_figure_has_a_panel_per_quantity() -> None:
    records = [{"kind": "step", "step": s, "epoch": s / 10, "loss": 1.0 / s, "recon": 0.5, "kl": 0.2,
                "sigma2_mle": 0.02, "lr": 1e-3, "images_per_s": 100.0} for s in range(1, 5)]
    records.append({"kind": "epoch", "step": 4, "epoch": 0.4, "val_loss": 0.3})
    fig = figures.training_figure(records)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["Loss (per example)", "Reconstruction", "KL", "σx² (MLE)", "Learning rate", "Images / s"]
    assert [t.name for t in fig.data if t.showlegend is not False] == ["training (logged steps)",
                                                                      "validation (per epoch)"]
    assert fig.layout.modebar.orientation == "v"
    bernoulli = [{k: v for k, v in r.items() if k != "sigma2_mle"} for r in records]
    assert "ln σ" not in [a.text for a in figures.training_figure(bernoulli).layout.annotations]
    assert len(figures.training_figure(bernoulli).layout.annotations) == 5
    overlay = figures.training_figure({"run a": records, "run b": bernoulli}, smoothing=0.6)
    assert [t.name for t in overlay.data if t.showlegend is not False] == ["run a", "run a validation", "run b",
                                                                          "run b validation"]
    assert figures.smooth([1.0, 0.0], 0.5) == [1.0, 1 / 3]


def test_catalog_and_card_helpers(tmp_path: Path) -> None:
    for entries in ([{"name": "m", "title": "My model"}], {"models": [{"name": "m", "title": "My model"}]},
                    {"m": {"title": "My model"}}):
        (tmp_path / "catalog.json").write_text(json.dumps(entries))
        assert catalog._catalog_entries(tmp_path)["m"]["title"] == "My model"
    (tmp_path / "catalog.json").write_text("{broken")
    assert catalog._catalog_entries(tmp_path) == {}
    assert catalog.card_metrics({"elbo": -90.0, "nll-discrete": 1200.5, "mse": float("nan"), "notes": {}}) == \
        {"nll-discrete": 1200.5, "mse": None, "fd": None, "active-units": None}
    assert catalog.card_spreads({"nll-discrete": 1200.5}) is None  # an older evaluation: no ± at all
    seeds = {"se": 1.0, "n": 3, "over": "seeds", "sd": 1.7}
    spreads = catalog.card_spreads({"nll-discrete": 1200.5, "fd": 30.0, "active-units": 16, "uncertainty": {
        "nll-discrete": {"se": 7.9, "n": 2000, "over": "images", "sd": 350.0}, "fd": seeds}})
    assert spreads == {"nll-discrete": 7.9, "mse": None, "fd": 1.7, "active-units": None}
    from explorer.widgets import card_metrics_markdown

    line = card_metrics_markdown({"nll-discrete": 1200.5, "mse": 5.9, "fd": 30.0, "active-units": 16.0}, spreads)
    assert "**1200**&nbsp;±&nbsp;8" in line and "**30**&nbsp;±&nbsp;2" in line and "older" not in line
    assert "older evaluation: no ±" in card_metrics_markdown({"nll-discrete": 1200.5}, None)
    assert catalog.card_family({"config": {"likelihood": "arelbo"}}) == "vae-arelbo"
    assert catalog.card_family({"config": {"likelihood": "gaussian", "model_type": "wae"}}) == "deterministic"
    assert catalog.card_family({"config": {"likelihood": "categorical"}}) == "vae-discrete"
    # filed by the family, not by its likelihood (VQ-VAE and FactorVAE once sat under their decoders)
    assert catalog.card_family({"config": {"likelihood": "bernoulli", "model_type": "vqvae"}}) == "quantised"
    assert catalog.card_family({"config": {"likelihood": "gaussian", "model_type": "factor-vae"}}) == "disentangling"
    assert catalog.card_family({"config": {"likelihood": "bernoulli", "model_type": "vae", "preset": "vae"}}) == "tvae"
    assert catalog.card_family({"config": {"likelihood": "gaussian", "model_type": "no-such"}}) == "other"
    assert tables.format_seconds(3725) == "1 h 02 min" and tables.format_seconds(65) == "1 min 05 s"
    assert tables.format_seconds(None) == "—"


def test_jobs_from_five_sessions_queue_finish_and_stay_apart(tmp_path: Path) -> None:
    import gc

    def rss() -> int:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024

    manager = JobManager(tmp_path, max_running=2)
    before = rss()
    sessions = [f"user{i}abcdef" for i in range(5)]
    jobs = [manager.start(s, "sigma-vae", {"data": "digits", "max_steps": 30, "log_every": 10, "batch_size": 32,
                                           "checkpoint_every": 1000}) for s in sessions]
    assert sum(j.status == "queued" for j in jobs) == 3
    assert [manager.queue_position(s, j.name) for s, j in zip(sessions[2:], jobs[2:], strict=True)] == [1, 2, 3]
    assert len(manager.training()) <= 2
    wait_for(lambda: all(j.status == "finished" for j in jobs) and not manager.training(), timeout=180,
             what="all five jobs to finish")
    for s, job in zip(sessions, jobs, strict=True):
        assert [r.name for r in manager.runs(s)] == [job.name] and manager.runs(s)[0].status == "finished"
    assert all(j.trainer is None for j in jobs)
    gc.collect()
    grown = rss() - before
    assert grown < 600 * 2**20, f"RSS grew by {grown / 2**20:.0f} MB"


def test_training_defaults_learn_without_collapse_and_runs_can_be_removed(runs_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    assert at.selectbox(key="tm_data").value == "digits" and at.number_input(key="tm_lr").value == 2e-3
    started = time.monotonic()
    at.button(key="tm_start").click().run()
    no_exceptions(at)
    folder = next((runs_dir / at.session_state["vae_session_id"]).iterdir())
    wait_for(lambda: last_event(folder) == "finished", timeout=150, what="the default run to finish")
    took = time.monotonic() - started
    at.run()
    no_exceptions(at)
    assert not [w.value for w in at.warning], "the default run collapsed"
    from explorer.caches import collapse_warnings
    from explorer.diagnostics import diagnose

    model = vaecore.load(str(folder))
    digits = load_dataset("digits")
    report = diagnose(model, digits.x_val[:300], digits.x_train.mean(0, keepdim=True))
    assert report.active and report.recon_mse < 0.6 * report.mean_mse, report.as_dict()
    assert collapse_warnings(str(folder)) == []
    print(f"default run: {took:.0f} s, MSE {report.recon_mse:.2f} vs {report.mean_mse:.2f} for the mean image")
    assert at.number_input(key="tm_more").label == "More epochs"
    assert any(d.proto.label.startswith("Download the run folder") for d in at.get("download_button"))
    at.button(key="tm_delete").click().run()
    no_exceptions(at)
    assert not folder.exists() and any("No runs yet" in i.value for i in at.info)


def test_training_page_checks_the_data_folder_before_starting(runs_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=TIMEOUT).run()
    at.selectbox(key="tm_data").set_value("fashion-mnist").run()
    at.button(key="tm_start").click().run()
    no_exceptions(at)
    assert any(e.value.startswith("**Data folder**") for e in at.error)
    at.text_input(key="tm_data_dir").input("/no/such/dir").run()
    at.button(key="tm_start").click().run()
    assert any("no folder" in e.value for e in at.error)
    assert not (runs_dir / at.session_state["vae_session_id"]).exists()
    assert tables.page_message("pass --data-dir DIR") == "pass the **Data folder** field DIR"


def test_progress_after_continue_has_no_stale_eta() -> None:
    records = [{"kind": "event", "event": "started", "total_steps": 10},
               {"kind": "step", "step": 10, "eta_s": 0.0, "images_per_s": 50.0, "epoch": 1.0},
               {"kind": "event", "event": "finished", "step": 10},
               {"kind": "event", "event": "resumed", "total_steps": 20}]
    p = progress(records)
    assert p["eta_s"] is None and p["total_steps"] == 20 and p["step"] == 10


def test_sigma_figure_names_the_levels_in_the_legend_and_keeps_every_curve_visible() -> None:
    records = [{"kind": "step", "step": s, "epoch": s / 10, "log_sigma": 0.0} for s in range(1, 5)]
    fig = figures.sigma_figure({"gaussian-vae": records, "beta-vae": records, "c": records}, quantity="sigma2",
                               beta=0.01)
    assert not fig.layout.annotations  # no label on the plot, where it sat on the curves
    names = [t.name for t in fig.data if t.legendgroup == "reference"]
    assert names == ["fixed σ = 1 (Gaussian VAE): σ² = 1", "β-VAE, β = 0.01: σ² = 0.01"]
    assert [s.y0 for s in fig.layout.shapes] == [1.0, 0.01] and all(s.layer == "below" for s in fig.layout.shapes)
    curves = [t for t in fig.data if t.legendgroup != "reference"]
    styles = {(t.line.color, t.line.dash, t.marker.symbol) for t in curves}
    assert len(styles) == 3 and len({t.line.color for t in curves}) == 3 and len({t.line.dash for t in curves}) == 3
    assert all(t.line.width > 1 and "markers" in t.mode for t in curves)
    shifted = [{**r, "log_sigma": -1.0} for r in records]
    pairs = figures.coinciding({k: tables.sigma_trace(v, "epoch") for k, v in
                                {"gaussian-vae": records, "beta-vae": records, "sigma": shifted}.items()})
    assert [(a, b) for a, b, _ in pairs] == [("gaussian-vae", "beta-vae")]


def _lab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB hex colour."""
    def linear(u: float) -> float:
        return ((u + 0.055) / 1.055) ** 2.4 if u > 0.04045 else u / 12.92

    r, g, b = (linear(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_trace_colours_are_far_apart() -> None:
    """Every pair of trace colours is at least 25 apart in CIELAB (the old default palette had near twins)."""
    labs = [_lab(c) for c in figures.TRACE_COLOURS]
    gaps = [math.dist(p, q) for i, p in enumerate(labs) for q in labs[i + 1:]]
    assert min(gaps) >= 25, min(gaps)
    assert _lab("#ffffff")[0] == pytest.approx(100, abs=0.1) and _lab("#000000")[0] == pytest.approx(0, abs=1e-9)


def test_sigma_page_leaves_out_failed_runs_and_says_why(runs_dir: Path, tmp_path: Path) -> None:
    folder = runs_dir / "sigmasession1" / "20250101-000000-sigma-vae"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text(json.dumps({"kind": "event", "event": "error", "message": "boom"}) + "\n")
    at = AppTest.from_file(str(ROOT / "pages/4_Sigma_convergence.py"), default_timeout=TIMEOUT)
    at.query_params["sid"] = "sigmasession1"
    at.run()
    no_exceptions(at)
    assert at.multiselect(key="sc_runs").options == []
    traces, skipped = tables.sigma_traces({"failed": folder})
    assert not traces and "this likelihood" not in skipped["failed"] and "no model config" in skipped["failed"]


CROWD_STEPS = 200  # long enough that the first jobs still hold every slot when the later sessions start


def test_five_browser_sessions_train_at_once_through_the_page(runs_dir: Path) -> None:
    def rss() -> int:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024

    before = rss()
    pages = []
    for i in range(5):
        at = AppTest.from_file(str(ROOT / "pages/1_Training_monitor.py"), default_timeout=TIMEOUT)
        at.query_params["sid"] = f"crowd{i}session"
        at.run()
        at.number_input(key="tm_max_steps").set_value(CROWD_STEPS)
        at.number_input(key="tm_checkpoint_every").set_value(1000)
        at.button(key="tm_start").click().run()
        no_exceptions(at)
        pages.append(at)
    statuses = [next(m.value for m in at.markdown if "sigma-vae" in m.value and "on" in m.value) for at in pages]
    assert any("queued" in s for s in statuses), statuses  # one job per core, the rest wait their turn
    folders = [next((runs_dir / f"crowd{i}session").iterdir()) for i in range(5)]
    wait_for(lambda: all(last_event(f) == "finished" for f in folders), timeout=240, what="all five runs")
    for at in pages:
        at.run()
        no_exceptions(at)
        options = next(b for b in at.selectbox if b.label == "Run").options
        assert len(options) == 1 and options[0].endswith(f"finished at step {CROWD_STEPS}"), options
    grown = rss() - before
    assert grown < 800 * 2**20, f"RSS grew by {grown / 2**20:.0f} MB for five finished runs"
