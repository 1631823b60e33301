"""A headline number shown on several pages is one number: the engine's, on the same test images.

For two bundled models, `vaecore.evaluation.evaluate` recomputes MSE and active units on the zoo's test images (the
fingerprint in eval.json says they are the same images); the home page's zoo table, the Likelihood comparison
ranking, the Benchmark table and the Latent map's headline then show that number (to the digits each shows), and
−log p / ELBO / KL agree between the pages and eval.json. AppTest on checkpoints/ (skipped without them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from budget import seconds
from streamlit.testing.v1 import AppTest

from explorer import zoo
from vaecore import load_dataset
from vaecore.evaluation.metrics import evaluate
from vaecore.evaluation.registry import METRICS
from vaecore.hub import bundled_names, checkpoints_dir, load_folder

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("sigma-vae", "gaussian-vae")  # picked on the Likelihood comparison page (its default picks may change)


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """eval.json of each model, with MSE and active units recomputed by the engine on the same images."""
    if not all(m in bundled_names() for m in MODELS):
        pytest.skip("needs the bundled checkpoints")
    data = load_dataset("mnist")
    out = {}
    for name in MODELS:
        stored = json.loads((checkpoints_dir() / name / "eval.json").read_text())
        settings = stored["settings"]
        fresh = evaluate(load_folder(checkpoints_dir() / name), data, ["mse", "active-units"],
                         n_test=settings["n_test"])
        assert fresh["settings"]["fingerprint"] == settings["fingerprint"], "not the zoo's test images"
        # float32 sums of 784 squared errors per image: relative rounding below 784 · 2⁻²⁴ < 1e-4
        assert fresh["mse"] == pytest.approx(stored["mse"], rel=1e-4)
        assert fresh["active-units"] == stored["active-units"]
        out[name] = stored
    return out


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))


def _run(page: str, **state: object) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=seconds(300))
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(cell: object) -> tuple[float, float]:
    """A table cell as (value, half its last shown digit): '1,427.1' -> (1427.1, 0.05); numbers exactly."""
    if isinstance(cell, str):
        text = cell.replace(",", "").replace("−", "-").strip()
        decimals = len(text.split(".")[1]) if "." in text else 0
        return float(text), 0.5 * 10 ** -decimals * (1 + 1e-9)
    return float(cell), 0.0


def _agrees(cell: object, value: float) -> bool:
    shown, half = _shown(cell)
    return abs(shown - value) <= max(half, 1e-9 * abs(value))


def _row(frame, name: str):
    rows = frame[frame["model"].astype(str).str.split(" ").str[0] == name]
    assert len(rows) == 1, (name, list(frame["model"]))
    return rows.iloc[0]


def test_home_likelihood_and_benchmark_show_the_same_numbers(truth: dict[str, dict], env: None) -> None:
    home = _run("app.py").dataframe[0].value
    likelihood = _run("pages/5_Likelihood_comparison.py", lc_models=list(MODELS))
    ranking = next(d.value for d in likelihood.dataframe if "rank" in d.value.columns)
    bench = next(d.value for d in _run("pages/7_Benchmark.py").dataframe if "Pythae model" in d.value.columns)
    mse_bench = next(c for c in bench.columns if c.startswith("MSE"))
    for name, stored in truth.items():
        h, r, b = _row(home, name), _row(ranking, name), _row(bench, name)
        for key in ("mse", "nll-discrete", "active-units", "kl"):
            if key in zoo.TABLE_METRICS:
                assert _agrees(h[METRICS[key].short_title], stored[key]), (name, key, h[METRICS[key].short_title])
            assert _agrees(r[key], stored[key]), (name, key, r[key])
        assert _agrees(b[mse_bench], stored["mse"]), (name, b[mse_bench])
        se = stored["uncertainty"]["nll-discrete"]["se"]
        assert _agrees(r["± SE"], se) and r["test images"] == stored["settings"]["n_test"]


@pytest.mark.parametrize("name", MODELS)
def test_latent_map_headline_is_the_zoo_tables_active_units(truth: dict[str, dict], env: None, name: str) -> None:
    at = _run("pages/2_Latent_map.py", vae_pick={"source": "Bundled", "bundled": name})
    headline = next(m.value for m in at.markdown if "active units" in m.value)
    found = re.match(r"\*\*(\d+) of (\d+) ", headline)
    assert found and int(found.group(1)) == truth[name]["active-units"], headline
    model = load_folder(checkpoints_dir() / name)
    assert int(found.group(2)) == model.capabilities.latent_size
    assert f"first {truth[name]['settings']['n_test']:,} test images" in headline  # the zoo's images
