"""The disentanglement scores computed from codes and factor classes alone: MIG, SAP, DCI and modularity.

Every function takes codes (N, d) — posterior means, one row per image — and the images' ground-truth
factor classes (N, K), int, one column per factor that varies, and returns a `Score`: the value, the
per-factor or per-code parts it is made of, and the estimator's settings (points, bins, regressor, seed,
library versions), so a stored result says how it was computed.

- MIG (Chen et al. 2018), as disentanglement_lib computes it: I(z_i; v_k) on 20 equal-width bins of each
  code (`information.mi_matrix`), MIG = mean_k (I_(1)k − I_(2)k) / H(v_k), the gap between the two code
  dimensions most informative about factor k. Chen et al.'s own estimator (posterior samples, exact
  marginals over the full grid, dSprites' shape left out) gives other values: the two are not comparable.
- SAP (Kumar et al. 2018), disentanglement_lib's discrete form: score[i, k] = test accuracy of a linear SVM
  (`LinearSVC(C=0.01, class_weight='balanced')`) predicting v_k from z_i alone; SAP = mean_k of the gap
  between the two best codes. `continuous=True` uses Kumar et al.'s R² of a linear fit instead.
- DCI (Eastwood & Williams 2018): an importance matrix R[i, k] from gradient-boosted trees predicting each
  factor from all codes; disentanglement = Σ_i ρ_i (1 − H_K(R_i· / Σ_k R_ik)), ρ_i = code i's share of all
  importance; completeness = Σ_k ρ_k (1 − H_d(R_·k / Σ_i R_ik)), ρ_k = factor k's share; informativeness =
  mean test R². The regressor is `GradientBoostingRegressor(n_estimators=100, max_depth=3,
  learning_rate=0.1)` on the class index: disentanglement_lib fits the classifier of the same settings,
  which grows one tree per class per round (40 × the trees for dSprites' orientations: 30 s for 3 classes
  on this machine, against 9 s for the 32-class regressor); the importances are the trees' impurity
  decreases in both. Completeness's entropy is in base d, so it depends on the code length (issue 29 of
  disentanglement_lib): compare it only between codes of one length.
- Modularity (Ridgeway & Mozer 2018), as disentanglement_lib computes it: from the same binned MI matrix,
  per code 1 − Σ_{k ≠ k*} θ_ik² / (θ_ik*² (K − 1)), averaged over the codes (a code with no MI scores 0).

SAP and DCI split the points: the first `TRAIN_FRACTION` of a seeded permutation train, the rest test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vaecore.evaluation.disentangle.information import BINS, MIN_POINTS, entropies, mi_matrix

__all__ = ["DCI_TREES", "MIN_POINTS", "Score", "TRAIN_FRACTION", "check_inputs", "dci", "mig", "modularity", "sap",
           "versions"]

TRAIN_FRACTION = 0.8
DCI_TREES = 100
SAP_C = 0.01


@dataclass
class Score:
    """A score, the parts it averages and how it was estimated."""

    value: float
    parts: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    """The versions of the libraries the estimators run on."""
    import scipy
    import sklearn

    return {"numpy": np.__version__, "scikit-learn": sklearn.__version__, "scipy": scipy.__version__}


def check_inputs(codes: np.ndarray, classes: np.ndarray, metric: str, minimum: int = MIN_POINTS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Codes as float64 (N, d) and classes as int64 (N, K); a ValueError for a wrong shape, too few points
    (with the minimum) or non-finite codes."""
    codes = np.asarray(codes, dtype=np.float64)
    classes = np.asarray(classes)
    if codes.ndim != 2 or classes.ndim != 2 or codes.shape[0] != classes.shape[0]:
        raise ValueError(f"{metric}: codes (N, d) and factor classes (N, K) of the same N are needed, got "
                         f"{codes.shape} and {classes.shape}")
    if codes.shape[0] < minimum:
        raise ValueError(f"{metric} needs at least {minimum:,} points, got {codes.shape[0]:,}: evaluate more "
                         "test images (--n-test)")
    if codes.shape[1] < 2:
        raise ValueError(f"{metric} compares code dimensions and needs at least 2, got {codes.shape[1]}")
    if classes.shape[1] < 1 or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"{metric}: factor classes must be integers, one column per factor")
    if not np.isfinite(codes).all():
        raise ValueError(f"{metric}: the codes hold non-finite values")
    return codes, classes.astype(np.int64)


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(TRAIN_FRACTION * n))
    return order[:cut], order[cut:]


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column: the largest entry minus the second largest."""
    s = np.sort(matrix, axis=0)
    return s[-1] - s[-2]


def mig(codes: np.ndarray, classes: np.ndarray, bins: int = BINS) -> Score:
    """Mutual information gap: mean over factors of the normalised gap between the two most informative codes."""
    codes, classes = check_inputs(codes, classes, "mig")
    mi = mi_matrix(codes, classes, bins)
    h = entropies(classes)
    if (h <= 0).any():
        raise ValueError("mig: a factor takes a single value in these points; leave constant factors out")
    gaps = _top_two_gap(mi) / h
    return Score(float(gaps.mean()), {"per_factor": gaps.tolist(), "mi": mi.tolist(), "entropy": h.tolist()},
                 {"points": int(codes.shape[0]), "bins": bins, "estimator": "plug-in MI on equal-width bins, nats",
                  **versions()})


def modularity(codes: np.ndarray, classes: np.ndarray, bins: int = BINS) -> Score:
    """Ridgeway & Mozer's modularity from the binned mutual information (disentanglement_lib's form)."""
    codes, classes = check_inputs(codes, classes, "modularity")
    mi = mi_matrix(codes, classes, bins)
    sq = mi ** 2
    top = sq.max(axis=1)
    k = sq.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - top) / (top * max(k - 1, 1))
    per_code = np.where(top > 0, 1.0 - delta, 0.0)
    return Score(float(per_code.mean()), {"per_code": per_code.tolist(), "mi": mi.tolist()},
                 {"points": int(codes.shape[0]), "bins": bins, "estimator": "plug-in MI on equal-width bins, nats",
                  **versions()})


def sap(codes: np.ndarray, classes: np.ndarray, seed: int = 0, continuous: bool = False) -> Score:
    """Separated attribute predictability: mean over factors of the gap between the two codes that predict it best."""
    from sklearn.svm import LinearSVC

    codes, classes = check_inputs(codes, classes, "sap")
    train, test = _split(codes.shape[0], seed)
    d, k = codes.shape[1], classes.shape[1]
    score = np.zeros((d, k))
    for i in range(d):
        z_tr, z_te = codes[train, i:i + 1], codes[test, i:i + 1]
        for j in range(k):
            y_tr, y_te = classes[train, j], classes[test, j]
            if continuous:
                score[i, j] = _r2_linear(z_tr[:, 0], y_tr)
            elif z_tr.std() == 0 or np.unique(y_tr).size < 2:
                score[i, j] = float(np.mean(y_te == np.bincount(y_tr).argmax()))
            else:
                clf = LinearSVC(C=SAP_C, class_weight="balanced", random_state=seed).fit(z_tr, y_tr)
                score[i, j] = float(np.mean(clf.predict(z_te) == y_te))
    gaps = _top_two_gap(score)
    estimator = ("squared correlation (R² of a linear fit) of each code with each factor" if continuous else
                 f"test accuracy of LinearSVC(C={SAP_C}, class_weight='balanced') on one code")
    return Score(float(gaps.mean()), {"per_factor": gaps.tolist(), "matrix": score.tolist()},
                 {"points": int(codes.shape[0]), "train_points": int(train.size), "test_points": int(test.size),
                  "estimator": estimator, "seed": seed, **versions()})


def _r2_linear(z: np.ndarray, y: np.ndarray) -> float:
    """Squared correlation of z and y (0 when either is constant)."""
    zc, yc = z - z.mean(), y - y.mean()
    denom = float(np.dot(zc, zc) * np.dot(yc, yc))
    return float(np.dot(zc, yc) ** 2 / denom) if denom > 0 else 0.0


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy in base `base` of each row of non-negative weights (rows of zeros: 1, the maximum)."""
    total = p.sum(axis=1, keepdims=True)
    q = np.divide(p, total, out=np.full_like(p, 1.0 / p.shape[1]), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=1)
    return h / np.log(base) if base > 1 else np.zeros(len(p))


