"""Likelihoods in the field's units: the dequantised density bound, the un-dequantised −log pdf never ranked, data a
likelihood cannot score left undefined (not clamped), per-image KL, and the IWAE K-curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vaecore
from vaecore.evaluation import metrics as M
from vaecore.evaluation.registry import METRICS, Comparable


@pytest.fixture(scope="module")
def small() -> vaecore.Dataset:
    return vaecore.load_dataset("mnist", limit=300)


def binarized(ds: vaecore.Dataset) -> vaecore.Dataset:
    return vaecore.Dataset(ds.name, (ds.x_train > 0.5).float(), ds.y_train, (ds.x_val > 0.5).float(), ds.y_val,
                           (ds.x_test > 0.5).float(), ds.y_test)


def build(preset: str, ds: vaecore.Dataset, **kw: object) -> torch.nn.Module:
    return vaecore.build_preset(preset, input_shape=ds.shape, arch="mlp", latent_dim=4, seed=0, **kw).eval()


def test_dequantised_values_fill_their_256_bins_strictly_inside_0_1() -> None:
    k = torch.arange(256, dtype=torch.float32).repeat(400).reshape(400, 1, 16, 16)
    y = M.dequantise(k / 255, torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32 and bool((y > 0).all()) and bool((y < 1).all())
    lo, hi = k / 256, (k + 1) / 256
    assert bool((y >= lo - 1e-7).all()) and bool((y <= hi + 1e-7).all())
    u = (y.double() * 256 - k.double()).flatten()
    assert abs(float(u.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / u.numel())  # uniform within the bin


def test_dequantised_bound_is_the_iwae_density_of_the_dequantised_images_plus_d_ln_256(small) -> None:
    model = build("sigma-vae", small)
    x = small.x_test[:6]
    got = M.nll_dequantised(model, x, k=3, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    y = M.dequantise(x, g)
    direct = -M.iwae_log_likelihood(model, y, k=3, generator=g) + 784 * math.log(256)
    torch.testing.assert_close(got, direct, rtol=0, atol=1e-6)


def test_beta_scores_dequantised_pixels_without_clamping() -> None:
    from scipy.stats import beta

    from vaecore.components.likelihoods import Beta

    lik = Beta((1, 2, 2))
    params = torch.tensor([[[[0.3, -1.0], [2.0, 0.1]], [[1.5, 0.2], [-0.4, 3.0]]]])
    y = torch.tensor([[[[1e-5, 0.002], [0.5, 0.99999]]]])
    a = 1 + torch.nn.functional.softplus(params[:, :1]).double()
    b = 1 + torch.nn.functional.softplus(params[:, 1:]).double()
    expected = -beta.logpdf(y.double().numpy(), a.numpy(), b.numpy()).sum()
    assert float(lik.nll_interior(params, y)) == pytest.approx(expected, rel=1e-5)
    assert float(lik.nll(params, y)) != pytest.approx(expected, rel=1e-3)  # the training term clamps into [ε, 1 − ε]
    with pytest.raises(ValueError, match="strictly inside"):
        lik.nll_interior(params, torch.zeros(1, 1, 2, 2))


def test_the_undequantised_density_is_never_ranked() -> None:
    from vaecore.evaluation.ranking import rank

    pdf = METRICS["nll-pdf"]
    assert pdf.comparable is Comparable.NONE and not pdf.comparable.ranked
    assert METRICS["nll-discrete"].comparable.ranked and METRICS["nll-dequant"].comparable.ranked
    results = {"a": {"nll-pdf": -2912.0}, "b": {"nll-pdf": -768.0}}
    with pytest.raises(ValueError, match="never ranked"):
        rank(results, "nll-pdf")


@pytest.mark.parametrize("preset", ["beta-likelihood-vae", "bernoulli-vae"])
def test_a_likelihood_that_cannot_score_the_data_is_undefined_not_clamped(preset: str, small) -> None:
    model = build(preset, small)
    out = M.evaluate(model, small, ["elbo", "iwae", "mse"], n_test=8, iwae_k=2)
    assert out["elbo"] is None and out["iwae"] is None and out["mse"] is not None
    why = out["notes"]["elbo"]
    assert ("exactly 0 and 1" in why) if preset.startswith("beta") else ("grey levels" in why)
    # an older engine's stored number of it (computed on clamped or grey-level data) reads back as undefined
    from vaecore.evaluation.registry import outcome, under_current_rules

    older = {"elbo": -100.6, "iwae": -96.0, "mse": 7.3, "fd_gmm": 46.0, "notes": {}}
    now = under_current_rules(older, model, small)
    assert outcome(now, "elbo").reason == why and now["iwae"] is None and now["mse"] == 7.3 and now["fd_gmm"] == 46.0
    assert older["elbo"] == -100.6  # a copy: the stored result is left as it is
    if preset == "bernoulli-vae":  # on binary images the Bernoulli is a probability: defined
        binary = binarized(small)
        assert M.undefined_reason(model, "elbo", binary) is None
        out = M.evaluate(model, binary, ["elbo", "iwae"], n_test=8, iwae_k=2)
        assert out["elbo"] < 0 and out["iwae"] < 0
        assert under_current_rules(older, model, binary)["elbo"] == -100.6


def test_per_image_kl_is_the_closed_form_for_a_gaussian_posterior(small) -> None:
    model = build("sigma-vae", small)
    x = small.x_test[:10]
    kl = M.kl_per_image(model, x)
    with torch.no_grad():
        q = model.posterior(x)
        mu, var = q.mu.double(), q.logvar.double().exp()
    direct = 0.5 * (mu ** 2 + var - var.log() - 1).sum(dim=1)
    torch.testing.assert_close(kl, direct, rtol=1e-6, atol=1e-6)
    vamp = build("vamp-vae", small)  # no closed form to a VampPrior: the Monte Carlo mean, finite and ≥ 0 on average
    assert float(M.kl_per_image(vamp, x, generator=torch.Generator().manual_seed(0)).mean()) > -0.5


class _KnownWeights(torch.nn.Module):
    """A stand-in model whose importance weights are a known sequence, to check the K-curve's bookkeeping."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.w, self.used = weights, 0  # (K, B)
        self.capabilities = type("C", (), {"elbo": True})()

    def posterior(self, x: torch.Tensor) -> None:
        return None

    def log_importance_weights(self, x, k, generator=None, *, scores=None, posterior=None):
        out = self.w[self.used:self.used + k, :x.shape[0]]
        self.used += k
        return {scores[0]: out}


