"""Out-of-distribution scores (vaecore.evaluation.ood): AUROC agrees with scikit-learn, percentiles and PNG lengths
are what they say, the scores are built from the engine's −log p, models without a likelihood get the engine's
reason, and the Likelihood comparison page shows the engine's numbers for MNIST against Fashion-MNIST."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from PIL import Image

from vaecore import build_model, model_config
from vaecore.evaluation import ood
from vaecore.evaluation.metrics.likelihood import iwae_log_likelihood
from vaecore.evaluation.registry import undefined_reason
from vaecore.evaluation.runtime import generator_for

ROOT = Path(__file__).resolve().parent.parent


def test_auroc_agrees_with_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    a, b = np.round(rng.normal(0, 1, 40), 1), np.round(rng.normal(0.7, 1, 30), 1)  # rounded: ties
    got = ood.auroc(a, b)
    want = roc_auc_score(np.r_[np.zeros(40), np.ones(30)], np.r_[a, b])
    assert got.value == pytest.approx(want, abs=1e-12) and (got.n_in, got.n_out) == (40, 30)
    assert 0 < got.se < 0.2
    perfect = ood.auroc(np.arange(5.0), np.arange(5.0) + 10)
    assert (perfect.value, perfect.se) == (1.0, 0.0)
    assert ood.auroc(np.arange(5.0) + 10, np.arange(5.0)).value == 0.0
    assert ood.auroc(np.ones(4), np.ones(6)).value == 0.5
    with pytest.raises(ValueError):
        ood.auroc(np.array([]), np.ones(3))


def test_percentile_and_png_length() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    assert ood.percentile(np.array([0.0, 2.0, 2.5, 9.0]), ref).tolist() == [0.0, 0.375, 0.5, 1.0]
    x = torch.zeros(2, 1, 28, 28)
    x[1] = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    nats = ood.png_nats(x)
    buf = io.BytesIO()
    Image.fromarray(np.round(x[1, 0].numpy() * 255).astype(np.uint8)).save(buf, format="PNG", compress_level=9)
    assert nats[1] == pytest.approx(8 * len(buf.getvalue()) * math.log(2), rel=1e-12)
    assert nats[0] < nats[1] / 5  # a blank image is short, noise is not


def _model(likelihood: str | None = None):
    torch.manual_seed(0)
    overrides = {"likelihood": likelihood} if likelihood else {}
    return build_model(model_config("sigma-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=3,
                                    **overrides).to_dict()).eval()


def test_scores_are_built_from_the_engines_nll() -> None:
    model = _model()
    g = torch.Generator().manual_seed(1)
    x_in, x_ref = torch.rand(12, 1, 8, 8, generator=g), torch.rand(10, 1, 8, 8, generator=g)
    x_out = torch.zeros(9, 1, 8, 8)
    r = ood.ood_scores(model, x_in, x_out, x_ref, k=4, seed=5)
    assert r.measure == "nll-discrete" and undefined_reason(model, "nll-discrete") is None
    ref = -iwae_log_likelihood(model, x_ref, k=4, batch_size=100, generator=generator_for(model, 5), discrete=True)
    assert r.nll_reference == pytest.approx(float(ref.numpy().mean()), rel=1e-12)
    want_in = -iwae_log_likelihood(model, x_in, k=4, batch_size=100, generator=generator_for(model, 6), discrete=True)
    np.testing.assert_array_equal(r.inside["nll"], want_in.numpy())
    np.testing.assert_allclose(r.inside["typicality"], np.abs(r.inside["nll"] - r.nll_reference), rtol=1e-12)
    np.testing.assert_allclose(r.outside["complexity"], r.outside["nll"] - ood.png_nats(x_out), rtol=1e-12)
    for name in ood.SCORES:
        want = ood.auroc(r.inside[name], r.outside[name])
        assert r.aurocs[name] == want


def test_a_model_without_a_likelihood_gets_the_engines_reason() -> None:
    model = _model("bernoulli")
    why = undefined_reason(model, "nll-pdf")
    assert why and undefined_reason(model, "nll-discrete")
    with pytest.raises(ValueError, match="no likelihood to score images with"):
        ood.nll_per_image(model, torch.rand(3, 1, 8, 8))


def test_likelihood_page_shows_the_engines_ood_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from explorer import ood as page_ood
    from vaecore import load_dataset

    fashion = page_ood.data_folder("fashion-mnist")
    if fashion is None:
        pytest.skip("no Fashion-MNIST on this machine (../shared/data/fashion-mnist or VAE_DATA_ROOT)")
    torch.manual_seed(0)
    model = build_model(model_config("sigma-vae", input_shape=(1, 28, 28), arch="mlp", latent_dim=4,
                                     dataset="mnist").to_dict())
    model.save_pretrained(tmp_path / "zoo" / "tiny-mnist")
    monkeypatch.setenv("VAE_CHECKPOINTS", str(tmp_path / "zoo"))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages/5_Likelihood_comparison.py"), default_timeout=seconds(300))
    at.session_state["lc_models"] = ["tiny-mnist"]
    at.session_state["lc_metrics"] = ["mse"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.select_slider(key="lc_ood_n").set_value(50)
    at.select_slider(key="lc_ood_k").set_value(4)
    at.button(key="lc_ood_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "AUROC" in d.value.columns).set_index("score")
    mnist, other = load_dataset("mnist"), load_dataset("fashion-mnist", str(fashion))
    loaded = at.session_state["lc_ood"][1].result
    want = ood.ood_scores(model.eval(), mnist.split("test")[0][:50], other.split("test")[0][:50],
                          mnist.split("val")[0][:50], k=4)
    for name in ood.SCORES:
        assert table.loc[name, "AUROC"] == want.aurocs[name].text() == loaded.aurocs[name].text()
    headline = next(m.value for m in at.markdown if m.value.startswith("Mean −log p"))
    assert f"**{want.inside['nll'].mean():,.1f}**" in headline and f"**{want.outside['nll'].mean():,.1f}**" in headline
