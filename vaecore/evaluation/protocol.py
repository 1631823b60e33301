"""The zoo's evaluation protocol, one home for the bundled models (experiments/train_zoo.py) and for a run evaluated
later (the app's "Evaluate this run"): which metrics, on the first N_TEST test images, with K importance samples,
SAMPLE_SEEDS sets of generated images and the fitted samplers' generation metrics. An eval.json written this way
ranks with the bundled models' on the same test images (its per-image values are stored beside it).

    result, store = evaluate_with_protocol(model, dataset, folder, samplers=("gmm",), progress=print)
    write_evaluation(folder, result, store)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vaecore.data.datasets import Dataset
from vaecore.evaluation import metrics
from vaecore.evaluation.per_image import SHA_KEY, PerImage, file_sha256, per_image_from, save_per_image
from vaecore.files import EVAL, PER_IMAGE

METRICS = ["elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "nll-dequant", "mse", "knn", "probe", "kmeans", "kl",
           "active-units", "kl-per-dim", "mutual-info", "expected-gap", "fd", "precision", "recall", "density",
           "coverage", "classifier-score"]
SAMPLER_METRICS = ["fd", "precision", "recall", "density", "coverage"]  # per fitted sampler: <metric>_<sampler>
FITTED_SAMPLERS: dict[str, dict[str, Any]] = {"gmm": {"components": 10}, "maf": {}}
"""Samplers fitted (on 10k training latents) for the generation columns, with their settings."""
N_TEST = 2000
IWAE_K = 100  # importance samples per test image of IWAE, −log p, −log pdf and the dequantised bound
SAMPLE_SEEDS = 3  # sets of generated images behind each FD, precision/recall and density/coverage
SEED = 0

Progress = Callable[[str, int, int], None]


def settings() -> dict[str, Any]:
    """The keyword settings of `metrics.evaluate` the protocol uses (besides the metrics and the sampler)."""
    return {"n_test": N_TEST, "seed": SEED, "n_samples": N_TEST, "sample_seeds": SAMPLE_SEEDS}


def evaluate_with_protocol(model: torch.nn.Module, dataset: Dataset, folder: str | Path,
                           samplers: Sequence[str] = tuple(FITTED_SAMPLERS),
                           progress: Progress | None = None) -> tuple[dict[str, Any], PerImage]:
    """The protocol's evaluation of a model (the per-image values apart), and the fitted samplers' generation
    metrics as `<metric>_<sampler>` keys; samplers are loaded from `folder`, or fitted and saved there."""
    from vaecore import samplers as sampler_registry

    unknown = sorted(set(samplers) - set(FITTED_SAMPLERS))
    if unknown:
        raise ValueError(f"the protocol fits {sorted(FITTED_SAMPLERS)}, not {unknown}")
    result = metrics.evaluate(model, dataset, METRICS, iwae_k=IWAE_K, progress=progress or False, per_image=True,
                              **settings())
    store = per_image_from(result, metrics.image_set(result))
    result.pop("per_image")
    for name in samplers:
        if progress is not None:
            progress(f"fitting the {name} sampler", 0, 1)
        sampler = sampler_registry.load_or_fit(model, folder, name, dataset, **FITTED_SAMPLERS[name])
        fitted = metrics.evaluate(model, dataset, SAMPLER_METRICS, sampler=sampler, progress=progress or False,
                                  **settings())
        for m in SAMPLER_METRICS:
            result[f"{m}_{name}"] = fitted.get(m)
            if m in fitted.get("uncertainty", {}):
                result.setdefault("uncertainty", {})[f"{m}_{name}"] = fitted["uncertainty"][m]
            if m in fitted.get("notes", {}):
                result.setdefault("notes", {})[f"{m}_{name}"] = fitted["notes"][m]
    result["n_test"] = N_TEST
    return result, store


def write_evaluation(folder: str | Path, result: dict[str, Any], store: PerImage) -> Path:
    """per_image.safetensors, then eval.json, each atomically; eval.json is the pair's manifest, written last with
    the sha256 of the per-image file, so a kill between the two leaves the old eval.json, beside which
    `load_per_image` refuses the new per-image values (the readers then show the evaluation without them).
    Writers of one folder's evaluation take turns (`locked`), and each clears the temporary files that a killed
    evaluation left behind."""
    from vaecore.utils import atomic_write_json, locked, remove_temp_files

    folder = Path(folder)
    with locked(folder / ".eval.lock"):
        remove_temp_files(folder, (PER_IMAGE, EVAL))
        values = save_per_image(folder, store, manifest=EVAL)
        atomic_write_json(folder / EVAL, {**result, SHA_KEY: file_sha256(values)})
    return folder / EVAL


__all__ = ["FITTED_SAMPLERS", "IWAE_K", "METRICS", "N_TEST", "SAMPLER_METRICS", "SAMPLE_SEEDS", "SEED",
           "evaluate_with_protocol", "settings", "write_evaluation"]
