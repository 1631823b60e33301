"""Tables and per-run series: metric rows and titles, the papers' numbers, σ summaries, run tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

import vaecore
from explorer.caches import load_model
from explorer.catalog import read_json_file
from vaecore import ModelLoadError
from vaecore.components.likelihood_facts import LOGGED, SigmaTrace
from vaecore.components.likelihoods import likelihood_of
from vaecore.evaluation.registry import METRICS, outcome
from vaecore.training import run_folder as rf
from vaecore.training.records import describe


def runs_table(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per run with its settings: start time, preset, data, status, steps, lr, epochs, batch, overrides."""
    import datetime

    rows = []
    for r in runs:
        train = (r.settings or {}).get("train") or {}
        overrides = (r.settings or {}).get("overrides") or {}
        rows.append({"name": r.title, "started": datetime.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M")
                     if r.started else "", "preset": r.preset, "data": r.data, "status": r.status,
                     "step": r.step, "of": r.total_steps, "epochs": train.get("epochs"), "lr": train.get("lr"),
                     "batch": train.get("batch_size"),
                     "images": f"{train['limit']:,}" if train.get("limit") else "all",  # one type per column
                     "changed": ", ".join(f"{k}={v}" for k, v in overrides.items()) or "—",
                     "run": r.name, "message": page_message(r.message)})
    return rows


def page_message(message: str) -> str:
    """An engine message in the page's words: CLI flags become the names of the page's fields."""
    for flag, field in (("--data-dir", "the **Data folder** field"), ("--data", "the **Dataset** field"),
                        ("--latent-dim", "**Latent size**"), ("--epochs", "**Epochs**")):
        message = message.replace(f"`{flag}`", field).replace(flag, field)
    return message


def data_folder_problem(data: str, folder: str | None) -> str | None:
    """Why a dataset cannot be read from a folder (empty, missing, no IDX/array files; for the other formats what
    the engine's header check refuses), or None when it looks usable."""
    if not folder or not folder.strip():
        return f"{data} is not bundled: type the folder that holds its files."
    path = Path(folder.strip()).expanduser()
    if data not in ("fashion-mnist", "idx") and path.exists():
        from vaecore.data.inspect import describe

        try:
            info = describe(path, data)
        except (ValueError, FileNotFoundError, OSError) as e:
            return str(e)
        return info.get("refused")
    if not path.is_dir():
        return f"there is no folder {folder.strip()!r} on the server."
    names = [p.name.lower() for p in path.iterdir()]
    if not any("idx" in n or n.endswith((".npz", ".npy", ".gz")) for n in names):
        return (f"{folder.strip()!r} holds no IDX (…-idx3-ubyte[.gz]) or .npz/.npy files"
                + (f" (it has {len(names)} other files)" if names else " (it is empty)") + ".")
    return None


def metric_title(key: str) -> str:
    """A metric's label with its unit and direction, from the engine's registry (the key when unknown)."""
    metric = METRICS.get(key)
    return metric.title if metric else key


def metric_help(key: str) -> str:
    """The engine's definition of a metric: how it is computed and which models it compares."""
    metric = METRICS.get(key)
    if metric is None:
        return ""
    return f"{metric.description}. Comparable across {metric.comparable}."


COMPARISON_METRICS = ("elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "nll-dequant", "mse", "kl", "active-units",
                      "fd", "precision", "recall", "density", "coverage")
DEFAULT_METRICS = ("elbo", "iwae", "nll-discrete", "bpd", "nll-dequant", "mse", "kl", "active-units")


