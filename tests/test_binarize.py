"""Binarized images (vaecore.data.binarize): fresh Bernoulli draws per epoch, fixed val/test draws, the mean of a
draw is the grey level, 8-bit and float inputs agree, and a resumed run sees the same draws."""

from __future__ import annotations

import math

import pytest
import torch

from vaecore.data.binarize import Binarizer, bernoulli_images, binarized_split, draw_seed


def _grey(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 1, 7, 7), generator=g, dtype=torch.uint8))


def test_draws_are_binary_and_keep_exact_zeros_and_ones():
    x = _grey()
    x[:, :, 0] = 0
    x[:, :, 1] = 255
    b = bernoulli_images(x, 5)
    assert b.dtype == torch.bool and b.shape == x.shape
    assert not b[:, :, 0].any() and b[:, :, 1].all()


def test_uint8_and_float_inputs_give_the_same_draw():
    x = _grey()
    assert torch.equal(bernoulli_images(x, 3), bernoulli_images(x.float() / 255.0, 3))


def test_float_images_outside_unit_interval_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bernoulli_images(torch.full((2, 1, 3, 3), 2.0), 0)


def test_mean_of_the_draws_is_the_grey_level():
    """Over n independent epochs each pixel's frequency of ones is binomial(n, p)/n: within 5 standard errors of p
    for every p (and exactly p at p = 0 and 1); averaged over all pixels, within 5 SE of the mean grey level."""
    levels = torch.arange(0, 256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    p = levels.double() / 255.0
    n = 400
    binz = Binarizer(levels, "dynamic", seed=7)
    freq = torch.stack([binz.batch(e, torch.tensor([0])) for e in range(n)]).double().mean(dim=0)
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 5 * se + 1e-12).all()
    total_se = math.sqrt(float((p * (1 - p)).sum()) / n) / p.numel()
    assert abs(float(freq.mean() - p.mean())) <= 5 * total_se


def test_dynamic_draws_are_fresh_per_epoch_and_exact_on_resume():
    x = _grey(200)
    binz = Binarizer(x, "dynamic", seed=3)
    e0, e1 = binz.images(0).clone(), binz.images(1).clone()
    assert not torch.equal(e0, e1)
    assert torch.equal(binz.images(0), e0)  # asking again gives the same draw
    resumed = Binarizer(x, "dynamic", seed=3)  # a new process resuming at epoch 1
    assert torch.equal(resumed.images(1), e1)
    assert not torch.equal(Binarizer(x, "dynamic", seed=4).images(1), e1)
    idx = torch.tensor([5, 0, 17])
    assert torch.equal(binz.batch(1, idx), e1[idx].float())


def test_static_draw_is_the_same_every_epoch():
    x = _grey(50)
    binz = Binarizer(x, "static", seed=3)
    assert torch.equal(binz.images(0), binz.images(9))
    assert torch.equal(binz.images(0), Binarizer(x, "dynamic", seed=3).images(0))


def test_fixed_splits_are_fixed_and_differ_between_splits():
    x = _grey(30)
    t1, t2 = binarized_split(x, "test"), binarized_split(x.clone(), "test")
    assert torch.equal(t1, t2) and t1.dtype == torch.float32
    assert set(t1.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(binarized_split(x, "val"), t1)
    with pytest.raises(ValueError, match="test"):
        binarized_split(x, "train")


def test_draw_seed_separates_keys():
    seeds = {draw_seed(s, 0, e) for s in range(3) for e in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2 ** 63 for s in seeds)
    with pytest.raises(ValueError):
        draw_seed(-1)
    with pytest.raises(ValueError, match="dynamic"):
        Binarizer(_grey(), "none", 0)


def _bernoulli_trainer(out, digits, **cfg):
    import vaecore
    from vaecore import TrainConfig, Trainer
    from vaecore.presets import model_config

    model = vaecore.build_model(model_config("bernoulli-vae", input_shape=digits.shape, arch="mlp",
                                             latent_dim=4).to_dict(), seed=0)
    values = {"data": "digits", "epochs": 3, "batch_size": 64, "log_every": 5, "val_limit": 200,
              "checkpoint_every": 1000, "binarize": "dynamic", "sample_grids": False, **cfg}
    return Trainer(model, digits, TrainConfig(**values), out)


def test_trainer_draws_binary_batches_per_epoch_and_a_fixed_validation_set(tmp_path, digits):
    from vaecore.data.datasets import epoch_permutation

    t = _bernoulli_trainer(tmp_path, digits)
    for epoch in (0, 1):
        batch = t._batch(epoch, 0)
        assert set(batch.unique().tolist()) <= {0.0, 1.0} and batch.dtype == torch.float32
        index = epoch_permutation(t.n_train, 0, epoch)[:64]
        assert torch.equal(batch, Binarizer(digits.x_train, "dynamic", 0).images(epoch)[index].float())
    assert torch.equal(t.validation.x_val, binarized_split(digits.x_val, "val")[:200])


def test_training_on_dynamic_draws_resumes_exactly(tmp_path, digits):
    full = _bernoulli_trainer(tmp_path / "full", digits)
    full.fit()
    part = _bernoulli_trainer(tmp_path / "part", digits, epochs=1)
    part.fit()
    from vaecore import Trainer

    resumed = Trainer.resume(tmp_path / "part", epochs=3)
    assert resumed.batches.binarizer is not None and resumed.batches.binarizer.mode == "dynamic"
    resumed.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
