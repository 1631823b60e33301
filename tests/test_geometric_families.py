"""The Hamiltonian and hyperbolic families (HVAE, RHVAE, Poincaré VAE), their samplers, and the
benchmark networks / user architectures: integrator identities, densities against their formulas,
short trainings, save → load, and the models' own importance weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.context import StepContext
from vaecore.components.hamiltonian import (
    LocalMetric,
    generalized_leapfrog,
    kinetic_energy,
    leapfrog,
    potential_gradient,
    riemannian_flow,
    standard_normal_log_prob,
    tempered_leapfrog_flow,
    tempering,
)
from vaecore.components.hyperbolic import Ball, WrappedNormal, WrappedNormalPrior
from vaecore.samplers import build_sampler, load_sampler

D64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gaussian_target(d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """An unnormalised Gaussian log density log p(z) = log Z + log N(z; m, S) with known log Z."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, generator=g, dtype=D64) * 0.5
    a = torch.randn(d, d, generator=g, dtype=D64) * 0.3
    s = a @ a.T + 0.5 * torch.eye(d, dtype=D64)
    return m, s, 1.7


def _log_target(m: torch.Tensor, s: torch.Tensor, log_z: float):
    dist = torch.distributions.MultivariateNormal(m, s)
    return lambda z: dist.log_prob(z) + log_z


# HVAE: the leapfrog ---------------------------------------------------------------------------------
def test_leapfrog_is_reversible_and_preserves_volume() -> None:
    m, s, log_z = _gaussian_target(3)
    log_p = _log_target(m, s, log_z)

    def grad_u(z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        return potential_gradient(lambda v: log_p(v) - 0.1 * v.pow(4).sum(-1), z, create_graph)

    z0, rho0 = torch.randn(5, 3, dtype=D64), torch.randn(5, 3, dtype=D64)
    z, rho = z0, rho0
    for _ in range(4):
        z, rho, _ = leapfrog(z, rho, grad_u, 0.1)
    z_back, rho_back = z, -rho
    for _ in range(4):
        z_back, rho_back, _ = leapfrog(z_back, rho_back, grad_u, 0.1)
    assert torch.allclose(z_back, z0, atol=1e-10) and torch.allclose(-rho_back, rho0, atol=1e-10)

    def step(state: torch.Tensor) -> torch.Tensor:
        zz, rr, _ = leapfrog(state[:3].unsqueeze(0), state[3:].unsqueeze(0),
                             lambda v: grad_u(v, create_graph=True), 0.1)
        return torch.cat([zz[0], rr[0]])

    jac = torch.autograd.functional.jacobian(step, torch.cat([z0[0], rho0[0]]))
    assert float(torch.linalg.det(jac).abs()) == pytest.approx(1.0, abs=1e-10)


def test_tempering_schedule_and_the_flow_log_weight_is_unbiased() -> None:
    assert tempering(0.5, 0, 3) == pytest.approx(0.5) and tempering(0.5, 3, 3) == pytest.approx(1.0)
    # E[w] = Z for the HVAE weight p(x, z_K) N(ρ_K) / (q(z_0) N(γ)): the bound of a toy Gaussian target
    d, n = 2, 200_000
    m, s, log_z = _gaussian_target(d, seed=1)
    log_p = _log_target(m, s, log_z)
    g = torch.Generator().manual_seed(0)
    z0, gamma = torch.randn(n, d, generator=g, dtype=D64), torch.randn(n, d, generator=g, dtype=D64)
    sqrt_beta = math.sqrt(0.3)
    z_k, rho_k = tempered_leapfrog_flow(z0, gamma / sqrt_beta, lambda z: potential_gradient(log_p, z, False),
                                        0.3, sqrt_beta, 3)
    log_q = standard_normal_log_prob(z0) + standard_normal_log_prob(gamma)
    log_w = log_p(z_k) + standard_normal_log_prob(rho_k) - log_q
    estimate = float(torch.logsumexp(log_w, 0) - math.log(n))
    assert estimate == pytest.approx(log_z, abs=0.02)
    assert float(log_w.mean()) < log_z  # a lower bound on average


# RHVAE: the metric and the generalized leapfrog ---------------------------------------------------
def _metric(d: int = 3, n: int = 6, seed: int = 0) -> LocalMetric:
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, d, d, generator=g, dtype=D64).tril()
    return LocalMetric(low @ low.mT, torch.randn(n, d, generator=g, dtype=D64), 1.5, 0.01)


