"""The likelihood page ranks with SEs and the stated rule, only on the same images, names models it cannot rank (none
silently dropped), explains where the nats go, and draws the IWAE K-curve — on the bundled σ-VAE and σ = 1 VAE."""

from __future__ import annotations

from pathlib import Path

import pytest
from budget import seconds
from streamlit.testing.v1 import AppTest

from vaecore.hub import bundled_names

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "5_Likelihood_comparison.py")
PAIR = ["sigma-vae", "gaussian-vae"]

pytestmark = pytest.mark.skipif(not set(PAIR) <= set(bundled_names()), reason="needs the bundled σ-VAE and σ = 1 VAE")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=seconds(120))
    at.session_state["lc_models"] = PAIR
    return at.run()


def test_ranking_states_its_rule_and_uncertainty() -> None:
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    assert any("2 standard errors" in c.value and "paired" in c.value for c in at.caption)
    ranked = at.dataframe[0].value
    assert {"rank", "nll-discrete", "± SE", "against the best"} <= set(ranked.columns)
    assert list(ranked["against the best"])[0] == "best"


def test_where_the_nats_go_and_the_k_curve() -> None:
    at = _page()
    at.select_slider(key="lc_bd_n").set_value(50)
    at.button(key="lc_bd_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    breakdown = next(df.value for df in at.dataframe if "black pixels (nats)" in df.value.columns)
    assert set(breakdown["model"]) == set(PAIR)
    at.selectbox(key="lc_kc_model").set_value("sigma-vae")
    at.select_slider(key="lc_kc_n").set_value(10)
    at.select_slider(key="lc_kc_k").set_value(100)
    at.button(key="lc_kc_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("K-curve" in str(c.proto.spec) or "against K" in str(c.proto.spec) for c in at.get("plotly_chart"))


def test_models_without_an_evaluation_or_on_other_images_are_named_apart() -> None:
    import numpy as np

    from explorer.caches import PER_IMAGE_KEY
    from explorer.evaluations import ranking_rows
    from vaecore.evaluation.per_image import PerImage
    from vaecore.evaluation.uncertainty import ImageSet

    n = 20
    images = ImageSet("mnist", "test", tuple(range(n)), "a")
    base = {"settings": {"dataset": "mnist", "split": "test", "n_test": n, "fingerprint": "a"}}
    rng = np.random.default_rng(0)

    def scored(values: np.ndarray) -> dict:
        return {**base, "nll-discrete": float(values.mean()), PER_IMAGE_KEY: PerImage(images, {"nll-discrete": values})}

    results = {"a": scored(1400 + rng.normal(0, 10, n)), "b": scored(1300 + rng.normal(0, 10, n)),
               "c": {"nll-discrete": 900.0, "settings": {"dataset": "mnist", "n_test": 500, "fingerprint": "b"}},
               "old": {**base, "nll-discrete": 800.0}}  # "best", but a mean with no per-image values
    ranked, unranked = ranking_rows(results, {}, missing=["d"])
    assert [r["model"] for r in ranked] == ["b", "a"]  # c is "better" on other images: not in this order
    assert ranked[1]["against the best"] == "worse" and ranked[1]["± SE"] > 0
    why = {r["model"]: r["why not ranked"] for r in unranked}
    assert "no per-image values" in why["c"] and "no per-image values" in why["old"] and "no evaluation yet" in why["d"]
    old = next(r for r in unranked if r["model"] == "old")
    assert old["nll-discrete"] == 800.0 and old["± SE"] is None  # shown, without an SE it does not have


def test_published_numbers_carry_our_spread() -> None:
    from explorer import tables
    from explorer.evaluations import precomputed

    ours = precomputed("gaussian-vae")
    row = tables.published_numbers({"gaussian-vae": "gaussian-vae"}, {"gaussian-vae": ours})[0]
    assert row["paper"] == "AR-ELBO Table 3, MNIST" and row["MSE (ours)"] == ours["mse"]
    stored = (ours.get("uncertainty") or {}).get("mse")  # none in an evaluation older than the protocol
    assert row["MSE (ours) ± SE"] == (stored["se"] if stored else None)
    fd = (ours.get("uncertainty") or {}).get("fd")
    assert row["FD ± s.d. (seeds)"] == (fd["sd"] if fd else None)


def test_the_other_metrics_are_compared_with_the_best_by_the_rule() -> None:
    import numpy as np

    from explorer.caches import PER_IMAGE_KEY
    from explorer.evaluations import paired_rows
    from vaecore.evaluation.per_image import PerImage
    from vaecore.evaluation.uncertainty import ImageSet, seed_spread

    n = 200
    rng = np.random.default_rng(0)
    images = ImageSet("mnist", "test", tuple(range(n)), "a")
    hard = rng.normal(10, 4, n)  # per-image difficulty both models share: pairing removes it

    def result(mse: np.ndarray, fd: list[float], sampler: str = "prior") -> dict:
        s = seed_spread(fd)
        return {"mse": float(mse.mean()), "fd": s.value, "settings": {"sampler": sampler, "n_samples": 2000},
                "uncertainty": {"fd": s.to_json()}, PER_IMAGE_KEY: PerImage(images, {"mse": mse})}

    best = result(hard, [30.0, 31.0, 29.0])
    worse = result(hard + 0.5 + rng.normal(0, 0.1, n), [30.5, 29.5, 31.0])  # MSE 0.5 worse; FD within seed noise
    rows = paired_rows({"a": best, "b": worse}, [{"model": "a"}, {"model": "b"}])
    by = {r["metric"]: r for r in rows}
    assert by["MSE ↓"]["against the best"] == "worse" and by["MSE ↓"]["over"] == f"{n} paired images"
    assert by["MSE ↓"]["± SE"] < 0.02  # the paired SE, far below the 4 / √n of the unpaired means
    assert by["FD ↓"]["against the best"] == "undecided" and by["FD ↓"]["over"] == "3 seeds each"
    other = result(hard, [10.0, 10.5, 9.5], sampler="gmm")  # another sampler's FD: not compared
    assert all(r["metric"] != "FD ↓" for r in paired_rows({"a": best, "c": other}, [{"model": "a"}, {"model": "c"}]))
