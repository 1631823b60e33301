"""MS-SSIM and the MS-SSIM VAE: identities (an image with itself scores 1, symmetry), agreement
with pytorch-msssim where its size rule allows, the small-image fallback, and the family's
training, save/load and missing ELBO."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vaecore
from vaecore.components.msssim import WANG_WEIGHTS, MSSSIMPlan, ms_ssim, msssim_plan, ssim
from vaecore.evaluation import metrics


def _images(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random images and a noisy, shifted copy, both in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(n, 1, size, size, generator=g), 5, 1, 2)
    y = (x.roll(1, dims=3) + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("size", [8, 28, 64, 200])
def test_an_image_with_itself_scores_one_and_the_score_is_symmetric(size: int) -> None:
    x, y = _images(4, size)
    assert torch.allclose(ms_ssim(x, x), torch.ones(4), atol=1e-6)
    assert torch.allclose(ms_ssim(x, y), ms_ssim(y, x), atol=1e-6)
    assert (ms_ssim(x, y) < 0.999).all()


def test_plans_for_small_images_fall_back_to_fewer_scales_and_smaller_windows() -> None:
    assert msssim_plan(200, 200) == MSSSIMPlan(11, 1.5, tuple(w / sum(WANG_WEIGHTS) for w in WANG_WEIGHTS))
    p28 = msssim_plan(28, 28)
    assert (p28.window, p28.scales) == (7, 3) and p28.sigma == pytest.approx(1.5 * 7 / 11)
    p8 = msssim_plan(8, 8)
    assert (p8.window, p8.scales) == (3, 2)
    assert sum(p8.weights) == pytest.approx(1.0)
    assert msssim_plan(64, 64).window == 11 and msssim_plan(64, 64).scales == 3
    with pytest.raises(ValueError, match="at least 3 pixels"):
        msssim_plan(2, 2)


def test_agrees_with_pytorch_msssim() -> None:
    pm = pytest.importorskip("pytorch_msssim")
    x, y = _images(3, 180)
    standard = MSSSIMPlan(11, 1.5, WANG_WEIGHTS)  # pytorch-msssim's weights, not renormalised
    ref = pm.ms_ssim(x, y, data_range=1.0, size_average=False)
    assert torch.allclose(ms_ssim(x, y, standard), ref, atol=1e-5)
    # three scales with a 7-tap window (the 28×28 setting) on images large enough for pytorch-msssim's check
    plan = MSSSIMPlan(7, 1.0, WANG_WEIGHTS[:3])
    x, y = _images(3, 112, seed=1)
    ref = pm.ms_ssim(x, y, data_range=1.0, size_average=False, win_size=7, win_sigma=1.0, weights=list(plan.weights))
    assert torch.allclose(ms_ssim(x, y, plan), ref, atol=1e-5)
    x, y = _images(3, 28, seed=2)
    ref = pm.ssim(x, y, data_range=1.0, size_average=False, win_size=7, win_sigma=1.0)
    assert torch.allclose(ssim(x, y, 7, 1.0), ref, atol=1e-5)


def test_gradient_is_finite_even_where_a_term_vanishes() -> None:
    x = torch.zeros(2, 1, 28, 28)
    y = torch.rand(2, 1, 28, 28, requires_grad=True)
    (g,) = torch.autograd.grad(ms_ssim(x, y).sum(), y)
    assert torch.isfinite(g).all()


def test_msssim_vae_has_no_elbo_and_says_so() -> None:
    model = vaecore.build_preset("msssim-vae", input_shape=(1, 28, 28), arch="mlp", latent_dim=4, seed=0)
    caps = model.capabilities
    assert not caps.elbo and caps.prior_samples and caps.posterior == "gaussian"
    assert "MS-SSIM" in caps.why_no_elbo
    for name in ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd"):
        assert metrics.undefined_reason(model, name) == caps.why_no_elbo
    assert metrics.undefined_reason(model, "mse") is None
    with pytest.raises(ValueError, match="MS-SSIM"):
        model.elbo(torch.rand(2, 1, 28, 28))
    out = model.loss(torch.rand(4, 1, 28, 28))
    assert (out.logs["msssim_scales"], out.logs["msssim_window"]) == (3.0, 7.0)


def test_short_training_improves_msssim_and_reconstruction(tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits")
    model = vaecore.build_preset("msssim-vae", input_shape=data.shape, arch="mlp", latent_dim=8, seed=0)
    x = data.x_val[:200]
    with torch.no_grad():
        before = model.eval().loss(x).logs
        mse_before = float(model.validate(x)["mse"].mean())
    config = vaecore.TrainConfig(data="digits", max_steps=150, batch_size=64, lr=2e-3, log_every=50, val_limit=200,
                                 seed=0, sample_grids=False)
    vaecore.Trainer(model, data, config, tmp_path).fit()
    loaded = vaecore.load(tmp_path).eval()
    with torch.no_grad():
        after = loaded.loss(x).logs
        mse_after = float(loaded.validate(x)["mse"].mean())
    assert after["ms_ssim"] > before["ms_ssim"] + 0.2
    assert mse_after < 0.7 * mse_before
    assert "elbo" not in loaded.validate(x)


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = vaecore.build_preset("msssim-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0).eval()
    model.save_pretrained(tmp_path)
    loaded = vaecore.load(tmp_path)
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), model.embed(x))
        assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    assert loaded.msssim == model.msssim
