"""Latent maps: encode many images, project their latents to 2-D or 3-D, and read selections back.

`encode_images` turns a split into posterior means in batches (reporting progress, so a UI can draw
a bar); `project` maps them with PCA, t-SNE (scikit-learn) or UMAP (umap-learn) with each method's
main parameters; the selection helpers turn a plotted selection (point payloads, a box or a lasso
polygon) into indices of the encoded images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from vaecore.latent.encode import encode

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Param:
    """One tunable parameter of a projection method, with a default and a range for a UI."""

    name: str
    default: float | int | str
    low: float | int | None = None
    high: float | int | None = None
    help: str = ""
    choices: tuple[str, ...] = ()


METHODS: dict[str, str] = {
    "pca": "PCA: linear, exact and instant; keeps global distances, classes may overlap",
    "tsne": "t-SNE: preserves neighbourhoods, well separated clusters; distances between clusters mean little",
    "umap": "UMAP: neighbourhoods plus more of the global layout; faster than t-SNE on large sets",
}

PARAMS: dict[str, tuple[Param, ...]] = {
    "pca": (Param("whiten", "no", choices=("no", "yes"), help="scale components to unit variance"),),
    "tsne": (
        Param("perplexity", 30.0, 5.0, 100.0, "effective number of neighbours each point attends to"),
        Param("early_exaggeration", 12.0, 4.0, 40.0, "how tightly clusters form early on"),
        Param("max_iter", 500, 250, 2000, "optimisation iterations (more: slower, more settled)"),
        Param("learning_rate", "auto", help="step size; 'auto' = max(N / early_exaggeration / 4, 50)"),
    ),
    "umap": (
        Param("n_neighbors", 15, 2, 200, "neighbourhood size: small = local detail, large = global shape"),
        Param("min_dist", 0.1, 0.0, 0.99, "how tightly points may pack in the map"),
        Param("metric", "euclidean", choices=("euclidean", "cosine", "manhattan"), help="latent distance"),
        Param("n_epochs", 200, 50, 1000, "layout optimisation epochs (more: slower, more settled)"),
        Param("init", "pca", choices=("pca", "spectral"),
              help="starting layout: PCA is fast; spectral (UMAP's default) can take longer on 10k points"),
    ),
}


def default_params(method: str) -> dict[str, Any]:
    """The default parameters of a projection method."""
    _check_method(method)
    return {p.name: p.default for p in PARAMS[method]}


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {list(METHODS)}")


@torch.no_grad()
def encode_images(model: torch.nn.Module, images: Tensor, batch_size: int = 500,
                  progress: Progress | None = None) -> np.ndarray:
    """Posterior means (N, d) as float32 NumPy, encoded `batch_size` images at a time (`latent.encode.encode`)."""
    if images.shape[0] == 0:
        raise ValueError("no images to encode")
    return encode(model, images, batch_size, progress).numpy()


SMALL = {"pca": 5000, "umap": 5000, "tsne": 0}  # below this many points a method runs on one worker thread
# (waking a pool costs more than it saves, and spinning OpenMP pools of torch and scikit-learn fight each other on a
# busy machine); t-SNE's 500 gradient iterations pay for the pool at any size: 2 threads took 0.55 vs 0.72 s (2-D)
# and 0.98 vs 1.8 s (3-D) at 500 points, 2.6-2.9 vs 4.3-5.1 s and 6.2-6.4 vs 11.4-11.6 s at 2,000 (2 idle cores)


def _threads(n: int, method: str) -> int:
    """Worker threads for `method` on n points: one below its SMALL size, else torch's (at most the CPUs)."""
    return 1 if n < SMALL[method] else max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def project(latents: np.ndarray, method: str = "pca", n_components: int = 2, seed: int = 0,
            **params: Any) -> np.ndarray:
    """Map latents (N, d) to (N, n_components) float32 coordinates with PCA, t-SNE or UMAP.

    Unknown parameter names raise ValueError (so a typo is not silently ignored). Latents with fewer
    dimensions than asked for are padded with zero columns; a single point maps to the origin.
    """
    return fit_projection(latents, method, n_components, seed, **params)[0]


