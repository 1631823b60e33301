"""Representation metrics on the latent points (posterior means, or an autoencoder's codes): k-NN accuracy,
a linear probe and k-means clustering accuracy (Pythae's classification and clustering tasks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
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
    f"{KNN_TRAIN // 1000}k training images (split: those train, the evaluated test images score); SE binomial over "
    "the test images",
    pass_name="representation", undefined=(needs_labels,), per_image=True))
PROBE = register_metric(Metric(
    "probe", "linear-probe accuracy", "linear probe", "fraction", Direction.HIGHER, GROUP,
    "linear-probe accuracy (fraction): a linear softmax classifier fitted on the standardised latent means "
    f"of the first {KNN_TRAIN // 1000}k training images, scored on the evaluated test images' latent means (split: "
    "fit on those training images, test on the test images; Pythae's classification task); SE binomial over the "
    "test images",
    pass_name="representation", undefined=(needs_labels,), per_image=True))
KMEANS = register_metric(Metric(
    "kmeans", "k-means accuracy", "k-means", "fraction", Direction.HIGHER, GROUP,
    "clustering accuracy (fraction): k-means with k = number of classes on the test latent means, clusters "
    "matched one-to-one to labels by the Hungarian algorithm (Pythae's clustering task); the mean over "
    f"kmeans_restarts independent runs (one k-means++ start each, default {downstream.KMEANS_RESTARTS}) with their "
    "s.d.; kmeans_best-inertia is the accuracy of the lowest-inertia run (sklearn's n_init rule)",
    pass_name="representation", undefined=(needs_labels,), seeded=True,
    extras={"kmeans_best-inertia": "accuracy of the restart with the lowest inertia (sklearn's n_init rule)"},
    when_undefined={"kmeans_best-inertia": None}))


def knn_accuracy(z_train: Tensor | np.ndarray, y_train: Tensor | np.ndarray, z_test: Tensor | np.ndarray,
                 y_test: Tensor | np.ndarray, k: int = KNN_K) -> float:
    """Accuracy (fraction) of a k-nearest-neighbour classifier (Euclidean) fitted on (z_train, y_train)."""

    def arr(t: Tensor | np.ndarray) -> np.ndarray:
        return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)

    return float(knn_correct(z_train, y_train, z_test, y_test, k).mean())


def knn_correct(z_train: Tensor | np.ndarray, y_train: Tensor | np.ndarray, z_test: Tensor | np.ndarray,
                y_test: Tensor | np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Per test point, whether the k-NN classifier fitted on (z_train, y_train) is right (bool, (N,))."""
    from sklearn.neighbors import KNeighborsClassifier

    def arr(t: Tensor | np.ndarray) -> np.ndarray:
        return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)

    clf = KNeighborsClassifier(n_neighbors=min(k, len(arr(z_train)))).fit(arr(z_train), arr(y_train))
    return clf.predict(arr(z_test)) == arr(y_test)


@register_pass("representation")
def _representation_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    """k-NN, the linear probe and k-means share the test (and training) latent means."""
    z_test = latent_means(ctx.model, ctx.x, ctx.batch_size, ctx.progress, "test latents")
    if {"knn", "probe"} & set(wanted):
        z_train = latent_means(ctx.model, ctx.dataset.take("train", slice(0, KNN_TRAIN)), ctx.batch_size, ctx.progress,
                               "train latents")
        y_train = ctx.dataset.y_train[:KNN_TRAIN]
    if "knn" in wanted:
        hits = torch.from_numpy(knn_correct(z_train, y_train, z_test, ctx.y, KNN_K)).double()
        ctx.out["knn"], ctx.per_image["knn"] = float(hits.mean()), hits
    if "probe" in wanted:
        hits = torch.from_numpy(downstream.linear_probe_correct(z_train, y_train, z_test, ctx.y, ctx.seed)).double()
        ctx.out["probe"], ctx.per_image["probe"] = float(hits.mean()), hits
    if "kmeans" in wanted:
        acc, inertia = downstream.kmeans_restarts(z_test, ctx.y, ctx.kmeans_restarts, seed=ctx.seed)
        ctx.out["kmeans"], ctx.seeds["kmeans"] = float(acc.mean()), [float(a) for a in acc]
        ctx.out["kmeans_best-inertia"] = float(acc[int(np.argmin(inertia))])
