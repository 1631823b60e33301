"""Evaluation metrics: one module per metric family, each registering its metrics and passes in
`vaecore.evaluation.registry`, and `evaluate`, a loop over the registered passes.

Conventions (docs/architecture.md): images in [0, 1], log-likelihoods per example summed over the
D = C·H·W values, in nats. A metric that a model does not define (the ELBO of a deterministic
autoencoder, −log P of 8-bit images under a Bernoulli decoder, ...) is reported as None by
`evaluate`, with the reason in `result["notes"]`; nothing is approximated by something else.

Adding a metric: a module here that registers it (`register_metric`) and the pass computing it
(`register_pass`), imported below in the order `evaluate` should run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vaecore.data.datasets import Dataset

# the metric modules, in the order of METRICS and of evaluate's passes (isort: split keeps it)
from vaecore.evaluation.metrics.likelihood import (
    bits_per_dim,
    dequantise,
    discrete_breakdown,
    elbo,
    iwae_k_curve,
    iwae_log_likelihood,
    iwae_terms,
    nll_dequantised,
    nll_discrete,
    nll_pdf,
)

# isort: split
from vaecore.evaluation.metrics.reconstruction import reconstruction_mse

# isort: split
from vaecore.evaluation.metrics.representation import KNN_K, KNN_TRAIN, knn_accuracy, knn_correct, latent_means

# isort: split
from vaecore.evaluation.metrics.latent import (
    ACTIVE_THRESHOLD,
    COLLAPSED_KL,
    MI_MIXTURE,
    MI_SATURATED,
    active_units,
    kl_per_dimension,
    kl_per_image,
    mutual_information,
    posterior_moments,
)

# isort: split
from vaecore.evaluation.metrics.smoothness import GAP_S, expected_gap

# isort: split
from vaecore.evaluation.metrics.generation import PRDC_K, frechet_distance, generate, prdc

# isort: split
from vaecore.evaluation.metrics.disentanglement import model_codes, varying_classes

# isort: split
from vaecore.evaluation.registry import (
    METRICS,
    PASSES,
    EvalContext,
    Metric,
    check_names,
    outcome,
    undefined_reason,
)
from vaecore.evaluation.runtime import ProgressFn, as_progress
from vaecore.evaluation.uncertainty import ImageSet, mean_se, seed_spread

__all__ = [
    "ACTIVE_THRESHOLD", "COLLAPSED_KL", "FID_WEIGHTS_UNSUPPORTED", "GAP_S", "KNN_K", "KNN_TRAIN", "METRICS",
    "MI_MIXTURE", "MI_SATURATED", "PRDC_K", "Metric", "ProgressFn", "active_units", "bits_per_dim",
    "dequantise", "discrete_breakdown", "elbo", "evaluate", "expected_gap", "frechet_distance", "generate",
    "image_set", "iwae_k_curve", "iwae_log_likelihood", "iwae_terms", "kl_per_dimension", "kl_per_image",
    "knn_accuracy", "knn_correct", "latent_means", "model_codes", "mutual_information", "nll_dequantised",
    "nll_discrete", "nll_pdf", "outcome", "posterior_moments", "prdc", "reconstruction_mse", "undefined_reason",
    "varying_classes",
]

FID_WEIGHTS_UNSUPPORTED = (
    "--fid-weights is not supported: standard FID needs an Inception-v3 network, which vaecore cannot build "
    "without torchvision, so Inception weights cannot be used. The 'fd' metric is the Fréchet distance in the "
    "feature space of the bundled small classifier for the dataset (checkpoints/classifiers/<dataset>, reported "
    "as fd_features, e.g. 'MNIST-classifier'); drop --fid-weights to use it. Its values are not comparable with "
    "Inception-FID numbers from papers."
)


def evaluate(model: Any, dataset: Dataset, names: Sequence[str] | None = None, *, n_test: int | None = 10000,
             seed: int = 0, batch_size: int = 500, iwae_k: int = 1000, sampler: Any = None, n_samples: int = 5000,
             sample_seeds: int = 3, kmeans_restarts: int = 10, fid_weights: str | None = None,
             progress: ProgressFn | bool = False, per_image: bool = False) -> dict[str, Any]:
    """Evaluate `model` on the first `n_test` test images (all if None); {metric name: value}.

    Values are Python floats (in the unit `METRICS[name]` states), `kl-per-dim` a list, `active-units` an
    int, and None where the metric is undefined for this model or dataset. Extra keys: each metric's
    `extras` (`fd_features`, `expected-gap_s`, `kl-per-dim_total`, `mutual-info_bound`, …), `notes`
    ({metric: why it is None}), `settings` (what was evaluated, for reproducibility: the image set's first index,
    count and fingerprint among them) and `uncertainty` ({metric: {"se", "n", "over", "sd"}}: the standard error
    over the test images of each per-image metric, the s.d. over seeds of each seeded one, with the seeds' values).
    With `per_image=True`, `per_image` holds the per-image values (float64 arrays, one per test image) behind
    each `per_image` metric, whose mean is the reported value. Metrics of generated images are means over
    `sample_seeds` sets of `n_samples` images; k-means is the mean over `kmeans_restarts` runs.
    Every Monte Carlo quantity is seeded from `seed` per pass, so a value does not depend on which other
    metrics are asked for. IWAE, nll-pdf, nll-discrete and bpd share one pass of K = `iwae_k` draws per
    image. fd and classifier-score use `n_samples` generated images (from `sampler` or the prior); fd
    compares them with the evaluated test images. `progress`: True shows tqdm bars; a callable gets
    (stage, done, total).
    """
    names = check_names(list(METRICS) if names is None else list(names))
    if fid_weights is not None:
        raise ValueError(FID_WEIGHTS_UNSUPPORTED)
    x, y = dataset.split("test")
    if n_test is not None:
        if n_test < 2:
            raise ValueError(f"n_test must be >= 2, got {n_test}")
        x, y = x[:n_test], None if y is None else y[:n_test]
    if sample_seeds < 1 or kmeans_restarts < 1:
        raise ValueError(f"sample_seeds and kmeans_restarts must be >= 1, got {sample_seeds} and {kmeans_restarts}")
    ctx = EvalContext(model, dataset, x, y, seed=seed, batch_size=batch_size, iwae_k=iwae_k, sampler=sampler,
                      n_samples=n_samples, sample_seeds=sample_seeds, kmeans_restarts=kmeans_restarts,
                      progress=as_progress(progress))
    todo = []
    for name in names:
        reason = undefined_reason(model, name, dataset, sampler=sampler)
        if reason is None:
            todo.append(name)
        else:
            ctx.out[name], ctx.notes[name] = None, reason
            ctx.out.update(METRICS[name].when_undefined)
    for step in PASSES.values():
        wanted = [m for m, metric in METRICS.items() if metric.pass_name == step.name and m in todo]
        if wanted:
            step.run(ctx, wanted)
    out = ctx.out
    out["notes"] = ctx.notes
    images = ImageSet.of(dataset.name, "test", range(x.shape[0]), x)
    out["settings"] = {"dataset": dataset.name, "split": "test", "n_test": int(x.shape[0]), "first_image": 0,
                       "fingerprint": images.fingerprint, "seed": seed, "iwae_k": iwae_k, "n_samples": n_samples,
                       "sample_seeds": sample_seeds, "kmeans_restarts": kmeans_restarts, "knn_k": KNN_K,
                       "sampler": "prior" if sampler is None else type(sampler).__name__}
    spread = {k: {**mean_se(v.double().cpu().numpy()).to_json()} for k, v in ctx.per_image.items()}
    spread.update({k: {**seed_spread(v).to_json(), "values": list(v)} for k, v in ctx.seeds.items()})
    out["uncertainty"] = spread
    if per_image:
        out["per_image"] = {k: v.double().cpu().numpy() for k, v in ctx.per_image.items()}
    return {**{m: out[m] for m in names}, **{k: v for k, v in out.items() if k not in names}}


UNRECORDED = "unrecorded"
"""The fingerprint of an evaluation from before fingerprints: it matches only other such evaluations."""


def image_set(result: dict[str, Any]) -> ImageSet | None:
    """The test images an evaluation result (or eval.json) was computed on, from its settings (None when they do not
    say); an evaluation older than the pixels' fingerprint gets UNRECORDED, so it pairs only with its like."""
    s = result.get("settings") or {}
    if "n_test" not in s or "dataset" not in s:
        return None
    first = int(s.get("first_image", 0))  # evaluate has always taken the first n_test images of the split
    return ImageSet(str(s["dataset"]), str(s.get("split", "test")), tuple(range(first, first + int(s["n_test"]))),
                    str(s.get("fingerprint", UNRECORDED)))