def test_k_curve_is_the_log_mean_of_the_first_k_weights() -> None:
    w = torch.randn(300, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    curve = M.iwae_k_curve(_KnownWeights(w), torch.zeros(3, 1, 2, 2), ks=(1, 7, 300, 50), batch_size=3)
    assert list(curve) == [1, 7, 50, 300]
    for k, v in curve.items():
        direct = torch.logsumexp(w[:k], dim=0) - math.log(k)
        torch.testing.assert_close(v, direct, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="between 1 and"):
        M.iwae_k_curve(_KnownWeights(w), torch.zeros(3, 1, 2, 2), ks=(0, 5))


def test_k_curve_tightens_on_a_trained_model(small) -> None:
    model = vaecore.load("sigma-vae").eval()  # bundled: its IWAE(100) is ~20 nats above its ELBO per image
    curve = M.iwae_k_curve(model, small.x_test[:4], ks=(1, 100), generator=torch.Generator().manual_seed(0))
    assert float(curve[100].mean()) > float(curve[1].mean()) + 5  # K = 1 is the ELBO; the bound tightens with K
    assert np.isfinite(curve[100].numpy()).all()


def test_where_the_nats_go_sums_to_the_8bit_bound_at_the_same_draw(small) -> None:
    model = build("sigma-vae", small)
    x = small.x_test[:12]
    parts = M.discrete_breakdown(model, x, generator=torch.Generator().manual_seed(3))
    counts = parts["n_black"] + parts["n_white"] + parts["n_grey"]
    assert torch.equal(counts, torch.full((12,), 784.0, dtype=torch.float64))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        q = model.posterior(x)
        z = q.rsample(generator=g)
        direct = model.likelihood.nll_discrete(model.decode_params(z), x).double() + q.kl(model.prior).double()
    torch.testing.assert_close(parts["black"] + parts["white"] + parts["grey"] + parts["kl"], direct,
                               rtol=1e-5, atol=1e-3)
    assert M.discrete_breakdown(build("bernoulli-vae", small), x) is None  # no 8-bit probability to split
