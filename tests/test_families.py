"""The three families that stress the contract: InfoVAE (stochastic encoder + KL + MMD), FactorVAE
(a discriminator with its own optimizer) and SVAE (von Mises–Fisher posterior on the sphere)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import special, stats

import vaecore
from vaecore.components.context import StepContext
from vaecore.components.hyperspherical import (
    HypersphericalUniform,
    VonMisesFisher,
    bessel_ratio,
    log_bessel_iv,
    log_sphere_area,
)
from vaecore.models.factor_vae import permute_dims


def _vmf(d: int, kappas: list[float], seed: int = 0) -> VonMisesFisher:
    g = torch.Generator().manual_seed(seed)
    loc = torch.nn.functional.normalize(torch.randn(len(kappas), d, generator=g, dtype=torch.float64), dim=1)
    return VonMisesFisher(loc, torch.tensor(kappas, dtype=torch.float64).unsqueeze(1))


@pytest.mark.parametrize("d", [3, 5, 16])
def test_vmf_log_density_matches_scipy(d: int) -> None:
    q = _vmf(d, [0.5, 4.0, 60.0])
    z = q.rsample(generator=torch.Generator().manual_seed(1))
    for i in range(3):
        ref = stats.vonmises_fisher(q.loc[i].numpy(), float(q.kappa[i])).logpdf(z[i].numpy())
        assert float(q.log_prob(z)[i]) == pytest.approx(float(ref), rel=1e-9, abs=1e-9)


def test_log_bessel_value_and_gradient() -> None:
    k = torch.tensor([0.3, 2.0, 40.0, 900.0], dtype=torch.float64, requires_grad=True)
    for nu in (0.5, 7.0, 127.0):
        value = log_bessel_iv(nu, k)
        # reference: scipy's scaled ive where it is representable, the first two series terms where it underflows
        ref = [math.log(special.ive(nu, float(kk))) + float(kk) if special.ive(nu, float(kk)) > 0
               else nu * math.log(float(kk) / 2) - math.lgamma(nu + 1) + math.log1p(float(kk) ** 2 / (4 * (nu + 1)))
               for kk in k.detach()]
        assert torch.allclose(value, torch.tensor(ref, dtype=torch.float64), rtol=1e-6)
        assert torch.autograd.gradcheck(lambda t, n=nu: log_bessel_iv(n, t), (k,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("d", [3, 16])
def test_vmf_sampler_mean_resultant_length_and_support(d: int) -> None:
    q = _vmf(d, [1.0, 10.0, 200.0])
    z = q.rsample(4000, generator=torch.Generator().manual_seed(2))
    assert z.shape == (4000, 3, d)
    assert torch.allclose(z.norm(dim=-1), torch.ones(4000, 3, dtype=torch.float64), atol=1e-9)
    w = (z * q.loc).sum(-1).mean(0)
    expected = torch.tensor([special.ive(d / 2, k) / special.ive(d / 2 - 1, k) for k in (1.0, 10.0, 200.0)])
    assert torch.allclose(w, expected, atol=0.02)
    assert torch.allclose(q.mean_resultant_length(), expected, atol=1e-10)


def test_vmf_kl_to_uniform_matches_monte_carlo_and_grad_flows() -> None:
    d = 5
    kappa = torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True)
    loc = torch.nn.functional.normalize(torch.ones(1, d, dtype=torch.float64), dim=1)
    q, p = VonMisesFisher(loc, kappa), HypersphericalUniform(d)
    kl = q.kl(p)
    z = q.rsample(20000, generator=torch.Generator().manual_seed(3))
    mc = (q.log_prob(z) - p.log_prob(z)).mean()
    assert float(kl) == pytest.approx(float(mc), abs=0.02)
    assert float(p.log_prob(z[:1])[0, 0]) == pytest.approx(-log_sphere_area(d))
    assert float(log_sphere_area(3)) == pytest.approx(math.log(4 * math.pi))
    (grad,) = torch.autograd.grad(z[..., 0].mean(), kappa)
    assert torch.isfinite(grad).all() and float(grad) != 0
    assert float(bessel_ratio(0.5, torch.tensor([1e-3], dtype=torch.float64))) == pytest.approx(1e-3 / 3, rel=1e-3)


def test_info_vae_loss_is_recon_plus_weighted_kl_and_mmd() -> None:
    for alpha, lbd in ((0.0, 10.0), (0.5, 2.0), (1.0, 100.0)):
        model = vaecore.build_preset("info-vae-imq", input_shape=(1, 8, 8), arch="mlp", latent_dim=4,
                                     alpha=alpha, lbd=lbd, seed=0).train()
        out = model.loss(torch.rand(32, 1, 8, 8), StepContext())
        expected = out.logs["recon"] + (1 - alpha) * out.logs["kl"] + (alpha + lbd - 1) * out.logs["mmd"]
        assert out.logs["loss"] == pytest.approx(expected, rel=1e-5)
        assert model.capabilities.elbo  # a stochastic encoder with an MMD term
    with pytest.raises(ValueError, match="alpha \\+ lbd - 1"):
        vaecore.model_config("info-vae-rbf", alpha=0.0, lbd=0.5)


def test_factor_vae_groups_and_their_gradients() -> None:
    model = vaecore.build_preset("factor-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0).train()
    groups = {g.name: g.params for g in model.param_groups()}
    assert list(groups) == ["model", "discriminator"]
    disc_ids = {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in groups["discriminator"]} == disc_ids
    out = model.loss(torch.rand(32, 1, 8, 8), StepContext())
    vae_grads = torch.autograd.grad(out.for_group("discriminator"), groups["model"], allow_unused=True,
                                    retain_graph=True)
    assert all(g is None for g in vae_grads), "the discriminator loss must not move the VAE"
    assert out.logs["loss"] == pytest.approx(out.logs["recon"] + out.logs["kl"] + 10.0 * out.logs["tc"], rel=1e-5)
    z = torch.randn(50, 4)
    shuffled = permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.sort(0).values, z.sort(0).values) and not torch.equal(shuffled, z)


@pytest.mark.parametrize("preset", ["svae", "factor-vae", "info-vae-imq"])
def test_short_training_improves(preset: str, tmp_path) -> None:
    data = vaecore.load_dataset("digits")
    config = vaecore.TrainConfig(data="digits", epochs=30, max_steps=300, batch_size=64, lr=2e-3,
                                 log_every=20, val_limit=200, seed=0)
    model = vaecore.build_preset(preset, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0)
    before = model.eval().validate(data.x_val[:200])
    vaecore.Trainer(model, data, config, tmp_path).fit()
    after = vaecore.load(tmp_path).validate(data.x_val[:200])
    assert float(after["mse"].mean()) < 0.7 * float(before["mse"].mean())
    assert float(after["elbo"].mean()) > float(before["elbo"].mean())
    if preset == "svae":
        z = vaecore.load(tmp_path).embed(data.x_val[:10])
        assert torch.allclose(z.norm(dim=1), torch.ones(10), atol=1e-5)
