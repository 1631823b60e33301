"""Views for latent spaces that are not a plain vector: VQ codebooks (usage and decoded codes), the
hypersphere (SVAE) and the Poincaré ball (Poincaré VAE). No Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from explorer.figures import CLASS_COLOURS
from vaecore import PretrainedModel
from vaecore.components.kinds import Geometry


# VQ codebooks -----------------------------------------------------------------------------------------
def is_quantised(model: PretrainedModel) -> bool:
    """Whether the model's latents are codebook entries (VQ-VAE, HRQ-VAE) with a code map to read."""
    return (model.capabilities.geometry is Geometry.DISCRETE and hasattr(model, "code_map")
            and hasattr(model, "codebooks"))


def levels(model: PretrainedModel) -> int:
    """Codebooks stacked per position (1 for a VQ-VAE, the residual levels of an HRQ-VAE)."""
    return int(getattr(model, "levels", 1))


def positions(model: PretrainedModel) -> int:
    """Code positions per image (h·w of the code map; 1 for one code vector per image)."""
    h, w = getattr(model, "map_size", (1, 1))
    return int(h) * int(w)


@torch.no_grad()
def codebook_usage(model: PretrainedModel, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    """How often each code is chosen on images x: (levels, num_codes) counts; every level's row sums to
    len(x) × positions (one code per position and level)."""
    model.eval()
    h, w = model.map_size
    k = int(model.codebooks().shape[1])
    counts = np.zeros((levels(model), k), dtype=np.int64)
    for i in range(0, len(x), batch):
        codes = model.code_map(x[i:i + batch].to(model.device, torch.float32))
        codes = codes.reshape(codes.shape[0], h, w, levels(model)).reshape(-1, levels(model)).cpu().numpy()
        for level in range(levels(model)):
            counts[level] += np.bincount(codes[:, level], minlength=k)
    return counts


def perplexity(counts: np.ndarray) -> float:
    """exp(entropy) of a usage histogram: the effective number of codes in use."""
    p = counts / max(int(counts.sum()), 1)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum())) if len(p) else 0.0


@torch.no_grad()
def decoded_codes(model: PretrainedModel, codes: Sequence[int], level: int = 0) -> torch.Tensor:
    """The image of each code of a level decoded on its own: the code vector at every position of the map
    (B = len(codes), C, H, W). Deeper HRQ levels are small residual corrections, so level 0 reads best."""
    model.eval()
    book = model.codebooks()[level]
    vectors = book[torch.as_tensor(list(codes), dtype=torch.long, device=book.device)]
    rows = vectors.repeat_interleave(positions(model), dim=0)
    latents = model.rows_to_latents(rows, len(codes))
    return model.decode(latents).detach().float().cpu()


def usage_figure(counts: np.ndarray) -> go.Figure:
    """Bars of each code's count, one colour per level (codes in index order)."""
    fig = go.Figure()
    for level, row in enumerate(counts):
        used = int((row > 0).sum())
        fig.add_trace(go.Bar(x=np.arange(len(row)), y=row, name=f"level {level} ({used} used)" if len(counts) > 1
                             else f"{used} of {len(row)} codes used",
                             hovertemplate="code %{x}: %{y:,} positions<extra></extra>"))
    fig.update_layout(barmode="group", height=300, xaxis_title="code", yaxis_title="positions using it",
                      legend={"orientation": "h", "y": 1.12}, margin={"l": 50, "r": 10, "t": 30, "b": 40})
    return fig


# sphere and Poincaré ball ---------------------------------------------------------------------------
def _principal_axes(z: np.ndarray, k: int) -> np.ndarray:
    """The k leading right singular vectors of z without centring (directions through the origin)."""
    _, _, vt = np.linalg.svd(z.astype(np.float64), full_matrices=False)
    axes = vt[:k]
    if axes.shape[0] < k:  # fewer latent dimensions than k: pad with zero axes
        axes = np.vstack([axes, np.zeros((k - axes.shape[0], z.shape[1]))])
    return axes


