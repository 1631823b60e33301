"""Evaluation metrics: bounds, units, the discrete/continuous relation, and None for undefined metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from vaecore import Dataset, TrainConfig, build_model, model_config, train
from vaecore.components import objectives as reg
from vaecore.components.likelihoods import Gaussian
from vaecore.evaluation import metrics as M
from vaecore.evaluation.features import CLASSIFIERS_DIR, load_feature_classifier
from vaecore.hub import load_folder

D = 784


def _small(ds: Dataset, n_train: int = 1000) -> Dataset:
    return Dataset(ds.name, ds.x_train[:n_train], ds.y_train[:n_train], ds.x_val[:10], ds.y_val[:10],
                   ds.x_test[:500], ds.y_test[:500])


def _untrained(preset: str, **overrides: object):
    torch.manual_seed(0)
    return build_model(model_config(preset, input_shape=(1, 28, 28), **overrides).to_dict()).eval()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset):
    """A σ-VAE trained with β = 100: the KL term wins and every latent dimension collapses."""
    out = tmp_path_factory.mktemp("collapsed")
    train("sigma-vae", mnist, out, TrainConfig(max_steps=100, batch_size=64, log_every=50, val_limit=200, seed=0),
          beta=100.0)
    return load_folder(out)


def test_metrics_table_names_every_metric_with_units():
    expected = {"elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "nll-dequant", "mse", "knn", "probe", "kmeans",
                "kl", "active-units", "kl-per-dim", "mutual-info", "expected-gap", "fd", "precision", "recall",
                "density", "coverage", "classifier-score", "mig", "sap", "dci", "dci-completeness",
                "dci-informativeness", "modularity", "beta-vae-score", "factor-vae-score"}
    assert set(M.METRICS) == expected
    assert all(isinstance(m.description, str) and len(m.description) > 20 for m in M.METRICS.values())
    assert all(m.unit and m.label and m.short for m in M.METRICS.values()), "every metric states its unit and labels"
    assert M.METRICS["sap"].unit == "accuracy gap" and M.METRICS["mig"].unit == "fraction of H(v)"
    assert "nats" in M.METRICS["elbo"].description and "IWAE" in M.METRICS["nll-pdf"].description
    assert "NOT" in M.METRICS["fd"].description


def test_iwae_is_above_elbo_and_grows_with_k(sigma_vae, mnist):
    x = mnist.x_test[:100]
    elbo = float(M.elbo(sigma_vae, x, seed=0).mean())
    means = {k: float(M.iwae_log_likelihood(sigma_vae, x, k=k, generator=_gen()).mean()) for k in (1, 10, 100)}
    assert abs(means[1] - elbo) < 2.0  # both estimate the ELBO
    assert means[1] <= means[10] + 0.5 and means[10] <= means[100] + 0.5
    assert means[100] > elbo + 1.0


def test_iwae_matches_model_weights_and_is_chunk_invariant(sigma_vae, mnist):
    x = mnist.x_test[:10]
    with torch.no_grad():
        ref = sigma_vae.log_importance_weights(x, 12, generator=_gen(3))
        ref_ll = torch.logsumexp(ref.double(), dim=0) - math.log(12)
    for chunk in (1, 5, 12):
        ll = M.iwae_log_likelihood(sigma_vae, x, k=12, chunk=chunk, batch_size=10, generator=_gen(3))
        assert ll.shape == (10,)
        assert torch.allclose(ll, ref_ll, atol=1e-3, rtol=0)


def test_likelihood_numbers_are_consistent_and_in_range(sigma_vae, mnist):
    res = M.evaluate(sigma_vae, mnist, ["elbo", "iwae", "nll-pdf", "nll-discrete", "bpd"], n_test=100, iwae_k=10)
    assert res["nll-pdf"] == pytest.approx(-res["iwae"])
    assert res["elbo"] <= res["iwae"] + 0.5
    assert res["nll-discrete"] > 0
    assert 0.5 < res["bpd"] < 8
    assert res["bpd"] == pytest.approx(res["nll-discrete"] / (D * math.log(2)))
    per_image = M.nll_discrete(sigma_vae, mnist.x_test[:20], k=5, generator=_gen())
    assert per_image.shape == (20,) and bool((per_image >= 0).all())
    assert M.bits_per_dim(per_image, D) == pytest.approx(float(per_image.mean()) / (D * math.log(2)))


def test_discrete_nll_is_pdf_nll_plus_d_ln255_for_a_smooth_gaussian():
    """P(bin) ≈ pdf · (1/255) when σ is wide against a bin: −log P ≈ −log pdf + D ln 255 (interior pixels)."""
    g = _gen(1)
    x = torch.randint(10, 246, (4, 1, 28, 28), generator=g).float() / 255
    mu = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0.02, 0.98)
    lik = Gaussian((1, 28, 28), sigma="fixed", value=0.05)
    params = torch.logit(mu)
    gap = lik.nll_discrete(params, x) - lik.nll(params, x)
    assert torch.allclose(gap, torch.full_like(gap, D * math.log(255)), rtol=1e-4)

    model = _untrained("gaussian-vae", likelihood_kwargs={"value": 0.1})
    x = torch.round((0.1 + 0.8 * torch.rand(8, 1, 28, 28, generator=g)) * 255) / 255
    pdf = M.nll_pdf(model, x, k=20, generator=_gen())
    disc = M.nll_discrete(model, x, k=20, generator=_gen())
    assert torch.allclose(disc - pdf, torch.full((8,), D * math.log(255), dtype=torch.float64), rtol=1e-3)


def test_frechet_distance_agrees_with_sqrtm_and_grows_with_noise(mnist):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(1500, 8)) * 0.7 + 0.3
    mu_a, mu_b, ca, cb = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert M.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)

    clf = load_feature_classifier("mnist")
    x = mnist.x_test[:1000]
    real = clf.features(x)
    assert M.frechet_distance(real, real) < 1e-6 * np.trace(np.cov(real, rowvar=False))
    g = _gen(2)
    fds = [M.frechet_distance(real, clf.features((x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)))
           for s in (0.05, 0.1, 0.2, 0.4)]
    assert fds[0] > 0 and all(lo < hi for lo, hi in zip(fds, fds[1:], strict=False))


def test_latent_diagnostics_of_the_trained_model(sigma_vae, mnist):
    res = M.evaluate(sigma_vae, mnist, ["knn", "active-units", "kl-per-dim", "mutual-info", "expected-gap", "mse"],
                     n_test=1000)
    assert res["knn"] > 0.6
    assert res["active-units"] > 0
    assert len(res["kl-per-dim"]) == sigma_vae.latent_dim
    # the σ-VAE's posteriors hardly overlap: the estimate sits at its ln N ceiling, below the rate
    assert res["mutual-info_bound"] == pytest.approx(math.log(10_000))
    assert 1.0 < res["mutual-info"] <= res["mutual-info_bound"]
    assert res["mutual-info_saturated"] == (res["mutual-info"] >= M.MI_SATURATED * res["mutual-info_bound"])
    assert res["mutual-info"] < res["mutual-info_rate"] == pytest.approx(res["kl-per-dim_total"])
    assert res["expected-gap"] > 0 and res["expected-gap_smoothness"] == pytest.approx(
        res["expected-gap"] / (2 * 0.1**2 * sigma_vae.latent_dim))
    assert res["kl-per-dim_total"] == pytest.approx(sum(res["kl-per-dim"]))
    assert res["kl-per-dim_collapsed"] == sum(v < M.COLLAPSED_KL for v in res["kl-per-dim"])
    assert 0 < res["mse"] < 60
    x = mnist.x_test[:1000]
    with torch.no_grad():
        mu, logvar = sigma_vae.encode(x)
        mean_kl = float(reg.kl_standard_normal(mu, logvar).mean())
        logged_kl = sigma_vae.loss(x).logs["kl"]
    assert sum(res["kl-per-dim"]) == pytest.approx(mean_kl, rel=1e-4)
    assert sum(res["kl-per-dim"]) == pytest.approx(logged_kl, rel=1e-4)


def test_expected_gap_estimates_the_decoder_jacobian(sigma_vae, mnist):
    x = mnist.x_test[:4]
    s = 0.01
    gap = M.expected_gap(sigma_vae, x, s=s, n_pairs=200, generator=_gen())
    with torch.no_grad():
        mu = sigma_vae.encode(x)[0]
    jac = torch.autograd.functional.jacobian(lambda z: sigma_vae.decode(z), mu, vectorize=True,
                                             strategy="forward-mode")  # (4, 1, 28, 28, 4, d)
    fro = [float(jac[i, ..., i, :].detach().pow(2).sum()) for i in range(len(mu))]
    d_z = sigma_vae.latent_dim
    assert gap["smoothness"] * d_z == pytest.approx(np.mean(fro), rel=0.2)  # Δ²/(2s²) ≈ E‖∇μθ‖²_F
    assert gap["gap"] == pytest.approx(gap["smoothness"] * 2 * s * s * d_z)


def test_collapsed_model_has_no_active_units(collapsed, sigma_vae, mnist):
    x = mnist.x_test[:1000]
    assert M.active_units(collapsed, x) == 0
    assert M.active_units(sigma_vae, x) > 0
    assert float(M.kl_per_dimension(collapsed, x).max()) < 0.05
    assert M.mutual_information(collapsed, x, generator=_gen()) < 0.5


class _FixedPosterior(torch.nn.Module):
    """A model whose posteriors are given: for the mutual-information estimator's limits."""

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        super().__init__()
        self.mu, self.logvar, self.w = mu, logvar, torch.nn.Parameter(torch.zeros(1))
        self.capabilities = _untrained("sigma-vae").capabilities

    def posterior(self, x: torch.Tensor):
        from vaecore.components.posteriors import DiagonalGaussian

        idx = x.flatten(1)[:, 0].long()
        return DiagonalGaussian(self.mu[idx], self.logvar[idx])


