"""MIWAE, PIWAE and CIWAE: MIWAE(1, K) = IWAE(K), CIWAE(β = 1) = the K-sample ELBO and
CIWAE(β = 0) = IWAE, PIWAE's groups stepped only by their own loss, short trainings, save → load."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.context import StepContext
from vaecore.models.autoencoder import iwae_bound
from vaecore.models.iwae_variants import miwae_bound
from vaecore.training.steps import group_step

X = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _small(preset: str, **overrides: object) -> vaecore.PretrainedModel:
    return vaecore.build_preset(preset, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0, **overrides)


def _loss(model: vaecore.PretrainedModel, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return model.loss(X, StepContext()).loss


@pytest.mark.parametrize("likelihood", [{"likelihood": "bernoulli"},
                                        {"likelihood": "gaussian", "likelihood_kwargs": {"sigma": "optimal"}}])
def test_miwae_with_one_bound_is_the_iwae(likelihood: dict) -> None:
    iwae = _small("iwae", k=7, **likelihood).train()
    miwae = _small("miwae", m=1, k=7, **likelihood).train()
    miwae.load_state_dict(iwae.state_dict())
    assert float(_loss(miwae, 1)) == pytest.approx(float(_loss(iwae, 1)), rel=1e-6)
    log_w = torch.randn(6, 3)
    assert torch.allclose(miwae_bound(log_w, 1), iwae_bound(log_w))
    assert torch.allclose(miwae_bound(log_w, 6), log_w.mean(0))
    assert torch.allclose(miwae_bound(log_w, 2), 0.5 * (iwae_bound(log_w[:3]) + iwae_bound(log_w[3:])))


def test_ciwae_interpolates_between_the_elbo_and_the_iwae() -> None:
    model = _small("ciwae", k=9, ciwae_beta=1.0).eval()
    torch.manual_seed(2)
    log_w = model.log_importance_weights(X, 9)
    assert float(_loss(model, 2)) == pytest.approx(-float(log_w.mean()), rel=1e-6)
    zero = _small("ciwae", k=9, ciwae_beta=0.0).eval()
    assert float(_loss(zero, 2)) == pytest.approx(-float(iwae_bound(log_w).mean()), rel=1e-6)
    half = _small("ciwae", k=9, ciwae_beta=0.25).eval()
    expected = -(0.25 * log_w.mean() + 0.75 * iwae_bound(log_w).mean())
    assert float(_loss(half, 2)) == pytest.approx(float(expected), rel=1e-6)
    # β = 1 is the ELBO: its K-sample Monte-Carlo mean matches the closed-form-KL ELBO
    big = _small("ciwae", k=4000, ciwae_beta=1.0).eval()
    with torch.no_grad():
        mc = -float(_loss(big, 3))
        exact = float(big.elbo(X, n_samples=50).mean())
    assert mc == pytest.approx(exact, abs=0.05)


def test_piwae_groups_get_gradients_only_from_their_own_loss() -> None:
    model = _small("piwae", m=2, k=3).train()
    groups = {g.name: g for g in model.param_groups()}
    assert list(groups) == ["encoder", "decoder"]
    enc_ids = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in groups["encoder"].params} == enc_ids
    assert enc_ids.isdisjoint(id(p) for p in groups["decoder"].params)
    torch.manual_seed(4)
    out = model.loss(X, StepContext())
    lg = out.logs
    assert lg["loss"] == pytest.approx(-(lg["miwae_bound"] + lg["iwae_bound"]), rel=1e-6)
    enc, dec = groups["encoder"].params, groups["decoder"].params
    want_enc = torch.autograd.grad(out.for_group("encoder"), enc, retain_graph=True)
    want_dec = torch.autograd.grad(out.for_group("decoder"), dec, retain_graph=True)
    other_enc = torch.autograd.grad(out.for_group("decoder"), enc, retain_graph=True)
    other_dec = torch.autograd.grad(out.for_group("encoder"), dec, retain_graph=True)
    opts = [torch.optim.SGD(g.params, lr=0.0) for g in groups.values()]
    group_step(list(groups.values()), opts, out, grad_clip=None)
    for params, want, other in ((enc, want_enc, other_enc), (dec, want_dec, other_dec)):
        assert all(torch.equal(p.grad, w) for p, w in zip(params, want, strict=True))
        assert any(not torch.allclose(w, o) for w, o in zip(want, other, strict=True)), "the two losses must differ"


@pytest.mark.parametrize("preset", ["miwae", "piwae", "ciwae"])
def test_short_training_improves_and_save_load_is_identical(preset: str, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    config = vaecore.TrainConfig(data="digits", epochs=30, max_steps=200, batch_size=64, lr=2e-3, log_every=25,
                                 val_limit=200, seed=0, sample_grids=False)
    size = {"k": 4} if preset == "ciwae" else {"m": 2, "k": 4}
    model = vaecore.build_preset(preset, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0, **size)
    x = data.x_val[:200]
    torch.manual_seed(0)
    before = model.eval().validate(x)
    vaecore.Trainer(model, data, config, tmp_path).fit()
    trained = vaecore.load(tmp_path).eval()
    torch.manual_seed(0)
    after = trained.validate(x)
    assert float(after["loss"]) < float(before["loss"])
    assert float(after["mse"].mean()) < 0.6 * float(before["mse"].mean())
    assert float(after["elbo"].mean()) > float(before["elbo"].mean())
    trained.save_pretrained(tmp_path / "copy")
    again = vaecore.load(tmp_path / "copy").eval()
    with torch.no_grad():
        assert torch.equal(trained.embed(x[:16]), again.embed(x[:16]))
        k = 64
        a = trained.log_importance_weights(x[:16], k, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, again.log_importance_weights(x[:16], k, generator=torch.Generator().manual_seed(0)))
        assert float((torch.logsumexp(a, 0) - math.log(k)).mean()) >= float(a.mean())
