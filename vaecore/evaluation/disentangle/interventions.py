"""The two disentanglement scores that intervene on the factors: they draw images whose factors are chosen
(one factor held fixed across a batch), so they need the image of any factor combination (a full factor
grid, as dSprites is) and an encoder.

- β-VAE score (Higgins et al. 2017), as disentanglement_lib computes it: a vote draws a factor k uniformly,
  two batches of `batch` factor combinations sharing the value of factor k (the rest drawn uniformly), and
  the feature mean_b |z(x_b) − z(x'_b)| (posterior means); a logistic regression (scikit-learn's default,
  C = 1) is fitted on `train_votes` features and the score is its accuracy on `eval_votes` fresh ones.
  Chance is 1/K.
- FactorVAE score (Kim & Mnih 2018), as disentanglement_lib computes it: each code dimension is divided by
  its standard deviation over `variance_points` random images; dimensions with a standard deviation below
  `PRUNE_STD` (0.05) are left out as collapsed; a vote draws a factor k, one batch of `batch` combinations
  sharing factor k's value, and the dimension of least normalised variance; the classifier maps each
  dimension to the factor it got most training votes for, and the score is its accuracy on the eval votes.
  With no dimension left the classifier can only guess the most voted factor (chance, about 1/K) —
  disentanglement_lib reports 0 there.

Both report the binomial standard error of the accuracy over the eval votes, and the settings.
`FactorCodes` is what they read: the varying factors' sizes and a function from factor classes to codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vaecore.evaluation.disentangle.scores import Score, versions

__all__ = ["BATCH", "EVAL_VOTES", "MIN_VOTES", "PRUNE_STD", "TRAIN_VOTES", "VARIANCE_POINTS", "FactorCodes",
           "beta_vae_score", "factor_vae_score"]

BATCH = 32
TRAIN_VOTES = 200
EVAL_VOTES = 200
VARIANCE_POINTS = 5000
"""Defaults sized for a CPU: a model's classifier scores encode 2 · 32 · 400 + 32 · 400 + 5,000 = 43,400 images
(disentanglement_lib: batch 64, 10,000 train and 5,000 eval votes, 10,000 variance points — 2.9 million images).
The eval accuracy's binomial standard error at 200 votes is at most 0.035, and is reported with the score."""
PRUNE_STD = 0.05
MIN_VOTES = 50
"""Fewest votes of each kind accepted: below 50 eval votes the accuracy's standard error exceeds 0.07."""


@dataclass(frozen=True)
class FactorCodes:
    """The varying factors' class counts and `codes(classes)`: (n, K) classes → (n, d) codes of their images."""

    sizes: tuple[int, ...]
    codes: Callable[[np.ndarray], np.ndarray]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K) classes drawn uniformly and independently per factor."""
        return np.stack([rng.integers(0, s, n) for s in self.sizes], axis=1).astype(np.int64)

    def encode(self, classes: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Codes of (n, K) classes, float64, encoded `chunk` at a time."""
        out = [np.asarray(self.codes(classes[i:i + chunk]), dtype=np.float64) for i in range(0, len(classes), chunk)]
        codes = np.concatenate(out)
        if codes.ndim != 2 or codes.shape[0] != len(classes) or not np.isfinite(codes).all():
            raise ValueError(f"codes must be finite (n, d), got shape {codes.shape}")
        return codes


def _check(source: FactorCodes, batch: int, train_votes: int, eval_votes: int, metric: str) -> None:
    if len(source.sizes) < 2 or min(source.sizes) < 2:
        raise ValueError(f"{metric} needs at least 2 factors that vary, got class counts {source.sizes}")
    if batch < 2:
        raise ValueError(f"{metric}: batch must be >= 2 images per vote, got {batch}")
    if min(train_votes, eval_votes) < MIN_VOTES:
        raise ValueError(f"{metric} needs at least {MIN_VOTES} train and {MIN_VOTES} eval votes, got {train_votes} "
                         f"and {eval_votes}")


