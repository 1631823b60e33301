"""Pythae's downstream tasks: the linear probe and k-means accuracy, against brute force and known cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vaecore.evaluation import downstream as D
from vaecore.evaluation import metrics as M


def test_matched_accuracy_is_the_best_one_to_one_matching():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    clusters = rng.integers(0, 4, 200)
    brute = max(np.mean(np.array(perm)[clusters] == labels) for perm in itertools.permutations(range(4)))
    assert D.matched_accuracy(clusters, labels) == pytest.approx(brute)
    assert D.matched_accuracy((labels + 1) % 4, labels) == 1.0  # a relabelling is perfect
    assert D.matched_accuracy(np.zeros(200, int), labels) == pytest.approx(np.bincount(labels).max() / 200)


def _blobs(n: int, k: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(0, 10, (k, 5))
    return centres[y] + spread * rng.normal(size=(n, 5)), y


def test_kmeans_and_probe_find_separated_classes_and_not_noise():
    z, y = _blobs(600, 6, 0.1)
    assert D.kmeans_accuracy(z, y) == 1.0
    assert D.linear_probe_accuracy(z[:400], y[:400], z[400:], y[400:]) == 1.0
    noise = np.random.default_rng(1).normal(size=z.shape)  # embeddings that ignore the label
    assert D.kmeans_accuracy(noise, y) < 0.35
    assert D.linear_probe_accuracy(noise[:400], y[:400], noise[400:], y[400:]) < 0.35


def test_evaluate_reports_both_tasks(sigma_vae, mnist):
    res = M.evaluate(sigma_vae, mnist, ["probe", "kmeans", "knn"], n_test=1000)
    assert 0.7 < res["probe"] <= 1 and 0.3 < res["kmeans"] <= 1
    assert res["knn"] > 0.6