SPHERE_METHOD = ("each latent direction z/‖z‖ projected onto the 3 leading principal directions through the "
                 "origin (PCA without centring) and renormalised to unit length, so every point lies on the sphere")
DISK_METHOD = ("each ball point projected orthogonally onto the 2 leading principal directions through the origin "
               "(PCA without centring) and divided by the ball radius 1/√c; a projection never lengthens a vector, "
               "so every point stays inside the unit disk, and a point near the rim is near the ball's boundary")


def sphere_coordinates(z: np.ndarray) -> np.ndarray:
    """(n, 3) points on the unit sphere S² for latents on S^{d−1} (see SPHERE_METHOD)."""
    u = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    p = u @ _principal_axes(u, 3).T
    return (p / np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)


def disk_coordinates(z: np.ndarray, curvature: float = 1.0) -> np.ndarray:
    """(n, 2) points in the unit disk for latents in the Poincaré ball of curvature −c (see DISK_METHOD)."""
    radius = 1.0 / np.sqrt(curvature)
    return ((z @ _principal_axes(z, 2).T) / radius).astype(np.float32)


def _by_label(labels: np.ndarray | None, n: int) -> list[tuple[str, np.ndarray, str]]:
    lab = np.full(n, -1) if labels is None else np.asarray(labels)[:n]
    return [("all" if labels is None or g < 0 else str(g), np.flatnonzero(lab == g),
             CLASS_COLOURS[g % len(CLASS_COLOURS)] if g >= 0 else CLASS_COLOURS[0]) for g in sorted(set(lab.tolist()))]


def sphere_figure(points: np.ndarray, labels: np.ndarray | None, indices: np.ndarray | None = None) -> go.Figure:
    """The latents on a translucent unit sphere, one colour per label."""
    ids = np.arange(len(points)) if indices is None else np.asarray(indices)
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 40), np.linspace(0, np.pi, 20))
    fig = go.Figure(go.Surface(x=np.cos(u) * np.sin(v), y=np.sin(u) * np.sin(v), z=np.cos(v), opacity=0.12,
                               showscale=False, colorscale=[[0, "#adb5bd"], [1, "#adb5bd"]], hoverinfo="skip",
                               name="unit sphere"))
    for name, sel, colour in _by_label(labels, len(points)):
        fig.add_trace(go.Scatter3d(x=points[sel, 0], y=points[sel, 1], z=points[sel, 2], mode="markers", name=name,
                                   customdata=ids[sel], hovertemplate="#%{customdata}<extra>" + name + "</extra>",
                                   marker={"size": 2.5, "color": colour, "opacity": 0.85}))
    fig.update_layout(height=600, margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend={"itemsizing": "constant"},
                      scene={"aspectmode": "cube", **{a: {"range": [-1.1, 1.1]} for a in ("xaxis", "yaxis", "zaxis")}})
    return fig


def disk_figure(points: np.ndarray, labels: np.ndarray | None, indices: np.ndarray | None = None) -> go.Figure:
    """The latents inside the unit circle (the Poincaré disk's boundary drawn), one colour per label."""
    ids = np.arange(len(points)) if indices is None else np.asarray(indices)
    fig = go.Figure()
    fig.add_shape(type="circle", x0=-1, y0=-1, x1=1, y1=1, line={"color": "black", "width": 1.5}, layer="below")
    for name, sel, colour in _by_label(labels, len(points)):
        fig.add_trace(go.Scatter(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name, customdata=ids[sel],
                                 hovertemplate="#%{customdata}<extra>" + name + "</extra>",
                                 marker={"size": 5, "color": colour, "opacity": 0.8}))
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"itemsizing": "constant"},
                      xaxis={"range": [-1.05, 1.05], "zeroline": False},
                      yaxis={"range": [-1.05, 1.05], "scaleanchor": "x", "scaleratio": 1, "zeroline": False})
    return fig
