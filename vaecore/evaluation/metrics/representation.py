"""Representation metrics on the latent points (posterior means, or an autoencoder's codes): k-NN accuracy,
a linear probe and k-means clustering accuracy (Pythae's classification and clustering tasks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from vaecore.evaluation import downstream
from vaecore.evaluation.registry import Direction, EvalContext, Metric, Subject, register_metric, register_pass
from vaecore.latent.encode import latent_means

KNN_K = 5
KNN_TRAIN = 10_000
GROUP = "representation"


def needs_labels(s: Subject) -> str | None:
    if s.dataset is not None and (s.dataset.y_train is None or s.dataset.y_test is None):
        return "the dataset has no labels"
    return None


KNN = register_metric(Metric(
    "knn", f"{KNN_K}-NN accuracy", f"{KNN_K}-NN", "fraction", Direction.HIGHER, GROUP,
    f"{KNN_K}-NN accuracy (fraction correct) on test latent means, fitted on the latent means of the first "
    f"{KNN_TRAIN // 1000}k training images",
    pass_name="representation", undefined=(needs_labels,)))
PROBE = register_metric(Metric(
    "probe", "linear-probe accuracy", "linear probe", "fraction", Direction.HIGHER, GROUP,
    "linear-probe accuracy (fraction): a linear softmax classifier fitted on the standardised latent means "
    f"of the first {KNN_TRAIN // 1000}k training images, scored on the test latent means (Pythae's "
    "classification task)",
    pass_name="representation", undefined=(needs_labels,)))
KMEANS = register_metric(Metric(
    "kmeans", "k-means accuracy", "k-means", "fraction", Direction.HIGHER, GROUP,
    "clustering accuracy (fraction): k-means with k = number of classes on the test latent means, clusters "
    "matched one-to-one to labels by the Hungarian algorithm (Pythae's clustering task)",
    pass_name="representation", undefined=(needs_labels,)))


def knn_accuracy(z_train: Tensor | np.ndarray, y_train: Tensor | np.ndarray, z_test: Tensor | np.ndarray,
                 y_test: Tensor | np.ndarray, k: int = KNN_K) -> float:
    """Accuracy (fraction) of a k-nearest-neighbour classifier (Euclidean) fitted on (z_train, y_train)."""
    from sklearn.neighbors import KNeighborsClassifier

    def arr(t: Tensor | np.ndarray) -> np.ndarray:
        return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)

    clf = KNeighborsClassifier(n_neighbors=min(k, len(arr(z_train)))).fit(arr(z_train), arr(y_train))
    return float(clf.score(arr(z_test), arr(y_test)))


@register_pass("representation")
def _representation_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    """k-NN, the linear probe and k-means share the test (and training) latent means."""
    z_test = latent_means(ctx.model, ctx.x, ctx.batch_size, ctx.progress, "test latents")
    if {"knn", "probe"} & set(wanted):
        z_train = latent_means(ctx.model, ctx.dataset.x_train[:KNN_TRAIN], ctx.batch_size, ctx.progress,
                               "train latents")
        y_train = ctx.dataset.y_train[:KNN_TRAIN]
    if "knn" in wanted:
        ctx.out["knn"] = knn_accuracy(z_train, y_train, z_test, ctx.y, KNN_K)
    if "probe" in wanted:
        ctx.out["probe"] = downstream.linear_probe_accuracy(z_train, y_train, z_test, ctx.y, ctx.seed)
    if "kmeans" in wanted:
        ctx.out["kmeans"] = downstream.kmeans_accuracy(z_test, ctx.y, seed=ctx.seed)
