"""Flows (components/flows.py) and the flow-posterior families (VAE-LinNF, VAE-IAF): log|det J|
against autograd's Jacobian, inverses, MADE's autoregressive masks, the flow posterior's density
by change of variables and by ∫q = 1, the IWAE weights at the posterior's own draws, short
trainings, save → load, and the MAF / IAF samplers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.flows import IAF, MADE, MAF, FlowPosterior, PlanarFlow, RadialFlow
from vaecore.components.posteriors import DiagonalGaussian
from vaecore.components.priors import StandardNormal
from vaecore.samplers import MAFSampler, TwoStageSampler, build_sampler

D = 4


def _perturbed(module: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """The module in float64 with every parameter redrawn, so zero-initialised layers do something."""
    g = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
    return module


def _jacobian_logdet(f, z: torch.Tensor) -> torch.Tensor:
    """log|det ∂f/∂z| per row by autograd (f maps (1, d) → (1, d))."""
    out = []
    for row in z:
        jac = torch.autograd.functional.jacobian(lambda v: f(v.unsqueeze(0))[0].squeeze(0), row)
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


def _context(seed: int, n: int = 5, c: int = 3) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["planar", "radial", "iaf", "iaf-context"])
def test_log_det_equals_autograd_jacobian(kind: str) -> None:
    z = torch.randn(5, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5
    if kind == "planar":
        flow = _perturbed(PlanarFlow(D), 0, 1.0)
    elif kind == "radial":
        flow = _perturbed(RadialFlow(D), 0, 1.0)
    else:
        flow = _perturbed(IAF(D, blocks=3, hidden=16, layers=2, context_dim=3 if kind == "iaf-context" else 0), 0)
    ctx = _context(2) if kind == "iaf-context" else None
    _, logdet = flow(z, ctx)
    for i in range(z.shape[0]):
        c = None if ctx is None else ctx[i:i + 1]
        ref = _jacobian_logdet(lambda v, c=c: flow(v, c), z[i:i + 1])
        assert float(logdet[i]) == pytest.approx(float(ref[0]), abs=1e-9)


def test_planar_constraint_keeps_the_flow_invertible() -> None:
    flow = PlanarFlow(D).double()
    with torch.no_grad():
        flow.w.copy_(torch.ones(D, dtype=torch.float64))
        flow.u.copy_(-3 * torch.ones(D, dtype=torch.float64))  # wᵀu = −12 < −1: not invertible as given
    assert float(flow.w @ flow.u_hat()) >= -1
    z = torch.linspace(-4, 4, 41, dtype=torch.float64).unsqueeze(1) * torch.ones(1, D, dtype=torch.float64)
    _, logdet = flow(z)
    assert torch.isfinite(logdet).all()


def test_made_is_autoregressive_and_the_iaf_and_maf_invert() -> None:
    made = _perturbed(MADE(D, hidden=12, layers=2), 3)
    x = torch.randn(D, dtype=torch.float64)
    for out in (0, 1):
        jac = torch.autograd.functional.jacobian(lambda v, o=out: made(v.unsqueeze(0))[o].squeeze(0), x)
        assert torch.count_nonzero(torch.triu(jac)) == 0, "output i may depend only on inputs < i"
    iaf = _perturbed(IAF(D, blocks=3, hidden=16, layers=2, context_dim=3), 4)
    z, ctx = torch.randn(5, D, dtype=torch.float64), _context(5)
    y, logdet = iaf(z, ctx)
    back, inv_logdet = iaf.inverse(y, ctx)
    assert torch.allclose(back, z, atol=1e-9) and torch.allclose(inv_logdet, -logdet, atol=1e-9)
    maf = _perturbed(MAF(D, blocks=2, hidden=16, layers=3), 6, 0.3)
    u, maf_logdet = maf.to_base(z)
    assert torch.allclose(maf.from_base(u), z, atol=1e-8)
    ref = _jacobian_logdet(lambda v: (maf.to_base(v)[0],), z)
    assert torch.allclose(maf_logdet, ref, atol=1e-9)


def _flow_posterior(seed: int = 0) -> FlowPosterior:
    g = torch.Generator().manual_seed(seed)
    base = DiagonalGaussian(torch.randn(3, D, generator=g, dtype=torch.float64) * 0.5,
                            torch.randn(3, D, generator=g, dtype=torch.float64) * 0.3 - 0.5)
    flows = [_perturbed(PlanarFlow(D), 7, 0.7), _perturbed(RadialFlow(D), 8, 0.7), _perturbed(PlanarFlow(D), 9, 0.7)]
    return FlowPosterior(base, flows)


def test_flow_posterior_density_by_change_of_variables_and_normalisation() -> None:
    q = _flow_posterior()
    z0 = q.base.rsample(generator=torch.Generator().manual_seed(1))
    z = q.rsample(generator=torch.Generator().manual_seed(1))
    assert torch.allclose(q.push(z0)[0], z)
    ref = q.base.log_prob(z0) - torch.stack([
        _jacobian_logdet(lambda v: (q.push(v)[0],), z0[i:i + 1])[0] for i in range(3)])
    assert torch.allclose(q.log_prob(z), ref, atol=1e-9)
    # ∫ q = 1: E_q[p(z) / q(z)] = 1 for a normalised p with lighter tails than q
    wide = FlowPosterior(DiagonalGaussian(q.base.mu, torch.full_like(q.base.mu, math.log(4.0))), q.transforms)
    draws = wide.rsample(200_000, generator=torch.Generator().manual_seed(2))
    narrow = DiagonalGaussian(torch.zeros(D, dtype=torch.float64), torch.full((D,), math.log(0.5), dtype=torch.float64))
    ratio = torch.exp(narrow.log_prob(draws) - wide.log_prob(draws)).mean(0)
    assert torch.allclose(ratio, torch.ones(3, dtype=torch.float64), atol=0.03), ratio
    with pytest.raises(ValueError, match="only at the draws"):
        q.log_prob(z.clone())
    assert q.mean.shape == (3, D) and torch.allclose(q.mean, q.push(q.base.mu)[0])


@pytest.mark.parametrize("preset", ["vae-linnf", "vae-iaf"])
def test_iwae_weights_use_the_flow_density_at_the_draws(preset: str) -> None:
    model = vaecore.build_preset(preset, input_shape=(1, 8, 8), arch="mlp", latent_dim=D, seed=0).eval()
    for p in (model.flows if preset == "vae-linnf" else model.iaf).parameters():
        with torch.no_grad():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert model.capabilities.posterior == "flow" and model.capabilities.elbo
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 7, generator=torch.Generator().manual_seed(3))
        q = model.posterior(x)
        z0 = q.base.rsample(7, generator=torch.Generator().manual_seed(3))
        z, logdet = q.push(z0)
        nll = model.likelihood.nll(model.decode_params(z.reshape(-1, D)), x.repeat(7, 1, 1, 1)).reshape(7, -1)
        ref = -nll + StandardNormal(D).log_prob(z) - (q.base.log_prob(z0) - logdet)
    assert torch.allclose(log_w, ref, atol=1e-4)
    assert float(logdet.abs().max()) > 1e-3, "the flow must be doing something in this check"


@pytest.mark.parametrize("preset", ["vae-linnf", "vae-iaf"])
def test_short_training_improves_and_save_load_is_identical(preset: str, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    config = vaecore.TrainConfig(data="digits", epochs=30, max_steps=200, batch_size=64, lr=2e-3, log_every=20,
                                 val_limit=200, seed=0, sample_grids=False)
    overrides = {"flows": ["planar", "radial"] * 2} if preset == "vae-linnf" else {}
    model = vaecore.build_preset(preset, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0, **overrides)
    x = data.x_val[:200]
    before = model.eval().validate(x)
    vaecore.Trainer(model, data, config, tmp_path).fit()
    trained = vaecore.load(tmp_path).eval()
    after = trained.validate(x)
    assert float(after["mse"].mean()) < 0.5 * float(before["mse"].mean())
    assert float(after["elbo"].mean()) > float(before["elbo"].mean()) + 20
    trained.save_pretrained(tmp_path / "copy")
    again = vaecore.load(tmp_path / "copy").eval()
    with torch.no_grad():
        assert torch.equal(trained.embed(x[:16]), again.embed(x[:16]))
        a = trained.log_importance_weights(x[:16], 5, generator=torch.Generator().manual_seed(0))
        b = again.log_importance_weights(x[:16], 5, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, b)
        k = 100
        log_w = trained.log_importance_weights(x[:16], k, generator=torch.Generator().manual_seed(1))
        iwae = torch.logsumexp(log_w, 0) - math.log(k)
        assert float(iwae.mean()) >= float(log_w.mean(0).mean())


def _moons(n: int, seed: int) -> torch.Tensor:
    from sklearn.datasets import make_moons

    z, _ = make_moons(n, noise=0.05, random_state=seed)
    return torch.tensor(z, dtype=torch.float32)


def test_iaf_sampler_fits_latents_and_round_trips(tmp_path: Path) -> None:
    z = _moons(2000, seed=0)
    sampler = build_sampler("iaf", blocks=2, hidden=32, layers=2, steps=300, lr=3e-3)
    before = float(sampler.log_prob(z).mean())
    sampler.fit_latents(z, seed=0)
    after = float(sampler.log_prob(z).mean())
    gaussian = float(torch.distributions.MultivariateNormal(z.mean(0), torch.cov(z.T)).log_prob(z).mean())
    assert after > gaussian + 0.1 and after > before
    sampler.save(tmp_path)
    loaded = vaecore.samplers.load_sampler(tmp_path, "iaf")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sampler.sample_latents(64, g1), loaded.sample_latents(64, g2))
    draws = sampler.sample_latents(2000, torch.Generator().manual_seed(6))
    assert float(sampler.log_prob(draws).mean()) > gaussian


def test_maf_sampler_has_pythaes_settings_and_old_layouts_still_load(tmp_path: Path) -> None:
    s = MAFSampler().settings()
    assert (s["blocks"], s["layers"], s["hidden"]) == (2, 3, 128)
    assert TwoStageSampler().settings()["hidden"] == 1024 and TwoStageSampler().settings()["layers"] == 2
    old = MAFSampler(blocks=4, hidden=16, layers=2, steps=20).fit_latents(_moons(300, seed=1), seed=0)
    old.save(tmp_path)
    loaded = MAFSampler.load(tmp_path)
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "sampler-maf.safetensors")))
    assert "flow.blocks.3.net.4.weight" in keys and not any("mask" in k or "context" in k for k in keys)
    assert loaded.settings()["blocks"] == 4
    z = _moons(50, seed=2)
    assert torch.allclose(old.log_prob(z), loaded.log_prob(z))


@pytest.mark.parametrize("name", ["maf", "iaf", "two-stage"])
def test_learned_samplers_keep_their_best_state_on_validation_latents(name: str) -> None:
    z, z_val = _moons(40, seed=3), _moons(500, seed=4)
    settings = {"steps": 100, "hidden": 32, "lr": 1e-2}
    plain = build_sampler(name, **settings).fit_latents(z, seed=0)
    chosen = build_sampler(name, **settings).fit_latents(z, seed=0, z_val=z_val)
    assert chosen.fit_info["n_val"] == 500 and "n_val" not in plain.fit_info
    assert chosen.validation_latents is None
    if name != "two-stage":
        assert float(chosen.log_prob(z_val).mean()) >= float(plain.log_prob(z_val).mean())


def test_fit_sampler_passes_the_validation_images(tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    model = vaecore.build_preset("vae-iaf", input_shape=data.shape, arch="mlp", latent_dim=3, seed=0).eval()
    maf = vaecore.samplers.fit_sampler(model, data, "maf", n_train=200, steps=10, hidden=16)
    assert maf.fit_info["n_val"] == min(data.x_val.shape[0], 2000) and maf.fit_info["n_train"] == 200
    gmm = vaecore.samplers.fit_sampler(model, data, "gmm", n_train=200, components=2)
    assert "n_val" not in gmm.fit_info