def finite_number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def metrics_table(results: dict[str, dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per model, one column per scalar metric (None where undefined)."""
    rows = []
    for label, r in results.items():
        row: dict[str, Any] = {"model": label}
        for m in names:
            v = r.get(m)
            row[m] = v if isinstance(v, list) else finite_number(v)
        rows.append(row)
    return rows


def metric_column_config(names: Sequence[str]) -> dict[str, Any]:
    """Column headers and help texts for the metrics table."""
    return {m: st.column_config.NumberColumn(metric_title(m), help=metric_help(m) or None, format="%.4g")
            for m in names}


def metric_notes(results: dict[str, dict[str, Any]]) -> list[str]:
    """'model — metric: why it is undefined' lines from evaluate's notes (the engine's `outcome` of each metric)."""
    return [f"**{label}** — {metric_title(m)}: {outcome(r, m).reason}" for label, r in results.items()
            for m in (r.get("notes") or {}) if m in r]


def reference_note() -> str:
    """What the published numbers are and why they are not directly comparable with ours."""
    try:
        from vaecore.evaluation import reference
    except ImportError:
        return ""
    return ("Published values, **as printed in the papers** (models trained 100 to 200 epochs, other networks), "
            "beside ours (10 epochs here) with our ± (SE over the test images, s.d. over sample seeds; empty for an "
            f"older evaluation). Not directly comparable: {reference.FID_NOTE}.")


def published_numbers(models: dict[str, str], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The papers' numbers beside ours, for models whose preset and dataset match a published table.

    `models` maps display label -> spec; `results` maps spec -> our evaluation.
    """
    try:
        from vaecore.evaluation import reference
    except ImportError:
        return []
    def ours_and_paper(key: str) -> tuple[str, str]:
        return f"{METRICS[key].short} (ours)", f"{METRICS[key].short} (paper)"

    mse, p8 = ours_and_paper("mse"), ours_and_paper("nll-discrete")
    deq = f"{METRICS['nll-dequant'].short} (ours)", "−log pdf (paper, an upper bound)"

    def spread(result: dict[str, Any], key: str) -> float | None:
        """Our value's SE (images) or s.d. (seeds); None where the evaluation stored none (an older one)."""
        o = outcome(result, key)
        e = o.estimate if o.value is not None else None
        return None if e is None else e.sd if str(e.over) == "seeds" else e.se

    rows = []
    for label, spec in models.items():
        try:
            config = load_model(spec).config
        except ModelLoadError:
            continue
        ours = results.get(spec, {})
        preset, data = getattr(config, "preset", ""), getattr(config, "dataset", "")
        kind = getattr(load_model(spec), "model_type", "vae")
        paper = reference.reference_row("arelbo-table3", preset) if data == "mnist" else None
        if paper:
            sampler = (ours.get("settings") or {}).get("sampler", "prior")
            rows.append({"model": label, "paper": "AR-ELBO Table 3, MNIST", "paper's model": paper["label"],
                         mse[1]: paper.get("mse"), mse[0]: finite_number(ours.get("mse")),
                         f"{mse[0]} ± SE": spread(ours, "mse"),
                         "FID prior (paper)": paper.get("fid_prior"),
                         "FID 2-stage (paper)": paper.get("fid_two_stage"),
                         "FID GMM-10 (paper)": paper.get("fid_gmm"),
                         f"{METRICS['fd'].short} {sampler} (ours, small classifier)": finite_number(ours.get("fd")),
                         f"{METRICS['fd'].short} ± s.d. (seeds)": spread(ours, "fd")})
        if kind == "tvae" and data == "mnist":
            paper_name = reference.TVAE_PAPER_MODELS["tvae"]
            rows.append({"model": label, "paper": f"{paper_name} §3, MNIST", "paper's model": paper_name,
                         p8[1]: reference.TVAE_MNIST_NLL.get(paper_name),
                         p8[0]: finite_number(ours.get("nll-discrete")), f"{p8[0]} ± SE": spread(ours, "nll-discrete")})
        if data in ("cifar10", "cifar-10", "cifar"):
            paper = reference.reference_row("sigma-table4", preset)
            if paper:
                rows.append({"model": label, "paper": "σ-VAE Table 4, CIFAR-10", "paper's model": paper["label"],
                             deq[1]: paper.get("nll_pdf"), deq[0]: finite_number(ours.get("nll-dequant")),
                             f"{deq[0]} ± SE": spread(ours, "nll-dequant"),
                             p8[1]: paper.get("nll_discrete"), p8[0]: finite_number(ours.get("nll-discrete")),
                             f"{p8[0]} ± SE": spread(ours, "nll-discrete")})
    return rows


def series(records: Iterable[dict[str, Any]], key: str, kind: str = "step",
           x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) of one logged quantity from metrics records of one kind, skipping missing or non-finite values."""
    xs, ys = [], []
    for r in records:
        if r.get("kind") != kind or key not in r or x not in r:
            continue
        v = r[key]
        if isinstance(v, int | float) and math.isfinite(v):
            xs.append(float(r[x]))
            ys.append(float(v))
    return xs, ys


def sigma_trace(records: Sequence[dict[str, Any]], x: str = "epoch", quantity: str = "log_sigma",
                trace: SigmaTrace = LOGGED) -> tuple[list[float], list[float]]:
    """ln σ (or σ² when quantity='sigma2') per logged step, read as the likelihood's `trace` says (by default as
    any σ-logging run writes it: AR-ELBO's σx² MLE gives ln σ = ½ ln σx²)."""
    xs, ys = [], []
    for r in records:
        if r.get("kind") != "step" or x not in r:
            continue
        log_sigma = trace.log_sigma(r)
        if log_sigma is None:
            continue
        xs.append(float(r[x]))
        ys.append(math.exp(2 * log_sigma) if quantity == "sigma2" else log_sigma)
    return xs, ys


def logs_sigma(records: Sequence[dict[str, Any]]) -> bool:
    """Whether a training log has a decoder-scale trace (a key `records.LOG_KEYS` marks as one)."""
    return any(describe(k).scale_trace for r in records if r.get("kind") == "step" for k in r)


def default_sigma_models(bundled: dict[str, Path], limit: int = 6) -> list[str]:
    """The bundled models the σ page starts with: σ-VAE-like ones first, at most `limit`."""
    order = ("sigma-vae", "sigma-vae-learned", "gaussian-vae", "beta-vae", "arelbo-iso-i", "sigma-vae-per-pixel")
    first = [n for n in order if n in bundled]
    rest = [n for n in bundled if n not in first and logs_sigma(vaecore.read_metrics(bundled[n]))]
    return (first + rest)[:limit]


def run_sigma_trace(folder: Path) -> SigmaTrace | None:
    """The σ trace a run's likelihood publishes (from its config.json), or None without a readable config."""
    config = read_json_file(Path(folder) / rf.CONFIG)
    try:
        return likelihood_of(config).sigma_trace if config else None
    except ValueError:
        return None


def sigma_traces(sources: dict[str, Path]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Training logs of the chosen folders that have a σ, and why the others are left out (the likelihood's own
    reason where its config says it has no single σ)."""
    traces: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for label, folder in sources.items():
        records = vaecore.read_metrics(folder)
        trace = run_sigma_trace(folder)
        if not records:
            skipped[label] = f"no training log ({rf.METRICS}) yet"
        elif trace is not None and not trace.plotted:
            skipped[label] = trace.why_none
        elif not logs_sigma(records):
            skipped[label] = ("the run logged no σ and has no model config (it ended before its first checkpoint)"
                              if trace is None else "the run logged no σ yet")
        else:
            traces[label] = records
    return traces, skipped


def sigma_summary(traces: dict[str, Sequence[dict[str, Any]]],
                  sources: dict[str, Path] | None = None) -> list[dict[str, Any]]:
    """Per model: the last logged ln σ, σ², the KL weight β and the effective ln σ + ½ ln β.

    A β-VAE with σ = 1 has the optimum of a σ-VAE with σ² = β, so its effective ln σ is ½ ln β.
    """
    rows = []
    for label, records in traces.items():
        folder = Path(sources[label]) if sources and label in sources else None
        trace = (run_sigma_trace(folder) if folder else None) or LOGGED
        xs, ys = sigma_trace(records, "epoch", trace=trace)
        if not ys:
            continue
        config = read_json_file(folder / rf.CONFIG) if folder else {}
        beta = float(config.get("beta", 1.0) or 1.0)
        rows.append({"model": label, "epoch": round(xs[-1], 2), "ln σ": round(ys[-1], 3),
                     "σ²": float(f"{math.exp(2 * ys[-1]):.4g}"), "β": beta,
                     "effective ln σ": round(ys[-1] + 0.5 * math.log(beta), 3) if beta > 0 else None,
                     "σ varies": trace.varies.value})
    return rows


def format_seconds(s: float | None) -> str:
    """'1 h 02 min', '3 min 05 s', '12 s' for a duration (— when unknown)."""
    if s is None or not math.isfinite(s):
        return "—"
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if m else f"{sec} s"


TRANSFER_COLUMNS = ("M-Aff", "M-M", "F-Aff", "F-F")
TRANSFER_COLUMN_NAMES = {"M-Aff": "MNIST → Aff", "M-M": "MNIST → MNIST", "F-Aff": "Fashion → Aff",
                         "F-F": "Fashion → Fashion"}


def transfer_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and latent size: our KNN accuracy (%) per column beside the paper's Table 1."""
    rows = []
    for r in report["table"]:
        row: dict[str, Any] = {"model": r.get("name", r.get("preset")), "z": r.get("latent")}
        for col in TRANSFER_COLUMNS:
            ours, paper = finite_number((r.get("ours") or {}).get(col)), finite_number((r.get("paper") or {}).get(col))
            if ours is not None or any((x.get("ours") or {}).get(col) is not None for x in report["table"]):
                row[f"{col} ours (%)"] = None if ours is None else round(100 * ours, 1)
                row[f"{col} paper (%)"] = paper
        rows.append(row)
    return rows


def display_value(v: Any) -> Any:
    """A table cell for display: — for missing values, numbers rounded to what the estimate supports."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool) or isinstance(v, int):
        return v
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return v


def display_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every cell formatted by `display_value` (no 'None' cells)."""
    return [{k: display_value(v) for k, v in row.items()} for row in rows]


def display_column_config(row: dict[str, Any]) -> dict[str, Any]:
    """Short headers (the full title and the engine's definition as help) for the metric columns of a row,
    so a table of several metrics fits the page."""
    return {k: st.column_config.Column(METRICS[k].short_title, help=f"{metric_title(k)}. {metric_help(k)}")
            for k in row if k in METRICS}
