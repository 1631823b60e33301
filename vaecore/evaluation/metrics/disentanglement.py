"""Disentanglement metrics against a dataset's ground-truth factors: MIG, SAP, DCI (disentanglement,
completeness, informativeness), modularity, and the β-VAE and FactorVAE scores.

The estimators are in `vaecore.evaluation.disentangle` (their docstrings state them); this module registers
them and the pass that feeds them. Codes are posterior means (`latent_means`) of the evaluated test images,
whose factor classes the dataset gives (`Dataset.factor_classes("test")`, the factors that vary); the two
classifier scores render images of chosen factors (`Dataset.factors.images`), so they need a full factor grid.
The pass writes, besides the values, `disentanglement`: the factor names, the (d, K) mutual-information
matrix, each metric's parts and settings (points, bins, regressor, votes, seed, library versions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vaecore.evaluation import disentangle as D
from vaecore.evaluation.registry import Direction, EvalContext, Metric, Subject, register_metric, register_pass
from vaecore.latent.encode import latent_means
from vaecore.utils import evaluating

GROUP = "disentanglement"
NO_FACTORS = "the dataset has no ground-truth factors (dsprites, dsprites-procedural and celeba have them)"
NO_GRID = ("the dataset's factors come without the image of every factor combination, which this score draws "
           "(dsprites and dsprites-procedural have it)")
DETAILS = "disentanglement"


def factors_of(dataset: Any) -> Any:
    """The dataset's `Factors`, or None."""
    return getattr(dataset, "factors", None)


def needs_factors(s: Subject) -> str | None:
    if s.dataset is not None and factors_of(s.dataset) is None:
        return NO_FACTORS
    return None


def needs_grid(s: Subject) -> str | None:
    f = factors_of(s.dataset) if s.dataset is not None else None
    if f is not None and getattr(f, "grid", None) is None:
        return NO_GRID
    return None


def needs_vector_code(s: Subject) -> str | None:
    shape = s.caps.latent_shape
    if len(shape) != 1 or shape[0] < 2:
        return f"it needs a latent vector of at least 2 dimensions; this model's latent has shape {tuple(shape)}"
    return None


RULES = (needs_factors, needs_vector_code)
_SETTINGS = (f"{D.MIN_POINTS:,} test images at least; {D.BINS} equal-width bins per code dimension, plug-in MI "
             "in nats")


def _metric(key: str, label: str, short: str, unit: str, description: str, rules: tuple = RULES,
            extras: dict[str, str] | None = None) -> Metric:
    return register_metric(Metric(key, label, short, unit, Direction.HIGHER, GROUP, description, pass_name=GROUP,
                                  undefined=rules, extras=extras or {}))


MIG = _metric("mig", "mutual information gap", "MIG", "fraction of H(v)",
              "MIG (Chen et al. 2018), disentanglement_lib's estimator: mean over factors of the gap between the two "
              f"code dimensions most informative about it, divided by its entropy; {_SETTINGS}",
              extras={DETAILS: "factor names, the factor × latent mutual information, each disentanglement "
                               "metric's parts and estimator settings"})
SAP = _metric("sap", "SAP score", "SAP", "accuracy gap",
              "SAP (Kumar et al. 2018), disentanglement_lib's discrete form: mean over factors of the gap between "
              "the test accuracies of the two single code dimensions that predict it best (LinearSVC, C = 0.01, "
              "balanced; 80 / 20 split)")
DCI = _metric("dci", "DCI disentanglement", "DCI-D", "fraction",
              "DCI disentanglement (Eastwood & Williams 2018): 1 − the base-K entropy of each code's importance over "
              "the factors, weighted by code importance; importances from gradient-boosted trees (100, depth 3) "
              "per factor, 80 / 20 split")
DCI_COMPLETENESS = _metric(
    "dci-completeness", "DCI completeness", "DCI-C", "fraction",
    "DCI completeness: 1 − the base-d entropy of each factor's importance over the codes, weighted by factor "
    "importance; depends on the code length d (compare codes of one length only)")