def _fixed_pairs(source: FactorCodes, votes: int, batch: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(votes,) fixed factors and two (votes·batch, K) class arrays sharing the fixed factor per vote."""
    k = rng.integers(0, len(source.sizes), votes)
    a = source.sample(votes * batch, rng)
    b = source.sample(votes * batch, rng)
    rows = np.repeat(np.arange(votes), batch)
    b[np.arange(votes * batch), k[rows]] = a[np.arange(votes * batch), k[rows]]
    return k, a, b


def _accuracy_se(acc: float, n: int) -> float:
    return float(np.sqrt(max(acc * (1 - acc), 0.0) / n))


def beta_vae_score(source: FactorCodes, batch: int = BATCH, train_votes: int = TRAIN_VOTES,
                   eval_votes: int = EVAL_VOTES, seed: int = 0,
                   progress: Callable[[str, int, int], None] | None = None) -> Score:
    """Higgins et al.'s score: accuracy of a linear classifier naming the fixed factor from mean |Δz|."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    _check(source, batch, train_votes, eval_votes, "the β-VAE score")
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for i, votes in enumerate((train_votes, eval_votes)):
        k, a, b = _fixed_pairs(source, votes, batch, rng)
        diff = np.abs(source.encode(a) - source.encode(b)).reshape(votes, batch, -1).mean(axis=1)
        feats.append(diff)
        labels.append(k)
        if progress is not None:
            progress("β-VAE score votes", i + 1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=1000).fit(feats[0], labels[0])
    train_acc = float(clf.score(feats[0], labels[0]))
    acc = float(clf.score(feats[1], labels[1]))
    return Score(acc, {"se": _accuracy_se(acc, eval_votes), "train_accuracy": train_acc,
                       "chance": 1.0 / len(source.sizes)},
                 {"batch": batch, "train_votes": train_votes, "eval_votes": eval_votes,
                  "classifier": "LogisticRegression(C=1, lbfgs, max_iter=1000) on mean |z1 − z2| over the batch",
                  "seed": seed, **versions()})


def factor_vae_score(source: FactorCodes, batch: int = BATCH, train_votes: int = TRAIN_VOTES,
                     eval_votes: int = EVAL_VOTES, variance_points: int = VARIANCE_POINTS, seed: int = 0,
                     progress: Callable[[str, int, int], None] | None = None) -> Score:
    """Kim & Mnih's score: accuracy of a majority-vote classifier from the least-varying normalised dimension."""
    _check(source, batch, train_votes, eval_votes, "the FactorVAE score")
    if variance_points < 2:
        raise ValueError(f"the FactorVAE score needs at least 2 variance points, got {variance_points}")
    rng = np.random.default_rng(seed)
    scale = source.encode(source.sample(variance_points, rng)).std(axis=0, ddof=1)
    active = np.flatnonzero(scale >= PRUNE_STD)
    n_factors, d = len(source.sizes), scale.shape[0]
    tables = []
    for i, votes in enumerate((train_votes, eval_votes)):
        table = np.zeros((n_factors, d), dtype=np.int64)
        k = rng.integers(0, n_factors, votes)
        classes = source.sample(votes * batch, rng).reshape(votes, batch, -1)
        classes[np.arange(votes), :, k] = classes[np.arange(votes), 0, k][:, None]
        if active.size:
            codes = source.encode(classes.reshape(votes * batch, -1)).reshape(votes, batch, d)
            local = codes[:, :, active].var(axis=1, ddof=1) / scale[active] ** 2
            np.add.at(table, (k, active[np.argmin(local, axis=1)]), 1)
        else:
            np.add.at(table, (k, np.zeros(votes, dtype=np.int64)), 1)
        tables.append(table)
        if progress is not None:
            progress("FactorVAE score votes", i + 1, 2)
    train, ev = tables
    guess = train.argmax(axis=0)  # each dimension → the factor it got most votes for
    cols = np.arange(d)
    train_acc = float(train[guess, cols].sum() / train.sum())
    acc = float(ev[guess, cols].sum() / ev.sum())
    return Score(acc, {"se": _accuracy_se(acc, eval_votes), "train_accuracy": train_acc,
                       "active_dims": int(active.size), "chance": 1.0 / n_factors, "votes": ev.tolist()},
                 {"batch": batch, "train_votes": train_votes, "eval_votes": eval_votes,
                  "variance_points": variance_points, "prune_std": PRUNE_STD,
                  "classifier": "majority vote: each dimension → its most voted factor", "seed": seed, **versions()})
