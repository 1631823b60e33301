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
from explorer.sources import source_images, source_token
from vaecore import PretrainedModel
from vaecore.latent import projection as proj

MAP_SELECTION_KEY = "vae_map_selection"


@st.cache_resource(show_spinner=False)
def _b_store() -> dict[str, OrderedDict]:
    return {"latents": OrderedDict(), "maps": OrderedDict()}


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
    """Posterior means of the first n images of a source, encoded once per (model version, source, n)."""
    model = load_model(spec)
    key = _latent_key(spec, model, source, n)
    found = _recall("latents", key)
    if found is None:
        x, _ = source_images(model, source)
        found = _remember("latents", key, proj.encode_images(model, x[:n], progress=progress), keep=12)
    return found


def _map_key(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> tuple[Any, ...]:
    model = load_model(spec)
    return (*_latent_key(spec, model, source, n), method, int(dim), tuple(sorted(params.items())))


def cached_map(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any]) -> np.ndarray | None:
    """A projection computed before with exactly these settings, or None."""
    return _recall("maps", _map_key(spec, source, n, method, dim, params))


def latent_map(spec: str, source: str, n: int, method: str, dim: int, params: dict[str, Any],
               progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(n, dim) map coordinates of a source's latents, cached per (model, source, n, method, dim, params)."""
    key = _map_key(spec, source, n, method, dim, params)
    found = _recall("maps", key)
    if found is None:
        z = latents_for(spec, source, n, progress)
        if progress is not None:
            progress(1.0, f"running {method.upper()} on {len(z):,} latents…")
        found = _remember("maps", key, proj.project(z, method, dim, **params), keep=24)
    return found


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
    def run() -> None:
        try:
            rng = np.random.default_rng(0)
            proj.project(rng.normal(size=(300, 8)).astype(np.float32), "umap", 2, n_epochs=20)
        except Exception:  # noqa: BLE001 - a failed warm-up only means the first map compiles
            pass

    thread = threading.Thread(target=run, name="umap-warm-up", daemon=True)
    thread.start()
    return thread
