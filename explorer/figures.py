"""Plotly figures: training curves, σ convergence, metric bars, the latent map, T-VAE transfer charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from explorer.tables import (
    HIGHER_IS_BETTER,
    TRANSFER_COLUMN_NAMES,
    TRANSFER_COLUMNS,
    finite_number,
    metric_title,
    series,
    sigma_trace,
)
from vaecore.data.images import make_grid, to_png_bytes


def metric_bar(results: dict[str, dict[str, Any]], metric: str) -> go.Figure:
    """A bar per model for one metric (models where it is undefined are left out)."""
    labels = [k for k, r in results.items() if finite_number(r.get(metric)) is not None]
    values = [finite_number(results[k][metric]) for k in labels]
    palette = plotly.colors.qualitative.Plotly
    colors = [palette[list(results).index(k) % len(palette)] for k in labels]
    fig = go.Figure(go.Bar(x=labels, y=values, text=[f"{v:.4g}" for v in values], textposition="auto",
                           marker_color=colors))
    better = "higher is better" if metric in HIGHER_IS_BETTER else ("" if metric == "active-units"
                                                                    else "lower is better")
    fig.update_layout(title=metric_title(metric) + (f" — {better}" if better else ""), height=280,
                      margin={"l": 40, "r": 10, "t": 50, "b": 40})
    return fig

TRAINING_PANELS = (("loss", "Loss (per example, nats)"), ("recon", "Reconstruction"), ("kl", "KL / regulariser"),
                   ("log_sigma", "ln σ"), ("lr", "Learning rate"), ("images_per_s", "Images / s"))

def _regulariser_key(records: Sequence[dict[str, Any]]) -> str:
    for key in ("kl", "mmd", "z_norm", "iwae_bound"):
        if any(key in r for r in records if r.get("kind") == "step"):
            return key
    return "kl"

def training_figure(records: Sequence[dict[str, Any]], x: str = "step") -> go.Figure:
    """Six panels of a run's curves: loss (with validation), reconstruction, KL, ln σ (or σx²), lr, speed."""
    uses_mle = any("sigma2_mle" in r for r in records if r.get("kind") == "step")
    reg_key = _regulariser_key(records)
    titles = [t for _, t in TRAINING_PANELS]
    titles[2] = {"kl": "KL", "mmd": "MMD", "z_norm": "½‖z‖²", "iwae_bound": "IWAE bound"}[reg_key]
    titles[3] = "σx² (MLE)" if uses_mle else "ln σ"
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.16)
    keys = ["loss", "recon", reg_key, "sigma2_mle" if uses_mle else "log_sigma", "lr", "images_per_s"]
    for i, key in enumerate(keys):
        row, col = divmod(i, 3)
        xs, ys = series(records, key, x=x)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=key,
                                 line={"width": 1.6}, marker={"size": 4}), row=row + 1, col=col + 1)
    vx, vy = series(records, "val_loss", kind="epoch", x=x)
    if vx:
        fig.add_trace(go.Scatter(x=vx, y=vy, mode="markers+lines", name="validation loss",
                                 line={"dash": "dot"}), row=1, col=1)
    fig.update_layout(height=520, showlegend=False, margin={"l": 40, "r": 20, "t": 40, "b": 40})
    fig.update_xaxes(title_text=x, row=2)
    fig.update_yaxes(type="log", exponentformat="power", row=2, col=2)
    if uses_mle:
        fig.update_yaxes(type="log", exponentformat="power", row=2, col=1)
    return fig