def test_rhvae_metric_is_positive_definite_and_its_kinetic_gradient_is_exact() -> None:
    metric = _metric()
    z = torch.randn(50, 3, dtype=D64) * 3
    assert bool((torch.linalg.eigvalsh(metric.metric(z)) > 0).all())
    assert bool((torch.linalg.eigvalsh(metric.inverse(z)) >= 0.01 - 1e-12).all())
    assert torch.allclose(metric.metric(z) @ metric.inverse(z), torch.eye(3, dtype=D64).expand(50, 3, 3), atol=1e-8)
    rho = torch.randn(50, 3, dtype=D64)
    zg = z.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(kinetic_energy(metric, zg, rho).sum(), zg)
    assert torch.allclose(metric.kinetic_grad(z, rho), auto, atol=1e-10)
    momentum = metric.sample_momentum(z, torch.randn(50, 3, dtype=D64))
    ref = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=D64), metric.metric(z)).log_prob(momentum)
    assert torch.allclose(metric.momentum_log_prob(z, momentum), ref, atol=1e-8)
    # a trained RHVAE's metric network gives positive definite matrices too
    model = vaecore.build_preset("rhvae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
    low = model.metric_net(torch.rand(10, 1, 8, 8))
    assert bool((torch.linalg.eigvalsh(low @ low.mT) > 0).all())


def test_generalized_leapfrog_is_reversible_to_tolerance() -> None:
    metric = _metric()
    m, s, log_z = _gaussian_target(3)
    log_p = _log_target(m, s, log_z)

    def grad_u(z: torch.Tensor) -> torch.Tensor:
        return potential_gradient(log_p, z, False)

    z0, rho0 = torch.randn(8, 3, dtype=D64), torch.randn(8, 3, dtype=D64)
    for steps, tol in ((3, 1e-3), (30, 1e-10)):
        z, rho, _ = generalized_leapfrog(z0, rho0, grad_u, metric, 0.05, steps)
        z_back, rho_back, _ = generalized_leapfrog(z, -rho, grad_u, metric, 0.05, steps)
        assert torch.allclose(z_back, z0, atol=tol) and torch.allclose(-rho_back, rho0, atol=tol), steps


def test_riemannian_flow_log_weight_is_unbiased() -> None:
    # E[w] = Z for p(x, z_K) N(ρ_K; 0, G(z_K)) |det G(z_0)|^½ / (q(z_0) N(γ)) on a toy Gaussian target
    d, n = 2, 50_000
    m, s, log_z = _gaussian_target(d, seed=1)
    log_p = _log_target(m, s, log_z)
    g = torch.Generator().manual_seed(0)
    low = torch.randn(4, d, d, generator=g, dtype=D64).tril() * 0.7
    metric = LocalMetric(low @ low.mT, torch.randn(4, d, generator=g, dtype=D64), 1.5, 0.3)
    z0, gamma = torch.randn(n, d, generator=g, dtype=D64), torch.randn(n, d, generator=g, dtype=D64)
    sqrt_beta = math.sqrt(0.3)
    rho0 = metric.sample_momentum(z0, gamma) / sqrt_beta
    z_k, rho_k = riemannian_flow(z0, rho0, lambda z: potential_gradient(log_p, z, False), metric, 0.2, sqrt_beta, 3)
    log_w = (log_p(z_k) + metric.momentum_log_prob(z_k, rho_k) + 0.5 * metric.log_det(z0)
             - standard_normal_log_prob(z0) - standard_normal_log_prob(gamma))
    assert float(torch.logsumexp(log_w, 0) - math.log(n)) == pytest.approx(log_z, abs=0.03)


def test_rhvae_epoch_end_installs_the_stored_centres_and_they_save() -> None:
    model = vaecore.build_preset("rhvae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, metric_memory=10, seed=0)
    assert int(model.metric_count) == 1
    model.train()
    for _ in range(2):
        model.loss(torch.rand(6, 1, 8, 8), StepContext())
    assert int(model.pending_count) == 12
    model.on_epoch_end(StepContext())
    assert int(model.metric_count) == 10 and int(model.pending_count) == 0
    assert model.metric().centroids.shape == (10, 4)


# Poincaré ball ------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [1.0, 0.5])
def test_exp_and_log_maps_invert(c: float) -> None:
    ball = Ball(c)
    x = ball.expmap0(torch.randn(20, 3, dtype=D64) * 0.5)
    u = torch.randn(20, 3, dtype=D64) / ball.lambda_x(x)  # Riemannian lengths of about 1 (away from the rim)
    assert torch.allclose(ball.logmap(x, ball.expmap(x, u)), u, atol=1e-8)
    y = ball.expmap0(torch.randn(20, 3, dtype=D64))
    assert torch.allclose(ball.expmap(x, ball.logmap(x, y)), y, atol=1e-8)
    assert torch.allclose(ball.logmap0(ball.expmap0(u)), u, atol=1e-8)
    assert bool((y.norm(dim=-1) < ball.radius).all())


@pytest.mark.parametrize("c", [1.0, 2.0])
def test_wrapped_normal_log_density_matches_its_formula_and_the_change_of_variables(c: float) -> None:
    ball = Ball(c)
    d = 3
    loc = ball.expmap0(torch.tensor([[0.4, -0.3, 0.2]], dtype=D64))
    scale = torch.tensor([[0.7, 0.4, 1.1]], dtype=D64)
    q = WrappedNormal(loc, scale, ball)
    z = q.rsample(500, generator=torch.Generator().manual_seed(0))
    assert z.shape == (500, 1, d) and bool((z.norm(dim=-1) < ball.radius).all())
    # the formula, written out with the ball's closed forms (Mathieu et al., 2019, App. B)
    sc = math.sqrt(c)

    def mobius_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ab, a2, b2 = (a * b).sum(-1, keepdim=True), a.pow(2).sum(-1, keepdim=True), b.pow(2).sum(-1, keepdim=True)
        return ((1 + 2 * c * ab + c * b2) * a + (1 - c * a2) * b) / (1 + 2 * c * ab + c * c * a2 * b2)

    w = mobius_add(-loc, z)
    r = 2 / sc * torch.atanh(sc * w.norm(dim=-1))
    # λ_0·PT_{μ→0}(log_μ z) = λ_μ·log_μ z (the gyration from the origin is the identity) = r·w/‖w‖
    u = (r / w.norm(dim=-1)).unsqueeze(-1) * w
    ref = (torch.distributions.Normal(torch.zeros_like(scale), scale).log_prob(u).sum(-1)
           - (d - 1) * torch.log(torch.sinh(sc * r) / (sc * r)))
    assert torch.allclose(q.log_prob(z), ref, atol=1e-8)
    assert torch.allclose(ball.dist(loc, z), r, atol=1e-8)
    # change of variables: density in Euclidean coordinates = Riemannian density × λ_z^d
    eps = torch.randn(d, dtype=D64)

    def sample(e: torch.Tensor) -> torch.Tensor:
        return q.from_tangent((scale * e).unsqueeze(0))[0]

    jac = torch.autograd.functional.jacobian(sample, eps)
    zz = sample(eps)
    euclid = standard_normal_log_prob(eps) - torch.log(torch.linalg.det(jac).abs())
    lam_z = 2 / (1 - c * zz.pow(2).sum())
    assert float(q.log_prob(zz.unsqueeze(0))[0] + d * torch.log(lam_z)) == pytest.approx(float(euclid), abs=1e-6)


def test_wrapped_normal_integrates_to_one_over_the_disk() -> None:
    ball = Ball(1.0)
    q = WrappedNormal(ball.expmap0(torch.tensor([[0.5, -0.2]], dtype=D64)), torch.tensor([[0.5, 0.3]], dtype=D64), ball)
    t = torch.linspace(-1, 1, 801, dtype=D64)
    mid, h = (t[1:] + t[:-1]) / 2, float(t[1] - t[0])
    z = torch.stack(torch.meshgrid(mid, mid, indexing="ij"), -1).reshape(-1, 2)
    z = z[z.norm(dim=1) < 0.999]
    volume = (2 / (1 - z.pow(2).sum(1))) ** 2  # the Riemannian volume element λ_z^d
    assert float((q.log_prob(z.unsqueeze(1))[:, 0].exp() * volume).sum() * h * h) == pytest.approx(1.0, abs=1e-4)


def test_wrapped_normal_prior_samples_in_the_ball() -> None:
    prior = WrappedNormalPrior(2, Ball(1.0), 1.0)
    z = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2000, 2) and bool((z.norm(dim=1) < 1).all())
    assert torch.isfinite(prior.log_prob(z)).all()


# the models -------------------------------------------------------------------------------------------
def test_capabilities_and_refused_likelihoods() -> None:
    for name, posterior, geometry in (("hvae", "hamiltonian", "euclidean"),
                                      ("rhvae", "riemannian-hamiltonian", "euclidean"),
                                      ("poincare-vae", "wrapped-normal", "poincare-ball")):
        model = vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
        caps = model.capabilities
        assert caps.elbo and caps.prior_samples and caps.posterior == posterior and caps.geometry == geometry
        model.eval()
        assert model.embed(torch.rand(3, 1, 8, 8)).shape == (3, 4)
    for name in ("hvae", "rhvae"):
        with pytest.raises(ValueError, match="per-sample density"):
            vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", likelihood="arelbo")
        model = vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0,
                                     **{"likelihood": "gaussian", "likelihood_kwargs": {"sigma": "optimal"}})
        assert torch.isfinite(model.train().loss(torch.rand(8, 1, 8, 8)).loss)