def fit_projection(latents: np.ndarray, method: str = "pca", n_components: int = 2, seed: int = 0,
                   **params: Any) -> tuple[np.ndarray, Any]:
    """`project`'s coordinates and the fitted estimator (sklearn PCA / TSNE, umap.UMAP; None for a
    degenerate input): UMAP's `inverse_transform` maps map positions back to latents."""
    _check_method(method)
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}")
    x = np.asarray(latents, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"latents must be a non-empty (N, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("latents contain NaN or infinite values (is the model diverged?)")
    known = {p.name for p in PARAMS[method]}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown {method} parameter(s) {unknown}; known: {sorted(known)}")
    p = {**default_params(method), **params}
    n, d = x.shape
    k = min(n_components, d)
    with threadpool_limits(limits=_threads(n, method)):
        out, fitted = _project(x, method, k, seed, p)
    out = np.asarray(out, dtype=np.float32)
    if out.shape[1] < n_components:
        out = np.hstack([out, np.zeros((n, n_components - out.shape[1]), dtype=np.float32)])
    return out, fitted


def _project(x: np.ndarray, method: str, k: int, seed: int, p: dict[str, Any]) -> tuple[np.ndarray, Any]:
    n = x.shape[0]
    if n < 3 or k < 1:
        return np.zeros((n, k), dtype=np.float32), None
    if method == "pca":
        from sklearn.decomposition import PCA

        est = PCA(n_components=min(k, n), whiten=p["whiten"] in ("yes", True), random_state=seed)
        return est.fit_transform(x), est
    if method == "tsne":
        from sklearn.manifold import TSNE

        lr = p["learning_rate"]
        est = TSNE(n_components=k, perplexity=min(float(p["perplexity"]), (n - 1) / 3.0),
                   early_exaggeration=float(p["early_exaggeration"]), max_iter=int(p["max_iter"]),
                   learning_rate=lr if lr == "auto" else float(lr), init="pca", random_state=seed,
                   n_jobs=_threads(n, method))
        return est.fit_transform(x), est
    return _umap(x, k, seed, int(p["n_neighbors"]), float(p["min_dist"]), str(p["metric"]), int(p["n_epochs"]),
                 str(p["init"]))


def _umap(x: np.ndarray, k: int, seed: int, n_neighbors: int, min_dist: float, metric: str,
          n_epochs: int, init: str) -> tuple[np.ndarray, Any]:
    """UMAP with neighbours from scikit-learn's exact search and, by default, a PCA starting layout.

    Passing the k-NN graph in skips pynndescent, whose numba compilation dominates a first UMAP call
    in a fresh process (minutes on a busy 2-core machine); exact search on ~10k low-dimensional
    latents takes about a second. The spectral initialisation alone costs more than the 200 layout
    epochs on 10k points, so PCA is the default start.
    """
    import warnings

    import umap
    from sklearn.neighbors import NearestNeighbors

    n = x.shape[0]
    n_neighbors = max(2, min(n_neighbors, n - 1))
    dists, idx = NearestNeighbors(n_neighbors=n_neighbors, metric=metric).fit(x).kneighbors(x)
    if init not in ("pca", "spectral"):
        raise ValueError(f"UMAP init must be 'pca' or 'spectral', got {init!r}")
    init = init if n > k + 1 else "random"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_components=k, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                            n_epochs=n_epochs, random_state=seed, init=init, n_jobs=1,
                            precomputed_knn=(idx, dists.astype(np.float32), None))
        return reducer.fit_transform(x), reducer


def invertible(fitted: Any) -> bool:
    """Whether map coordinates of a projection fitted by `fit_projection` can be turned back into latents
    (PCA exactly, UMAP approximately; t-SNE has no inverse)."""
    return fitted is not None and hasattr(fitted, "inverse_transform")


