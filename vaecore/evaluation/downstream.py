"""Downstream tasks on latent embeddings, as in the Pythae benchmark: a linear probe and k-means.

Both take embeddings already computed (posterior means, or the codes of a deterministic encoder),
so they run on any model that has `embed`. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

PROBE_MAX_ITER = 1000
KMEANS_INITS = 10
KMEANS_RESTARTS = 10


def _arr(t: Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, Tensor) else np.asarray(t, dtype=np.float64)


def _labels(t: Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)


def linear_probe_accuracy(z_train: Tensor | np.ndarray, y_train: Tensor | np.ndarray, z_test: Tensor | np.ndarray,
                          y_test: Tensor | np.ndarray, seed: int = 0) -> float:
    """Test accuracy of a single linear softmax layer (multinomial logistic regression) fitted on the
    standardised training embeddings: how linearly the latent space separates the classes."""

    return float(linear_probe_correct(z_train, y_train, z_test, y_test, seed).mean())


def linear_probe_correct(z_train: Tensor | np.ndarray, y_train: Tensor | np.ndarray, z_test: Tensor | np.ndarray,
                         y_test: Tensor | np.ndarray, seed: int = 0) -> np.ndarray:
    """Per test image, whether the linear probe fitted on the training embeddings classifies it right (bool, (N,)):
    its mean is the probe's accuracy, its standard error the binomial one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER, random_state=seed))
    probe.fit(_arr(z_train), _labels(y_train))
    return probe.predict(_arr(z_test)) == _labels(y_test)


def matched_accuracy(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of cluster ids against labels under the best one-to-one matching of clusters to
    labels (Hungarian algorithm); clusters left unmatched count as wrong."""
    from scipy.optimize import linear_sum_assignment

    c_ids, c_idx = np.unique(clusters, return_inverse=True)
    y_ids, y_idx = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(c_ids), len(y_ids)), dtype=np.int64)
    np.add.at(counts, (c_idx, y_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def kmeans_accuracy(z: Tensor | np.ndarray, y: Tensor | np.ndarray, k: int | None = None, seed: int = 0) -> float:
    """k-means (k = number of classes, best of KMEANS_INITS k-means++ starts) on the embeddings,
    scored by `matched_accuracy` against the labels."""
    from sklearn.cluster import KMeans

    labels = _labels(y)
    k = k or len(np.unique(labels))
    clusters = KMeans(n_clusters=k, n_init=KMEANS_INITS, random_state=seed).fit_predict(_arr(z))
    return matched_accuracy(clusters, labels)


def kmeans_restarts(z: Tensor | np.ndarray, y: Tensor | np.ndarray, restarts: int = KMEANS_RESTARTS,
                    seed: int = 0, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`restarts` independent k-means runs (one k-means++ start each, seeds seed … seed + restarts − 1) on the
    embeddings: (matched accuracy, inertia) of each run. Their mean ± s.d. is the clustering accuracy with its
    spread; the run of lowest inertia is what sklearn's n_init rule would keep."""
    from sklearn.cluster import KMeans

    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    labels, data = _labels(y), _arr(z)
    k = k or len(np.unique(labels))
    acc, inertia = [], []
    for r in range(restarts):
        km = KMeans(n_clusters=k, n_init=1, random_state=seed + r).fit(data)
        acc.append(matched_accuracy(km.labels_, labels))
        inertia.append(float(km.inertia_))
    return np.asarray(acc), np.asarray(inertia)

