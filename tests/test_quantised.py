"""Vector-quantised families: the quantisers' identities (straight-through gradient, EMA update
towards the assigned means, residual error by depth), VQ-VAE and HRQ-VAE trainings, save/load,
what they report as undefined, and the PixelCNN sampler over their codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.components.context import StepContext
from vaecore.components.quantizers import ResidualQuantizer, VectorQuantizer
from vaecore.evaluation import metrics
from vaecore.samplers import build_sampler, load_sampler
from vaecore.samplers.pixelcnn import MaskedConv2d, PixelCNN

SMALL_PIXELCNN = {"hidden": 32, "layers": 2, "steps": 120}


def test_straight_through_gradient_at_z_e_equals_the_gradient_at_z_q() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3, beta=0.25).train()
    z_e = torch.randn(20, 3, requires_grad=True)
    out = vq(z_e)
    zq = out.quantized.detach().requires_grad_(True)
    weights = torch.randn(20, 3)

    def downstream(z: torch.Tensor) -> torch.Tensor:
        return (weights * z.pow(2)).sum()

    (g_e,) = torch.autograd.grad(downstream(out.quantized), z_e)
    (g_q,) = torch.autograd.grad(downstream(zq), zq)
    assert torch.allclose(zq, vq.lookup(out.codes), atol=1e-6), "the forward value is z_q"
    assert torch.equal(g_e, g_q)
    # the VQ loss: codebook term moves codes only, commitment term moves z_e by 2β(z_e − z_q)
    (g_commit,) = torch.autograd.grad(out.loss.sum(), z_e, retain_graph=True)
    assert torch.allclose(g_commit, 2 * 0.25 * (z_e - zq).detach(), atol=1e-6)
    (g_book,) = torch.autograd.grad(out.loss.sum(), vq.codebook)
    expected = torch.zeros_like(vq.codebook)
    expected.index_add_(0, out.codes.squeeze(1), 2 * (zq - z_e).detach())
    assert torch.allclose(g_book, expected, atol=1e-6)


@pytest.mark.parametrize("decay", [0.0, 0.9])
def test_ema_update_moves_codes_to_the_means_of_their_vectors(decay: float) -> None:
    torch.manual_seed(1)
    vq = VectorQuantizer(4, 2, ema=True, decay=decay).train()
    z = torch.randn(400, 2) * 2
    before = vq.codebook.clone()
    codes = vq.codes(z).squeeze(1)
    vq(z)
    for k in codes.unique():
        mean = z[codes == k].mean(0)
        assert (vq.codebook[k] - mean).norm() < (before[k] - mean).norm()
        if decay == 0.0:
            assert torch.allclose(vq.codebook[k], mean, atol=1e-3)
    vq.eval()
    frozen = vq.codebook.clone()
    vq(z)
    assert torch.equal(vq.codebook, frozen), "no update outside training"


def test_residual_quantisation_error_does_not_increase_with_depth() -> None:
    torch.manual_seed(2)
    rq = ResidualQuantizer(4, 16, 3, ema=True, decay=0.0).train()
    z = torch.randn(2000, 3)
    for _ in range(15):  # decay 0: Lloyd steps on every level's residuals
        rq(z)
    errors = rq.eval().errors(z)
    assert errors.shape == (4,)
    assert (errors[1:] <= errors[:-1] + 1e-6).all(), errors
    assert errors[-1] < 0.25 * z.pow(2).sum(1).mean()
    codes = rq.codes(z)
    assert codes.shape == (2000, 4)
    assert float((z - rq.lookup(codes)).pow(2).sum(1).mean()) == pytest.approx(float(errors[-1]), rel=1e-5)


def test_hrq_relaxed_pass_reaches_codebooks_and_encoder_and_codes_are_greedy_outside_training() -> None:
    torch.manual_seed(3)
    rq = ResidualQuantizer(3, 8, 4, norm_weight=0.5, depth_dropout=0.0, kl_weight=0.1).train()
    z = torch.randn(30, 4, requires_grad=True)
    out = rq(z, [1.0, 1.0, 1.0])
    grads = torch.autograd.grad(out.quantized.pow(2).sum() + out.loss.sum(), [z] + [b.codebook for b in rq.levels])
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    rq.eval()
    out = rq(z, [0.5, 0.5, 0.5])
    assert torch.equal(out.codes, rq.codes(z))
    assert torch.allclose(out.quantized, rq.lookup(rq.codes(z)), atol=1e-6)
    norms = torch.stack([b.codebook.norm(dim=1).mean() for b in ResidualQuantizer(3, 8, 4).levels])
    assert torch.allclose(norms, torch.tensor([1.0, 0.5, 0.25]), atol=1e-5)


def test_vqvae_spatial_latents_embed_is_the_quantised_map_and_nothing_undefined_is_claimed() -> None:
    model = vaecore.build_preset("vqvae", input_shape=(1, 28, 28), latent_dim=8, seed=0).eval()
    caps = model.capabilities
    assert caps.latent_shape == (8, 7, 7) and caps.geometry == "discrete" and not caps.elbo
    assert model.latent_dim == 8 * 7 * 7 and model.code_dim == 8
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        z = model.embed(x)
        assert z.shape == (3, 8 * 7 * 7)
        rows = z.reshape(3, 8, 7, 7).permute(0, 2, 3, 1).reshape(-1, 8)
        assert torch.allclose(rows, model.quantizer.codebook[model.code_map(x).reshape(-1)])
        assert torch.allclose(model.reconstruct(x), model.decode(z.reshape(3, 8, 7, 7)))
        assert model.sample(2, torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
    for name in ("elbo", "iwae", "nll-pdf", "kl-per-dim", "mutual-info"):
        assert metrics.undefined_reason(model, name) == caps.why_no_elbo
    for name in ("mse", "knn", "active-units", "expected-gap"):
        assert metrics.undefined_reason(model, name) is None
    with pytest.raises(ValueError, match="deterministic"):
        model.elbo(x)


@pytest.mark.parametrize("preset,ema", [("vqvae", True), ("vqvae", False), ("hrq-vae", None)])
def test_short_training_improves_reconstruction(preset: str, ema: bool | None, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    overrides = {} if ema is None else {"ema": ema}
    model = vaecore.build_preset(preset, input_shape=data.shape, arch="mlp", latent_dim=8, seed=0, **overrides)
    x = data.x_val[:200]
    before = model.eval().validate(x)
    config = vaecore.TrainConfig(data="digits", max_steps=200, batch_size=64, lr=2e-3, log_every=50, val_limit=200,
                                 seed=0, sample_grids=False)
    vaecore.Trainer(model, data, config, tmp_path).fit()
    loaded = vaecore.load(tmp_path)
    after = loaded.validate(x)
    assert float(after["loss"]) < float(before["loss"])
    assert float(after["mse"].mean()) < 0.6 * float(before["mse"].mean())
    assert "elbo" not in after
    used = loaded.code_map(data.x_train).unique().numel()
    assert used >= 8, f"only {used} codes in use"


@pytest.mark.parametrize("preset", ["vqvae", "hrq-vae"])
def test_save_load_gives_identical_outputs(preset: str, tmp_path: Path) -> None:
    model = vaecore.build_preset(preset, input_shape=(1, 8, 8), latent_dim=4, seed=0)
    x = torch.rand(16, 1, 8, 8)
    model.train().loss(x, StepContext())  # moves the codebook (restart / EMA) so it is not the initial one
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = vaecore.load(tmp_path)
    assert type(loaded) is type(model) and loaded.capabilities == model.capabilities
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), model.embed(x))
        assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
        assert torch.equal(loaded.code_map(x), model.code_map(x))
        assert float(loaded.loss(x).loss) == pytest.approx(float(model.loss(x).loss))


def test_masked_convolution_sees_only_earlier_positions() -> None:
    torch.manual_seed(4)
    net = PixelCNN(5, hidden=8, layers=2).eval()
    codes = torch.randint(5, (1, 4, 4))
    base = net(codes)
    for i in range(4):
        for j in range(4):
            changed = codes.clone()
            changed[0, i, j] = (changed[0, i, j] + 1) % 5
            diff = (net(changed) - base).abs().sum(1)[0]
            later = torch.zeros(4, 4, dtype=torch.bool)
            later.view(-1)[i * 4 + j + 1:] = True
            assert float(diff[~later].max()) == 0.0, (i, j)
    for i in range(4):  # what sampling relies on: row i's logits need rows ≤ i only
        assert torch.allclose(net(codes[:, :i + 1])[:, :, i], base[:, :, i], atol=1e-6)
    assert MaskedConv2d("B", 1, 1, 3).mask.sum() == 5 and MaskedConv2d("A", 1, 1, 3).mask.sum() == 4


@pytest.mark.parametrize("preset,arch", [("vqvae", "sigma-conv"), ("hrq-vae", "mlp")])
def test_pixelcnn_sampler_fit_sample_save_load(preset: str, arch: str, tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    model = vaecore.build_preset(preset, input_shape=data.shape, arch=arch, latent_dim=4, num_codes=16, seed=0)
    model.train().loss(data.x_train[:256], StepContext())
    model.eval()
    sampler = build_sampler("pixelcnn", **SMALL_PIXELCNN).fit(model, data.x_train[:600], seed=0)
    assert sampler.latent_dim == model.embed(data.x_train[:2]).shape[1]
    codes = model.code_map(data.x_val[:200])
    uniform = codes[0].numel() * torch.log(torch.tensor(16.0))
    assert float(-sampler.log_prob(codes).mean()) < float(uniform), "the prior learned nothing about the codes"
    z = sampler.sample_latents(8, torch.Generator().manual_seed(0))
    assert z.shape == (8, sampler.latent_dim)
    assert model.latent_dim == sampler.latent_dim
    rows = z.reshape(8, model.code_dim, -1).transpose(1, 2).reshape(-1, model.code_dim)
    if model.levels == 1:
        gap = (rows.unsqueeze(1) - model.codebooks()[0]).abs().amax(-1).min(1).values
        assert float(gap.max()) == 0.0, "samples are code vectors"
    images = metrics.generate(model, 8, sampler=sampler, seed=0)
    assert images.shape == (8, *data.shape) and torch.isfinite(images).all()
    sampler.save(tmp_path)
    loaded = load_sampler(tmp_path, "pixelcnn")
    assert loaded.settings() == sampler.settings() and loaded.fit_info == sampler.fit_info
    assert torch.equal(loaded.sample_latents(8, torch.Generator().manual_seed(0)), z)
    assert torch.allclose(loaded.log_prob(codes), sampler.log_prob(codes))


def test_pixelcnn_refuses_continuous_models_and_latents() -> None:
    vae = vaecore.build_preset("sigma-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
    with pytest.raises(ValueError, match="vector-quantised"):
        build_sampler("pixelcnn").fit(vae, torch.rand(10, 1, 8, 8))
    with pytest.raises(ValueError, match="not on latents"):
        build_sampler("pixelcnn").fit_latents(torch.randn(10, 4))