def test_mutual_information_reaches_zero_and_its_ln_n_bound():
    n, d = 400, 4
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)  # each image names its posterior
    same = _FixedPosterior(torch.zeros(n, d), torch.zeros(n, d))
    assert M.mutual_information(same, x, generator=_gen()) == pytest.approx(0.0, abs=1e-9)
    apart = _FixedPosterior(torch.arange(n, dtype=torch.float32)[:, None].repeat(1, d) * 10, torch.full((n, d), -8.0))
    assert M.mutual_information(apart, x, generator=_gen()) == pytest.approx(math.log(n), abs=1e-6)
    # a larger mixture raises the ceiling: the first 100 images against all 400
    assert M.mutual_information(apart, x[:100], generator=_gen(), mixture=x) == pytest.approx(math.log(n), abs=1e-6)
    with pytest.raises(ValueError, match="start with"):
        M.mutual_information(apart, x[100:200], mixture=x)


def test_beta_likelihood_has_no_finite_pdf_on_mnist(mnist):
    small = _small(mnist)
    res = M.evaluate(_untrained("beta-likelihood-vae"), small, ["nll-pdf", "nll-discrete"], n_test=20, iwae_k=2)
    assert res["nll-pdf"] is None and "+∞" in res["notes"]["nll-pdf"]
    assert math.isfinite(res["nll-discrete"]) and res["nll-discrete"] > 0
    gauss = M.evaluate(_untrained("sigma-vae"), small, ["nll-pdf"], n_test=20, iwae_k=2)
    assert isinstance(gauss["nll-pdf"], float)


