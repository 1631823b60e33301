"""The Disentanglement page's helpers (no Streamlit): what each latent dimension does — its KL, the factor it
predicts best by normalised mutual information and its DCI importance — the traversal grid in KL order with
collapsed rows greyed, its PNG / GIF, the factor × latent heat map, and the study's seed distributions per family.

Every number is the engine's (`vaecore.evaluation.disentangle`, `metrics.kl_per_dimension`); the study's are read
from experiments/results/disentanglement/*.json (written by experiments/disentanglement.py).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from explorer.catalog import catalog_entries, catalog_entry, local_folder, read_json_file
from vaecore.evaluation import disentangle as D
from vaecore.evaluation.metrics import COLLAPSED_KL, METRICS, kl_per_dimension, latent_means, varying_classes
from vaecore.evaluation.metrics.disentanglement import GROUP, NO_FACTORS, factors_of
from vaecore.evaluation.registry import in_group, undefined_reason
from vaecore.files import EVAL
from vaecore.utils import PROJECT_ROOT

STUDY = Path(PROJECT_ROOT) / "experiments" / "results" / "disentanglement"
FACTOR_PARTS = ("the factor each row predicts best and its DCI importance", "the factor × latent mutual-information "
                "heat map", "the disentanglement metrics")
GREY = 0.55  # collapsed rows are drawn at this contrast over a mid-grey background
N_POINTS = 2000


@dataclass
class LatentReport:
    """What each latent dimension does on `points` test images."""

    kl: list[float] | None
    order: list[int]
    collapsed: list[bool]
    factors: list[str] | None = None
    nmi: np.ndarray | None = None  # (d, K) I(z_i; v_k) / H(v_k)
    importance: np.ndarray | None = None  # (d, K) DCI importances
    points: int = 0

    def best(self, dim: int) -> tuple[str, float] | None:
        """(factor, normalised MI) the dimension predicts best, or None without factors."""
        if self.nmi is None or self.factors is None:
            return None
        k = int(np.argmax(self.nmi[dim]))
        return self.factors[k], float(self.nmi[dim, k])

    def code_importance(self, dim: int) -> float | None:
        """The dimension's share of all DCI importance."""
        if self.importance is None:
            return None
        total = float(self.importance.sum())
        return float(self.importance[dim].sum() / total) if total > 0 else 0.0


def factor_names(dataset: Any) -> list[str] | None:
    """The varying factors of a dataset, or None when it has no ground-truth factors."""
    f = factors_of(dataset)
    return None if f is None else [f.names[k] for k in f.varying]


def missing_factors_note(dataset_name: str) -> str:
    """What a dataset without factors leaves out."""
    return (f"{dataset_name} has no ground-truth factors, so {', '.join(FACTOR_PARTS[:-1])} and "
            f"{FACTOR_PARTS[-1]} are not shown ({NO_FACTORS}). Shown: the traversal grid, rows ordered by KL.")


def latent_report(model: torch.nn.Module, dataset: Any, points: int = N_POINTS, seed: int = 0,
                  with_dci: bool = True) -> LatentReport:
    """KL per dimension, and with factors the normalised MI and DCI importances, on the first `points` test images."""
    x, _ = dataset.split("test")
    x = x[:points]
    kl_t = None if undefined_reason(model, "kl-per-dim") else kl_per_dimension(model, x)
    kl = None if kl_t is None else [float(v) for v in kl_t]
    d = model.capabilities.latent_size
    order = sorted(range(d), key=lambda j: -kl[j]) if kl is not None else list(range(d))
    collapsed = [kl is not None and kl[j] < COLLAPSED_KL for j in range(d)]
    report = LatentReport(kl, order, collapsed, points=int(x.shape[0]))
    if factor_names(dataset) is None:
        return report
    names, _, classes = varying_classes(dataset, "test", int(x.shape[0]))
    codes = latent_means(model, x).reshape(x.shape[0], -1).double().cpu().numpy()
    mi = D.mi_matrix(codes, classes)
    report.factors, report.nmi = names, D.normalised_mi(mi, D.entropies(classes))
    if with_dci and codes.shape[0] >= D.MIN_POINTS:
        report.importance = np.asarray(D.dci(codes, classes, seed=seed).parts["importance"])
    return report


