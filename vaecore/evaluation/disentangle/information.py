"""Discrete mutual information between latent codes and ground-truth factors: the plug-in estimator on
equal-width histogram bins, the estimator of MIG and modularity in disentanglement_lib (Locatello et al. 2019).

Written here on `numpy.bincount` contingency tables in float64, in nats, rather than through
`sklearn.metrics.mutual_info_score`: disentanglement_lib's MIG and modularity numbers are suspected to have
moved with scikit-learn's versions of that function (disentanglement_lib issue 33), so ours does not depend
on it (the tests check the two agree on the version installed, and the closed forms).

- `discretize(codes, bins)`: each column cut into `bins` equal-width bins between its minimum and maximum
  (np.histogram's edges, the maximum in the last bin; a constant column is one bin).
- `mutual_information(a, b)`: I(a; b) = Σ p(a, b) log p(a, b) / (p(a) p(b)) of two integer arrays.
- `mi_matrix(codes, classes, bins)`: (d, K) I(z_i; v_k) of the discretised codes and the factor classes.
- `entropies(classes)`: H(v_k) of each factor's classes (the MIG's normaliser).

The plug-in estimate is biased upwards by about (bins − 1)(classes − 1) / (2N) nats (Miller–Madow), which is
why the metrics refuse fewer than `MIN_POINTS` points.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BINS", "MIN_POINTS", "discretize", "entropies", "entropy", "mi_matrix", "mutual_information",
           "normalised_mi", "plug_in_bias"]

BINS = 20
"""Equal-width bins per code dimension (disentanglement_lib's `discretizer.num_bins = 20`)."""
MIN_POINTS = 1000
"""Fewest points the histogram estimators accept: at N = 1,000, 20 bins and dSprites' 40 orientations the
plug-in bias bound (bins − 1)(classes − 1)/(2N) is 0.37 nats, a tenth of H(orientation) = ln 40; below it
the bias swamps the gaps MIG measures (disentanglement_lib uses 10,000)."""


def discretize(codes: np.ndarray, bins: int = BINS) -> np.ndarray:
    """(N, d) float codes → (N, d) int64 bin indices in [0, bins): equal-width bins per column."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (N, d), got shape {codes.shape}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if not np.isfinite(codes).all():
        raise ValueError("codes hold non-finite values")
    out = np.zeros(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        col = codes[:, i]
        lo, hi = col.min(), col.max()
        if hi > lo:
            edges = np.linspace(lo, hi, bins + 1)
            out[:, i] = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, bins - 1)
    return out


def _dense(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer labels → (0..m−1 labels, m)."""
    values, inverse = np.unique(np.asarray(a).ravel(), return_inverse=True)
    return inverse.astype(np.int64), len(values)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two equally long arrays of discrete labels (the plug-in estimate)."""
    a, na = _dense(a)
    b, nb = _dense(b)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in length: {a.shape[0]} and {b.shape[0]}")
    n = a.shape[0]
    if n == 0:
        raise ValueError("mutual information of no points")
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(np.float64) / n
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, np.sum(joint[nz] * (np.log(joint[nz]) - np.log((pa * pb)[nz])))))


def entropy(a: np.ndarray) -> float:
    """H(a) in nats of an array of discrete labels (the plug-in estimate)."""
    _, counts = np.unique(np.asarray(a).ravel(), return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def entropies(classes: np.ndarray) -> np.ndarray:
    """(K,) H(v_k) of (N, K) factor classes."""
    classes = np.asarray(classes)
    return np.array([entropy(classes[:, k]) for k in range(classes.shape[1])])


def mi_matrix(codes: np.ndarray, classes: np.ndarray, bins: int = BINS) -> np.ndarray:
    """(d, K) I(z_i; v_k) in nats between the discretised code dimensions and the factor classes."""
    classes = np.asarray(classes)
    if classes.ndim != 2 or classes.shape[0] != np.shape(codes)[0]:
        raise ValueError(f"factor classes must be (N, K) with N = {np.shape(codes)[0]} codes, got {classes.shape}")
    binned = discretize(codes, bins)
    return np.array([[mutual_information(binned[:, i], classes[:, k]) for k in range(classes.shape[1])]
                     for i in range(binned.shape[1])])


def plug_in_bias(bins: int, classes: int, n: int) -> float:
    """The Miller–Madow first-order bias of the plug-in MI, (bins − 1)(classes − 1)/(2n) nats."""
    return (bins - 1) * (classes - 1) / (2 * n)


def normalised_mi(mi: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(d, K) I(z_i; v_k) / H(v_k): the fraction of each factor's entropy a code dimension carries."""
    h = np.asarray(h, dtype=np.float64)
    return np.divide(mi, h[None, :], out=np.zeros_like(mi, dtype=np.float64), where=h[None, :] > 0)
