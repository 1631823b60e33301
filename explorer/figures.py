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
    TRANSFER_COLUMN_NAMES,
    TRANSFER_COLUMNS,
    finite_number,
    metric_title,
    series,
    sigma_trace,
)
from vaecore.components.likelihood_facts import LOG_SIGMA, SIGMA2_MLE
from vaecore.data.images import make_grid, to_png_bytes
from vaecore.evaluation.metrics import COLLAPSED_KL
from vaecore.evaluation.registry import METRICS
from vaecore.training.records import describe


def metric_bar(results: dict[str, dict[str, Any]], metric: str) -> go.Figure:
    """A bar per model for one metric with its SE or seeds' s.d. as error bars (models where it is undefined are
    left out)."""
    from vaecore.evaluation.registry import outcome
    from vaecore.evaluation.uncertainty import Over

    labels = [k for k, r in results.items() if finite_number(r.get(metric)) is not None]
    values = [finite_number(results[k][metric]) for k in labels]
    palette = plotly.colors.qualitative.Plotly
    colors = [palette[list(results).index(k) % len(palette)] for k in labels]
    errors = []
    for k in labels:  # ± SE over images or ± s.d. over seeds, where the evaluation has it
        e = outcome(results[k], metric).estimate
        errors.append(0.0 if e is None else (e.sd if e.over is Over.SEEDS else e.se))
    fig = go.Figure(go.Bar(x=labels, y=values, text=[f"{v:.4g}" for v in values], textposition="auto",
                           marker_color=colors, error_y={"type": "data", "array": errors, "visible": any(errors)}))
    better = METRICS[metric].direction.phrase if metric in METRICS else ""
    fig.update_layout(title=metric_title(metric) + (f" — {better}" if better else ""), height=280,
                      margin={"l": 40, "r": 10, "t": 50, "b": 40})
    return fig


def k_curve(rows: Sequence[dict[str, float]], label: str) -> go.Figure:
    """−log p against the number of importance samples K (log axis), ± SE over the test images."""
    ks = [r["K"] for r in rows]
    fig = go.Figure(go.Scatter(x=ks, y=[r["−log p (nats)"] for r in rows], mode="lines+markers", name=label,
                               error_y={"type": "data", "array": [r["± SE"] for r in rows]}))
    fig.update_layout(title=f"{label}: IWAE estimate of −log p against K", height=320,
                      xaxis={"title": "K (importance samples per image)", "type": "log"},
                      yaxis={"title": "−log p of the 8-bit image (nats)"}, margin={"l": 50, "r": 10, "t": 50, "b": 40})
    return fig


TRAINING_PANELS = ("loss", "recon", "kl", "mmd", "z_norm", "iwae_bound", LOG_SIGMA, SIGMA2_MLE, "lr", "images_per_s")
"""The logged keys the training figure draws, in panel order; titles and log axes from `records.LOG_KEYS`."""