def sigma_figure(traces: dict[str, Sequence[dict[str, Any]]], x: str = "epoch", quantity: str = "log_sigma",
                 beta: float | None = 0.01, log_x: bool = False) -> go.Figure:
    """ln σ against training time for several models, with the σ = 1 and β-VAE levels (σ-VAE Fig. 5)."""
    fig = go.Figure()
    for label, records in traces.items():
        xs, ys = sigma_trace(records, x, quantity)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=label))
    fixed = 1.0 if quantity == "sigma2" else 0.0
    fig.add_hline(y=fixed, line_dash="dash", line_color="gray",
                  annotation_text="fixed σ = 1 (Gaussian VAE): " + ("σ² = 1" if quantity == "sigma2" else "ln σ = 0"))
    if beta:
        level = beta if quantity == "sigma2" else 0.5 * math.log(beta)
        fig.add_hline(y=level, line_dash="dot", line_color="firebrick",
                      annotation_text=f"β-VAE, β = {beta:g}: " + (f"σ² = {beta:g}" if quantity == "sigma2"
                                                                     else f"ln σ = ½ ln β = {level:.2f}"),
                      annotation_position="bottom right")
    fig.update_layout(height=480, xaxis_title="epoch" if x == "epoch" else "step",
                      yaxis_title="σ² (σx² MLE for AR-ELBO)" if quantity == "sigma2" else "ln σ",
                      legend={"orientation": "h", "y": -0.2}, margin={"l": 50, "r": 20, "t": 30, "b": 40})
    if log_x:
        fig.update_xaxes(type="log")
    if quantity == "sigma2":
        fig.update_yaxes(type="log")
    return fig

CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")

def latent_map_figure(coords: np.ndarray, labels: np.ndarray | None, images: torch.Tensor | None = None,
                      thumbnails: int = 0, highlight: Sequence[int] = (), title: str = "") -> go.Figure:
    """Scatter of map coordinates (2-D or 3-D), one trace per class; hover shows index and label.

    Each point's customdata is [index, label], so a selection maps back to images whatever the trace.
    `thumbnails` > 0 draws that many images at their points (2-D only): Plotly's hover boxes cannot
    hold images, so the map itself shows what lies where.
    """
    n, dim = coords.shape
    lab = np.full(n, -1) if labels is None else np.asarray(labels)[:n]
    fig = go.Figure()
    groups = sorted(set(int(v) for v in lab))
    for g in groups:
        idx = np.flatnonzero(lab == g)
        custom = np.stack([idx, lab[idx]], axis=1)
        name = ("all" if labels is None else "no label") if g < 0 else str(g)
        colour = CLASS_COLOURS[g % len(CLASS_COLOURS)] if g >= 0 else CLASS_COLOURS[0]
        hover = "<b>#%{customdata[0]}</b>" + ("" if g < 0 else "<br>label %{customdata[1]}") + "<extra></extra>"
        marker = {"size": 3 if dim == 3 else (4 if n > 3000 else 6), "color": colour, "opacity": 0.8}
        if dim == 3:
            fig.add_trace(go.Scatter3d(x=coords[idx, 0], y=coords[idx, 1], z=coords[idx, 2], mode="markers",
                                       name=name, customdata=custom, hovertemplate=hover, marker=marker))
        else:
            trace = go.Scattergl if n > 1500 else go.Scatter
            fig.add_trace(trace(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=name, customdata=custom,
                                hovertemplate=hover, marker=marker))
    highlight = [int(i) for i in highlight if 0 <= int(i) < n]
    if highlight and dim == 2:
        fig.add_trace(go.Scatter(x=coords[highlight, 0], y=coords[highlight, 1], mode="markers", name="picked",
                                 customdata=np.stack([highlight, lab[highlight]], axis=1),
                                 hovertemplate="<b>#%{customdata[0]}</b><extra>picked</extra>",
                                 marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}}))
    if thumbnails and images is not None and dim == 2:
        _add_thumbnails(fig, coords, images, thumbnails)
    layout: dict[str, Any] = {"height": 620, "margin": {"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                              "legend": {"title": {"text": "label" if labels is not None else ""},
                                         "itemsizing": "constant"},
                              "dragmode": "lasso" if dim == 2 else "orbit", "title": title or None}
    if dim == 2:
        layout["clickmode"] = "event+select"
        layout["yaxis"] = {"scaleanchor": "x", "scaleratio": 1}
    fig.update_layout(**layout)
    return fig

