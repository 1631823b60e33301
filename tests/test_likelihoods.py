"""Likelihoods against closed forms and torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Beta, Categorical, Normal, kl_divergence

from vaecore.components.likelihoods import LIKELIHOODS, build_likelihood, gaussian_log_bin, logistic_log_bin
from vaecore.components.objectives import kl_standard_normal, mmd
from vaecore.utils import softclip

SHAPE = (1, 4, 5)
torch.manual_seed(0)


def _params(lik, b: int = 3) -> torch.Tensor:
    return torch.randn(b, lik.channels(SHAPE[0]), *SHAPE[1:]) * 2


def _images(b: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (b, *SHAPE)).float() / 255


def test_gaussian_kl_matches_torch_distributions() -> None:
    mu, logvar = torch.randn(6, 7), torch.randn(6, 7)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl_standard_normal(mu, logvar), kl_divergence(q, p).sum(1), atol=1e-5)


@pytest.mark.parametrize("sigma,value", [("fixed", 1.0), ("fixed", 0.3), ("learned", None), ("per-pixel", None),
                                         ("learned-diag", None), ("per-example", None)])
def test_gaussian_nll_matches_normal(sigma: str, value: float | None) -> None:
    kw = {"sigma": sigma} | ({"value": value} if value else {})
    lik = build_likelihood("gaussian", SHAPE, **kw)
    params, x = _params(lik), _images()
    mu, log_sigma = lik._split(params)
    ref = -Normal(mu, torch.exp(log_sigma).expand_as(mu)).log_prob(x).sum(dim=(1, 2, 3))
    assert torch.allclose(lik.nll(params, x), ref, rtol=1e-5, atol=1e-4)
    assert lik.mean(params).shape == x.shape and 0 <= float(lik.mean(params).min())


def test_bernoulli_nll_matches_torch() -> None:
    lik = build_likelihood("bernoulli", SHAPE)
    params, x = _params(lik), (torch.rand(3, *SHAPE) > 0.5).float()
    ref = -Bernoulli(logits=params).log_prob(x).sum(dim=(1, 2, 3))
    assert torch.allclose(lik.nll(params, x), ref, atol=1e-4)


def test_beta_nll_matches_torch() -> None:
    lik = build_likelihood("beta", SHAPE)
    params, x = _params(lik), torch.rand(3, *SHAPE) * 0.9 + 0.05
    a, b = lik._concentrations(params)
    ref = -Beta(a, b).log_prob(x).sum(dim=(1, 2, 3))
    assert torch.allclose(lik.nll(params, x), ref, rtol=1e-5, atol=1e-4)
    assert bool((a > 1).all() and (b > 1).all())


def test_categorical_nll_matches_torch() -> None:
    lik = build_likelihood("categorical", SHAPE)
    params, x = _params(lik), _images()
    logits = params.reshape(3, 256, *SHAPE).movedim(1, -1)
    ref = -Categorical(logits=logits).log_prob(torch.round(x * 255).long()).sum(dim=(1, 2, 3))
    assert torch.allclose(lik.nll(params, x), ref, atol=1e-3)


def _all_levels_log_prob(lik, params: torch.Tensor) -> torch.Tensor:
    """log P(k) for every level k = 0..255 of one-pixel images under the same params: (256,)."""
    x = (torch.arange(256).float() / 255).view(256, 1, 1, 1)
    return -lik.nll_discrete(params.expand(256, *params.shape[1:]), x)


@pytest.mark.parametrize("name,kw", [("disc-gaussian", {}), ("disc-logistic", {}),
                                     ("logistic-mixture", {"components": 3}), ("categorical", {}),
                                     ("bitwise", {}), ("gaussian", {"sigma": "fixed", "value": 0.05}),
                                     ("gaussian", {"sigma": "per-pixel"}), ("arelbo", {"variance": "iso-i"}),
                                     ("beta", {})])
def test_discrete_probabilities_sum_to_one(name: str, kw: dict) -> None:
    lik = build_likelihood(name, (1, 1, 1), **kw)
    for scale in (0.1, 1.0, 4.0):
        params = torch.randn(1, lik.channels(1), 1, 1) * scale
        total = _all_levels_log_prob(lik, params).detach().double().exp().sum()
        assert abs(float(total) - 1.0) < 1e-4, (name, scale, float(total))


def test_a_wide_logistic_mixture_keeps_its_tail_mass() -> None:
    """The open first and last bins hold all the mass beyond them, however wide a component: with one at
    log-scale 8 (scale e^8 ≈ 3000), a stand-in edge at ±1e4 lost 1.7 % of the mass."""
    lik = build_likelihood("logistic-mixture", (1, 1, 1), components=3)
    params = torch.tensor([0.0, 1.0, -1.0, 0.0, 2.0, -2.0, 8.0, 0.0, 3.0]).view(1, 9, 1, 1)  # logits, μ, log s
    total = _all_levels_log_prob(lik, params).detach().double().exp().sum()
    assert abs(float(total) - 1.0) < 1e-4, float(total)


def test_discretized_log_prob_is_stable_in_the_tails() -> None:
    x = torch.tensor([0.0, 1.0, 128.0, 255.0]) / 255
    for fn in (gaussian_log_bin, logistic_log_bin):
        far = fn(x, torch.full_like(x, 0.9), torch.full_like(x, -6.0))
        assert bool(torch.isfinite(far).all())
        near = fn(x, x, torch.full_like(x, -10.0))
        assert bool((near > -1e-3).all()), "a narrow distribution centred on the bin holds ~all its mass"


def test_discretized_gaussian_matches_pdf_times_bin_width_for_narrow_sigma() -> None:
    lik = build_likelihood("gaussian", SHAPE, sigma="fixed", value=0.02)
    x = _images().clamp(2 / 255, 253 / 255)
    params = torch.logit(x + (torch.rand_like(x) - 0.5) * 0.01, eps=1e-6)
    d = math.prod(SHAPE)
    approx = lik.nll(params, x) + d * math.log(255)
    assert torch.allclose(lik.nll_discrete(params, x), approx, rtol=0.02)


def test_optimal_sigma_is_the_batch_rms_error() -> None:
    lik = build_likelihood("gaussian", SHAPE, sigma="optimal")
    params, x = _params(lik, 8), _images(8)
    rms = torch.sqrt(((x - torch.sigmoid(params)) ** 2).mean())
    got = lik.optimal_log_sigma(params, x)
    assert torch.allclose(got, softclip(torch.log(rms)), atol=1e-6), "σ* = RMS error, then the −6 soft clip"
    assert 0 <= float(got - torch.log(rms)) < math.exp(-(float(torch.log(rms)) + 6)) + 1e-6
    log_sigma = torch.zeros((), requires_grad=True)
    # the analytic σ is the minimiser of the Gaussian NLL over a shared σ
    opt = torch.optim.LBFGS([log_sigma], max_iter=100)
    mu = torch.sigmoid(params)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = lik._gaussian_nll(x, mu, log_sigma.expand_as(mu)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert abs(float(log_sigma.exp()) - float(rms)) < 1e-3


def test_arelbo_objectives_equal_their_formulas() -> None:
    b, d, eps = 4, math.prod(SHAPE), 1e-6
    x = _images(b)
    params = torch.randn(b, *SHAPE)
    sq = (x - torch.sigmoid(params)) ** 2
    per_img = sq.reshape(b, -1)
    expected = {
        "iso-i": d / 2 * torch.log(per_img.sum() / (b * d)),
        "iso-d": d / 2 * torch.log(per_img.sum(1) / d + eps).mean(),
        "diag-i": 0.5 * torch.log(per_img.mean(0) + eps).sum(),
        "diag-d": 0.5 * torch.log(per_img + eps).sum(1).mean(),
    }
    for variance, value in expected.items():
        lik = build_likelihood("arelbo", SHAPE, variance=variance)
        assert torch.allclose(lik.objective(params, x), value, rtol=1e-5), variance
    lik = build_likelihood("arelbo", SHAPE, variance="iso-i")
    lik.objective(params, x)
    assert torch.allclose(lik.sigma2, per_img.mean(), rtol=1e-5), "σx² MLE is the mean squared error"


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_samples_means_and_backprops(name: str) -> None:
    lik = build_likelihood(name, SHAPE)
    params = _params(lik).requires_grad_(True)
    x = _images()
    lik.objective(params, x).backward()
    assert params.grad is not None and bool(torch.isfinite(params.grad).all())
    with torch.no_grad():
        s, m = lik.sample(params.detach()), lik.mean(params.detach())
    assert s.shape == m.shape == x.shape
    assert float(s.min()) >= 0 and float(s.max()) <= 1 and float(m.min()) >= 0 and float(m.max()) <= 1


def test_unknown_likelihood_and_bad_settings_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown likelihood"):
        build_likelihood("poisson", SHAPE)
    with pytest.raises(ValueError, match="sigma"):
        build_likelihood("gaussian", SHAPE, sigma="huge")
    with pytest.raises(ValueError, match="bad settings"):
        build_likelihood("bernoulli", SHAPE, colour=3)


def test_mmd_is_small_for_same_distribution_and_large_for_shifted() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g)
    for kernel in ("imq", "rbf"):
        same = float(mmd(a, b, kernel))
        shifted = float(mmd(a + 2.0, b, kernel))
        assert abs(same) < 0.05 * shifted and shifted > 0


def test_discretized_gaussian_gradients_are_finite_at_the_open_bins() -> None:
    """The first and last bins are open; their log-probabilities must not give NaN gradients (they did
    with a ±1e4 stand-in edge: log_ndtr's gradient overflows in float32)."""
    lik = build_likelihood("disc-gaussian", (1, 2, 2), init_log_scale=-2.0)
    params = torch.full((1, 1, 2, 2), 0.3, requires_grad=True)
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.0]]]])
    nll = lik.nll(params, x)
    nll.sum().backward()
    assert torch.isfinite(nll).all() and torch.isfinite(params.grad).all() and torch.isfinite(lik.log_scale.grad)