def smooth(ys: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a debiased exponential moving average with weight in [0, 1)."""
    if weight <= 0:
        return list(ys)
    out, avg = [], 0.0
    for i, y in enumerate(ys, start=1):
        avg = weight * avg + (1 - weight) * y
        out.append(avg / (1 - weight ** i))
    return out


def training_panels(runs: dict[str, Sequence[dict[str, Any]]]) -> list[str]:
    """The panels (record keys) any of the runs logs: panels without data (ln σ of a Bernoulli model) are left out."""
    present = {k for records in runs.values() for r in records if r.get("kind") == "step" for k in r}
    return [k for k in TRAINING_PANELS if k in present]


def training_figure(records: Sequence[dict[str, Any]] | dict[str, Sequence[dict[str, Any]]], x: str = "step",
                    smoothing: float = 0.0) -> go.Figure:
    """A run's curves (or several runs overlaid, one colour each): loss with validation, reconstruction,
    the regulariser, ln σ or σx² when logged, learning rate and speed; `smoothing` is TensorBoard's EMA weight."""
    runs = records if isinstance(records, dict) else {"": records}
    keys = training_panels(runs) or ["loss"]
    cols = 3
    rows = math.ceil(len(keys) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[describe(k).label for k in keys],
                        horizontal_spacing=0.07, vertical_spacing=0.22 if rows > 1 else 0.1)
    palette = plotly.colors.qualitative.Plotly
    for n, (label, recs) in enumerate(runs.items()):
        colour = palette[n % len(palette)]
        for i, key in enumerate(keys):
            row, col = divmod(i, cols)
            xs, ys = series(recs, key, x=x)
            name = label or "training (logged steps)"
            fig.add_trace(go.Scatter(x=xs, y=smooth(ys, smoothing), mode="lines+markers" if len(xs) < 30 else "lines",
                                     name=name, legendgroup=name, showlegend=i == 0, line={"width": 1.6,
                                     "color": colour}, marker={"size": 4},
                                     hovertemplate=f"{describe(key).label}: %{{y:.4g}}<extra>{label}</extra>"),
                          row=row + 1, col=col + 1)
        vx, vy = series(recs, "val_loss", kind="epoch", x=x)
        if vx:
            vname = f"{label} validation" if label else "validation (per epoch)"
            fig.add_trace(go.Scatter(x=vx, y=vy, mode="markers+lines", name=vname, legendgroup=vname,
                                     line={"dash": "dot", "color": colour if label else palette[1]}), row=1, col=1)
    fig.update_layout(height=300 * rows + 60, margin={"l": 40, "r": 20, "t": 60, "b": 40},
                      legend={"orientation": "h", "y": 1.0 + 0.25 / rows, "yanchor": "bottom", "x": 0},
                      modebar={"orientation": "v"})
    fig.update_xaxes(title_text=x, row=rows)
    for i, key in enumerate(keys):
        if describe(key).log_axis:
            fig.update_yaxes(type="log", exponentformat="power", row=i // cols + 1, col=i % cols + 1)
    return fig


TRACE_COLOURS = ("#000000", "#E69F00", "#0072B2", "#009E73", "#CC0000", "#CC79A7", "#56B4E9", "#6A3D9A",
                 "#999933", "#A0522D")
"""One colour per trace, every two at least 25 apart in CIELAB (ΔE76): Okabe & Ito's palette, then purple, olive and
sienna."""
TRACE_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
TRACE_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down")


def trace_style(i: int) -> dict[str, Any]:
    """The i-th trace's colour, dash and marker: no two of the first 30 traces share all three, so curves that lie
    on each other stay visible (a dash over a solid line)."""
    return {"color": TRACE_COLOURS[i % len(TRACE_COLOURS)], "dash": TRACE_DASHES[i % len(TRACE_DASHES)],
            "symbol": TRACE_SYMBOLS[i % len(TRACE_SYMBOLS)]}


def coinciding(curves: dict[str, tuple[Sequence[float], Sequence[float]]],
               fraction: float = 0.02) -> list[tuple[str, str, float]]:
    """Pairs of curves (x, y) that lie on each other: over their common x range, y differs by at most `fraction`
    of the plotted y range at every point of the first (the second interpolated). (a, b, largest difference)."""
    ys = [v for _, y in curves.values() for v in y]
    if not ys:
        return []
    tol = fraction * max(max(ys) - min(ys), 1e-12)
    names = [k for k, (x, _) in curves.items() if len(x)]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            xa, ya = np.asarray(curves[a][0], float), np.asarray(curves[a][1], float)
            xb, yb = np.asarray(curves[b][0], float), np.asarray(curves[b][1], float)
            order = np.argsort(xb)
            lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
            inside = (xa >= lo) & (xa <= hi)
            if inside.sum() < 2:
                continue
            gap = float(np.abs(ya[inside] - np.interp(xa[inside], xb[order], yb[order])).max())
            if gap <= tol:
                out.append((a, b, gap))
    return out


def sigma_figure(traces: dict[str, Sequence[dict[str, Any]]], x: str = "epoch", quantity: str = "log_sigma",
                 beta: float | None = 0.01, log_x: bool = False) -> go.Figure:
    """ln σ against training time for several models, with the σ = 1 and β-VAE levels (σ-VAE Fig. 5).

    The reference levels are drawn below the curves (a fixed-σ model's curve lies exactly on one) and named in the
    legend, not on the plot where a label would sit on the curves; each curve has its own colour, dash and marker.
    """
    fig = go.Figure()
    log_y = quantity == "sigma2"
    levels = [(1.0 if log_y else 0.0, "dash", "gray",
               "fixed σ = 1 (Gaussian VAE): " + ("σ² = 1" if log_y else "ln σ = 0"))]
    if beta:
        level = beta if log_y else 0.5 * math.log(beta)
        levels.append((level, "dot", "firebrick", f"β-VAE, β = {beta:g}: " + (f"σ² = {beta:g}" if log_y
                       else f"ln σ = ½ ln β = {level:.2f}")))
    for level, dash, colour, text in levels:
        fig.add_hline(y=level, line_dash=dash, line_color=colour, line_width=1, layer="below")
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=text, legendgroup="reference",
                                 line={"dash": dash, "color": colour, "width": 1}, hoverinfo="skip"))
    for i, (label, records) in enumerate(traces.items()):
        xs, ys = sigma_trace(records, x, quantity)
        style = trace_style(i)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label,
                                 line={"width": 2.5, "color": style["color"], "dash": style["dash"]},
                                 marker={"size": 6 if len(xs) < 60 else 4, "symbol": style["symbol"],
                                         "color": style["color"]},
                                 hovertemplate=f"{label}: %{{y:.3g}}<extra></extra>"))
    fig.update_layout(height=480, xaxis_title="epoch" if x == "epoch" else "step",
                      yaxis_title="σ² (σx² MLE for AR-ELBO)" if log_y else "ln σ",
                      legend={"orientation": "h", "y": -0.2}, margin={"l": 50, "r": 20, "t": 30, "b": 40})
    if log_x:
        fig.update_xaxes(type="log")
    if quantity == "sigma2":
        fig.update_yaxes(type="log")
    return fig


CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")


def latent_map_figure(coords: np.ndarray, labels: np.ndarray | None, images: torch.Tensor | None = None,
                      thumbnails: int = 0, title: str = "", indices: np.ndarray | None = None,
                      colour: np.ndarray | None = None, colour_title: str = "",
                      marked: Sequence[int] = (), dragmode: str = "select") -> go.Figure:
    """Scatter of map coordinates (2-D or 3-D): one trace per class, or one trace coloured by a per-image
    quantity with a colour bar; hover shows index, label and that quantity.

    Each point's customdata is [index, label] with the image's index in its source (`indices`, default
    0..n-1), so a selection maps back to images whatever the trace or subset. `marked` (source indices)
    draws rings around given points (the nearest neighbours); `thumbnails` > 0 draws that many images at
    their points (2-D only). The figure does not depend on the current selection, so redrawing it never
    resets the chart's selection. `dragmode` (2-D) is what a drag does: "select" (box), "lasso" or "pan"; only
    with "pan" does a click select a point (Streamlit turns click-selection off while a drag selects).
    """
    n, dim = coords.shape
    ids = np.arange(n) if indices is None else np.asarray(indices)
    lab = np.full(n, -1) if labels is None else np.asarray(labels)[:n]
    fig = go.Figure()
    size = 3 if dim == 3 else (4 if n > 3000 else 6)
    trace_kind = go.Scattergl if n > 1500 else go.Scatter

    def add(sel: np.ndarray, name: str, marker: dict[str, Any], hover: str) -> None:
        custom = np.stack([ids[sel], lab[sel]], axis=1)
        if colour is not None:
            custom = np.column_stack([custom, colour[sel]])
        if dim == 3:
            fig.add_trace(go.Scatter3d(x=coords[sel, 0], y=coords[sel, 1], z=coords[sel, 2], mode="markers",
                                       name=name, customdata=custom, hovertemplate=hover, marker=marker))
        else:
            fig.add_trace(trace_kind(x=coords[sel, 0], y=coords[sel, 1], mode="markers", name=name,
                                     customdata=custom, hovertemplate=hover, marker=marker))

    if colour is not None:
        hover = ("<b>#%{customdata[0]}</b>" + ("" if labels is None else "<br>label %{customdata[1]}")
                 + f"<br>{colour_title}: %{{customdata[2]:.4g}}<extra></extra>")
        add(np.arange(n), colour_title, {"size": size, "color": colour, "colorscale": "Viridis", "opacity": 0.85,
                                         "colorbar": {"title": {"text": colour_title, "side": "right"},
                                                      "thickness": 14}, "showscale": True}, hover)
    else:
        for g in sorted(set(int(v) for v in lab)):
            sel = np.flatnonzero(lab == g)
            name = ("all" if labels is None else "no label") if g < 0 else str(g)
            hover = "<b>#%{customdata[0]}</b>" + ("" if g < 0 else "<br>label %{customdata[1]}") + "<extra></extra>"
            add(sel, name, {"size": size, "opacity": 0.8,
                            "color": CLASS_COLOURS[g % len(CLASS_COLOURS)] if g >= 0 else CLASS_COLOURS[0]}, hover)
    position = {int(v): k for k, v in enumerate(ids)}
    rings = [position[int(i)] for i in marked if int(i) in position]
    if rings and dim == 2:
        fig.add_trace(go.Scatter(x=coords[rings, 0], y=coords[rings, 1], mode="markers", name="neighbours",
                                 customdata=np.stack([ids[rings], lab[rings]], axis=1), hoverinfo="skip",
                                 marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}}))
    if thumbnails and images is not None and dim == 2:
        _add_thumbnails(fig, coords, images, thumbnails)
    layout: dict[str, Any] = {"height": 620, "margin": {"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                              "legend": {"title": {"text": "label" if labels is not None and colour is None else ""},
                                         "itemsizing": "constant"}, "showlegend": colour is None,
                              "dragmode": dragmode if dim == 2 else "orbit", "title": title or None,
                              "uirevision": "map"}
    if dim == 2:
        layout["clickmode"] = "event+select"
        layout["yaxis"] = {"scaleanchor": "x", "scaleratio": 1}
    fig.update_layout(**layout)
    return fig


