"""Evaluation metrics: one function per metric, and `evaluate` that runs a chosen set on a test split.

Conventions (docs/architecture.md): images in [0, 1], log-likelihoods per example summed over the
D = C·H·W values, in nats. A metric that a model does not define (the ELBO of a deterministic
autoencoder, −log P of 8-bit images under a Bernoulli decoder, ...) is reported as None by
`evaluate`, with the reason in `result["notes"]`; nothing is approximated by something else.

Two likelihood numbers are kept apart (DESIGN.md §2): `nll-pdf` is −log of a continuous density
on [0, 1]^D (can be negative), `nll-discrete` is −log P of the 8-bit image (≥ 0). The two are
not related by a constant on MNIST: −log P ≈ −log pdf + D·ln 255 needs every pixel inside (0, 1)
with a density smooth over its bin, but the discretized likelihoods give the edge bins (pixels
exactly 0 or 1, most of an MNIST image) the whole tail mass beyond them, and a density that is
zero at the edges (Beta) has no finite −log pdf there at all.

The Fréchet distance and the classifier score use the small classifier of `vaecore.features`,
not Inception-v3: their values are comparable between models, never with FID/IS in papers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaecore.components.likelihoods import Likelihood
from vaecore.components.posteriors import DiagonalGaussian, diag_normal_log_prob
from vaecore.data.datasets import Dataset
from vaecore.utils import evaluating

ProgressFn = Callable[[str, int, int], None]
"""Progress callback: (stage, batches done, batches in this stage)."""

KNN_K = 5
KNN_TRAIN = 10_000
GAP_S = 0.1
ACTIVE_THRESHOLD = 0.01
COLLAPSED_KL = 0.01  # nats: a latent dimension carrying less KL than this is collapsed
MI_MIXTURE = 10_000  # test images whose posteriors make the mixture q(z) of the mutual information
MI_SATURATED = 0.95  # an estimate above this fraction of its ln N ceiling is reported as saturated

METRICS: dict[str, str] = {
    "elbo": "evidence lower bound E_q[log p(x|z)] − KL, 1 draw of z per image; nats per example (higher is better)",
    "iwae": "IWAE estimate of log p(x), log (1/K) Σ_k p(x|z_k)p(z_k)/q(z_k|x) with K = iwae_k draws; nats per "
            "example (higher is better); in the model's own likelihood (density, 8-bit probability, or Bernoulli "
            "cross-entropy on grey values)",
    "nll-pdf": "−log pdf(x) of the continuous density on [0,1]^D, estimated as −IWAE(K = iwae_k) (an upper bound "
               "in expectation); nats per example, can be negative; None for discrete and Bernoulli decoders",
    "nll-discrete": "−log P(x) of the 8-bit image, −IWAE(K = iwae_k) with the bin-integrated likelihood; nats per "
                    "example (≥ 0); None where the decoder defines no such probability (Bernoulli)",
    "bpd": "bits per dimension of the 8-bit image: nll-discrete / (D·ln 2)",
    "mse": "reconstruction error ‖x − μθ(μφ(x))‖² summed over the D pixels (values in [0,1]), mean over images",
    "knn": f"{KNN_K}-NN accuracy (fraction correct) on test latent means, fitted on the latent means of the first "
           f"{KNN_TRAIN // 1000}k training images",
    "probe": "linear-probe accuracy (fraction): a linear softmax classifier fitted on the standardised latent means "
             f"of the first {KNN_TRAIN // 1000}k training images, scored on the test latent means (Pythae's "
             "classification task)",
    "kmeans": "clustering accuracy (fraction): k-means with k = number of classes on the test latent means, clusters "
              "matched one-to-one to labels by the Hungarian algorithm (Pythae's clustering task)",
    "active-units": f"count of latent dimensions with Cov_x(E_q[z_j]) > {ACTIVE_THRESHOLD} (Burda et al.), out of d",
    "kl-per-dim": "list of d values E_x KL(q(z_j|x) ‖ N(0,1)) in nats; they sum to the mean KL (N(0, I) prior "
                  f"only); kl-per-dim_total is the sum, kl-per-dim_collapsed counts dimensions under {COLLAPSED_KL} "
                  "nats (collapsed, whatever active-units says)",
    "mutual-info": "I(x; z) under q: E_x E_q[log q(z|x)] − E_q[log q(z)], q(z) the mixture of the posteriors of the "
                   f"first {MI_MIXTURE:,} test images, 1 draw per evaluated image; nats. It cannot exceed "
                   "mutual-info_bound = ln(mixture size): above "
                   f"{MI_SATURATED:.0%} of it, mutual-info_saturated is true (the images' posteriors hardly overlap) "
                   "and the value ranks nothing. mutual-info_rate = E_x KL(q(z|x) ‖ N(0, I)) bounds I(x; z) from "
                   "above",
    "expected-gap": f"Δ²(s²) = E_x E_ε,ε' ‖μθ(μφ(x)+ε) − μθ(μφ(x)+ε')‖², ε, ε' ~ N(0, s²I), s = {GAP_S}; squared "
                    "pixel units summed over D; expected-gap_smoothness = Δ²/(2 s² d_z), the expected local "
                    "smoothness as AR-ELBO's Table 1 prints it (≈ E‖∇μθ‖²_F / d_z, their eq. 27)",
    "fd": "Fréchet distance between features of generated and test images under the bundled small classifier "
          "(fd_features names it); squared feature units; NOT comparable with Inception-FID",
    "classifier-score": "exp(E_x KL(p(y|x) ‖ p(y))) of generated images under the bundled classifier, in "
                        "[1, classes]; the Inception-Score formula, NOT comparable with the Inception Score",
}

FID_WEIGHTS_UNSUPPORTED = (
    "--fid-weights is not supported: standard FID needs an Inception-v3 network, which vaecore cannot build "
    "without torchvision, so Inception weights cannot be used. The 'fd' metric is the Fréchet distance in the "
    "feature space of the bundled small classifier for the dataset (checkpoints/classifiers/<dataset>, reported "
    "as fd_features, e.g. 'MNIST-classifier'); drop --fid-weights to use it. Its values are not comparable with "
    "Inception-FID numbers from papers."
)


# helpers --------------------------------------------------------------------------------------------
def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _generator(model: torch.nn.Module, seed: int) -> torch.Generator:
    return torch.Generator(device=_device(model)).manual_seed(int(seed))


def _batches(n: int, batch_size: int, stage: str, progress: ProgressFn | None) -> Iterator[slice]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = max(1, math.ceil(n / batch_size))
    for i, start in enumerate(range(0, n, batch_size)):
        yield slice(start, min(n, start + batch_size))
        if progress is not None:
            progress(stage, i + 1, total)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Fork and seed the global RNG (for model methods that take no generator)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def _channels_last_on_cpu(model: torch.nn.Module) -> Iterator[None]:
    """Run CPU convolutions in channels-last layout (same values, about 1.5× faster for the
    σ-VAE decoder); the parameters' layout is restored afterwards."""
    params = [p for p in model.parameters() if p.dim() == 4]
    if _device(model).type != "cpu" or not params or not all(p.is_contiguous() for p in params):
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def _capabilities(model: torch.nn.Module) -> Any:
    caps = getattr(model, "capabilities", None)
    if caps is None:
        raise ValueError(f"{type(model).__name__} is not a vaecore model (it declares no capabilities)")
    return caps