@pytest.mark.parametrize("name", ["hvae", "rhvae"])
def test_iwae_of_the_hamiltonian_bound_is_above_its_elbo(name: str) -> None:
    model = vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0,
                                 eps_lf=0.05).eval()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = model.elbo(x, n_samples=64)
        torch.manual_seed(0)
        same = model.log_importance_weights(x, 64)
        log_w = model.log_importance_weights(x, 256, torch.Generator().manual_seed(1))
    assert torch.allclose(elbo, same.mean(0), atol=1e-5)  # the ELBO is the mean of the model's own log weights
    iwae = torch.logsumexp(log_w, 0) - math.log(256)
    assert float(iwae.mean()) > float(elbo.mean())
    assert bool((torch.logsumexp(same, 0) - math.log(64) >= same.mean(0)).all())
    scores = model.log_importance_weights(x, 4, torch.Generator().manual_seed(2), scores=("nll", "nll_discrete"))
    assert scores["nll"].shape == (4, 5) and scores["nll_discrete"] is None  # Bernoulli: no 8-bit probability


@pytest.mark.parametrize(("name", "steps"), [("hvae", 200), ("rhvae", 60), ("poincare-vae", 200)])
def test_short_training_improves_and_reloads_identically(name: str, steps: int, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    config = vaecore.TrainConfig(data="digits", epochs=50, max_steps=steps, batch_size=64, lr=2e-3, log_every=20,
                                 val_limit=200, seed=0, sample_grids=False)
    model = vaecore.build_preset(name, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0)
    x = data.x_val[:200]
    torch.manual_seed(0)
    before = model.eval().validate(x)
    vaecore.Trainer(model, data, config, tmp_path).fit()
    loaded = vaecore.load(tmp_path)
    torch.manual_seed(0)
    after = loaded.validate(x)
    assert float(after["mse"].mean()) < 0.7 * float(before["mse"].mean())
    assert float(after["elbo"].mean()) > float(before["elbo"].mean()) + 5
    again = vaecore.load(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(x[:8]), again.reconstruct(x[:8]))
        a = loaded.log_importance_weights(x[:8], 3, torch.Generator().manual_seed(4))
        b = again.log_importance_weights(x[:8], 3, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    if name == "rhvae":
        assert int(loaded.metric_count) > 1  # the epoch-end update ran and saved
        sampler = build_sampler("rhvae", mcmc_steps=5, n_lf=5).fit(loaded, data.x_train)
        z = sampler.sample_latents(16, torch.Generator().manual_seed(0))
        assert z.shape == (16, 8) and torch.isfinite(z).all() and sampler.acceptance is not None
        sampler.save(tmp_path)
        same = load_sampler(tmp_path, "rhvae").sample_latents(16, torch.Generator().manual_seed(0))
        assert torch.allclose(z, same, atol=1e-5)
        assert torch.isfinite(loaded.decode(z)).all()
    if name == "poincare-vae":
        assert bool((loaded.embed(x).norm(dim=1) < 1).all())
        sampler = build_sampler("poincare-disk").fit(loaded, data.x_train)
        z = sampler.sample_latents(100, torch.Generator().manual_seed(0))
        assert bool((z.norm(dim=1) < 1).all())
        assert torch.allclose(sampler.log_prob(z), loaded.prior.log_prob(z))
        sampler.save(tmp_path)
        again_z = load_sampler(tmp_path, "poincare-disk").sample_latents(100, torch.Generator().manual_seed(0))
        assert torch.equal(again_z, z)


def test_model_samplers_refuse_other_models_and_hypersphere_needs_sphere_latents() -> None:
    vae = vaecore.build_preset("bernoulli-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
    for name in ("rhvae", "poincare-disk"):
        with pytest.raises(ValueError, match="gmm"):
            build_sampler(name).fit(vae, torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match="unit sphere"):
        build_sampler("hypersphere").fit(vae, torch.rand(4, 1, 8, 8))
    svae = vaecore.build_preset("svae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
    sampler = build_sampler("hypersphere").fit(svae, torch.rand(4, 1, 8, 8))
    z = sampler.sample_latents(500, torch.Generator().manual_seed(0))
    assert torch.allclose(z.norm(dim=1), torch.ones(500), atol=1e-5)
    assert float(z.mean(0).norm()) < 0.15


@pytest.mark.parametrize("name", ["hvae", "rhvae", "poincare-vae"])
def test_metrics_iwae_is_the_models_own_bound(name: str) -> None:
    from vaecore.evaluation import metrics

    model = vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        ours = metrics.iwae_log_likelihood(model, x, k=8, batch_size=4, chunk=8,
                                           generator=torch.Generator().manual_seed(3))
        direct = model.log_importance_weights(x, 8, torch.Generator().manual_seed(3), posterior=model.posterior(x))
    assert torch.allclose(ours, (torch.logsumexp(direct.double(), 0) - math.log(8)).cpu(), atol=1e-5)
    assert metrics.undefined_reason(model, "kl-per-dim") is not None
