"""Prior holes (vaecore.evaluation.prior_holes): the aggregate posterior's density agrees with torch.distributions, its
moments are the mixture's, a model whose posteriors all equal the prior has (almost) no holes, other priors get the
engine's reason, and the Latent map shows the engine's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from torch import distributions as D

from vaecore import build_model, load_dataset, model_config
from vaecore.evaluation.prior_holes import aggregate_log_density, prior_holes

ROOT = Path(__file__).resolve().parent.parent


def test_aggregate_log_density_is_the_mixtures() -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g) * 0.3
    z = torch.randn(11, 3, generator=g) * 2
    mixture = D.MixtureSameFamily(D.Categorical(logits=torch.zeros(7, dtype=torch.float64)),
                                  D.Independent(D.Normal(mu.double(), torch.exp(0.5 * logvar.double())), 1))
    torch.testing.assert_close(aggregate_log_density(z, mu, logvar, chunk=4), mixture.log_prob(z.double()))


def _model(zero_encoder: bool = False, **kw: object):
    torch.manual_seed(0)
    model = build_model(model_config("sigma-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=3, **kw).to_dict())
    if zero_encoder:  # every posterior is N(0, I): the aggregate posterior is the prior
        last = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    return model.eval()


def test_moments_threshold_and_holes_are_what_they_say() -> None:
    model = _model()
    x = load_dataset("digits").split("test")[0][:200]
    r = prior_holes(model, x, n_prior=300, seed=1)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    mu, var = mu.double().numpy(), np.exp(logvar.double().numpy())
    np.testing.assert_allclose(r.mean, mu.mean(0), rtol=1e-10)
    np.testing.assert_allclose(r.var, var.mean(0) + mu.var(0), rtol=1e-8)  # law of total variance
    assert r.threshold == pytest.approx(float(np.quantile(r.log_q_posterior, r.level)), rel=1e-12)
    assert np.array_equal(r.in_hole, r.log_q_prior < r.threshold) and len(r.log_q_posterior) == 100
    assert r.fraction.value == pytest.approx(r.in_hole.mean(), rel=1e-12)


def test_posteriors_equal_to_the_prior_leave_no_holes() -> None:
    r = prior_holes(_model(zero_encoder=True), torch.rand(400, 1, 8, 8), n_prior=2000)
    np.testing.assert_allclose(r.var, 1.0, rtol=1e-6)
    assert float(np.abs(r.kl_per_dim).max()) < 1e-6
    # q = prior: a prior draw falls below the empirical 1 % quantile of 200 reference draws with probability
    # U ~ Beta(2, 199) (the 2nd order statistic), sd ≈ 0.007; plus the binomial sd of 2,000 draws: 4 sd in all
    a, b, m = 2, 199, 2000
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)) + r.level * (1 - r.level) / m)
    assert r.fraction.value < r.level + 4 * sd


def test_other_models_get_the_engines_reason() -> None:
    with pytest.raises(ValueError, match="diagonal-Gaussian posterior and a N\\(0, I\\) prior"):
        prior_holes(_model(prior="vamp"), torch.rand(10, 1, 8, 8))
    with pytest.raises(ValueError, match="between 4"):
        prior_holes(_model(), torch.rand(3, 1, 8, 8))


def test_latent_map_shows_the_engines_prior_holes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    model = _model(dataset="digits")
    model.save_pretrained(tmp_path / "tiny")
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages/2_Latent_map.py"), default_timeout=seconds(180))
    at.session_state["vae_pick"] = {"source": "Folder", "folder": str(tmp_path / "tiny")}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    x = load_dataset("digits").split("test")[0]
    want = prior_holes(model, x[:2000]).fraction
    headline = next(m.value for m in at.markdown if "fall in a hole" in m.value)
    assert headline.startswith(f"**{100 * want.value:.1f} % ± {100 * want.se:.1f} %** of 1,000 draws")
    assert any(c.proto.id and "map_holes_map" in c.proto.id for c in at.get("plotly_chart"))
