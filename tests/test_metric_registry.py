"""The metric registry: every metric declares what it is (label, unit, direction, group, how computed), a working
undefined-rule for every preset, the passes `evaluate` loops over, per-image values, and value / undefined / not run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

import vaecore
from vaecore.evaluation import metrics as M
from vaecore.evaluation import registry as R


@pytest.fixture(scope="module")
def digits() -> vaecore.Dataset:
    return vaecore.load_dataset("digits")


def _tiny(name: str, shape: tuple[int, int, int] = (1, 28, 28)) -> torch.nn.Module:
    return vaecore.build_preset(name, input_shape=shape, arch="mlp", latent_dim=4, seed=0).eval()


def test_every_metric_declares_what_it_is() -> None:
    assert list(R.METRICS) == list(M.METRICS) and len(R.METRICS) >= 15
    for key, m in R.METRICS.items():
        assert m.key == key and m.label and m.short and m.unit and m.group and len(m.description) > 20, key
        assert isinstance(m.direction, R.Direction) and isinstance(m.comparable, R.Comparable), key
        assert m.pass_name in R.PASSES, f"{key}: no pass {m.pass_name!r}"
        assert m.title.startswith(m.label) and m.unit in m.title and m.direction.arrow in m.title
        assert m.short_title.startswith(m.short)
    assert R.METRICS["nll-discrete"].title == "−log p of 8-bit images (nats, ↓)"
    assert R.METRICS["elbo"].direction is R.Direction.HIGHER and R.METRICS["fd"].direction is R.Direction.LOWER
    assert {k for k, m in R.METRICS.items() if m.per_sampler} == \
        {"fd", "precision", "recall", "density", "coverage", "classifier-score"}
    assert {k for k, m in R.METRICS.items() if m.comparable is R.Comparable.SAME_LIKELIHOOD} == {"elbo", "iwae"}
    assert {k for k, m in R.METRICS.items() if not m.comparable.ranked} == {"nll-pdf"}
    for key, m in R.METRICS.items():  # every mean says what its ± is over
        assert not (m.per_image and m.seeded), key
        assert m.uncertainty == ("SE over test images" if m.per_image else "s.d. over seeds" if m.seeded else "")
    assert all(m.seeded for m in R.METRICS.values() if m.per_sampler) and R.METRICS["kmeans"].seeded
    with pytest.raises(ValueError, match="unknown metric 'sharpness'; choose from elbo"):
        R.get_metric("sharpness")


@pytest.mark.parametrize("name", sorted(vaecore.PRESETS))
def test_every_undefined_rule_answers_for_every_preset(name: str, digits: vaecore.Dataset) -> None:
    model = _tiny(name, digits.shape)
    caps = model.capabilities
    for key in R.METRICS:
        for dataset in (None, digits):
            why = R.undefined_reason(model, key, dataset)
            assert why is None or (isinstance(why, str) and len(why) > 10), (name, key, why)
    for key in ("elbo", "iwae"):
        assert (R.undefined_reason(model, key) is None) == bool(caps.elbo), (name, key)
    assert R.undefined_reason(model, "mse") is None and R.undefined_reason(model, "active-units") is None
    assert "no bundled feature classifier" in R.undefined_reason(model, "fd", digits)  # 8×8 digits
    assert R.undefined_reason(model, "knn", digits) is None  # labelled
    prior = R.undefined_reason(model, "fd", sampler=None)  # samples from the model's own prior
    assert (prior is None) == bool(caps.prior_samples), (name, prior)
    assert R.undefined_reason(model, "fd", sampler=object()) is None  # a fitted sampler always generates


def test_undefined_reasons_say_why() -> None:
    ae, vamp, bern, cat = (_tiny(n) for n in ("ae", "vamp-vae", "bernoulli-vae", "categorical-vae"))
    assert "deterministic" in R.undefined_reason(ae, "elbo")
    assert "VampPrior" in R.undefined_reason(vamp, "kl-per-dim")
    assert R.undefined_reason(vamp, "mutual-info") is None
    assert "no probability of 8-bit images" in R.undefined_reason(bern, "nll-discrete")
    assert "discrete" in R.undefined_reason(cat, "nll-pdf") and R.undefined_reason(cat, "nll-discrete") is None


def test_per_image_values_average_to_the_reported_metric(digits: vaecore.Dataset) -> None:
    model = _tiny("sigma-vae", digits.shape)
    names = ["elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "mse", "active-units"]
    out = M.evaluate(model, digits, names, n_test=40, iwae_k=3, per_image=True)
    per = out["per_image"]
    assert set(per) == {k for k in names if R.METRICS[k].per_image}
    for key, values in per.items():
        assert isinstance(values, np.ndarray) and values.shape == (40,) and values.dtype == np.float64
        assert float(values.mean()) == pytest.approx(out[key], rel=1e-12, abs=1e-12), key
    assert np.array_equal(per["nll-pdf"], -per["iwae"])
    d = int(np.prod(digits.shape))
    assert np.allclose(per["bpd"], per["nll-discrete"] / (d * np.log(2)), rtol=1e-14, atol=0)
    assert "per_image" not in M.evaluate(model, digits, ["mse"], n_test=4)


def test_outcome_tells_a_value_from_undefined_and_not_run() -> None:
    result = {"elbo": None, "mse": 3.5, "notes": {"elbo": "the encoder is deterministic"}}
    assert R.outcome(result, "mse") == R.Outcome(R.State.VALUE, 3.5)
    undefined = R.outcome(result, "elbo")
    assert undefined.state is R.State.UNDEFINED and undefined.reason == "the encoder is deterministic"
    assert undefined.text() == "undefined: the encoder is deterministic"
    assert R.outcome(result, "fd").state is R.State.NOT_RUN and R.outcome(result, "fd").text() == "not run"
    assert R.outcome({"fd": None}, "fd").state is R.State.UNDEFINED


def test_a_registered_metric_is_evaluated_by_the_loop(digits: vaecore.Dataset) -> None:
    """Adding a metric is one registration: `evaluate`, `undefined_reason` and `check_names` then know it."""
    def never_for_point_masses(s: R.Subject) -> str | None:
        return "a point-mass posterior has no spread" if s.caps.posterior == "point" else None

    def spread(ctx: R.EvalContext, wanted: Sequence[str]) -> None:
        with torch.no_grad():
            values = ctx.model.posterior(ctx.x).logvar.exp().sum(1).double()
        ctx.out["posterior-spread"], ctx.per_image["posterior-spread"] = float(values.mean()), values

    metric = R.Metric("posterior-spread", "posterior spread", "spread", "latent units²", R.Direction.NONE,
                      "latent usage", "Σ_j σ_j²(x) of the posterior, mean over images", pass_name="test-spread",
                      undefined=(never_for_point_masses,), per_image=True)
    R.register_metric(metric)
    R.register_pass("test-spread")(spread)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            R.register_metric(metric)
        out = M.evaluate(_tiny("sigma-vae", digits.shape), digits, ["posterior-spread", "mse"], n_test=8)
        assert out["posterior-spread"] > 0 and out["mse"] > 0
        ae = M.evaluate(_tiny("ae", digits.shape), digits, ["posterior-spread"], n_test=8)
        assert ae["posterior-spread"] is None and "no spread" in ae["notes"]["posterior-spread"]
    finally:
        del R.METRICS["posterior-spread"], R.PASSES["test-spread"]