DCI_INFORMATIVENESS = _metric(
    "dci-informativeness", "DCI informativeness", "DCI-I", "R²",
    "DCI informativeness: the mean test R² of the gradient-boosted trees predicting each factor from the code")
MODULARITY = _metric("modularity", "modularity", "modularity", "fraction",
                     "modularity (Ridgeway & Mozer 2018), disentanglement_lib's estimator: per code dimension 1 − the "
                     "share of its squared MI that is not with its main factor, averaged; " + _SETTINGS)
BETA_VAE_SCORE = _metric(
    "beta-vae-score", "β-VAE score", "β-VAE score", "accuracy",
    f"β-VAE score (Higgins et al. 2017): test accuracy of a logistic regression naming the factor held fixed "
    f"from mean |z1 − z2| over {D.interventions.BATCH}-image batches ({D.interventions.TRAIN_VOTES} train, "
    f"{D.interventions.EVAL_VOTES} eval votes); chance is 1/K",
    rules=(*RULES, needs_grid), extras={"beta-vae-score_se": "binomial standard error over the eval votes"})
FACTOR_VAE_SCORE = _metric(
    "factor-vae-score", "FactorVAE score", "FactorVAE score", "accuracy",
    f"FactorVAE score (Kim & Mnih 2018): accuracy of the majority-vote classifier from the dimension of least "
    f"normalised variance in {D.interventions.BATCH}-image batches with one factor fixed "
    f"({D.interventions.TRAIN_VOTES} train, {D.interventions.EVAL_VOTES} eval votes, dimensions of s.d. < "
    f"{D.interventions.PRUNE_STD} left out); chance is 1/K",
    rules=(*RULES, needs_grid), extras={"factor-vae-score_se": "binomial standard error over the eval votes"})


def varying_classes(dataset: Any, split: str, n: int | None = None) -> tuple[list[str], list[int], np.ndarray]:
    """(names, indices, (N, K') classes) of the factors that vary, for the first `n` images of `split`."""
    factors = factors_of(dataset)
    if factors is None:
        raise ValueError(f"{NO_FACTORS}: dataset {getattr(dataset, 'name', '?')!r}")
    idx = list(factors.varying)
    classes = np.asarray(dataset.factor_classes(split))
    if n is not None:
        classes = classes[:n]
    return [factors.names[k] for k in idx], idx, classes[:, idx]


def model_codes(model: torch.nn.Module, dataset: Any, batch_size: int = 500) -> D.FactorCodes:
    """The varying factors of a grid dataset and the model's codes of the images of any factor classes."""
    factors = factors_of(dataset)
    if factors is None:
        raise ValueError(NO_FACTORS)
    if factors.grid is None:
        raise ValueError(NO_GRID)
    idx = list(factors.varying)
    device = next(iter(model.parameters())).device
    base = np.zeros(len(factors.sizes), dtype=np.int64)

    def codes(classes: np.ndarray) -> np.ndarray:
        full = np.tile(base, (len(classes), 1))
        full[:, idx] = classes
        x = factors.images(full)
        with evaluating(model), torch.no_grad():
            out = [model.embed(x[i:i + batch_size].to(device)).float().reshape(-1, model.capabilities.latent_size)
                   for i in range(0, len(x), batch_size)]
        return torch.cat(out).cpu().double().numpy()

    return D.FactorCodes(tuple(factors.sizes[k] for k in idx), codes)


