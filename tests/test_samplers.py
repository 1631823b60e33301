"""Post-hoc latent samplers: do they fit what they claim, and do they save and load safely?"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from vaecore import Dataset, build_model, model_config
from vaecore.samplers import (
    SAMPLERS,
    GMMSampler,
    MAFSampler,
    NormalSampler,
    SamplerLoadError,
    TwoStageSampler,
    VampSampler,
    build_sampler,
    fit_sampler,
    load_or_fit,
    load_sampler,
)

SHAPE = (1, 8, 8)
FAST = {"prior": {}, "gmm": {"components": 3}, "two-stage": {"steps": 30, "hidden": 32},
        "maf": {"steps": 30, "hidden": 16, "blocks": 2}, "iaf": {"steps": 30, "hidden": 16},
        "rhvae": {"mcmc_steps": 5, "n_lf": 5}, "pixelcnn": {"steps": 20, "hidden": 8, "layers": 1}}
OWN_MODEL = {"rhvae": "rhvae", "poincare-disk": "poincare-vae", "hypersphere": "svae",  # samplers of one family
             "pixelcnn": "vqvae"}


def _tiny(preset: str, **overrides: object) -> torch.nn.Module:
    config = model_config(preset, input_shape=SHAPE, arch="mlp", latent_dim=3, **overrides)
    return build_model(config.to_dict(), seed=0).eval()


@pytest.fixture(scope="module")
def tiny_data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, *SHAPE, generator=g)
    return Dataset("tiny", x, None, x[:20], None, x[:20], None)


@pytest.fixture(scope="module")
def tiny_vae() -> torch.nn.Module:
    return _tiny("gaussian-vae")


@pytest.fixture(scope="module")
def tiny_vamp() -> torch.nn.Module:
    return _tiny("vamp-vae", vamp_components=5)


def _mixture(means: torch.Tensor, n: int, scale: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(means.shape[0], (n,), generator=g)
    return means[k] + scale * torch.randn(n, means.shape[1], generator=g)


def _moons(n: int, seed: int = 0) -> torch.Tensor:
    """Two interleaved half circles: far from Gaussian, and not a Gaussian mixture either."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    return torch.stack([x, y], 1) * 2 + 0.1 * torch.randn(n, 2, generator=g)


@pytest.mark.parametrize("means", [
    [[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]],
    [[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [-5.0, 3.0, 4.0], [2.0, -6.0, -3.0]],
])
def test_gmm_recovers_mixture_components(means: list[list[float]]) -> None:
    true = torch.tensor(means)
    z = _mixture(true, 3000, scale=0.5)
    sampler = GMMSampler(components=true.shape[0]).fit_latents(z, seed=0)
    fitted = sampler.means.float()
    cost = torch.cdist(true, fitted)
    rows, cols = linear_sum_assignment(cost.numpy())
    assert cost[rows, cols].max() < 0.1
    assert torch.allclose(sampler.weights.float()[cols], torch.full((true.shape[0],), 1 / true.shape[0]), atol=0.04)
    for c in cols:
        assert torch.allclose(sampler.covariances[c].float(), 0.25 * torch.eye(true.shape[1]), atol=0.05)
    draws = sampler.sample_latents(4000, torch.Generator().manual_seed(1))
    nearest = torch.cdist(draws, true).argmin(1)
    assert torch.bincount(nearest, minlength=true.shape[0]).min() > 4000 / true.shape[0] * 0.8


def test_maf_raises_likelihood_of_non_gaussian_latents() -> None:
    z = _moons(2000)
    maf = MAFSampler(blocks=4, hidden=64, steps=300, batch_size=256, lr=3e-3)
    before = maf.log_prob(z).mean()
    assert torch.allclose(before, NormalSampler().log_prob(z).mean())
    maf.fit_latents(z, seed=0)
    after = maf.log_prob(z).mean()
    gaussian = torch.distributions.MultivariateNormal(z.mean(0), torch.cov(z.T)).log_prob(z).mean()
    assert after > before + 1.0
    assert after > gaussian + 0.3, (float(after), float(gaussian))
    held_out = maf.log_prob(_moons(2000, seed=1)).mean()
    assert held_out > gaussian + 0.3
    draws = maf.sample_latents(2000, torch.Generator().manual_seed(2))
    assert maf.log_prob(draws).mean() > gaussian


def test_two_stage_matches_mean_and_covariance_of_training_latents() -> None:
    g = torch.Generator().manual_seed(0)
    d = 6
    z = torch.randn(2000, d, generator=g) @ (0.7 * torch.randn(d, d, generator=g)) + torch.arange(d) * 1.0
    z[:, 0] *= 3
    sampler = TwoStageSampler(hidden=128, steps=600).fit_latents(z, seed=0)
    draws = sampler.sample_latents(4000, torch.Generator().manual_seed(1))
    assert draws.shape == (4000, d) and draws.dtype == torch.float32
    assert ((draws.mean(0) - z.mean(0)) / z.std(0)).abs().max() < 0.1
    cov_z, cov_s = torch.cov(z.T), torch.cov(draws.T)
    assert (cov_s - cov_z).norm() / cov_z.norm() < 0.15
    assert (torch.corrcoef(draws.T) - torch.corrcoef(z.T)).abs().max() < 0.15


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_save_load_round_trip_gives_identical_samples(name: str, tiny_vae: torch.nn.Module,
                                                      tiny_vamp: torch.nn.Module, tiny_data: Dataset,
                                                      tmp_path: Path) -> None:
    model = tiny_vamp if name == "vamp" else _tiny(OWN_MODEL[name]) if name in OWN_MODEL else tiny_vae
    sampler = fit_sampler(model, tiny_data, name, n_train=100, seed=0, **FAST.get(name, {}))
    assert sampler.fitted and sampler.latent_dim == 3
    meta = sampler.save(tmp_path)
    assert meta.name == f"sampler-{name}.json"
    assert (tmp_path / f"sampler-{name}.safetensors").is_file()
    assert json.loads(meta.read_text())["settings"] == sampler.settings()
    loaded = load_sampler(tmp_path, name)
    assert type(loaded) is type(sampler) and loaded.settings() == sampler.settings()
    a = sampler.sample_latents(50, torch.Generator().manual_seed(3))
    b = loaded.sample_latents(50, torch.Generator().manual_seed(3))
    assert a.shape == (50, 3) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, loaded.sample_latents(50, torch.Generator().manual_seed(4)))


