"""Capabilities are typed flags a caller tests (posterior, prior and geometry kinds, and the flags built on them),
and the app's KL-per-dimension chart is the engine's: its values, or the engine's reason where it is undefined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.kinds import Geometry, PosteriorKind, PriorKind
from vaecore.evaluation import metrics
from vaecore.hub import CHECKPOINTS_DIR
from vaecore.models.base import Capabilities

ROOT = Path(__file__).resolve().parent.parent


def _tiny(name: str) -> torch.nn.Module:
    return vaecore.build_preset(name, input_shape=(1, 28, 28), arch="mlp", latent_dim=4, seed=0).eval()


def test_strings_become_kinds_and_unknown_kinds_are_refused() -> None:
    caps = Capabilities(elbo=True, prior_samples=True, latent_shape=[16, 7, 7], posterior="point", prior="VampPrior",
                        geometry="discrete")
    assert caps.posterior is PosteriorKind.POINT and caps.prior is PriorKind.VAMP and caps.geometry is Geometry.DISCRETE
    assert caps.latent_shape == (16, 7, 7) and caps.latent_size == 784 and caps.deterministic_encoder
    assert not caps.diagonal_gaussian_posterior and not caps.standard_normal_prior
    with pytest.raises(ValueError, match="unknown posterior 'gaussain'; known: gaussian, point"):
        Capabilities(elbo=True, prior_samples=True, latent_shape=(2,), posterior="gaussain")


@pytest.mark.parametrize("name", sorted(vaecore.PRESETS))
def test_every_preset_reports_typed_kinds(name: str) -> None:
    model = _tiny(name)
    caps = model.capabilities
    assert isinstance(caps.posterior, PosteriorKind) and isinstance(caps.prior, PriorKind)
    assert isinstance(caps.geometry, Geometry) and all(isinstance(n, int) for n in caps.latent_shape)
    assert caps.diagonal_gaussian_posterior == (caps.posterior is PosteriorKind.GAUSSIAN)
    prior = getattr(model, "prior", None)
    if prior is not None:
        assert caps.prior is prior.kind, name
    if caps.deterministic_encoder:
        assert not caps.elbo, name
    kl_defined = metrics.undefined_reason(model, "kl-per-dim") is None
    assert kl_defined == (caps.diagonal_gaussian_posterior and caps.standard_normal_prior), name


def test_the_apps_kl_chart_is_the_engines() -> None:
    from explorer import diagnostics

    x = vaecore.load_dataset("mnist", limit=1).x_test[:40]
    model = _tiny("sigma-vae")
    assert diagnostics.kl_per_dimension(model, x) == metrics.kl_per_dimension(model, x).tolist()
    assert diagnostics.kl_undefined_reason(model) == ""
    vamp = _tiny("vamp-vae")
    assert vamp.capabilities.diagonal_gaussian_posterior  # a Gaussian posterior, but not the N(0, I) prior
    assert diagnostics.kl_per_dimension(vamp, x) is None
    assert diagnostics.kl_undefined_reason(vamp) == metrics.undefined_reason(vamp, "kl-per-dim")
    assert "VampPrior" in diagnostics.kl_undefined_reason(vamp)


def test_the_latent_map_shows_the_engines_reason_for_a_vampprior(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    if not (CHECKPOINTS_DIR / "vamp-vae" / "model.safetensors").is_file():
        pytest.skip("checkpoints/ has no vamp-vae")
    monkeypatch.delenv("VAE_CHECKPOINTS", raising=False)
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages" / "2_Latent_map.py"), default_timeout=240)
    at.query_params["model"] = "vamp-vae"
    at.session_state["map_n"] = 200
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    reason = metrics.undefined_reason(vaecore.load("vamp-vae"), "kl-per-dim")
    assert any(reason in c.value for c in at.caption)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert figures and not any(f["layout"].get("yaxis", {}).get("title", {}).get("text") == "KL (nats)"
                               for f in figures)  # no KL-per-dimension bars computed against N(0, 1)
