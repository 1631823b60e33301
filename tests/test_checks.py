"""Health checks on the images themselves (`vaecore.evaluation.checks`) and reading a stored grid back into its
images (`vaecore.data.images.split_grid`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaecore.data.images import make_grid, split_grid, to_png_bytes
from vaecore.evaluation import checks
from vaecore.evaluation.metrics import COLLAPSED_KL


def _png_pixels(images: torch.Tensor, nrow: int, scale: int) -> np.ndarray:
    data = to_png_bytes(make_grid(images, nrow), scale)
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize(("b", "nrow", "scale", "c"), [(64, 8, 2, 1), (10, 4, 1, 1), (7, 3, 3, 3), (1, 1, 2, 1)])
def test_split_grid_gives_back_the_images_of_a_png_grid(b: int, nrow: int, scale: int, c: int) -> None:
    images = torch.rand(b, c, 28, 28, generator=torch.Generator().manual_seed(b))
    images[0] = 0.0  # an all-black image is kept, though the separators around it are white
    cells = split_grid(_png_pixels(images, nrow, scale), 28, 28)
    assert cells.shape == images.shape
    assert torch.equal((cells * 255).round(), (images * 255).round())  # exact up to the 8-bit quantisation


def test_split_grid_refuses_a_picture_that_is_no_such_grid() -> None:
    with pytest.raises(ValueError, match="not made of 28×28 cells"):
        split_grid(np.zeros((100, 101), np.uint8), 28, 28)


def test_sample_checks_look_at_the_samples_not_the_separators() -> None:
    g = torch.Generator().manual_seed(0)
    test = (torch.rand(200, 1, 28, 28, generator=g) > 0.85).float()  # strokes at full intensity
    black = torch.zeros(64, 1, 28, 28)
    grid = _png_pixels(black, 8, 2)
    assert grid.max() == 255  # the old check read this: the white separators, never blank
    flags = checks.sample_flags(split_grid(grid, 28, 28), test)
    assert [f.key for f in flags] == ["blank-samples"] and "0.000" in flags[0].message
    faint = test[:64] * 0.5
    assert [f.key for f in checks.sample_flags(faint, test)] == ["faint-samples"]
    alike = test[:1].repeat(64, 1, 1, 1) + 0.001 * torch.rand(64, 1, 28, 28, generator=g)
    assert [f.key for f in checks.sample_flags(alike.clamp(0, 1), test)] == ["alike-samples"]
    assert checks.sample_flags(test[100:164], test[:100]) == []  # images of the data itself pass
    with pytest.raises(ValueError, match="one image shape"):
        checks.sample_flags(test[:4, :, :8], test)


def test_evaluation_and_reconstruction_flags() -> None:
    assert [f.key for f in checks.evaluation_flags({"kl-per-dim": [COLLAPSED_KL / 2] * 4})] == ["posterior-collapse"]
    assert checks.evaluation_flags({"kl-per-dim": [COLLAPSED_KL / 2, 3.0]}) == []
    assert checks.evaluation_flags({"kl-per-dim": None}) == []
    train = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    test = torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    expected = float(((test.double() - train.double().mean(0)) ** 2).sum((1, 2, 3)).mean())
    mean_mse = checks.mean_image_mse(train, test)
    assert mean_mse == pytest.approx(expected, rel=1e-12)
    assert [f.key for f in checks.reconstruction_flags(mean_mse, mean_mse)] == ["mean-image"]
    assert checks.reconstruction_flags(0.5 * mean_mse, mean_mse) == []
    assert checks.reconstruction_flags(None, mean_mse) == []


def test_the_bundled_broken_models_are_flagged_and_the_good_ones_not() -> None:
    """AR-ELBO Diag-D's black samples, WAE-MMD (RBF)'s faint noise and the Beta likelihood's flat grey blobs."""
    from explorer.diagnostics import stored_sample_flags
    from vaecore import load_dataset
    from vaecore.hub import CHECKPOINTS_DIR

    wanted = {"arelbo-diag-d": "blank-samples", "wae-mmd-rbf": "faint-samples",
              "beta-likelihood-vae": "faint-samples", "sigma-vae": None, "iwae": None}
    folders = {n: Path(CHECKPOINTS_DIR) / n / "samples.png" for n in wanted}
    if not all(p.is_file() for p in folders.values()):
        pytest.skip("the bundled checkpoints are not all there")
    test = load_dataset("mnist", limit=1).x_test[:2000]
    for name, key in wanted.items():
        flags = stored_sample_flags(folders[name], (1, 28, 28), test)
        assert [f.key for f in flags] == ([key] if key else []), (name, flags)