def kl_per_dim_figure(kl: Sequence[float], title: str = "") -> go.Figure:
    """Bars of the average KL per latent dimension, sorted, with the engine's collapse threshold (COLLAPSED_KL)."""
    order = sorted(range(len(kl)), key=lambda j: -kl[j])
    fig = go.Figure(go.Bar(x=[f"z{j}" for j in order], y=[kl[j] for j in order],
                           marker_color=["#3b5bdb" if kl[j] > COLLAPSED_KL else "#adb5bd" for j in order],
                           hovertemplate="%{x}: %{y:.4g} nats<extra></extra>"))
    fig.add_hline(y=COLLAPSED_KL, line_dash="dot", line_color="firebrick",
                  annotation_text=f"active above {COLLAPSED_KL} nats",
                  annotation_position="top right")
    fig.update_layout(height=260, title=title or None, yaxis={"title": "KL (nats)", "type": "log"},
                      margin={"l": 50, "r": 10, "t": 30 if title else 10, "b": 40})
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


def rate_distortion_figure(points: dict[str, Any], curves: dict[str, list[tuple[str, Any]]] | None = None,
                           iso: Sequence[tuple[float, list[float], list[float]]] = ()) -> go.Figure:
    """The rate–distortion plane: a point per model (± SE bars), a curve per sweep (its points in the order of the
    swept values, each labelled with its value), dotted lines of equal ELBO (R + D = −ELBO)."""
    fig = go.Figure()
    for c, xs, ys in iso:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"dash": "dot", "color": "#adb5bd", "width": 1},
                                 name=f"ELBO = {-c:.4g}", legendgroup="iso", showlegend=False, hoverinfo="name"))
        fig.add_annotation(x=xs[0], y=ys[0], text=f"ELBO {-c:.4g}", showarrow=False, xanchor="left",
                           yanchor="bottom", font={"size": 10, "color": "#868e96"})
    for i, (label, p) in enumerate(points.items()):
        style = trace_style(i)
        fig.add_trace(go.Scatter(
            x=[p.rate], y=[p.distortion], mode="markers", name=label,
            marker={"size": 11, "symbol": style["symbol"], "color": style["color"]},
            error_x={"type": "data", "array": [2 * (p.rate_se or 0)], "visible": p.rate_se is not None},
            error_y={"type": "data", "array": [2 * (p.distortion_se or 0)], "visible": p.distortion_se is not None},
            hovertemplate=f"{label}<br>R %{{x:.4g}} nats<br>D %{{y:.4g}} nats<br>ELBO {p.elbo:.4g}<extra></extra>"))
    for j, (label, members) in enumerate((curves or {}).items()):
        style = trace_style(len(points) + j)
        fig.add_trace(go.Scatter(
            x=[p.rate for _, p in members], y=[p.distortion for _, p in members], mode="lines+markers+text",
            name=label, text=[v for v, _ in members], textposition="top center",
            line={"color": style["color"], "dash": style["dash"], "width": 2}, marker={"size": 8}))
    fig.update_layout(height=520, xaxis_title="rate R = E KL(q(z|x) ‖ p(z)) (nats)",
                      yaxis_title="distortion D = −E log p(x|z) (nats)", legend={"orientation": "h", "y": -0.18},
                      margin={"l": 60, "r": 20, "t": 20, "b": 40})
    return fig


