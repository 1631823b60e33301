"""Latents and their 2-D/3-D maps, computed once per process and key, and the map selection of a session."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import streamlit as st

from explorer.caches import load_model
from explorer.catalog import model_stamp
from explorer.models import embed
from explorer.sources import source_images, source_token
from vaecore import PretrainedModel
from vaecore.evaluation.registry import METRICS
from vaecore.latent import projection as proj
from vaecore.utils import evaluating

MAP_SELECTION_KEY = "vae_map_selection"
# what the mouse does on a 2-D map (label, Plotly dragmode, the hint under the map). Streamlit lets a click select
# a point only while a drag does not select (it sets clickmode "event" under the box and lasso dragmodes), so
# clicking is a mode of its own.
MOUSE_MODES = {"box": ("Box select", "select", "Drag to box-select, double-click to clear."),
               "lasso": ("Lasso", "lasso", "Draw a lasso around points, double-click to clear."),
               "click": ("Click a point", "pan", "Click a point to pick it (shift-click adds one), drag to pan, "
                                                 "double-click to clear.")}


@st.cache_resource(show_spinner=False)
def _b_store() -> dict[str, OrderedDict]:
    return {"latents": OrderedDict(), "maps": OrderedDict(), "projections": OrderedDict(), "quantities": OrderedDict()}


def _remember(kind: str, key: tuple[Any, ...], value: Any, keep: int) -> Any:
    store = _b_store()[kind]
    store[key] = value
    store.move_to_end(key)
    while len(store) > keep:
        store.popitem(last=False)
    return value


def _recall(kind: str, key: tuple[Any, ...]) -> Any:
    store = _b_store()[kind]
    if key in store:
        store.move_to_end(key)
        return store[key]
    return None


def _latent_key(spec: str, model: PretrainedModel, source: str, n: int) -> tuple[Any, ...]:
    return (spec, model_stamp(spec), source_token(model, source), int(n))


def latents_for(spec: str, source: str, n: int, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Latent points (`model.embed`: posterior means, an AE's codes) of the first n images of a source,
    encoded once per (model version, source, n)."""
    model = load_model(spec)
    key = _latent_key(spec, model, source, n)
    found = _recall("latents", key)
    if found is None:
        x, _ = source_images(model, source)
        found = _remember("latents", key, embed(model, x[:n], progress=progress).numpy().astype(np.float32),
                          keep=12)
    return found