def _likelihood(model: torch.nn.Module) -> Likelihood | None:
    return getattr(model, "likelihood", None)


def _defines_discrete(lik: Likelihood) -> bool:
    return lik.discrete or type(lik).nll_discrete is not Likelihood.nll_discrete


def undefined_reason(model: torch.nn.Module, name: str, dataset: Dataset | None = None) -> str | None:
    """Why metric `name` is undefined for this model (and dataset), or None when it is defined."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    caps = _capabilities(model)
    lik = _likelihood(model)
    needs_q = {"elbo", "iwae", "nll-pdf", "nll-discrete", "bpd"}
    if name in needs_q and not caps.elbo:
        return caps.why_no_elbo or "the model defines no posterior density q(z|x), so no bound or estimate"
    if name in ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd") and lik is None:
        return "the model has no decoder likelihood"
    if name == "nll-pdf" and not lik.continuous_density:
        kind = "discrete (see nll-discrete)" if lik.discrete else "not a normalised density on [0, 1]^D"
        return f"the {lik.name!r} likelihood is {kind}"
    if name == "nll-pdf" and lik.zero_density_at_edges and dataset is not None and _has_edge_pixels(dataset):
        return (f"the {lik.name!r} density is 0 at pixel values exactly 0 and 1, which the test images contain, so "
                "−log pdf is +∞ (the ELBO and IWAE score pixels clamped into the open interval); −log p of the "
                "8-bit images (nll-discrete) is finite")
    if name in ("nll-discrete", "bpd") and not _defines_discrete(lik):
        return f"the {lik.name!r} likelihood defines no probability of 8-bit images"
    if name in ("kl-per-dim", "mutual-info") and caps.posterior != "gaussian":
        if caps.posterior == "point" or not caps.elbo:
            return caps.why_no_elbo or "the encoder is deterministic: there is no q(z|x)"
        return f"it needs a diagonal-Gaussian posterior; this model's is {caps.posterior!r}"
    if name == "kl-per-dim" and caps.prior != "StandardNormal":
        return f"the KL to the {caps.prior} prior does not split over latent dimensions"
    if name in ("knn", "probe", "kmeans") and dataset is not None and (dataset.y_train is None
                                                                       or dataset.y_test is None):
        return "the dataset has no labels"
    if name in ("fd", "classifier-score"):
        if not hasattr(model, "decode"):
            return "the model has no decoder"
        if dataset is not None:
            from vaecore.evaluation.features import available_classifiers, canonical_dataset

            have = available_classifiers()
            if canonical_dataset(dataset.name) not in have or tuple(dataset.shape) != (1, 28, 28):
                return (f"no bundled feature classifier for dataset {dataset.name!r} {dataset.shape} "
                        f"(bundled: {', '.join(have) or 'none'})")
    return None


def _has_edge_pixels(dataset: Dataset) -> bool:
    x = dataset.split("test")[0]
    return bool(((x == 0) | (x == 1)).any())


# likelihood bounds and estimates ---------------------------------------------------------------------
def elbo(model: torch.nn.Module, x: Tensor, batch_size: int = 500, seed: int | None = None,
         progress: ProgressFn | None = None) -> Tensor:
    """ELBO per example in nats, (N,), one draw of z per image (the model's own `elbo`).

    `seed` fixes the draws (the global RNG is forked, so other code is not disturbed).
    """
    with evaluating(model), _seeded(seed, _device(model)):
        return torch.cat([model.elbo(x[s]).double().cpu() for s in _batches(x.shape[0], batch_size, "elbo", progress)])


def _iwae_terms(model: torch.nn.Module, x: Tensor, k: int, terms: tuple[str, ...], batch_size: int,
                chunk: int | None, generator: torch.Generator | None, progress: ProgressFn | None,
                stage: str) -> dict[str, Tensor | None]:
    """IWAE log-likelihood estimates (N,) per term, streaming K in chunks with a running logsumexp."""
    if k < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {k}")
    if not _capabilities(model).elbo:
        raise ValueError(f"importance weighting needs a posterior density; {undefined_reason(model, 'iwae')}")
    device = _device(model)
    if chunk is None:
        chunk = max(1, (16384 if device.type == "cuda" else 1024) // max(1, min(batch_size, x.shape[0])))
    results: dict[str, list[Tensor] | None] = {t: [] for t in terms}
    with evaluating(model), _channels_last_on_cpu(model):
        for s in _batches(x.shape[0], batch_size, stage, progress):
            xb = x[s].to(device, torch.float32)
            q = model.posterior(xb)
            acc = {t: torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=device) for t in terms}
            for start in range(0, k, chunk):
                lw = model.log_importance_weights(xb, min(chunk, k - start), generator, scores=terms, posterior=q)
                for t, w in lw.items():
                    if w is None:
                        results[t] = None
                    elif results[t] is not None:
                        acc[t] = torch.logaddexp(acc[t], torch.logsumexp(w.double(), dim=0))
            for t in terms:
                if results[t] is not None:
                    results[t].append((acc[t] - math.log(k)).cpu())
    return {t: None if v is None else torch.cat(v) for t, v in results.items()}


def iwae_log_likelihood(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100,
                        chunk: int | None = None, generator: torch.Generator | None = None,
                        progress: ProgressFn | None = None, discrete: bool = False) -> Tensor:
    """IWAE estimate log (1/K) Σ_k w_k of log p(x) per example, (N,) float64, in nats.

    Examples go through in batches of `batch_size`; the K draws go through the decoder `chunk` at
    a time (chunk·batch_size latents per pass; default about 1k on CPU, 16k on CUDA), combined
    with a running logsumexp, so memory does not grow with K. `discrete=True` scores each draw
    with −log P of the 8-bit image (`Likelihood.nll_discrete`); ValueError if undefined.
    The estimate is a lower bound on log p(x) in expectation, tightening as K grows.
    """
    term = "nll_discrete" if discrete else "nll"
    out = _iwae_terms(model, x, k, (term,), batch_size, chunk, generator, progress, "iwae")[term]
    if out is None:
        raise ValueError(f"the {model.likelihood.name!r} likelihood defines no probability of 8-bit images")
    return out


def nll_pdf(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100, chunk: int | None = None,
            generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> Tensor | None:
    """−log pdf(x) per example in nats, estimated as −IWAE(K); None unless the decoder is a continuous density."""
    if undefined_reason(model, "nll-pdf") is not None:
        return None
    return -iwae_log_likelihood(model, x, k, batch_size, chunk, generator, progress)


def nll_discrete(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100, chunk: int | None = None,
                 generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> Tensor | None:
    """−log P(8-bit x) per example in nats: −IWAE(K) with the bin-integrated likelihood; None where undefined."""
    if undefined_reason(model, "nll-discrete") is not None:
        return None
    out = _iwae_terms(model, x, k, ("nll_discrete",), batch_size, chunk, generator, progress, "nll-discrete")
    return None if out["nll_discrete"] is None else -out["nll_discrete"]


def bits_per_dim(nll_discrete_nats: float | Tensor, d: int) -> float:
    """Bits per dimension from −log P of the 8-bit image in nats (mean over examples if a tensor)."""
    value = float(nll_discrete_nats.double().mean()) if isinstance(nll_discrete_nats, Tensor) else nll_discrete_nats
    return float(value) / (int(d) * math.log(2))


# reconstructions and latents -------------------------------------------------------------------------
def reconstruction_mse(model: torch.nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """‖x − decode(μφ(x))‖² summed over the pixels, per example (N,): the AR-ELBO tables' MSE."""
    device = _device(model)
    out = []
    with evaluating(model):
        for s in _batches(x.shape[0], batch_size, "mse", None):
            xb = x[s].to(device, torch.float32)
            out.append(((model.reconstruct(xb) - xb) ** 2).flatten(1).sum(dim=1).double().cpu())
    return torch.cat(out)


def _posteriors(model: torch.nn.Module, x: Tensor, batch_size: int = 1000,
                progress: ProgressFn | None = None, stage: str = "encode") -> tuple[Tensor, Tensor]:
    """(μ, log σ²) of a diagonal-Gaussian posterior for every image."""
    mus, logvars = [], []
    with evaluating(model):
        for s in _batches(x.shape[0], batch_size, stage, progress):
            q = model.posterior(x[s])
            if not isinstance(q, DiagonalGaussian):
                raise ValueError(f"this needs a diagonal-Gaussian posterior; the model's is {type(q).__name__}")
            mus.append(q.mu.float())
            logvars.append(q.logvar.float())
    return torch.cat(mus), torch.cat(logvars)


def latent_means(model: torch.nn.Module, x: Tensor, batch_size: int = 1000, progress: ProgressFn | None = None,
                 stage: str = "encode") -> Tensor:
    """The latent point of every image, (N, d), on the model's device (`model.embed`: the posterior
    mean, the code itself for deterministic encoders)."""
    with evaluating(model):
        return torch.cat([model.embed(x[s]).float() for s in _batches(x.shape[0], batch_size, stage, progress)])


def knn_accuracy(z_train: Tensor | np.ndarray, y_train: Tensor | np.ndarray, z_test: Tensor | np.ndarray,
                 y_test: Tensor | np.ndarray, k: int = KNN_K) -> float:
    """Accuracy (fraction) of a k-nearest-neighbour classifier (Euclidean) fitted on (z_train, y_train)."""
    from sklearn.neighbors import KNeighborsClassifier

    def arr(t: Tensor | np.ndarray) -> np.ndarray:
        return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)

    clf = KNeighborsClassifier(n_neighbors=min(k, len(arr(z_train)))).fit(arr(z_train), arr(y_train))
    return float(clf.score(arr(z_test), arr(y_test)))


