"""Truths of the disentanglement metrics on synthetic factors: closed forms of discrete MI, agreement with
scikit-learn and disentanglement_lib's binning recipe, a ground-truth code at the top, a rotation of the
factors lower, noise and constant codes at the bottom (chance for the classifier scores), permutation
invariance, the refusals. Small factor sets: the whole file runs in seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaecore.evaluation import disentangle as D

SIZES = (3, 5, 8, 4)
N = 2000


def factor_classes(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)


PERM = [2, 0, 3, 1]


def truth_code(classes: np.ndarray, nuisance: int = 2, seed: int = 1) -> np.ndarray:
    """z = the factor values in shuffled order, then `nuisance` pure-noise dimensions."""
    v = classes / (np.array(SIZES) - 1.0)
    noise = np.random.default_rng(seed).normal(size=(len(classes), nuisance))
    return np.concatenate([v[:, PERM], noise], axis=1)


def rotated(z: np.ndarray) -> np.ndarray:
    """A 45° rotation mixing the first two code dimensions (two factors), the rest untouched."""
    r = np.eye(z.shape[1])
    c = math.sqrt(0.5)
    r[:2, :2] = [[c, -c], [c, c]]
    return z @ r.T


def mig_tolerance(classes: np.ndarray, bins: int = D.BINS) -> float:
    """How far below 1 a perfect code's MIG may fall: the nuisance dimensions' plug-in MI, 3 × its first-order bias
    (bins − 1)(classes − 1)/(2N), divided by the factor's entropy."""
    h = D.entropies(classes)
    return max(3 * D.plug_in_bias(bins, s, len(classes)) / hk for s, hk in zip(SIZES, h, strict=True))


# --- discrete mutual information -------------------------------------------------------------------------