def test_saved_files_hold_no_pickle(tiny_vae: torch.nn.Module, tiny_data: Dataset, tmp_path: Path) -> None:
    fit_sampler(tiny_vae, tiny_data, "gmm", components=2).save(tmp_path)
    for path in tmp_path.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sampler-gmm.json", "sampler-gmm.safetensors"]


def test_loading_refuses_corrupt_or_mismatched_files(tiny_vae: torch.nn.Module, tiny_data: Dataset,
                                                     tmp_path: Path) -> None:
    fit_sampler(tiny_vae, tiny_data, "gmm", components=2).save(tmp_path)
    weights, meta = tmp_path / "sampler-gmm.safetensors", tmp_path / "sampler-gmm.json"
    good_weights, good_meta = weights.read_bytes(), meta.read_text()

    weights.write_bytes(good_weights[: len(good_weights) // 2])
    with pytest.raises(SamplerLoadError, match="corrupt or truncated"):
        GMMSampler.load(tmp_path)
    weights.write_bytes(good_weights)

    meta.write_text(good_meta[:20])
    with pytest.raises(SamplerLoadError, match="sampler-gmm.json"):
        GMMSampler.load(tmp_path)

    meta.write_text(good_meta.replace('"latent_dim": 3', '"latent_dim": 5'))
    with pytest.raises(SamplerLoadError, match="does not match"):
        GMMSampler.load(tmp_path)

    meta.write_text(good_meta)
    (tmp_path / "sampler-maf.json").write_text(good_meta)
    (tmp_path / "sampler-maf.safetensors").write_bytes(good_weights)
    with pytest.raises(SamplerLoadError, match="holds a 'gmm' sampler"):
        MAFSampler.load(tmp_path)
    with pytest.raises(SamplerLoadError, match="missing"):
        TwoStageSampler.load(tmp_path)
    assert torch.isfinite(GMMSampler.load(tmp_path).sample_latents(4)).all()


def test_vamp_sampler_needs_a_vamp_model(tiny_vae: torch.nn.Module, tiny_vamp: torch.nn.Module,
                                         tiny_data: Dataset) -> None:
    with pytest.raises(ValueError, match="VampPrior.*'gaussian-vae' has prior 'normal'"):
        VampSampler().fit(tiny_vae, tiny_data.x_train)
    with pytest.raises(ValueError, match="VampPrior"):
        fit_sampler(tiny_vae, tiny_data, "vamp")
    sampler = VampSampler().fit(tiny_vamp)
    with torch.no_grad():
        expected = tiny_vamp.sample_latents(20, torch.Generator().manual_seed(5))
    assert torch.allclose(sampler.sample_latents(20, torch.Generator().manual_seed(5)), expected)


def test_registry_and_errors(tiny_vae: torch.nn.Module) -> None:
    assert {"prior", "gmm", "two-stage", "maf", "vamp", "iaf"} <= set(SAMPLERS)
    assert all(SAMPLERS.values())
    assert isinstance(build_sampler("gmm", components=4), GMMSampler)
    with pytest.raises(KeyError, match="known samplers"):
        build_sampler("flow")
    with pytest.raises(ValueError, match="bad settings"):
        build_sampler("gmm", colour="red")
    with pytest.raises(RuntimeError, match="not fitted"):
        GMMSampler().sample_latents(3)
    z = NormalSampler().fit(tiny_vae, torch.rand(4, *SHAPE)).sample_latents(7, torch.Generator().manual_seed(0))
    assert z.shape == (7, 3)


def test_load_or_fit_reuses_matching_and_refits_changed(tiny_vae: torch.nn.Module, tiny_data: Dataset,
                                                        tmp_path: Path) -> None:
    first = load_or_fit(tiny_vae, tmp_path, "gmm", tiny_data, n_train=100, components=2)
    mtime = (tmp_path / "sampler-gmm.safetensors").stat().st_mtime_ns
    again = load_or_fit(tiny_vae, tmp_path, "gmm", tiny_data, n_train=100, components=2)
    assert (tmp_path / "sampler-gmm.safetensors").stat().st_mtime_ns == mtime
    assert torch.equal(first.sample_latents(10, torch.Generator().manual_seed(0)),
                       again.sample_latents(10, torch.Generator().manual_seed(0)))
    changed = load_or_fit(tiny_vae, tmp_path, "gmm", tiny_data, n_train=100, components=3)
    assert changed.means.shape[0] == 3
    assert GMMSampler.load(tmp_path).components == 3
    other = _tiny("gaussian-vae")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    refit = load_or_fit(other, tmp_path, "gmm", tiny_data, n_train=100, components=3)
    assert refit.fit_info["model"] != changed.fit_info["model"]
    (tmp_path / "sampler-gmm.safetensors").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="refitting"):
        load_or_fit(other, tmp_path, "gmm", tiny_data, n_train=100, components=3)
    assert GMMSampler.load(tmp_path).fitted
