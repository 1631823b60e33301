"""sklearn's 8x8 digits: 16 grey levels stored as float32 k / 16; 1197 train / 300 val / 300 test by seed."""

from __future__ import annotations

import functools

import numpy as np

from vaecore.data.datasets import Dataset
from vaecore.data.formats.registry import LoadRequest, register_format

DIGITS_VAL_SIZE = 300
DIGITS_TEST_SIZE = 300


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None]
    x.flags.writeable = False
    return x, bunch.target.astype(np.int64)


def _load(req: LoadRequest) -> Dataset:
    x, y = _digits_arrays()
    perm = np.random.default_rng(req.seed).permutation(len(x))
    n_train = len(x) - DIGITS_VAL_SIZE - DIGITS_TEST_SIZE
    train, val, test = perm[:n_train], perm[n_train:n_train + DIGITS_VAL_SIZE], perm[n_train + DIGITS_VAL_SIZE:]
    if req.limit is not None:
        train = train[:req.limit]
    return Dataset("digits", x[train], y[train], x[val], y[val], x[test], y[test])


register_format("digits", "sklearn's 8x8 digits, 16 gray levels (1197 train / 300 val / 300 test)", _load)
