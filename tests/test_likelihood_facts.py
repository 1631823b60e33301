"""Likelihoods publish what they can score and their σ trace (which logged key is ln σ, how σ varies, the
per-image σ), and the readers (metrics' undefined-rules, the σ page, the map's σ colour) use them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vaecore.components.likelihood_facts import LOGGED, PerImageSigma, SigmaVaries
from vaecore.components.likelihoods import AR_ELBO_VARIANCES, GAUSSIAN_SIGMAS, LIKELIHOODS, build_likelihood
from vaecore.training.records import LOG_KEYS

SHAPE = (1, 6, 5)
SETTINGS = [("gaussian", {"sigma": s}) for s in GAUSSIAN_SIGMAS] + \
    [("arelbo", {"variance": v}) for v in AR_ELBO_VARIANCES] + [(n, {}) for n in LIKELIHOODS if n not in
                                                                ("gaussian", "arelbo")]


def _step(name: str, kwargs: dict) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A likelihood after one training objective on random outputs (so its trace holds this step's values)."""
    torch.manual_seed(0)
    lik = build_likelihood(name, SHAPE, **kwargs).train()
    x = torch.rand(4, *SHAPE)
    params = torch.randn(4, lik.channels(SHAPE[0]), *SHAPE[1:])
    lik.objective(params, x)
    return lik, params, x


@pytest.mark.parametrize(("name", "kwargs"), SETTINGS, ids=[f"{n}-{'-'.join(map(str, k.values()))}" for n, k in
                                                             SETTINGS])
def test_the_published_trace_is_what_training_logs(name: str, kwargs: dict) -> None:
    lik, params, x = _step(name, kwargs)
    trace, logged = lik.sigma_trace, lik.trace()
    assert isinstance(trace.varies, SigmaVaries)
    assert trace.plotted == (trace.log_sigma_key in logged), (trace, logged)
    assert all(LOG_KEYS[k].scale_trace for k in logged), logged
    for key in (trace.log_sigma_key, trace.ema_key, trace.mle_key):
        assert key is None or key in logged, (key, logged)
    if not trace.plotted:
        assert trace.why_none and not logged
        return
    value = trace.log_sigma(logged)
    assert value is not None and math.isfinite(value)
    assert value == pytest.approx(logged[trace.log_sigma_key], abs=1e-6)  # AR-ELBO: ½ ln σx² MLE is what it logs
    per_image = lik.log_sigma_per_image(params, x)
    assert (per_image is None) == (trace.per_image is None)


def test_per_image_sigma_is_the_engines_definition() -> None:
    lik, params, x = _step("gaussian", {"sigma": "per-pixel"})
    _, log_sigma = lik.mean_and_log_sigma(params)
    assert lik.sigma_trace.per_image is PerImageSigma.PREDICTED and lik.sigma_trace.varies is SigmaVaries.PER_PIXEL
    assert torch.equal(lik.log_sigma_per_image(params, x), log_sigma.flatten(1).mean(1))
    for variance in ("iso-d", "diag-d"):
        lik, params, x = _step("arelbo", {"variance": variance})
        sq = (x.double() - torch.sigmoid(params.double())) ** 2
        want = 0.5 * torch.log(sq.flatten(1).mean(1) + lik.eps) if variance == "iso-d" else \
            (0.5 * torch.log(sq + lik.eps)).flatten(1).mean(1)
        assert lik.sigma_trace.per_image is PerImageSigma.MLE
        assert torch.allclose(lik.log_sigma_per_image(params, x).double(), want, rtol=1e-5, atol=1e-5)
    assert build_likelihood("gaussian", SHAPE, sigma="per-example").sigma_trace.varies is SigmaVaries.PER_IMAGE
    assert "every image" in build_likelihood("gaussian", SHAPE, sigma="per-example").sigma_trace.why_none


def test_trace_reads_old_and_new_records() -> None:
    arelbo = build_likelihood("arelbo", SHAPE, variance="iso-i").sigma_trace
    assert arelbo.log_sigma({"sigma2_mle": 0.01}) == pytest.approx(0.5 * math.log(0.01))  # a log without log_sigma
    assert LOGGED.log_sigma({"log_sigma": -2.0}) == -2.0 and LOGGED.log_sigma({"loss": 1.0}) is None
    assert LOGGED.log_sigma({"log_sigma": None}) is None and LOGGED.log_sigma({"sigma2_mle": 0.0}) is None


def test_scoring_says_what_each_likelihood_scores() -> None:
    def scoring(name: str, **kw: object):
        return build_likelihood(name, SHAPE, **kw).scoring

    assert scoring("gaussian").density and scoring("gaussian").probability_8bit
    assert scoring("arelbo").density and scoring("arelbo").probability_8bit
    bern = scoring("bernoulli")
    assert bern.binary_only and not bern.density and not bern.probability_8bit
    for name in ("categorical", "bitwise", "disc-logistic", "disc-gaussian", "logistic-mixture"):
        assert scoring(name).probability_8bit and not scoring(name).density and not scoring(name).binary_only
    assert scoring("beta").zero_density_at_edges and scoring("beta").density and scoring("beta").probability_8bit


def test_the_sigma_page_gives_the_likelihoods_reason(tmp_path: Path) -> None:
    from explorer import tables

    for sigma, words in (("per-example", "every image"), ("per-pixel", "every pixel and image")):
        folder = tmp_path / sigma
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "vae", "likelihood": "gaussian",
                                                        "likelihood_kwargs": {"sigma": sigma},
                                                        "input_shape": [1, 28, 28]}))
        (folder / "metrics.jsonl").write_text(json.dumps({"kind": "step", "step": 1, "epoch": 0.1, "loss": 1.0})
                                              + "\n")
        traces, skipped = tables.sigma_traces({sigma: folder})
        assert not traces and words in skipped[sigma] and "no single σ" in skipped[sigma]
