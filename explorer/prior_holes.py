"""The Latent map's prior-hole view: the engine's `vaecore.evaluation.prior_holes` on the map's images, once per model
version, image source and count, with its two figures (per-dimension moments, prior draws on the PCA map)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from explorer.caches import load_model
from explorer.catalog import model_stamp
from explorer.sources import source_images, source_token
from vaecore.evaluation.prior_holes import PriorHoles, prior_holes

N_PRIOR = 1000
SHOWN = 16


@st.cache_resource(show_spinner=False, max_entries=8)
def _holes(spec: str, stamp: float, source: str, token: str, n: int) -> tuple[PriorHoles | None, str, Any, Any]:
    model = load_model(spec)
    x, _ = source_images(model, source)
    try:
        holes = prior_holes(model, x[:n], n_prior=N_PRIOR)
    except ValueError as e:
        return None, str(e), None, None
    with torch.no_grad():
        model.eval()
        z = holes.z_prior.to(model.device)
        inside, outside = z[torch.from_numpy(holes.in_hole)][:SHOWN], z[torch.from_numpy(~holes.in_hole)][:SHOWN]
        decoded_in = model.decode(inside).cpu() if len(inside) else None
        decoded_out = model.decode(outside).cpu() if len(outside) else None
    return holes, "", decoded_in, decoded_out


def holes_for(spec: str, source: str, n: int) -> tuple[PriorHoles | None, str, Any, Any]:
    """(the engine's PriorHoles or None, why not, decoded hole draws, decoded draws outside the holes)."""
    model = load_model(spec)
    return _holes(spec, model_stamp(spec), source, source_token(model, source), n)


def dims_figure(holes: PriorHoles) -> go.Figure:
    """Per dimension: the aggregate posterior's variance (the prior's is 1) and its moment-matched KL from N(0, 1)."""
    names = [f"z{j}" for j in range(len(holes.var))]
    fig = go.Figure([go.Bar(x=names, y=holes.var, name="variance of q(z) (prior: 1)", marker_color="#3b5bdb"),
                     go.Bar(x=names, y=holes.kl_per_dim, name="KL(N(mean, var) ‖ N(0, 1)), nats",
                            marker_color="#f08c00")])
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(barmode="group", height=280, legend={"orientation": "h", "y": -0.3},
                      margin={"l": 50, "r": 10, "t": 10, "b": 40})
    return fig


def map_figure(map_coords: np.ndarray, prior_coords: np.ndarray, in_hole: np.ndarray) -> go.Figure:
    """The map's points (grey) with the prior draws placed by the same projection, holes in red."""
    fig = go.Figure(go.Scattergl(x=map_coords[:, 0], y=map_coords[:, 1], mode="markers", name="images (q(z|x) means)",
                                 marker={"size": 4, "color": "#adb5bd"}))
    for mask, label, colour in ((~in_hole, "prior draws that the data reaches", "#3b5bdb"),
                                (in_hole, "prior draws in a hole", "#e03131")):
        fig.add_trace(go.Scattergl(x=prior_coords[mask, 0], y=prior_coords[mask, 1], mode="markers", name=label,
                                   marker={"size": 5, "color": colour}))
    fig.update_layout(height=420, legend={"orientation": "h", "y": -0.15}, margin={"l": 40, "r": 10, "t": 10, "b": 40})
    return fig