@register_pass(GROUP)
def _disentanglement_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    """One encoding of the test images feeds MIG, modularity, SAP and DCI; the classifier scores draw their own."""
    names, _, classes = varying_classes(ctx.dataset, "test", ctx.x.shape[0])
    details: dict[str, Any] = {"factors": names, "points": int(ctx.x.shape[0]), "metrics": {}}
    by_code = {"mig", "modularity", "sap", "dci", "dci-completeness", "dci-informativeness"} & set(wanted)
    if by_code:
        if ctx.x.shape[0] < D.MIN_POINTS:
            raise ValueError(f"{', '.join(sorted(by_code))} need at least {D.MIN_POINTS:,} test images with factors, "
                             f"got {ctx.x.shape[0]:,}: evaluate more test images (--n-test)")
        z = latent_means(ctx.model, ctx.x, ctx.batch_size, ctx.progress, "test latents")
        codes = z.reshape(z.shape[0], -1).double().cpu().numpy()
        mig = D.mig(codes, classes)
        details["mi"] = mig.parts["mi"]
        details["entropy"] = mig.parts["entropy"]
        if "mig" in wanted:
            ctx.out["mig"] = mig.value
            details["metrics"]["mig"] = {**mig.parts, "settings": mig.settings}
        if "modularity" in wanted:
            mod = D.modularity(codes, classes)
            ctx.out["modularity"] = mod.value
            details["metrics"]["modularity"] = {"per_code": mod.parts["per_code"], "settings": mod.settings}
        if "sap" in wanted:
            sap = D.sap(codes, classes, seed=ctx.seed)
            ctx.out["sap"] = sap.value
            details["metrics"]["sap"] = {**sap.parts, "settings": sap.settings}
        if {"dci", "dci-completeness", "dci-informativeness"} & set(wanted):
            dci = D.dci(codes, classes, seed=ctx.seed)
            for key, value in (("dci", dci.value), ("dci-completeness", dci.parts["completeness"]),
                               ("dci-informativeness", dci.parts["informativeness"])):
                if key in wanted:
                    ctx.out[key] = value
            details["metrics"]["dci"] = {**dci.parts, "settings": dci.settings}
    if {"beta-vae-score", "factor-vae-score"} & set(wanted):
        source = model_codes(ctx.model, ctx.dataset, ctx.batch_size)
        if "beta-vae-score" in wanted:
            s = D.beta_vae_score(source, seed=ctx.seed, progress=ctx.progress)
            ctx.out["beta-vae-score"], ctx.out["beta-vae-score_se"] = s.value, s.parts["se"]
            details["metrics"]["beta-vae-score"] = {**s.parts, "settings": s.settings}
        if "factor-vae-score" in wanted:
            s = D.factor_vae_score(source, seed=ctx.seed, progress=ctx.progress)
            ctx.out["factor-vae-score"], ctx.out["factor-vae-score_se"] = s.value, s.parts["se"]
            details["metrics"]["factor-vae-score"] = {**s.parts, "settings": s.settings}
    ctx.out[DETAILS] = details


def report_lines(result: dict[str, Any]) -> list[str]:
    """The disentanglement part of an evaluation as text (the CLI's tables): each metric with its parts, the
    factor × latent normalised mutual information, and the estimator settings."""
    details = result.get(DETAILS)
    if not details:
        return []
    names = details["factors"]
    lines = [f"disentanglement on {details['points']:,} test images; factors: {', '.join(names)}"]
    mi, h = details.get("mi"), details.get("entropy")
    if mi is not None and h is not None:
        nmi = D.normalised_mi(np.asarray(mi), np.asarray(h))
        width = max(8, *(len(n) + 1 for n in names))
        lines.append("I(z_i; v_k) / H(v_k):" + "".join(f"{n:>{width}}" for n in names) + "   best")
        for i, row in enumerate(nmi):
            best = names[int(np.argmax(row))]
            lines.append(f"{'z' + str(i):>21}:" + "".join(f"{v:>{width}.3f}" for v in row) + f"   {best}")
    for key, part in details.get("metrics", {}).items():
        s = part.get("settings", {})
        shown = {k: v for k, v in s.items() if k not in ("numpy", "scikit-learn", "scipy")}
        lines.append(f"{key}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    versions = next((p["settings"] for p in details.get("metrics", {}).values() if "settings" in p), {})
    lines.append("libraries: " + ", ".join(f"{k} {versions[k]}" for k in ("numpy", "scikit-learn", "scipy")
                                            if k in versions))
    return lines