def dci_from_importance(importance: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(disentanglement, completeness, per-code disentanglement, per-factor completeness) of a (d, K) importance
    matrix."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    total = r.sum()
    per_code = 1.0 - _normalised_entropy(r, k)
    per_factor = 1.0 - _normalised_entropy(r.T, d)
    if total <= 0:
        return 0.0, 0.0, per_code, per_factor
    return (float(np.sum(per_code * r.sum(1) / total)), float(np.sum(per_factor * r.sum(0) / total)),
            per_code, per_factor)


def dci(codes: np.ndarray, classes: np.ndarray, seed: int = 0, trees: int = DCI_TREES) -> Score:
    """DCI disentanglement (the value), completeness and informativeness from gradient-boosted-tree importances."""
    from sklearn.ensemble import GradientBoostingRegressor

    codes, classes = check_inputs(codes, classes, "dci")
    train, test = _split(codes.shape[0], seed)
    d, k = codes.shape[1], classes.shape[1]
    importance = np.zeros((d, k))
    r2 = np.zeros(k)
    for j in range(k):
        y = classes[:, j].astype(np.float64)
        model = GradientBoostingRegressor(n_estimators=trees, max_depth=3, learning_rate=0.1, random_state=seed)
        model.fit(codes[train], y[train])
        importance[:, j] = model.feature_importances_
        r2[j] = model.score(codes[test], y[test]) if np.var(y[test]) > 0 else 0.0
    dis, comp, per_code, per_factor = dci_from_importance(importance)
    return Score(dis, {"completeness": comp, "informativeness": float(r2.mean()), "importance": importance.tolist(),
                       "per_code": per_code.tolist(), "per_factor": per_factor.tolist(),
                       "informativeness_per_factor": r2.tolist()},
                 {"points": int(codes.shape[0]), "train_points": int(train.size), "test_points": int(test.size),
                  "estimator": f"GradientBoostingRegressor(n_estimators={trees}, max_depth=3, learning_rate=0.1) "
                               "per factor on its class index; importances = impurity decrease; "
                               "informativeness = mean test R²",
                  "seed": seed, **versions()})