def _map_key(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> tuple[Any, ...]:
    model = load_model(spec)
    return (*_latent_key(spec, model, source, n), method, int(dim), tuple(sorted(params.items())))


def cached_map(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> np.ndarray | None:
    """A projection computed before with exactly these settings, or None."""
    return _recall("maps", _map_key(spec, source, n, method, dim, params))


def latent_map(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any],
               progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(n, dim) map coordinates of a source's latents, cached per (model, source, n, method, dim, params)
    together with the fitted projection (`map_projection`)."""
    key = _map_key(spec, source, n, method, dim, params)
    found = _recall("maps", key)
    if found is None:
        z = latents_for(spec, source, n, progress)
        if progress is not None:
            progress(1.0, f"running {method.upper()} on {len(z):,} latents…")
        coords, fitted = proj.fit_projection(z, method, dim, **params)
        _remember("projections", key, fitted, keep=4)
        found = _remember("maps", key, coords, keep=24)
    return found


def map_projection(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> Any:
    """The fitted estimator behind a map drawn before (e.g. umap.UMAP, whose `inverse_transform` decodes
    map positions), or None when it is no longer cached."""
    return _recall("projections", _map_key(spec, source, n, method, dim, params))


def set_map_selection(spec: str, source: str, indices: Sequence[int]) -> None:
    """Remember the map's selected image indices for this session (the Interpolation page reads them)."""
    st.session_state[MAP_SELECTION_KEY] = {"spec": spec, "source": source, "indices": [int(i) for i in indices]}


def map_selection(spec: str | None = None, source: str | None = None) -> list[int]:
    """The indices selected on the latent map, if it was made with this model and source (any when None)."""
    sel = st.session_state.get(MAP_SELECTION_KEY) or {}
    if spec is not None and sel.get("spec") != spec:
        return []
    if source is not None and sel.get("source") != source:
        return []
    return list(sel.get("indices") or [])


@st.cache_resource(show_spinner=False)
def warm_up_umap() -> threading.Thread:
    """Compile UMAP's numba code once per server process, in the background, so a first map is quick.

    numba's on-disk cache goes to NUMBA_CACHE_DIR (set by the app to its writable cache folder), so
    a restarted server loads the compiled code instead of compiling it again.
    """
    import pandas  # noqa: F401  (imported here first: umap imports it in the thread while a page's plotly
    # figure imports it lazily in the script thread, and the loser saw a half-initialised module)

    def run() -> None:
        try:
            rng = np.random.default_rng(0)
            proj.project(rng.normal(size=(300, 8)).astype(np.float32), "umap", 2, n_epochs=20)
        except Exception:  # noqa: BLE001 - a failed warm-up only means the first map compiles
            pass

    thread = threading.Thread(target=run, name="umap-warm-up", daemon=True)
    thread.start()
    return thread


# per-image quantities, neighbours, decoding map positions ------------------------------------------
QUANTITIES = {"label": "label", "recon": "reconstruction error (squared, summed over pixels)",
              "kl": f"{METRICS['kl'].label} ({METRICS['kl'].unit})",
              "elbo": f"{METRICS['elbo'].label} ({METRICS['elbo'].unit})",
              "norm": "‖z‖ (latent norm)",
              "sigma": "decoder ln σ (mean over pixels, at the posterior mean)"}
COLOUR_ORDER = ("elbo", "recon", "kl", "sigma", "norm")


def colour_options(quantities: dict[str, np.ndarray]) -> list[str]:
    """'label' and every per-image quantity defined for this model, in a fixed order."""
    return ["label"] + [q for q in COLOUR_ORDER if q in quantities]


def image_quantities(spec: str, source: str, n: int) -> dict[str, np.ndarray]:
    """Per-image numbers for colouring the map: reconstruction error, ‖z‖ and, where the model defines
    them, the KL to the prior, the ELBO and the decoder's ln σ (models whose σ varies per image, see
    `models.decoder_log_sigma`); computed once per (model version, source, n)."""

    from explorer.models import decoder_log_sigma, facts, kl_to_prior

    model = load_model(spec)
    key = _latent_key(spec, model, source, n)
    found = _recall("quantities", key)
    if found is not None:
        return found
    x, _ = source_images(model, source)
    x = x[:n]
    out: dict[str, list[np.ndarray]] = {"recon": [], "kl": [], "elbo": []}
    f = facts(model)
    with evaluating(model):  # the engine's inference path (measured kernels and memory format)
        for i in range(0, len(x), 500):
            xb = x[i:i + 500].to(model.device)
            out["recon"].append(((model.reconstruct(xb) - xb) ** 2).flatten(1).sum(1).cpu().numpy())
            kl = kl_to_prior(model, xb)
            if kl is not None:
                out["kl"].append(kl.numpy())
    if f.elbo:
        try:
            out["elbo"].append(per_image_elbo(model, x))
        except (ValueError, NotImplementedError):
            pass
    result = {k: np.concatenate(v).astype(np.float32) for k, v in out.items() if v and sum(map(len, v)) == len(x)}
    log_sigma = decoder_log_sigma(model, x)
    if log_sigma is not None and len(log_sigma) == len(x):
        result["sigma"] = log_sigma.numpy().astype(np.float32)
    result["norm"] = np.linalg.norm(latents_for(spec, source, n), axis=1).astype(np.float32)
    return _remember("quantities", key, result, keep=12)


ELBO_BATCH = 500
ELBO_SEED = 0
ELBO_NOTE = (f"one draw of z per image, the same draw for an image whatever the number of images shown (seed "
             f"{ELBO_SEED}, draws in blocks of {ELBO_BATCH}): a single-sample estimate, so it scatters around the "
             "image's expected ELBO")


def per_image_elbo(model: PretrainedModel, x: Any) -> np.ndarray:
    """The engine's per-image ELBO (`vaecore.evaluation` `elbo`, one draw of z each) of the images x, where image
    i's value depends on image i alone: x is padded to whole blocks of ELBO_BATCH, so every block draws the same
    noise whether 18 or 64 images are shown."""
    import torch

    from vaecore.evaluation.metrics.likelihood import elbo

    n = int(x.shape[0])
    padded = -(-n // ELBO_BATCH) * ELBO_BATCH
    if padded != n:
        x = torch.cat([x, x[-1:].expand(padded - n, *x.shape[1:])])
    return elbo(model, x, batch_size=ELBO_BATCH, seed=ELBO_SEED)[:n].numpy()


def codebook_usage_for(spec: str, source: str, n: int) -> np.ndarray:
    """`geometry.codebook_usage` of a VQ model on the first n images of a source, once per (model, source, n)."""
    from explorer.geometry import codebook_usage

    model = load_model(spec)
    key = ("codebook-usage", *_latent_key(spec, model, source, n))
    found = _recall("quantities", key)
    if found is None:
        x, _ = source_images(model, source)
        found = _remember("quantities", key, codebook_usage(model, x[:n]), keep=12)
    return found


def nearest_neighbours(z: np.ndarray, i: int, k: int = 8, among: np.ndarray | None = None) -> list[tuple[int, float]]:
    """The k images closest to image i in latent space (Euclidean), as (index, distance), nearest first."""
    pool = np.arange(len(z)) if among is None else np.asarray(among)
    pool = pool[pool != i]
    d = np.linalg.norm(z[pool] - z[i], axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return [(int(pool[j]), float(d[j])) for j in order]


def _subset_key(spec: str, source: str, n: int, subset: Sequence[int], method: str, dim: int,
                params: dict[str, Any]) -> tuple[Any, ...]:
    model = load_model(spec)
    idx = tuple(int(i) for i in subset)
    return (*_latent_key(spec, model, source, n), "subset", hash(idx), method, int(dim),
            tuple(sorted(params.items())))


def subset_map(spec: str, source: str, n: int, subset: Sequence[int], method: str, dim: int,
               params: dict[str, Any]) -> np.ndarray:
    """A fresh projection of the latents of a subset of images only (the map's 'isolate selection')."""
    key = _subset_key(spec, source, n, subset, method, dim, params)
    found = _recall("maps", key)
    if found is None:
        z = latents_for(spec, source, n)[[int(i) for i in subset]]
        coords, fitted = proj.fit_projection(z, method, dim, **params)
        _remember("projections", key, fitted, keep=4)
        found = _remember("maps", key, coords, keep=24)
    return found


class MapInverse:
    """From the coordinates of the map as drawn back to latents: `projection.invert` of the very projection
    that placed the points (PCA exactly, a 2-D UMAP approximately), or the identity where a model's 2-D
    latent is decoded directly."""

    def __init__(self, fitted: Any, dims: int, how: str, axis_names: tuple[str, ...] = ()) -> None:
        self.fitted, self.dims, self.how = fitted, int(dims), how
        self.axis_names = axis_names or tuple(f"map {a}" for a in "xyz"[:self.dims])

    def inverse(self, coords: np.ndarray) -> np.ndarray:
        c = np.asarray(coords, dtype=np.float32)[:, :self.dims]
        return c if self.fitted is None else proj.invert(self.fitted, c)


_HOW = {"pca": "PCA's exact inverse of the map as drawn: the other latent directions at the data mean",
        "umap": "UMAP's inverse_transform, an approximation that interpolates the latents of nearby map points"}


def map_inverse(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any],
                subset: Sequence[int] | None = None) -> MapInverse | None:
    """The inverse of the map drawn with these settings (of the isolated `subset` when given): PCA in 2-D or
    3-D (refitted, identically, when its estimator was evicted), a 2-D UMAP while its estimator is cached;
    None for t-SNE, a 3-D UMAP or an evicted UMAP."""
    key = (_map_key(spec, source, n, method, dim, params) if subset is None
           else _subset_key(spec, source, n, subset, method, dim, params))
    fitted = _recall("projections", key)
    if fitted is None and method == "pca":
        z = latents_for(spec, source, n)
        if subset is not None:
            z = z[[int(i) for i in subset]]
        coords, fitted = proj.fit_projection(z, method, dim, **params)
        _remember("projections", key, fitted, keep=4)
        _remember("maps", key, coords, keep=24)
    if not proj.invertible(fitted) or (method == "umap" and dim != 2):
        return None
    k = int(getattr(fitted, "n_components_", dim))
    return MapInverse(fitted, k, _HOW[method])


def latent_plane() -> MapInverse:
    """The identity 'inverse' of a model whose latent is 2-D: its two latent coordinates are decoded as they are."""
    return MapInverse(None, 2, "the model's own 2-D latent, decoded as is", ("z₁", "z₂"))


def manifold_grid(inverse: MapInverse, coords: np.ndarray, steps: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Latents (steps², d) decoded over an even grid spanning the central 96 % of the map's first two axes (rows:
    top to bottom; a third axis at 0, the data mean for PCA), and the grid's map coordinates (steps², dims)."""
    lo, hi = np.percentile(coords[:, :2], 2, axis=0), np.percentile(coords[:, :2], 98, axis=0)
    xs, ys = np.linspace(lo[0], hi[0], steps), np.linspace(hi[1], lo[1], steps)
    grid = np.zeros((steps * steps, inverse.dims), dtype=np.float32)
    grid[:, :2] = np.array([[x, y] for y in ys for x in xs], dtype=np.float32)
    return inverse.inverse(grid).astype(np.float32), grid


def selection_signature(selection: Any) -> str:
    """A comparable fingerprint of a Plotly selection state (points, boxes, lassos)."""
    import json

    if not selection:
        return ""
    try:
        return json.dumps({k: selection.get(k) for k in ("points", "box", "lasso", "point_indices")},
                          sort_keys=True, default=str)
    except (TypeError, AttributeError):
        return str(selection)


def updated_selection(stored: list[int], seen: str | None, signature: str, indices: list[int]) -> list[int]:
    """The map's selection after a rerun: the chart's own selection when it changed since the last run (a
    new box, lasso or click; an empty one after a double-click clears), else the remembered one."""
    if seen is None or signature == seen:
        return stored
    return list(indices)


def figure_signature(*parts: Any) -> str:
    """A fingerprint of what the map's figure draws (the points shown, rings, colouring), to tell a figure the page
    redrew from a selection the user changed."""
    import hashlib

    digest = hashlib.sha1()
    for part in parts:
        digest.update(np.asarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return digest.hexdigest()
