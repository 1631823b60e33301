"""`projection.invert`: map coordinates back to latents through the very projection that drew the map."""

from __future__ import annotations

import numpy as np
import pytest

from vaecore.latent import projection as proj


@pytest.mark.parametrize("whiten", ["no", "yes"])
@pytest.mark.parametrize("dim", [2, 3])
def test_pca_inverse_is_the_projection_on_the_drawn_components(whiten: str, dim: int) -> None:
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(200, 6)) * np.array([5, 3, 2, 0.5, 0.2, 0.1])).astype(np.float32)
    coords, fitted = proj.fit_projection(z, "pca", dim, whiten=whiten)
    back = proj.invert(fitted, coords)
    v = np.asarray(fitted.components_, dtype=np.float64)  # orthonormal rows: the projection onto their span
    mean = z.mean(0, dtype=np.float64)
    expected = mean + (z - mean) @ v.T @ v
    assert back.shape == z.shape
    assert np.allclose(back, expected, atol=1e-4 * np.abs(z).max())
    assert np.allclose(proj.invert(fitted, np.hstack([coords, np.zeros((200, 1), np.float32)])), back)


def test_a_map_of_a_latent_as_wide_as_it_inverts_exactly() -> None:
    z = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    coords, fitted = proj.fit_projection(z, "pca", 2)
    assert np.allclose(proj.invert(fitted, coords), z, atol=1e-5)


def test_tsne_and_degenerate_maps_have_no_inverse() -> None:
    z = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    _, fitted = proj.fit_projection(z, "tsne", 2, max_iter=250)
    assert not proj.invertible(fitted)
    with pytest.raises(ValueError, match="no inverse"):
        proj.invert(fitted, np.zeros((1, 2), np.float32))
    _, none = proj.fit_projection(z[:2], "pca", 2)
    assert not proj.invertible(none)
