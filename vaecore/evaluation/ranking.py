"""Ranking models on one metric, honestly: only models with per-image values on the same test images are put in one
order, each with its standard error, and each compared with the best one by the paired difference on those images.

    r = rank({"σ-VAE": eval_a, "σ = 1": eval_b}, "nll-discrete", per_image={"σ-VAE": store_a, "σ = 1": store_b})
    r.rows       # in order: value ± SE, paired difference to the best ± SE, verdict against the best
    r.apart      # models not in that order, with why (undefined, not run, other images, no per-image values)

A metric that ranks nothing (`Comparable.NONE`: −log pdf of 8-bit data) or has no direction is refused; one that
is comparable only within a likelihood family needs every ranked model to share it (`families`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vaecore.evaluation.per_image import PerImage
from vaecore.evaluation.registry import Comparable, Direction, State, get_metric, outcome
from vaecore.evaluation.uncertainty import RULE, Difference, Estimate, ImageSet, Verdict, verdict

__all__ = ["NO_PER_IMAGE", "Ranked", "Ranking", "rank", "result_images"]

NO_PER_IMAGE = ("no per-image values (an evaluation from before they were stored): its mean has no standard error and "
                "cannot be paired, so it is shown, never ranked")


@dataclass(frozen=True)
class Ranked:
    """One ranked model: its value (± SE where known) and its paired difference to the best model."""

    model: str
    value: float
    estimate: Estimate | None
    to_best: Difference | None
    verdict: str  # against the best: 'worse', 'undecided', 'best', or why there is none


@dataclass
class Ranking:
    key: str
    images: ImageSet | None
    rows: list[Ranked] = field(default_factory=list)
    apart: dict[str, str] = field(default_factory=dict)
    rule: str = RULE


def result_images(result: Mapping[str, Any]) -> ImageSet | None:
    """The image set an evaluation result records (None for an evaluation that does not)."""
    from vaecore.evaluation.metrics import image_set

    return image_set(dict(result))


def rank(results: Mapping[str, Mapping[str, Any]], key: str, *, per_image: Mapping[str, PerImage | None] | None = None,
         families: Mapping[str, str] | None = None) -> Ranking:
    """Order the models of `results` (name → evaluation result) on metric `key`, best first.

    Only models whose `per_image` store holds `key` are ranked — a mean without its per-image values has no SE and
    cannot be paired, so it is never put in the order as if it had one — and of those only the ones on the most
    common image set (ties: the larger set); the others are listed in `apart` with the reason. Each ranked model's
    difference to the best is the paired difference on the same images, judged by the uncertainty rule (`RULE`).
    """
    metric = get_metric(key)
    if not metric.comparable.ranked:
        raise ValueError(f"{key!r} is never ranked: {metric.comparable.value} ({metric.label}: a continuous density "
                         "of 8-bit data is unbounded; rank on nll-discrete or nll-dequant)")
    if metric.direction is Direction.NONE:
        raise ValueError(f"{key!r} has no better direction: it is a diagnostic, not a score")
    from vaecore.evaluation.metrics import UNRECORDED

    apart: dict[str, str] = {}
    stores = per_image or {}
    candidates: dict[str, tuple[float, Estimate | None, ImageSet]] = {}
    for name, result in results.items():
        o = outcome(result, key)
        if o.state is not State.VALUE:
            apart[name] = o.text()
            continue
        images = result_images(result)
        if images is None:
            apart[name] = "its evaluation does not record which test images it used: re-evaluate it to rank it"
            continue
        candidates[name] = (float(o.value), o.estimate, images)
    if metric.comparable is Comparable.SAME_LIKELIHOOD:
        fams = {(families or {}).get(n) for n in candidates}
        if None in fams or len(fams) > 1:
            raise ValueError(f"{key!r} is comparable only among {metric.comparable.value}: rank one likelihood family "
                             "at a time (families=...)")
    for name, (_, _, images) in list(candidates.items()):
        store = stores.get(name)
        if store is None or key not in store.values:
            apart[name] = (NO_PER_IMAGE + (f" ({images.describe()})" if images.fingerprint != UNRECORDED else "")
                           + ": re-evaluate it to rank it")
            del candidates[name]
    counts = Counter((c[2].dataset, c[2].split, c[2].indices, c[2].fingerprint) for c in candidates.values())
    chosen = max(counts, key=lambda s: (counts[s], len(s[2]))) if counts else None
    ranking = Ranking(key, None, apart=apart)
    ranked = []
    for name, (value, est, images) in candidates.items():
        if (images.dataset, images.split, images.indices, images.fingerprint) != chosen:
            ranking.apart[name] = f"evaluated on {images.describe()}, not on the ranked models' images: not compared"
            continue
        ranking.images = images
        ranked.append((name, value, est if est is not None else stores[name].estimate(key)))
    lower = metric.direction is Direction.LOWER
    ranked.sort(key=lambda r: r[1] if lower else -r[1])
    best = ranked[0][0] if ranked else None
    for i, (name, value, est) in enumerate(ranked):
        if i == 0:
            ranking.rows.append(Ranked(name, value, est, None, "best"))
            continue
        d = stores[name].difference(stores[best], key)
        v = verdict(d, metric.direction)
        ranking.rows.append(Ranked(name, value, est, d, "undecided" if v is Verdict.UNDECIDED else str(v)))
    return ranking
