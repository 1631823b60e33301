"""The KL-family variants: disentangled β-VAE (capacity schedule read from the step context) and
β-TC-VAE (MI + TC + DWKL, minibatch weighted and stratified sampling): schedules, identities,
estimators against the exact aggregate posterior, short trainings and save → load."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.context import StepContext
from vaecore.components.objectives import kl_standard_normal
from vaecore.components.posteriors import DiagonalGaussian
from vaecore.models.beta_tc_vae import stratified_log_weights, tc_decomposition
from vaecore.models.disentangled_beta_vae import capacity_at


def _small(preset: str, **overrides: object) -> vaecore.PretrainedModel:
    return vaecore.build_preset(preset, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0, **overrides)


def test_capacity_rises_linearly_over_the_warmup_then_stays() -> None:
    def at(step: int, training: bool = True) -> float:
        return capacity_at(StepContext(step=step, steps_per_epoch=10, training=training), 50.0, 25.0)

    assert [at(s) for s in (0, 125, 250, 251, 10_000)] == [0.0, 25.0, 50.0, 50.0, 50.0]
    assert at(0, training=False) == 50.0, "validation scores the final objective"
    assert capacity_at(StepContext(step=3), 7.0, 0.0) == 7.0


def test_disentangled_loss_is_recon_plus_beta_times_the_kl_gap() -> None:
    model = _small("disentangled-beta-vae", beta=4.0, capacity=20.0, capacity_warmup_epochs=2.0).train()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for step, c in ((0, 0.0), (10, 10.0), (40, 20.0)):
        out = model.loss(x, StepContext(step=step, steps_per_epoch=10, kl_weight=0.5))
        assert out.logs["capacity"] == pytest.approx(c)
        assert out.logs["kl_gap"] == pytest.approx(abs(out.logs["kl"] - c), rel=1e-5)
        assert out.logs["loss"] == pytest.approx(out.logs["recon"] + 0.5 * 4.0 * out.logs["kl_gap"], rel=1e-5)


def _posterior(b: int, d: int, seed: int, spread: float = 1.0) -> DiagonalGaussian:
    g = torch.Generator().manual_seed(seed)
    return DiagonalGaussian(torch.randn(b, d, generator=g, dtype=torch.float64) * spread,
                            torch.randn(b, d, generator=g, dtype=torch.float64) * 0.3 - 1.0)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tc_decomposition_sums_to_the_kl_estimate(estimator: str) -> None:
    q = _posterior(1000, 5, 0)
    z = q.rsample(generator=torch.Generator().manual_seed(1))
    parts = tc_decomposition(q, z, dataset_size=60_000, estimator=estimator)
    total = parts["mi"] + parts["tc"] + parts["dwkl"]
    assert torch.allclose(total, parts["log_qz_x"] - parts["log_pz"], atol=1e-9)
    one_sample_kl = total.mean()
    exact = kl_standard_normal(q.mu, q.logvar).mean()
    stderr = float(total.std()) / math.sqrt(total.numel())
    assert abs(float(one_sample_kl - exact)) < 4 * stderr


def test_mss_weights_are_a_distribution_and_both_estimators_match_the_aggregate_posterior() -> None:
    for b, n in ((5, 100), (64, 60_000)):
        assert torch.allclose(stratified_log_weights(b, n).exp().sum(1), torch.ones(b, dtype=torch.float32))
    # far-apart posteriors: q(z_i) = (1/N) Σ_n q(z_i|x_n) is the own term over N; MSS gives it, MWS per Chen et al.
    # (log(1/(N·B)) Σ_j) is that minus log B
    q = _posterior(8, 3, 2, spread=100.0)
    z = q.rsample(generator=torch.Generator().manual_seed(3))
    n = 1000
    own = q.log_prob(z) - math.log(n)
    mss = tc_decomposition(q, z, n, "mss")
    mws = tc_decomposition(q, z, n, "mws")
    assert torch.allclose(q.log_prob(z) - mss["mi"], own, atol=1e-6)
    assert torch.allclose(q.log_prob(z) - mws["mi"], own - math.log(8), atol=1e-6)
    with pytest.raises(ValueError, match="estimator"):
        tc_decomposition(q, z, n, "exact")


def test_beta_tc_loss_weights_the_three_terms_and_with_unit_weights_is_the_vae_loss() -> None:
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ctx = StepContext(dataset_size=1000)
    model = _small("beta-tc-vae", alpha=2.0, beta=5.0, gamma=0.5, estimator="mss").train()
    out = model.loss(x, ctx)
    lg = out.logs
    assert lg["loss"] == pytest.approx(lg["recon"] + 2.0 * lg["mi"] + 5.0 * lg["tc"] + 0.5 * lg["dwkl"], rel=1e-5)
    unit = _small("beta-tc-vae", alpha=1.0, beta=1.0, gamma=1.0).train()
    torch.manual_seed(4)
    fwd = unit.forward_pass(x)
    kl = (fwd.posterior.log_prob(fwd.z) - unit.prior.log_prob(fwd.z)).mean()
    assert float(unit.objective(fwd, ctx).loss) == pytest.approx(float(unit.likelihood.objective(fwd.params, x) + kl),
                                                                  rel=1e-5)
    with pytest.raises(ValueError, match="factorised prior"):
        vaecore.model_config("beta-tc-vae", prior="vamp")


@pytest.mark.parametrize("preset", ["disentangled-beta-vae", "beta-tc-vae"])
def test_short_training_improves_and_save_load_is_identical(preset: str, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    config = vaecore.TrainConfig(data="digits", epochs=30, max_steps=250, batch_size=64, lr=2e-3, log_every=25,
                                 val_limit=200, seed=0, sample_grids=False)
    model = vaecore.build_preset(preset, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0)
    x = data.x_val[:200]
    before = model.eval().validate(x, StepContext.evaluation(data.x_train.shape[0]))
    vaecore.Trainer(model, data, config, tmp_path).fit()
    trained = vaecore.load(tmp_path).eval()
    after = trained.validate(x, StepContext.evaluation(data.x_train.shape[0]))
    assert float(after["loss"]) < float(before["loss"])
    assert float(after["mse"].mean()) < 0.6 * float(before["mse"].mean())
    assert float(after["elbo"].mean()) > float(before["elbo"].mean())
    trained.save_pretrained(tmp_path / "copy")
    again = vaecore.load(tmp_path / "copy").eval()
    with torch.no_grad():
        assert torch.equal(trained.embed(x[:16]), again.embed(x[:16]))
        assert torch.equal(trained.reconstruct(x[:16]), again.reconstruct(x[:16]))
        a = trained.log_importance_weights(x[:16], 5, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, again.log_importance_weights(x[:16], 5, generator=torch.Generator().manual_seed(0)))
