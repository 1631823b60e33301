"""Model comparison: bundled models' precomputed evaluations, fresh ones computed in the background with
progress, and the comparable ranking (−log p of the 8-bit images) apart from within-family bounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from explorer.caches import evaluate_model, evaluation_key, load_model, sampler_folder
from explorer.catalog import finite, local_folder, read_json_file
from explorer.models import facts
from vaecore.evaluation.registry import METRICS, Comparable, outcome
from vaecore.files import EVAL
from vaecore.samplers.base import sampler_files

RANK_METRIC = "nll-discrete"
WITHIN_FAMILY = tuple(k for k, m in METRICS.items() if m.comparable is Comparable.SAME_LIKELIHOOD)
ACROSS = ("nll-discrete", "bpd", "mse", "fd", "active-units")


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
    """A model folder's own eval.json (bundled models ship one), or None."""
    folder = local_folder(spec)
    if folder is None:
        return None
    result = read_json_file(folder / EVAL)
    return result or None


def ranking_rows(results: dict[str, dict[str, Any]], families: dict[str, str],
                 metrics: Sequence[str] = ACROSS) -> tuple[list[dict], list[dict]]:
    """(ranked, unranked): models with −log p of the 8-bit images sorted by it (lower is better), and the
    others with why they cannot be ranked on it; columns: −log p and those of `metrics` comparable across
    families. Cells hold numbers or None (shown as —)."""
    ranked, unranked = [], []
    columns = [RANK_METRIC] + [m for m in ACROSS if m in metrics and m != RANK_METRIC]
    for label, r in results.items():
        row = {"model": label, "family": families.get(label, "")}
        row.update({m: finite(r.get(m)) for m in columns})
        if row[RANK_METRIC] is None:
            unranked.append({**row, "why not ranked": outcome(r, RANK_METRIC).text()})
        else:
            ranked.append(row)
    ranked.sort(key=lambda row: row[RANK_METRIC])
    for i, row in enumerate(ranked, start=1):
        row["rank"] = i
    return [{"rank": r.pop("rank"), **r} for r in ranked], unranked


def family_rows(results: dict[str, dict[str, Any]], families: dict[str, str]) -> dict[str, list[dict]]:
    """ELBO, IWAE and −log pdf per likelihood family: comparable only among models of the same family."""
    out: dict[str, list[dict]] = {}
    for label, r in results.items():
        values = {m: finite(r.get(m)) for m in WITHIN_FAMILY}
        if all(v is None for v in values.values()):
            continue
        out.setdefault(families.get(label, "?"), []).append({"model": label, **values})
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
        return sampler_files(sampler_folder(spec), name)[0].is_file()
    except Exception:  # noqa: BLE001 - a model without a folder has no stored sampler
        return False


def good_default_models(choices: dict[str, str], picked: str | None, limit: int = 3) -> list[str]:
    """Models the page starts with: the pick, then bundled models with −log p and no collapse."""
    from explorer.diagnostics import collapse_from_eval

    preferred = ("sigma-vae", "sigma-vae-learned", "disc-logistic-vae", "gaussian-vae", "beta-vae")
    out = [picked] if picked in choices else []
    for spec in [*preferred, *choices]:
        if len(out) >= limit:
            break
        if spec in out or spec not in choices:
            continue
        ev = precomputed(spec)
        if ev is not None and finite(ev.get(RANK_METRIC)) is not None and not collapse_from_eval(ev):
            out.append(spec)
    return out[:limit]


def prior_note(spec: str) -> str:
    """Why a model's prior samples are not meaningful ('' when they are)."""
    try:
        return facts(load_model(spec)).why_no_prior
    except Exception:  # noqa: BLE001
        return ""