def test_mutual_information_closed_forms() -> None:
    a = np.repeat(np.arange(4), 6)  # uniform on 4 values
    b = np.tile(np.arange(6), 4)  # every pair equally often: independent
    assert D.mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    assert D.mutual_information(a, a) == pytest.approx(math.log(4), rel=1e-12)
    assert D.entropy(a) == pytest.approx(math.log(4), rel=1e-12)
    assert D.mutual_information(a, a // 2) == pytest.approx(math.log(2), rel=1e-12)  # a function of a: H(f(a))
    # a binary symmetric channel with flip probability 1/4, from exact counts: ln 2 − H_b(1/4)
    x = np.array([0] * 4 + [1] * 4)
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    hb = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert D.mutual_information(x, y) == pytest.approx(math.log(2) - hb, rel=1e-12)


def test_mutual_information_agrees_with_sklearn() -> None:
    import sklearn
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.integers(0, 20, 3000)
        b = (a // 3 + rng.integers(0, 4, 3000)) % 9
        assert D.mutual_information(a, b) == pytest.approx(mutual_info_score(a, b), rel=1e-9, abs=1e-12), \
            f"scikit-learn {sklearn.__version__}"


def test_discretize_is_disentanglement_libs_histogram_recipe() -> None:
    """disentanglement_lib bins with np.digitize(x, np.histogram(x, bins)[1][:-1]) (1-based)."""
    rng = np.random.default_rng(4)
    z = rng.normal(size=(2000, 3)) * [1.0, 5.0, 0.01]
    ours = D.discretize(z, 20)
    ref = np.stack([np.digitize(z[:, i], np.histogram(z[:, i], 20)[1][:-1]) - 1 for i in range(3)], axis=1)
    assert np.array_equal(ours, ref)
    assert ours.min() == 0 and ours.max() == 19
    assert (D.discretize(np.ones((10, 2)), 20) == 0).all()  # a constant column is one bin


# --- a ground-truth code at the top, mixtures lower, noise at the bottom ------------------------------------

def test_truth_code_tops_mig_sap_modularity_and_mixing_lowers_them() -> None:
    classes = factor_classes()
    z = truth_code(classes)
    tol = mig_tolerance(classes)
    truth = D.mig(z, classes)
    assert 1 - tol <= truth.value <= 1
    # the top is the factor's whole entropy; the runner-up's MI (another factor's dimension) is only plug-in bias
    top = np.asarray(truth.parts["mi"]).max(axis=0)
    assert np.allclose(top, truth.parts["entropy"], rtol=1e-12)
    mixed = D.mig(rotated(z), classes)
    assert mixed.value < truth.value - 0.1
    noise = D.mig(np.random.default_rng(5).normal(size=z.shape), classes)
    assert noise.value <= tol
    # SAP: R² form — the own dimension explains the factor exactly, a nuisance one only by chance (R² ~ 1/N)
    sap_c = D.sap(z, classes, continuous=True)
    assert 1 - 20 / N <= sap_c.value <= 1
    assert D.sap(rotated(z), classes, continuous=True).value < sap_c.value - 0.1
    # SAP: disentanglement_lib's classifier form
    sap = D.sap(z, classes)
    assert D.sap(rotated(z), classes).value < sap.value
    assert D.sap(np.random.default_rng(5).normal(size=z.shape), classes).value < 0.05
    assert D.modularity(truth_code(classes, nuisance=0), classes).value > 1 - 5 * tol


def test_dci_truth_top_rotation_lower_noise_bottom() -> None:
    classes = factor_classes()
    z = truth_code(classes)
    truth = D.dci(z, classes, trees=50)
    assert truth.value > 0.95 and truth.parts["completeness"] > 0.95 and truth.parts["informativeness"] > 0.99
    mixed = D.dci(rotated(z), classes, trees=50)
    assert mixed.value < truth.value - 0.1
    noise = D.dci(np.random.default_rng(6).normal(size=z.shape), classes, trees=50)
    assert noise.value < 0.2 and noise.parts["informativeness"] < 0.05


def test_dci_closed_forms_and_code_length() -> None:
    """One code per factor scores 1; a factor split evenly over 2 of d codes has completeness 1 − ln 2 / ln d,
    which grows with d (the code-length trap): completeness compares codes of one length only."""
    d, c, _, _ = D.dci_from_importance(np.eye(4))
    assert d == pytest.approx(1.0) and c == pytest.approx(1.0)
    for n_codes in (4, 10):
        r = np.zeros((n_codes, 1))
        r[:2, 0] = 0.5
        _, c, _, per_factor = D.dci_from_importance(r)
        assert per_factor[0] == pytest.approx(1 - math.log(2) / math.log(n_codes))
    _, c, _, _ = D.dci_from_importance(np.zeros((3, 2)))
    assert c == 0.0


def test_permutation_invariance() -> None:
    classes = factor_classes()
    z = rotated(truth_code(classes))
    p = np.random.default_rng(7).permutation(z.shape[1])
    q = [3, 1, 0, 2]
    assert D.mig(z[:, p], classes).value == pytest.approx(D.mig(z, classes).value, abs=1e-12)
    assert D.mig(z, classes[:, q]).value == pytest.approx(D.mig(z, classes).value, abs=1e-12)
    assert D.modularity(z[:, p], classes).value == pytest.approx(D.modularity(z, classes).value, abs=1e-12)
    assert D.sap(z[:, p], classes).value == pytest.approx(D.sap(z, classes).value, abs=1e-12)
    # trees visit the features in a seeded random order, so splits of exactly equal gain (late rounds fit residuals
    # that take few values) may go to another feature after a permutation: DCI is invariant up to those ties
    rng = np.random.default_rng(9)
    z = truth_code(classes) @ rng.normal(size=(6, 6)) + 0.1 * rng.normal(size=(N, 6))
    a, b = D.dci(z, classes, trees=30), D.dci(z[:, p], classes, trees=30)
    assert np.allclose(np.asarray(b.parts["importance"]), np.asarray(a.parts["importance"])[p], atol=0.02)
    assert b.value == pytest.approx(a.value, abs=0.01)


# --- the two classifier scores --------------------------------------------------------------------------

def _source(kind: str) -> D.FactorCodes:
    rng = np.random.default_rng(8)
    if kind == "truth":
        return D.FactorCodes(SIZES, lambda c: truth_code(c, seed=int(rng.integers(1 << 30))))
    if kind == "rotated":
        return D.FactorCodes(SIZES, lambda c: rotated(truth_code(c, seed=int(rng.integers(1 << 30)))))
    if kind == "noise":
        return D.FactorCodes(SIZES, lambda c: rng.normal(size=(len(c), 6)))
    return D.FactorCodes(SIZES, lambda c: np.zeros((len(c), 6)))


@pytest.mark.parametrize("score", [D.beta_vae_score, D.factor_vae_score])
def test_classifier_scores_truth_perfect_noise_and_constant_at_chance(score) -> None:
    kw = {"batch": 32, "train_votes": 200, "eval_votes": 300}
    if score is D.factor_vae_score:
        kw["variance_points"] = 2000
    assert score(_source("truth"), **kw).value == 1.0
    chance = 1 / len(SIZES)
    se = math.sqrt(chance * (1 - chance) / kw["eval_votes"])
    for kind in ("noise", "constant"):
        s = score(_source(kind), **kw)
        # the eval factor is drawn independently of a code that carries no information: accuracy is chance
        assert abs(s.value - chance) <= 4 * se, (kind, s.value)
        assert s.parts["se"] == pytest.approx(math.sqrt(s.value * (1 - s.value) / kw["eval_votes"]))
        assert s.settings["seed"] == 0 and "scikit-learn" in s.settings


def test_factor_vae_score_rotation_lower() -> None:
    kw = {"batch": 32, "train_votes": 200, "eval_votes": 300, "variance_points": 2000}
    assert D.factor_vae_score(_source("rotated"), **kw).value < 0.9


# --- refusals --------------------------------------------------------------------------------------------

def test_too_few_points_refused_with_the_minimum() -> None:
    classes = factor_classes(500)
    for fn in (D.mig, D.sap, D.dci, D.modularity):
        with pytest.raises(ValueError, match=f"at least {D.MIN_POINTS:,} points"):
            fn(truth_code(classes), classes)
    with pytest.raises(ValueError, match="at least 50 train and 50 eval votes"):
        D.beta_vae_score(_source("truth"), train_votes=10, eval_votes=10)


def test_settings_and_versions_recorded() -> None:
    classes = factor_classes()
    s = D.mig(truth_code(classes), classes)
    assert s.settings["bins"] == 20 and s.settings["points"] == N
    assert {"numpy", "scikit-learn", "scipy"} <= set(s.settings)


# --- an independent implementation ----------------------------------------------------------------------

def test_agrees_with_disent_where_it_imports() -> None:
    """disent's metric functions on the same codes and factors (disent imports torchvision and lightning, which
    this project does not install: skipped here with that reason)."""
    try:
        from disent.metrics._mig import _compute_mig  # type: ignore[import-not-found]
    except Exception as e:  # noqa: BLE001 — any import failure is a reason to skip
        pytest.skip(f"disent is not importable here ({type(e).__name__}: {e})")
    classes = factor_classes()
    z = rotated(truth_code(classes))
    theirs = _compute_mig(z.T, classes.T)
    assert D.mig(z, classes).value == pytest.approx(theirs["mig.discrete_score"], abs=1e-9)