def kl_per_dimension(model: torch.nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """E_x KL(q(z_j|x) ‖ N(0, 1)) per latent dimension, (d,) in nats; sums to the mean KL.

    Near-zero entries are collapsed dimensions. Needs a stochastic encoder and the N(0, I) prior.
    """
    reason = undefined_reason(model, "kl-per-dim")
    if reason:
        raise ValueError(f"KL per dimension is undefined: {reason}")
    mu, logvar = _posteriors(model, x, batch_size)
    return DiagonalGaussian(mu.double(), logvar.double()).kl_per_dimension().mean(dim=0).cpu()


def active_units(model: torch.nn.Module, x: Tensor, threshold: float = ACTIVE_THRESHOLD,
                 batch_size: int = 1000) -> int:
    """Number of latent dimensions whose posterior mean varies across x: Cov_x(E_q[z_j]) > threshold."""
    mu = latent_means(model, x, batch_size).double()
    if mu.shape[0] < 2:
        raise ValueError("active units need at least 2 images")
    return int((mu.var(dim=0, unbiased=True) > threshold).sum())


def mutual_information(model: torch.nn.Module, x: Tensor, batch_size: int = 1000,
                       generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                       mixture: Tensor | None = None) -> float:
    """I(x; z) under q in nats: E_x E_q[log q(z|x)] − E_q(z)[log q(z)] (as in He et al., 2019).

    Both terms are evaluated at one draw z_i ~ q(z|x_i) per image of `x`; q(z) is the mixture
    (1/N) Σ_n q(z|x_n) over the N images of `mixture` (default: `x` itself), which must start with
    `x`. Each term log q(z_i|x_i) − log q(z_i) is then at most ln N (the mixture holds q(z|x_i)), so
    the estimate, the mutual information of the N-image empirical distribution, never exceeds ln N:
    near it, it is saturated. Equal posteriors give exactly 0.
    """
    reason = undefined_reason(model, "mutual-info")
    if reason:
        raise ValueError(f"mutual information is undefined: {reason}")
    mixture = x if mixture is None else mixture
    if mixture.shape[0] < x.shape[0] or not torch.equal(mixture[:x.shape[0]], x):
        raise ValueError("the mixture images must start with the evaluated images")
    mu_all, logvar_all = _posteriors(model, mixture, batch_size, progress, "mutual-info (encode)")
    mu_all, logvar_all = mu_all.double(), logvar_all.double()
    n_mix, d = mu_all.shape
    mu, logvar = mu_all[:x.shape[0]], logvar_all[:x.shape[0]]
    n = mu.shape[0]
    z = DiagonalGaussian(mu.float(), logvar.float()).rsample(generator=generator).double()
    neg_entropy = diag_normal_log_prob(z, mu, logvar).mean()  # at the draw: 0 for equal posteriors, ≤ ln N
    # log q(z_i) = logsumexp_n log q(z_i|x_n) − ln N, streamed over blocks of rows × mixture components
    # (about 2²² values each: the (rows, N, d) tensor of one pass was gigabytes at d = 256)
    cols = min(n_mix, 1024)
    rows = max(1, (1 << 22) // (cols * d))
    log_qz = []
    for s in _batches(n, rows, "mutual-info", progress):
        zs = z[s].unsqueeze(1)
        acc = torch.full((zs.shape[0],), -math.inf, dtype=torch.float64, device=zs.device)
        for c in range(0, n_mix, cols):
            lp = diag_normal_log_prob(zs, mu_all[c:c + cols].unsqueeze(0), logvar_all[c:c + cols].unsqueeze(0))
            acc = torch.logaddexp(acc, torch.logsumexp(lp, dim=1))
        log_qz.append(acc - math.log(n_mix))
    return float(neg_entropy - torch.cat(log_qz).mean())


def expected_gap(model: torch.nn.Module, x: Tensor, s: float = GAP_S, n_pairs: int = 5, batch_size: int = 200,
                 generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> dict[str, float]:
    """AR-ELBO's expected gap Δ²(s²) and expected local smoothness Δ²/(2 s² d_z) of the decoder mean.

    Δ²(s²) = E_x E_{ε,ε'} ‖μθ(μφ(x)+ε) − μθ(μφ(x)+ε')‖² with ε, ε' ~ N(0, s²I), summed over pixels,
    averaged over x and `n_pairs` pairs per image. For small s, Δ²/(2s²) ≈ E_x ‖∇μθ(μφ(x))‖²_F; the
    paper's Table 1 prints that divided by the latent size d_z (its eq. 27), and so does "smoothness".
    Returns {"s", "gap", "smoothness"}.
    """
    if s <= 0 or n_pairs < 1:
        raise ValueError(f"need s > 0 and n_pairs >= 1, got s={s}, n_pairs={n_pairs}")
    device = _device(model)
    total = torch.zeros((), dtype=torch.float64)
    with evaluating(model), _channels_last_on_cpu(model):
        for sl in _batches(x.shape[0], batch_size, "expected-gap", progress):
            m = model.embed(x[sl])
            eps = torch.randn((2, n_pairs, *m.shape), generator=generator, device=device) * s
            out = model.decode((m.unsqueeze(0).unsqueeze(0) + eps).reshape(-1, m.shape[1]))
            a, b = out.reshape(2, n_pairs * m.shape[0], -1).double()
            total += ((a - b) ** 2).sum().cpu()
    gap = float(total) / (x.shape[0] * n_pairs)
    return {"s": float(s), "gap": gap, "smoothness": gap / (2 * s * s * m.shape[1])}


# samples and feature distances ------------------------------------------------------------------------
def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance ‖μa − μb‖² + tr(Σa + Σb − 2(Σa Σb)^½) between Gaussians fitted to two feature sets.

    float64 throughout. tr (Σa Σb)^½ is computed as tr (Σa^½ Σb Σa^½)^½ (the same value: the matrices
    are similar) from symmetric eigendecompositions, so it is real and stable even for singular
    covariances; scipy.linalg.sqrtm(Σa Σb) agrees where it is well conditioned. Rounding below 0 is
    reported as 0.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, F) feature arrays with the same F, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("need at least 2 samples in each feature set")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(_symmetrise(root_a @ cov_b @ root_a))
    tr_cross = float(np.sqrt(np.clip(cross, 0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_cross)
    return max(fd, 0.0)


def _symmetrise(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + m.T)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(_symmetrise(m))
    return _symmetrise((v * np.sqrt(np.clip(w, 0, None))) @ v.T)


def generate(model: torch.nn.Module, n: int, sampler: Any = None, seed: int = 0, batch_size: int = 500) -> Tensor:
    """n images (decoder means) on the CPU, from the model's prior or a post-hoc `sampler`.

    All n latents are drawn first with a generator seeded `seed` on the model's device (passed to
    `sampler.sample_latents(n, generator)`), so the images do not depend on `batch_size`.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = _device(model)
    g = _generator(model, seed)
    with evaluating(model):
        z = sampler.sample_latents(n, g) if sampler is not None else model.sample_latents(n, g)
        z = torch.as_tensor(z, dtype=torch.float32).to(device)
        return torch.cat([model.decode(z[s]).float().cpu() for s in _batches(n, batch_size, "generate", None)])


# evaluate ---------------------------------------------------------------------------------------------
class _TqdmProgress:
    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="batch", dynamic_ncols=True, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def _as_progress(progress: ProgressFn | bool | None) -> ProgressFn | None:
    if progress is True:
        return _TqdmProgress()
    return progress or None


def evaluate(model: torch.nn.Module, dataset: Dataset, names: list[str] | None = None, *, n_test: int | None = 10000,
             seed: int = 0, batch_size: int = 500, iwae_k: int = 1000, sampler: Any = None, n_samples: int = 5000,
             fid_weights: str | None = None,
             progress: ProgressFn | bool = False) -> dict[str, Any]:
    """Evaluate `model` on the first `n_test` test images (all if None); {metric name: value}.

    Values are Python floats (nats per example unless METRICS says otherwise), `kl-per-dim` a list,
    `active-units` an int, and None where the metric is undefined for this model or dataset. Extra
    keys: `fd_features` (the feature network of `fd`), `expected-gap_s` and `expected-gap_smoothness`,
    `kl-per-dim_total` and `kl-per-dim_collapsed`, `mutual-info_bound`, `_saturated` and `_rate`,
    `notes` ({metric: why it is None}) and `settings` (what was evaluated, for reproducibility).
    Every Monte Carlo quantity is seeded from `seed` per metric, so a value does not depend on which
    other metrics are asked for. IWAE, nll-pdf, nll-discrete and bpd share one pass of K = `iwae_k`
    draws per image. fd and classifier-score use `n_samples` generated images (from `sampler` or the
    prior); fd compares them with the evaluated test images. `progress`: True shows tqdm bars; a
    callable gets (stage, done, total).
    """
    names = list(METRICS) if names is None else list(names)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if fid_weights is not None:
        raise ValueError(FID_WEIGHTS_UNSUPPORTED)
    report = _as_progress(progress)
    x, y = dataset.split("test")
    if n_test is not None:
        if n_test < 2:
            raise ValueError(f"n_test must be >= 2, got {n_test}")
        x, y = x[:n_test], None if y is None else y[:n_test]
    device = _device(model)
    out: dict[str, Any] = {}
    notes: dict[str, str] = {}
    todo = []
    for name in names:
        reason = undefined_reason(model, name, dataset)
        if reason is None and name in ("fd", "classifier-score") and sampler is None \
                and not _capabilities(model).prior_samples:
            reason = ("the model has no prior to sample: pass a sampler fitted to its latents (--sampler gmm, maf or "
                      "two-stage; pixelcnn for VQ models)")
        if reason is None:
            todo.append(name)
        else:
            out[name], notes[name] = None, reason

    lik = _likelihood(model)
    want_iwae = [m for m in ("iwae", "nll-pdf", "nll-discrete", "bpd") if m in todo]
    if want_iwae:
        terms = ("nll",) if {"iwae", "nll-pdf"} & set(want_iwae) or lik.discrete else ()
        if {"nll-discrete", "bpd"} & set(want_iwae) and not lik.discrete:
            terms += ("nll_discrete",)
        ll = _iwae_terms(model, x, iwae_k, terms, min(batch_size, 100), None, _generator(model, seed), report,
                         f"iwae (K={iwae_k})")
        log_p = ll.get("nll")
        log_p8 = log_p if lik.discrete else ll.get("nll_discrete")
        d = math.prod(dataset.shape)
        for m in want_iwae:
            if m == "iwae":
                out[m] = float(log_p.mean())
            elif m == "nll-pdf":
                out[m] = float(-log_p.mean())
            elif log_p8 is None:
                out[m], notes[m] = None, f"the {lik.name!r} likelihood returned no 8-bit probability"
            else:
                out[m] = float(-log_p8.mean()) if m == "nll-discrete" else bits_per_dim(-log_p8, d)
    if "elbo" in todo:
        out["elbo"] = float(elbo(model, x, batch_size, seed=seed, progress=report).mean())
    if "mse" in todo:
        out["mse"] = float(reconstruction_mse(model, x, batch_size).mean())
    if {"knn", "probe", "kmeans"} & set(todo):
        from vaecore.evaluation import downstream

        z_test = latent_means(model, x, batch_size, report, "test latents")
        if {"knn", "probe"} & set(todo):
            z_train = latent_means(model, dataset.x_train[:KNN_TRAIN], batch_size, report, "train latents")
            y_train = dataset.y_train[:KNN_TRAIN]
        if "knn" in todo:
            out["knn"] = knn_accuracy(z_train, y_train, z_test, y, KNN_K)
        if "probe" in todo:
            out["probe"] = downstream.linear_probe_accuracy(z_train, y_train, z_test, y, seed)
        if "kmeans" in todo:
            out["kmeans"] = downstream.kmeans_accuracy(z_test, y, seed=seed)
    if "active-units" in todo:
        out["active-units"] = active_units(model, x, ACTIVE_THRESHOLD, batch_size)
    if "kl-per-dim" in todo:
        kl = kl_per_dimension(model, x, batch_size)
        out["kl-per-dim"] = [float(v) for v in kl]
        out["kl-per-dim_total"] = float(kl.sum())
        out["kl-per-dim_collapsed"] = int((kl < COLLAPSED_KL).sum())
    if "mutual-info" in todo:
        x_all = dataset.split("test")[0]
        mixture = x_all[:max(MI_MIXTURE, x.shape[0])]
        out["mutual-info"] = mutual_information(model, x, batch_size, _generator(model, seed + 1), report, mixture)
        bound = math.log(mixture.shape[0])
        out["mutual-info_bound"] = bound
        out["mutual-info_saturated"] = out["mutual-info"] >= MI_SATURATED * bound
        rate = out.get("kl-per-dim_total")
        if rate is None and undefined_reason(model, "kl-per-dim") is None:
            rate = float(kl_per_dimension(model, x, batch_size).sum())
        out["mutual-info_rate"] = rate
    if "expected-gap" in todo:
        gap = expected_gap(model, x, GAP_S, generator=_generator(model, seed + 2), progress=report)
        out["expected-gap"] = gap["gap"]
        out["expected-gap_s"] = gap["s"]
        out["expected-gap_smoothness"] = gap["smoothness"]
    if {"fd", "classifier-score"} & set(todo):
        from vaecore.evaluation.features import load_feature_classifier

        clf = load_feature_classifier(dataset.name).to(device)
        images = generate(model, n_samples, sampler, seed + 3, batch_size)
        if "fd" in todo:
            out["fd"] = frechet_distance(clf.features(images), clf.features(x))
            out["fd_features"] = clf.name
        if "classifier-score" in todo:
            out["classifier-score"] = clf.classifier_score(images)
    if "fd" in notes:
        out["fd_features"] = None
    out["notes"] = notes
    out["settings"] = {"dataset": dataset.name, "split": "test", "n_test": int(x.shape[0]), "seed": seed,
                       "iwae_k": iwae_k, "n_samples": n_samples, "knn_k": KNN_K,
                       "sampler": "prior" if sampler is None else type(sampler).__name__}
    return {**{m: out[m] for m in names}, **{k: v for k, v in out.items() if k not in names}}