def invert(fitted: Any, coords: np.ndarray) -> np.ndarray:
    """Latents (N, d) at map coordinates (N, k) of the projection `fit_projection` fitted and drew.

    PCA: the exact inverse of the drawn linear map (whitening undone) on the plane or space it spans, the
    other latent directions at the data mean, so a plotted point's coordinates give back that image's latent
    projected on the map's components. UMAP: its `inverse_transform`, an approximation that interpolates the
    latents of nearby map points. Columns beyond the projection's own (a map padded with zeros) are ignored.
    """
    if not invertible(fitted):
        raise ValueError("this projection has no inverse (t-SNE, or a degenerate map of fewer than 3 points)")
    c = np.asarray(coords, dtype=np.float32)
    if c.ndim != 2:
        raise ValueError(f"map coordinates must be (N, k), got shape {c.shape}")
    k = int(getattr(fitted, "n_components_", getattr(fitted, "n_components", c.shape[1])))
    if c.shape[1] < k:
        raise ValueError(f"the map has {k} coordinates per point, got {c.shape[1]}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(fitted.inverse_transform(c[:, :k]), dtype=np.float32)


# selections ----------------------------------------------------------------------------------------

def indices_from_points(points: Iterable[Mapping[str, Any]], n: int | None = None) -> list[int]:
    """Indices of the selected points of a Plotly selection event, sorted and without repeats.

    Each point's `customdata` (its first element when a list, or key "0" when a typed-array row) is taken as the
    global index: plots with one trace per class number points per trace, so `point_index` alone is ambiguous.
    Points without customdata fall back to `point_index`. Indices outside [0, n) are dropped when n is given.
    """
    out: set[int] = set()
    for pt in points:
        cd = pt.get("customdata")
        if isinstance(cd, Mapping):  # a typed-array row (numpy customdata) reaches Python as {"0": …, "1": …}
            cd = cd.get("0", cd.get(0))
        if isinstance(cd, list | tuple):
            cd = cd[0] if cd else None
        idx = cd if cd is not None else pt.get("point_index", pt.get("pointIndex"))
        if idx is None:
            continue
        try:
            i = int(idx)
        except (TypeError, ValueError):
            continue
        if i >= 0 and (n is None or i < n):
            out.add(i)
    return sorted(out)


def points_in_box(coords: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float]) -> np.ndarray:
    """Indices of 2-D points inside an axis-aligned box (either corner order)."""
    c = np.asarray(coords)[:, :2]
    (x0, x1), (y0, y1) = sorted(x_range), sorted(y_range)
    inside = (c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)
    return np.flatnonzero(inside)


def points_in_polygon(coords: np.ndarray, xs: Iterable[float], ys: Iterable[float]) -> np.ndarray:
    """Indices of 2-D points inside a lasso polygon (even-odd rule; the polygon closes itself)."""
    c = np.asarray(coords, dtype=np.float64)[:, :2]
    px, py = np.asarray(list(xs), dtype=np.float64), np.asarray(list(ys), dtype=np.float64)
    if px.shape != py.shape or px.size < 3:
        return np.zeros(0, dtype=np.int64)
    inside = np.zeros(len(c), dtype=bool)
    x, y = c[:, 0], c[:, 1]
    for i in range(px.size):
        xa, ya, xb, yb = px[i - 1], py[i - 1], px[i], py[i]
        crosses = (ya > y) != (yb > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (x < x_at)
    return np.flatnonzero(inside)


def selection_indices(selection: Mapping[str, Any] | None, coords: np.ndarray | None = None) -> list[int]:
    """Indices selected in a Streamlit Plotly selection (`event.selection`): its points, else its shapes.

    Points carry the indices directly; when a selection has only a box or lasso (e.g. after the
    figure was redrawn) the shapes are tested against `coords`.
    """
    if not selection:
        return []
    n = None if coords is None else len(coords)
    found = indices_from_points(selection.get("points") or [], n)
    if found or coords is None:
        return found
    hits: set[int] = set()
    for box in selection.get("box") or []:
        xs, ys = box.get("x") or [], box.get("y") or []
        if len(xs) >= 2 and len(ys) >= 2:
            hits.update(int(i) for i in points_in_box(coords, (xs[0], xs[-1]), (ys[0], ys[-1])))
    for lasso in selection.get("lasso") or []:
        hits.update(int(i) for i in points_in_polygon(coords, lasso.get("x") or [], lasso.get("y") or []))
    return sorted(hits)


def nearest(coords: np.ndarray, point: Iterable[float], k: int = 1) -> list[int]:
    """Indices of the k points of `coords` closest to `point` (in the map's own coordinates)."""
    c = np.asarray(coords, dtype=np.float64)
    p = np.asarray(list(point), dtype=np.float64)
    d = ((c[:, : p.size] - p) ** 2).sum(axis=1)
    return [int(i) for i in np.argsort(d)[:k]]


__all__ = [
    "METHODS", "PARAMS", "Param", "default_params", "encode_images", "fit_projection", "indices_from_points",
    "invert", "invertible", "nearest", "points_in_box", "points_in_polygon", "project", "selection_indices",
]
