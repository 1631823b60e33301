"""Model comparison: bundled models' precomputed evaluations (with their per-image values), fresh ones computed in
the background with progress, and the ranking on −log p of the 8-bit images — only models evaluated on the same test
images, each with its SE and its paired difference to the best (the engine's `rank`) — apart from within-family
bounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from explorer.caches import PER_IMAGE_KEY, dataset_for, evaluate_model, evaluation_key, load_model, sampler_saved
from explorer.catalog import finite, local_folder, read_json_file
from explorer.models import facts
from vaecore.evaluation.ranking import rank, result_images
from vaecore.evaluation.registry import METRICS, Comparable, State, outcome
from vaecore.evaluation.uncertainty import RULE, Over
from vaecore.files import EVAL

RANK_METRIC = "nll-discrete"
WITHIN_FAMILY = tuple(k for k, m in METRICS.items() if m.comparable is Comparable.SAME_LIKELIHOOD)
ACROSS = ("nll-discrete", "bpd", "nll-dequant", "mse", "kl", "fd", "active-units")


@dataclass
class EvalTask:
    """One evaluation running in a background thread: progress (stage, done, total), result or error."""

    label: str
    stage: str = "queued"
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.result is None and not self.error


@st.cache_resource(show_spinner=False)
def _tasks() -> tuple[dict[tuple[Any, ...], EvalTask], threading.Semaphore]:
    return {}, threading.Semaphore(1)


def start_evaluation(spec: str, label: str, names: Sequence[str], n_test: int, **settings: Any) -> EvalTask:
    """Start (or find) the background evaluation of one model with these settings; one runs at a time."""
    tasks, gate = _tasks()
    key = evaluation_key(spec, names, n_test, **settings)
    task = tasks.get(key)
    if task is not None and not task.error:
        return task
    task = EvalTask(label)
    tasks[key] = task

    def report(stage: str, done: int, total: int) -> None:
        task.stage, task.done, task.total = stage, done, total

    def run() -> None:
        with gate:
            try:
                task.stage = "starting"
                task.result = evaluate_model(spec, names, n_test, progress=report, **settings)
            except Exception as e:  # noqa: BLE001 - shown on the page as that model's message
                task.error = f"{type(e).__name__}: {e}"

    task.thread = threading.Thread(target=run, name=f"eval-{label}", daemon=True)
    task.thread.start()
    return task


def evaluation_task(spec: str, names: Sequence[str], n_test: int, **settings: Any) -> EvalTask | None:
    """The background evaluation with these settings, if one was started in this server process."""
    return _tasks()[0].get(evaluation_key(spec, names, n_test, **settings))


def precomputed(spec: str) -> dict[str, Any] | None:
    """A model folder's own eval.json (bundled models ship one) with its per-image values (PER_IMAGE_KEY, None
    without a per-image file or with an unreadable one), or None."""
    from vaecore.evaluation.per_image import load_per_image

    folder = local_folder(spec)
    if folder is None:
        return None
    result = read_json_file(folder / EVAL)
    if not result:
        return None
    try:
        result[PER_IMAGE_KEY] = load_per_image(folder)
    except ValueError:
        result[PER_IMAGE_KEY] = None
    return result


def under_current_rules(spec: str, result: dict[str, Any]) -> dict[str, Any]:
    """A stored evaluation with the values the engine now leaves undefined for this model made undefined (with the
    reason), e.g. an older eval.json's Bernoulli ELBO on grey levels; the result as it is when the model won't load."""
    from vaecore.evaluation.registry import under_current_rules as rules

    try:
        model = load_model(spec)
        return rules(result, model, dataset_for(model))
    except Exception:  # noqa: BLE001 - an unloadable model keeps its stored numbers
        return result


SE = "± SE"
SD = "± s.d. (seeds)"
TO_BEST = "− best, paired"
TO_BEST_SE = "± SE (paired)"
VERDICT = "against the best"
IMAGES = "test images"


def spread(r: dict[str, Any], key: str) -> float | None:
    """A result's SE (over images) or s.d. (over seeds) of metric `key`, None when it has none."""
    o = outcome(r, key)
    if o.state is not State.VALUE or o.estimate is None:
        return None
    return o.estimate.sd if o.estimate.over is Over.SEEDS else o.estimate.se


