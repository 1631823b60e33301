"""Disentanglement scores against ground-truth factors: the estimators, on plain arrays (codes and factor
classes) or on a function from factor classes to codes; `vaecore.evaluation.metrics.disentanglement`
registers them as metrics computed on a model and a dataset with factors."""

from vaecore.evaluation.disentangle.information import (
    BINS,
    MIN_POINTS,
    discretize,
    entropies,
    entropy,
    mi_matrix,
    mutual_information,
    normalised_mi,
    plug_in_bias,
)
from vaecore.evaluation.disentangle.interventions import FactorCodes, beta_vae_score, factor_vae_score
from vaecore.evaluation.disentangle.scores import Score, dci, dci_from_importance, mig, modularity, sap, versions

__all__ = ["BINS", "MIN_POINTS", "FactorCodes", "Score", "beta_vae_score", "dci", "dci_from_importance",
           "discretize", "entropies", "entropy", "factor_vae_score", "mi_matrix", "mig", "modularity",
           "mutual_information", "normalised_mi", "plug_in_bias", "sap", "versions"]