def row_label(dim: int, report: LatentReport) -> str:
    """'z3 · KL 2.31 nats · posX (NMI 0.62) · DCI importance 0.18' (what is known of one row)."""
    parts = [f"z{dim}"]
    if report.kl is not None:
        parts.append(f"KL {report.kl[dim]:.3g} nats" + (" (collapsed)" if report.collapsed[dim] else ""))
    best = report.best(dim)
    if best is not None:
        parts.append(f"{best[0]} (NMI {best[1]:.2f})")
    imp = report.code_importance(dim)
    if imp is not None:
        parts.append(f"DCI importance {imp:.2f}")
    return " · ".join(parts)


def grey_rows(grid: torch.Tensor, collapsed: list[bool]) -> torch.Tensor:
    """The grid (rows, steps, C, H, W) with collapsed rows washed out towards mid-grey."""
    out = grid.clone()
    for r, c in enumerate(collapsed):
        if c:
            out[r] = 0.5 + (out[r] - 0.5) * (1 - GREY)
    return out


def _frame(images: torch.Tensor, scale: int = 2) -> Any:
    """A column of images (rows, C, H, W) in [0, 1] as one PIL image."""
    from PIL import Image

    x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    col = torch.cat(list(x), dim=1)  # (C, rows·H, W)
    arr = col.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def traversal_gif(grid: torch.Tensor, scale: int = 2, ms: int = 120) -> bytes:
    """An animated GIF of the grid: frame t shows column t of every row (there and back)."""
    steps = grid.shape[1]
    frames = [_frame(grid[:, t], scale) for t in [*range(steps), *range(steps - 2, 0, -1)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return buf.getvalue()


def heatmap(report: LatentReport) -> go.Figure:
    """Factor × latent normalised mutual information, latents in KL order."""
    assert report.nmi is not None and report.factors is not None
    cols = [f"z{j}" for j in report.order]
    fig = go.Figure(go.Heatmap(z=report.nmi[report.order].T, x=cols, y=report.factors, zmin=0, zmax=1,
                               colorscale="Viridis", colorbar={"title": "I(z;v)/H(v)"},
                               hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(height=120 + 40 * len(report.factors), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis_title="latent dimension (KL order)", yaxis_title="factor")
    return fig


# metrics ---------------------------------------------------------------------------------------------------------
def recorded(spec: str) -> dict[str, Any] | None:
    """The disentanglement metrics a local model's eval.json records (a bundled study model's: the study's protocol),
    or None when it records none."""
    folder = local_folder(spec)
    result = read_json_file(folder / EVAL) if folder is not None else {}
    return result if any(result.get(k) is not None for k in in_group(GROUP)) else None


def metric_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per disentanglement metric of an evaluation: its value ± SE (the classifier scores' binomial SE over
    their eval votes), or why it is undefined."""
    rows = []
    for k in in_group(GROUP):
        if k not in result:
            continue
        v = result[k]
        value = (f"undefined: {result.get('notes', {}).get(k, '')}" if v is None else
                 f"{v:.3f}" + (f" ± {result[k + '_se']:.3f}" if result.get(k + "_se") else ""))
        rows.append({"metric": METRICS[k].title, "value": value})
    return rows


def recorded_caption(result: dict[str, Any]) -> str:
    """Where recorded metrics come from: the protocol, the images, the estimator settings."""
    s = result.get("settings", {})
    protocol = s.get("protocol")
    where = (f"the dSprites disentanglement study's protocol (`{protocol}`, experiments/disentanglement.py)"
             if protocol else "its evaluation")
    return (f"Recorded in the model's {EVAL} by {where}: the first {s.get('n_test', '?'):,} test images of "
            f"{s.get('dataset', '?')}. Settings: " + settings_caption(result))


def study_seat(spec: str) -> tuple[str, int, int] | None:
    """(family, seed, steps) of a bundled study model in the study's records, or None for another model."""
    entry = catalog_entry(spec)
    family = entry.get("family")
    if not (family and entry.get("protocol") and isinstance(entry.get("steps"), int)):
        return None
    return str(family), int(entry.get("seed", 0)), int(entry["steps"])


# the study ---------------------------------------------------------------------------------------------------
STUDY_METRICS = ("beta-vae-score", "factor-vae-score", "mig", "sap", "dci", "dci-completeness", "modularity")


def study_records(folder: Path = STUDY) -> list[dict[str, Any]]:
    """The study's result records (one per family and seed)."""
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def family_titles() -> dict[str, str]:
    """The study's family keys as the catalog titles their bundled seed (e.g. 'β-VAE (β = 4) on dSprites')."""
    return {str(e["family"]): str(e["title"]) for e in catalog_entries().values()
            if e.get("family") and e.get("protocol") and e.get("title")}


def _groups(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(family, steps) in the records' order: models of different budgets are never pooled."""
    return list(dict.fromkeys((r["family"], r["steps"]) for r in records))


def _group_name(family: str, steps: int, records: list[dict[str, Any]], titles: dict[str, str]) -> str:
    """A family's name, with its budget when the records hold more than one."""
    name = titles.get(family, family)
    return f"{name}, {steps} steps" if len({r["steps"] for r in records}) > 1 else name


def study_rows(records: list[dict[str, Any]], titles: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per family and budget (its title where `titles` has one): seeds, and each metric's mean ± s.d. over
    seeds (labels from the registry)."""
    rows, titles = [], titles or {}
    for family, steps in _groups(records):
        rs = [r for r in records if (r["family"], r["steps"]) == (family, steps)]
        row: dict[str, Any] = {"family": titles.get(family, family), "seeds": len(rs), "steps": steps}
        for k in STUDY_METRICS:
            v = [r["result"][k] for r in rs if r["result"].get(k) is not None]
            row[METRICS[k].short_title] = ("–" if not v else f"{np.mean(v):.3f}" if len(v) == 1 else
                                           f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}")
        rows.append(row)
    return rows


def strip_figure(records: list[dict[str, Any]], metric: str, mark: tuple[str, int, int] | None = None,
                 titles: dict[str, str] | None = None) -> go.Figure:
    """One point per seed, one column per family and budget (the seed distribution of one metric); `mark`
    (family, seed, steps) circles the model on view."""
    fig, titles = go.Figure(), titles or {}
    for family, steps in _groups(records):
        rs = [r for r in records
              if (r["family"], r["steps"]) == (family, steps) and r["result"].get(metric) is not None]
        fig.add_trace(go.Box(y=[r["result"][metric] for r in rs], name=_group_name(family, steps, records, titles),
                             boxpoints="all", jitter=0, pointpos=0, fillcolor="rgba(0,0,0,0)", line={"width": 1},
                             text=[f"seed {r['seed']}" for r in rs], hovertemplate="%{text}: %{y:.3f}<extra></extra>"))
    hit = [r for r in records if mark and (r["family"], r["seed"], r["steps"]) == mark
           and r["result"].get(metric) is not None]
    if hit:
        r = hit[0]
        fig.add_trace(go.Scatter(x=[_group_name(r["family"], r["steps"], records, titles)], y=[r["result"][metric]],
                                 mode="markers", name="this model", marker={"size": 16, "symbol": "circle-open",
                                                                            "line": {"width": 2}},
                                 hovertemplate=f"this model (seed {r['seed']}): %{{y:.3f}}<extra></extra>"))
    fig.update_layout(height=320, showlegend=False, yaxis_title=METRICS[metric].title,
                      margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return fig


def settings_caption(record: dict[str, Any]) -> str:
    """The estimator settings of a study record (or of an evaluation's `disentanglement` details)."""
    details = record.get("result", record).get(GROUP, {})
    parts = []
    for key, m in details.get("metrics", {}).items():
        s = m.get("settings", {})
        bits = [f"{k} {v}" for k, v in s.items() if k in ("points", "bins", "batch", "train_votes", "eval_votes",
                                                              "variance_points", "seed")]
        parts.append(f"{METRICS[key].short}: " + ", ".join(bits))
    versions = next((m["settings"] for m in details.get("metrics", {}).values() if "settings" in m), {})
    lib = ", ".join(f"{k} {versions[k]}" for k in ("numpy", "scikit-learn") if k in versions)
    return "; ".join(parts) + (f" · {lib}" if lib else "")