def kl_dims_over_training(records: Sequence[dict[str, Any]]) -> tuple[list[float], np.ndarray] | None:
    """(epochs, KL matrix latent dimension × epoch) from a run's epoch records' `val_kl_dims` (the trainer's
    validation, the engine's kl-per-dim on the validation images), or None when the run logged none."""
    rows = [(float(r.get("epoch", 0)), r["val_kl_dims"]) for r in records
            if r.get("kind") == "epoch" and isinstance(r.get("val_kl_dims"), list)]
    if not rows or len({len(v) for _, v in rows}) != 1:
        return None
    return [e for e, _ in rows], np.asarray([v for _, v in rows], dtype=np.float64).T


def kl_dims_heatmap(epochs: Sequence[float], kl: np.ndarray) -> go.Figure:
    """KL per latent dimension (rows) over training (columns), log colour scale; dimensions under the engine's
    collapse threshold (COLLAPSED_KL) at the last epoch are named as collapsed."""
    labels = [f"z{j}" + (" (collapsed)" if kl[j, -1] < COLLAPSED_KL else "") for j in range(kl.shape[0])]
    fig = go.Figure(go.Heatmap(z=np.log10(np.maximum(kl, 1e-6)), x=[f"{e:g}" for e in epochs], y=labels,
                               customdata=kl, colorscale="Viridis",
                               colorbar={"title": "log₁₀ KL (nats)"},
                               hovertemplate="%{y}, epoch %{x}: %{customdata:.4g} nats<extra></extra>"))
    fig.update_layout(height=max(220, 18 * kl.shape[0] + 80), xaxis_title="epoch", yaxis={"autorange": "reversed"},
                      margin={"l": 90, "r": 10, "t": 10, "b": 40})
    return fig