def with_spread(r: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """Each metric of `columns` followed, where the metric carries one, by its SE (over images) or s.d. (over seeds):
    None for a value stored without it."""
    out: dict[str, Any] = {}
    for m in columns:
        out[m] = finite(r.get(m))
        if m == RANK_METRIC or METRICS[m].per_image or METRICS[m].seeded:
            out[f"{METRICS[m].short} {SE if METRICS[m].per_image else SD}"] = spread(r, m)
    return out


def ranking_rows(results: dict[str, dict[str, Any]], families: dict[str, str],
                 metrics: Sequence[str] = ACROSS, missing: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """(ranked, unranked) by the engine's `rank` on −log p of the 8-bit images: only models with per-image values on
    the same test images are ranked, each with its SE, the images, and its paired difference to the best with the
    verdict of the 2-SE rule; the others (undefined, not run, other images, no per-image values, or `missing`: no
    evaluation at all) with why not. Columns: those of `metrics` comparable across families, each followed by its SE
    or s.d. Cells hold numbers or None (shown as —)."""
    columns = [RANK_METRIC] + [m for m in ACROSS if m in metrics and m != RANK_METRIC]
    r = rank(results, RANK_METRIC, per_image={k: v.get(PER_IMAGE_KEY) for k, v in results.items()})
    first_se = f"{METRICS[RANK_METRIC].short} {SE}"

    def cells_of(res: dict[str, Any]) -> dict[str, Any]:
        cells = with_spread(res, columns)
        return {RANK_METRIC: cells.pop(RANK_METRIC), SE: cells.pop(first_se), **cells}

    ranked = []
    for i, row in enumerate(r.rows, start=1):
        res = results[row.model]
        cells = cells_of(res)
        stored_se = cells.pop(SE)
        ranked.append({"rank": i, "model": row.model, "family": families.get(row.model, ""),
                       RANK_METRIC: cells.pop(RANK_METRIC), SE: row.estimate.se if row.estimate else stored_se,
                       IMAGES: (res.get("settings") or {}).get("n_test", res.get("n_test")),
                       TO_BEST: row.to_best.mean if row.to_best else None,
                       TO_BEST_SE: row.to_best.se if row.to_best else None, VERDICT: row.verdict, **cells})
    unranked = [{"model": name, "family": families.get(name, ""), **cells_of(results[name]), "why not ranked": why}
                for name, why in r.apart.items()]
    unranked += [{"model": name, "family": families.get(name, ""), **{k: None for k in cells_of({})},
                  "why not ranked": "no evaluation yet: press Compute (bundled models ship one)"}
                 for name in missing if name not in results]
    return ranked, unranked


PAIRED = ("nll-dequant", "mse", "knn", "probe", "fd", "precision", "recall", "density", "coverage")
"""Metrics compared with the best-ranked model below the ranking: per-image ones paired on the same images, those
of generated images over their sample seeds (Welch)."""


def paired_rows(results: dict[str, dict[str, Any]], ranked: Sequence[dict[str, Any]],
                metrics: Sequence[str] = PAIRED) -> list[dict[str, Any]]:
    """Each ranked model against the best one on the other metrics, by the project's rule: a per-image metric by the
    paired difference on the same test images (its per-image values), a metric of generated images by the difference
    of the seeds' means with the Welch SE; 'undecided' within 2 SE. Metrics a model lacks (or stores without its
    spread) are left out, never compared on bare means."""
    from vaecore.evaluation.uncertainty import Verdict, difference, verdict

    if len(ranked) < 2:
        return []
    best = ranked[0]["model"]
    b = results[best]
    rows = []
    for row in ranked[1:]:
        name = row["model"]
        a = results[name]
        for key in metrics:
            metric = METRICS[key]
            sa, sb = a.get(PER_IMAGE_KEY), b.get(PER_IMAGE_KEY)
            if metric.per_image:
                if sa is None or sb is None or key not in sa.values or key not in sb.values:
                    continue
                d = sa.difference(sb, key)
            else:
                generated = [{k: (r.get("settings") or {}).get(k) for k in ("sampler", "n_samples")} for r in (a, b)]
                if generated[0] != generated[1]:  # other samplers or sample sizes: not the same experiment
                    continue
                oa, ob = outcome(a, key), outcome(b, key)
                if oa.estimate is None or ob.estimate is None or oa.estimate.n < 2 or ob.estimate.n < 2:
                    continue
                d = difference(oa.estimate, ob.estimate)
            v = verdict(d, metric.direction)
            rows.append({"model": name, "metric": metric.short_title, "− best": d.mean, "± SE": d.se,
                         "over": f"{d.n} paired images" if d.paired else f"{d.n} seeds each",
                         "against the best": "undecided" if v is Verdict.UNDECIDED else str(v)})
    return rows


def ranking_note(results: dict[str, dict[str, Any]]) -> str:
    """The rule of the ranking and the images it is on."""
    r = rank(results, RANK_METRIC, per_image={k: v.get(PER_IMAGE_KEY) for k, v in results.items()})
    where = f" on {r.images.describe()}" if r.images else ""
    return (f"Ranked{where}: models evaluated on other images, or without per-image values (no SE), are listed apart, "
            "never put in one order with these. "
            f"Each model's difference to the best is paired over the same images; {RULE}.")


def family_rows(results: dict[str, dict[str, Any]], families: dict[str, str]) -> dict[str, list[dict]]:
    """ELBO and IWAE (± SE) per likelihood family: densities comparable only among models of the same family."""
    out: dict[str, list[dict]] = {}
    for label, r in results.items():
        values = {m: finite(r.get(m)) for m in WITHIN_FAMILY}
        if all(v is None for v in values.values()):
            continue
        row: dict[str, Any] = {"model": label}
        for m, v in values.items():
            row[m], row[f"{METRICS[m].short} {SE}"] = v, spread(r, m)
        row[IMAGES] = (r.get("settings") or {}).get("n_test", r.get("n_test"))
        out.setdefault(families.get(label, "?"), []).append(row)
    return out


def likelihood_family(spec: str) -> str:
    """The likelihood family a model's continuous bounds belong to, e.g. 'gaussian (optimal σ)', 'arelbo diag-d'."""
    try:
        config = load_model(spec).config
    except Exception:  # noqa: BLE001 - an unloadable model still gets a row
        return "?"
    kwargs = getattr(config, "likelihood_kwargs", None) or {}
    detail = " ".join(str(v) for v in kwargs.values() if isinstance(v, str))
    return f"{config.likelihood} {detail}".strip()


def sampler_ready(spec: str, name: str) -> bool:
    """Whether a post-hoc sampler is already fitted on disk (else showing its samples means fitting it first)."""
    if name == "prior":
        return True
    try:
        return sampler_saved(spec, name)
    except Exception:  # noqa: BLE001 - a model without a folder has no stored sampler
        return False


def good_default_models(choices: dict[str, str], picked: str | None, limit: int = 3) -> list[str]:
    """Models the page starts with: the pick, then bundled models with −log p, no collapse, an evaluation on the
    same recorded test images as the first of them and, where any has them, per-image values — so that the first
    view ranks every model it shows, with SEs."""
    from explorer.diagnostics import collapse_from_eval

    preferred = ("sigma-vae", "sigma-vae-learned", "disc-logistic-vae", "gaussian-vae", "beta-vae")
    out = [picked] if picked in choices else []
    mine = precomputed(picked) if out else None
    first = result_images(mine) if mine is not None else None

    def pick(paired_only: bool) -> list[str]:
        chosen, images = list(out), first
        for spec in dict.fromkeys([*preferred, *choices]):
            if len(chosen) >= limit:
                break
            if spec in chosen or spec not in choices:
                continue
            ev = precomputed(spec)
            if ev is None or finite(ev.get(RANK_METRIC)) is None or collapse_from_eval(ev):
                continue
            if paired_only and ev.get(PER_IMAGE_KEY) is None:
                continue
            these = result_images(ev)
            if these is None or (images is not None and not these.same_as(images)):
                continue
            images = images or these
            chosen.append(spec)
        return chosen

    paired = pick(paired_only=True)
    return (paired if len(paired) > len(out) else pick(paired_only=False))[:limit]


def prior_note(spec: str) -> str:
    """Why a model's prior samples are not meaningful ('' when they are)."""
    try:
        return facts(load_model(spec)).why_no_prior
    except Exception:  # noqa: BLE001
        return ""


@st.cache_data(show_spinner=False, max_entries=32)
def _breakdown(spec: str, stamp: float, n: int) -> dict[str, float] | None:
    import torch

    from vaecore.evaluation.metrics import discrete_breakdown
    from vaecore.evaluation.uncertainty import mean_se

    model = load_model(spec)
    x = dataset_for(model).split("test")[0][:n]
    parts = discrete_breakdown(model, x, generator=torch.Generator(device=model.device).manual_seed(0))
    if parts is None:
        return None
    total = parts["black"] + parts["grey"] + parts["white"] + parts["kl"]
    return {**{k: float(v.mean()) for k, v in parts.items()}, "sum_se": float(mean_se(total.numpy()).se)}


def breakdown_rows(specs: Sequence[str], labels: dict[str, str], n: int) -> tuple[list[dict], list[str]]:
    """Where each model's −log p goes, on the first n test images (the engine's `discrete_breakdown`): nats per image
    on the black, white and grey pixels at one draw z ~ q(z|x), and the KL; their sum is the 8-bit −ELBO, which IWAE
    tightens into −log p. Also nats per pixel of each kind. Models it does not apply to are named apart."""
    from explorer.catalog import model_stamp

    rows, skipped = [], []
    for spec in specs:
        b = _breakdown(spec, model_stamp(spec), n)
        if b is None:
            skipped.append(labels.get(spec, spec))
            continue
        rows.append({"model": labels.get(spec, spec), "black pixels (nats)": b["black"],
                     "grey pixels (nats)": b["grey"], "white pixels (nats)": b["white"], "KL (nats)": b["kl"],
                     "sum = −ELBO (nats)": b["black"] + b["grey"] + b["white"] + b["kl"], f"sum {SE}": b["sum_se"],
                     "per black pixel": b["black"] / max(b["n_black"], 1),
                     "per grey pixel": b["grey"] / max(b["n_grey"], 1), "black pixels per image": b["n_black"]})
    return rows, skipped


def k_curve(spec: str, n: int, ks: Sequence[int], progress: Any = None) -> list[dict[str, float]]:
    """The IWAE estimate of −log p of the 8-bit images at each K (nested: one sequence of draws per image) on the
    first n test images: rows of K, mean and its SE."""
    import torch

    from vaecore.evaluation.metrics import iwae_k_curve
    from vaecore.evaluation.uncertainty import mean_se

    model = load_model(spec)
    x = dataset_for(model).split("test")[0][:n]
    discrete = undefined_reason_of(model, RANK_METRIC) is None and not model.likelihood.discrete
    curve = iwae_k_curve(model, x, ks, discrete=discrete, generator=torch.Generator(device=model.device).manual_seed(0),
                         progress=progress)
    out = []
    for k, v in curve.items():
        e = mean_se((-v).numpy())
        out.append({"K": k, "−log p (nats)": e.value, SE: e.se})
    return out


def undefined_reason_of(model: Any, key: str) -> str | None:
    from vaecore.evaluation.registry import undefined_reason

    return undefined_reason(model, key, dataset_for(model))
