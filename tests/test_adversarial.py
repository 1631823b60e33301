"""Adversarial families: AAE (latent discriminator, two optimizers) and VAE-GAN (feature-space
reconstruction, three optimizers): each group's gradient is that of its own loss only, short real
trainings reconstruct better, save/load is exact, and IWAE ≥ ELBO with the Gaussian posterior."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.context import StepContext
from vaecore.training.steps import group_step

TINY = {"input_shape": (1, 8, 8), "arch": "mlp", "latent_dim": 4, "seed": 0}


def _seeded_loss(model: vaecore.PretrainedModel, x: torch.Tensor, seed: int = 0) -> vaecore.LossOutput:
    torch.manual_seed(seed)
    return model.loss(x, StepContext())


def _trainer_grads(model: vaecore.PretrainedModel, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """The gradients the Trainer's multi-group step leaves on each group (optimizers with lr 0)."""
    groups = model.param_groups()
    opts = [torch.optim.SGD(g.params, lr=0.0) for g in groups]
    group_step(groups, opts, _seeded_loss(model, x), grad_clip=None)
    return {g.name: [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in g.params]
            for g in groups}


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params, strict=True)]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))


def test_aae_groups_get_gradients_only_from_their_own_loss() -> None:
    model = vaecore.build_preset("aae", **TINY).train()
    groups = {g.name: g.params for g in model.param_groups()}
    assert list(groups) == ["model", "discriminator"]
    assert {id(p) for p in groups["discriminator"]} == {id(p) for p in model.discriminator.parameters()}
    x = torch.rand(32, 1, 8, 8)
    out = _seeded_loss(model, x)
    assert all(g is None for g in torch.autograd.grad(out.for_group("discriminator"), groups["model"],
                                                      allow_unused=True, retain_graph=True))
    assert out.logs["loss"] == pytest.approx(out.logs["recon"] + 10.0 * out.logs["adversarial"], rel=1e-5)
    # the autoencoder's loss would move D (it flows through D(z)), but D's step uses its own loss only
    assert not _same(_grads(out.for_group("model"), groups["discriminator"]),
                     _grads(out.for_group("discriminator"), groups["discriminator"]))
    trainer = _trainer_grads(model, x)
    out = _seeded_loss(model, x)
    for name, params in groups.items():
        assert _same(trainer[name], _grads(out.for_group(name), params)), name


def test_vaegan_three_groups_get_gradients_only_from_their_own_loss() -> None:
    model = vaecore.build_preset("vaegan", **TINY).train()
    groups = {g.name: g.params for g in model.param_groups()}
    assert list(groups) == ["encoder", "decoder", "discriminator"]
    assert {id(p) for p in groups["encoder"]} == {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in groups["discriminator"]} == {id(p) for p in model.discriminator.parameters()}
    x = torch.rand(32, 1, 8, 8)
    out = _seeded_loss(model, x)
    disc_loss = out.for_group("discriminator")
    assert all(g is None for g in torch.autograd.grad(disc_loss, groups["encoder"] + groups["decoder"],
                                                      allow_unused=True, retain_graph=True))
    # the feature reconstruction reaches D's weights, and the decoder's loss the encoder's: neither may train them
    assert not _same(_grads(out.for_group("encoder"), groups["discriminator"]),
                     _grads(disc_loss, groups["discriminator"]))
    assert not _same(_grads(out.for_group("decoder"), groups["encoder"]),
                     _grads(out.for_group("encoder"), groups["encoder"]))
    trainer = _trainer_grads(model, x)
    out = _seeded_loss(model, x)
    for name, params in groups.items():
        assert _same(trainer[name], _grads(out.for_group(name), params)), name
    expected = out.logs["kl"] + out.logs["feature_recon"]
    assert out.logs["loss"] == out.logs["encoder_loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("preset,ratio", [("aae", 0.6), ("vaegan", 0.8)])
def test_short_training_improves_reconstruction(preset: str, ratio: float, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    model = vaecore.build_preset(preset, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0)
    x = data.x_val[:200]
    before = model.eval().validate(x)
    config = vaecore.TrainConfig(data="digits", max_steps=250, batch_size=64, lr=2e-3, log_every=50, val_limit=200,
                                 seed=0, sample_grids=False)
    vaecore.Trainer(model, data, config, tmp_path).fit()
    loaded = vaecore.load(tmp_path)
    after = loaded.validate(x)
    assert float(after["mse"].mean()) < ratio * float(before["mse"].mean())
    with torch.no_grad():
        k = 64
        elbo = float(loaded.elbo(x[:50], n_samples=k).mean())
        log_w = loaded.log_importance_weights(x[:50], k, torch.Generator().manual_seed(0))
        iwae = float((torch.logsumexp(log_w, 0) - math.log(k)).mean())
    assert iwae >= elbo - 1e-3 * abs(elbo)


@pytest.mark.parametrize("preset", ["aae", "vaegan"])
def test_save_load_gives_identical_outputs(preset: str, tmp_path: Path) -> None:
    model = vaecore.build_preset(preset, input_shape=(1, 8, 8), latent_dim=4, seed=0).eval()
    model.save_pretrained(tmp_path)
    loaded = vaecore.load(tmp_path)
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), model.embed(x))
        assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
        assert torch.equal(loaded.discriminator(x if preset == "vaegan" else model.embed(x))[0],
                           model.discriminator(x if preset == "vaegan" else model.embed(x))[0])
        assert float(_seeded_loss(loaded, x).loss) == float(_seeded_loss(model, x).loss)


@pytest.mark.parametrize("preset", ["aae", "vaegan"])
@pytest.mark.parametrize("likelihood,kwargs", [("gaussian", {"sigma": "optimal"}), ("bernoulli", {}),
                                               ("disc-logistic", {}), ("categorical", {})])
def test_any_likelihood_trains_a_step(preset: str, likelihood: str, kwargs: dict) -> None:
    model = vaecore.build_preset(preset, likelihood=likelihood, likelihood_kwargs=kwargs, **TINY).train()
    groups = model.param_groups()
    opts = [torch.optim.Adam(g.params, lr=1e-3) for g in groups]
    out = model.loss(torch.rand(16, 1, 8, 8), StepContext())
    group_step(groups, opts, out, grad_clip=None)
    assert all(math.isfinite(v) for v in out.logs.values())