def _add_thumbnails(fig: go.Figure, coords: np.ndarray, images: torch.Tensor, count: int) -> None:
    import base64

    n = len(coords)
    pick = np.random.default_rng(0).choice(n, size=min(count, n), replace=False)
    span = float(max(np.ptp(coords[:, 0]), np.ptp(coords[:, 1]), 1e-6))
    size = span * 0.045
    for i in pick:
        png = to_png_bytes(make_grid(images[int(i)][None], nrow=1, padding=0))
        fig.add_layout_image(source="data:image/png;base64," + base64.b64encode(png).decode(), xref="x", yref="y",
                             x=float(coords[i, 0]), y=float(coords[i, 1]), sizex=size, sizey=size,
                             xanchor="center", yanchor="middle", layer="above", opacity=0.9)

def transfer_figure(report: dict[str, Any]) -> go.Figure:
    """Grouped bars of our KNN accuracy per setting and model, with the paper's values as open diamonds."""
    table = report["table"]
    cols = [c for c in TRANSFER_COLUMNS if any((r.get("ours") or {}).get(c) is not None for r in table)]
    fig = go.Figure()
    for i, r in enumerate(table):
        name = f"{r.get('name', r.get('preset'))} (z = {r.get('latent')})"
        colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        ours = [finite_number((r.get("ours") or {}).get(c)) for c in cols]
        ours = [None if v is None else 100 * v for v in ours]
        fig.add_trace(go.Bar(name=name, x=[TRANSFER_COLUMN_NAMES[c] for c in cols], y=ours, marker_color=colour,
                             offsetgroup=str(i), text=[f"{v:.1f}" if v is not None else "" for v in ours],
                             textposition="outside"))
        paper = [finite_number((r.get("paper") or {}).get(c)) for c in cols]
        if any(v is not None for v in paper):
            fig.add_trace(go.Scatter(name="paper (Table 1)", x=[TRANSFER_COLUMN_NAMES[c] for c in cols], y=paper,
                                     mode="markers", offsetgroup=str(i), legendgroup="paper",
                                     showlegend=not any(t.legendgroup == "paper" for t in fig.data),
                                     marker={"symbol": "diamond-open", "size": 11, "color": "black",
                                             "line": {"width": 2}},
                                     hovertemplate=f"{name}, paper: %{{y:.1f}} %<extra></extra>"))
    fig.update_layout(barmode="group", scattermode="group", height=400, yaxis={"title": "KNN accuracy (%)",
                      "range": [0, 105]}, legend={"orientation": "h", "y": -0.18},
                      margin={"l": 50, "r": 10, "t": 20, "b": 40})
    return fig

def transfer_curve_figure(report: dict[str, Any]) -> go.Figure | None:
    """Aff accuracy against the number of labelled KNN latents (the paper's Figure 2), mean ± s.d."""
    curves = report.get("figure2") or []
    fig = go.Figure()
    for r in curves:
        points = sorted((int(n), v) for n, v in (r.get("curve") or {}).items() if isinstance(v, dict))
        if not points:
            continue
        fig.add_trace(go.Scatter(x=[n for n, _ in points], y=[100 * v["mean"] for _, v in points],
                                 error_y={"type": "data", "array": [100 * v.get("std", 0) for _, v in points]},
                                 mode="lines+markers",
                                 name=f"{r.get('name')} (z = {r.get('latent')}, trained on {r.get('source')})"))
    if not fig.data:
        return None
    fig.update_layout(height=360, xaxis={"type": "log", "title": "labelled KNN training latents"},
                      yaxis_title="Aff accuracy (%)", legend={"orientation": "h", "y": -0.25},
                      margin={"l": 50, "r": 10, "t": 20, "b": 40})
    return fig