def test_undefined_metrics_are_none_for_an_autoencoder_and_a_bernoulli_model(mnist):
    small = _small(mnist)
    ae = M.evaluate(_untrained("ae"), small, n_test=100, iwae_k=2, n_samples=200)
    for name in ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "nll-dequant", "kl", "kl-per-dim", "mutual-info"):
        assert ae[name] is None and "deterministic" in ae["notes"][name]
    for name in ("mse", "knn", "expected-gap"):
        assert isinstance(ae[name], float) and math.isfinite(ae[name]), name
    for name in ("fd", "precision", "coverage", "classifier-score"):  # N(0, I) means nothing to an AE
        assert ae[name] is None and "no prior" in ae["notes"][name]
    assert isinstance(ae["active-units"], int)

    bern = M.evaluate(_untrained("bernoulli-vae"), small, ["elbo", "iwae", "nll-pdf", "nll-discrete", "bpd"],
                      n_test=50, iwae_k=2)
    assert all(bern[k] is None for k in ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd"))
    assert set(bern["notes"]) == {"elbo", "iwae", "nll-pdf", "nll-discrete", "bpd"}
    assert "grey levels" in bern["notes"]["elbo"]  # a Bernoulli scores binary images, not MNIST's grey levels
    assert M.nll_discrete(_untrained("bernoulli-vae"), small.x_test[:4], k=2) is None

    vamp = M.evaluate(_untrained("vamp-vae"), small, ["kl-per-dim", "elbo"], n_test=50)
    assert vamp["kl-per-dim"] is None and isinstance(vamp["elbo"], float)

    disc = M.evaluate(_untrained("disc-logistic-vae"), small, ["iwae", "nll-pdf", "nll-discrete"], n_test=20,
                      iwae_k=2)
    assert disc["nll-pdf"] is None and disc["nll-discrete"] == pytest.approx(-disc["iwae"])


def test_generation_metrics_name_their_feature_network(sigma_vae, mnist):
    stages = set()
    res = M.evaluate(sigma_vae, mnist, ["fd", "classifier-score"], n_test=500, n_samples=500,
                     progress=lambda stage, done, total: stages.add(stage))
    assert res["fd_features"] == "MNIST-classifier" and res["fd"] > 0
    assert 1.0 <= res["classifier-score"] <= 10.0
    assert torch.allclose(M.generate(sigma_vae, 8, seed=1), M.generate(sigma_vae, 8, seed=1, batch_size=3), atol=1e-5)

    class Fixed:
        def sample_latents(self, n, generator=None):
            return torch.zeros(n, sigma_vae.latent_dim)

    same = M.generate(sigma_vae, 4, sampler=Fixed())
    assert torch.allclose(same, same[:1].expand_as(same))
    with pytest.raises(ValueError, match="Inception"):
        M.evaluate(sigma_vae, mnist, ["fd"], fid_weights="pt_inception.safetensors")
    with pytest.raises(ValueError, match="unknown metric"):
        M.evaluate(sigma_vae, mnist, ["fid"])
    progress_seen = []
    M.evaluate(sigma_vae, _small(mnist), ["iwae"], n_test=200, iwae_k=2,
               progress=lambda *a: progress_seen.append(a))
    assert progress_seen and progress_seen[-1][1] == progress_seen[-1][2]


@pytest.mark.parametrize("name,min_acc", [("mnist", 0.97), ("fashion-mnist", 0.85)])
def test_shipped_feature_classifiers(name, min_acc, mnist):
    folder = CLASSIFIERS_DIR / name
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset"] == name and config["test_accuracy"] > min_acc
    assert {"architecture", "epochs", "seed"} <= set(config)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert all(p.stat().st_size < 2_000_000 for p in Path(folder).iterdir())
    clf = load_feature_classifier(name)
    if name == "mnist":
        x, y = mnist.x_test[:2000], mnist.y_test[:2000]
        assert clf.accuracy(x, y) > 0.97
        assert clf.classifier_score(x) > 5.0
        assert clf.classifier_score(x[:1].expand(100, -1, -1, -1)) == pytest.approx(1.0, abs=1e-6)
        assert clf.features(x[:3]).shape == (3, 128)
    with pytest.raises(ValueError, match="no feature classifier"):
        load_feature_classifier("digits")
