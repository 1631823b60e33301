"""Latent map: encode a split (or your uploads), project the latents with PCA, t-SNE or UMAP, select points."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import caches, catalog, figures, latents, sources, state, widgets
from vaecore.latent import projection as proj

st.title("Latent map")
st.caption("Where a model puts each image: posterior means projected to 2-D or 3-D, coloured by label. "
           "Select points (box or lasso, or click one) to see those images and their reconstructions.")
spec, model = state.require_model()
shape = tuple(model.config.input_shape)

with st.expander("Bring your own images", expanded=False):
    widgets.upload_panel(shape, key="map_upload")

with st.container(border=True):
    c1, c2, c3, c4 = st.columns([5, 3, 4, 2])
    with c1:
        source = widgets.source_picker(model, key="map_source")
    x_all, y_all = sources.source_images(model, source)
    total = int(x_all.shape[0])
    n = int(c2.number_input("Images", 1, total, value=min(2000, total), step=500, key="map_n",
                            help=f"The first n of {total:,}. 10,000 take a few seconds to encode; t-SNE and UMAP "
                                 "then take a while (cached afterwards)."))
    method = c3.segmented_control("Projection", list(proj.METHODS), default="pca", required=True, key="map_method",
                                  format_func={"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get) or "pca"
    dim = int(c4.segmented_control("Dimensions", [2, 3], default=2, required=True, key="map_dim",
                                   format_func=lambda d: f"{d}-D") or 2)
    params: dict[str, object] = {}
    specs = proj.PARAMS[method]
    cols = st.columns(max(5, len(specs) + 1))
    for col, p in zip(cols, specs, strict=False):
        key = f"map_{method}_{p.name}"
        if p.choices:
            params[p.name] = col.selectbox(p.name, p.choices, key=key, help=p.help)
        elif isinstance(p.default, str):
            text = col.text_input(p.name, value=p.default, key=key, help=p.help).strip() or p.default
            try:
                params[p.name] = float(text)
            except ValueError:
                params[p.name] = p.default
        elif isinstance(p.default, int):
            params[p.name] = col.number_input(p.name, int(p.low), int(p.high), value=p.default, key=key, help=p.help)
        else:
            params[p.name] = col.number_input(p.name, float(p.low), float(p.high), value=float(p.default), key=key,
                                              help=p.help)
    thumbs = cols[-1].number_input("Thumbnails (2-D)", 0, 300, 0, step=25, key="map_thumbs",
                                   help="Draw this many images on the map at their points: hover boxes can only "
                                        "hold text, so thumbnails show what lies where.")
    coords = latents.cached_map(spec, source, n, method, dim, params)
    b1, b2 = st.columns([1, 5], vertical_alignment="center")
    compute = b1.button("Compute map", type="primary", key="map_compute", disabled=coords is not None)
    b2.caption(proj.METHODS[method] + (" · computed, from the cache" if coords is not None else
                                       " · PCA runs at once; t-SNE and UMAP when you press Compute map"))

if coords is None and (method == "pca" or compute):
    bar = st.progress(0.0, text="encoding…")
    with st.spinner(f"Projecting {n:,} latents with {method.upper()}…"):
        try:
            coords = latents.latent_map(spec, source, n, method, dim, params,
                                   progress=lambda f, text: bar.progress(min(1.0, f), text=text))
        except ValueError as e:
            bar.empty()
            st.error(str(e))
            st.stop()
    bar.empty()
    st.session_state["map_last"] = {"spec": spec, "settings": (source, n, method, dim, params)}
elif coords is None:
    last = st.session_state.get("map_last") or {}
    shown = latents.cached_map(spec, *last["settings"]) if last.get("spec") == spec else None
    first = " (the first UMAP in a server process also compiles its numba code)" if method == "umap" else ""
    if shown is None:
        st.info(f"Press **Compute map** to run {method.upper()} on {n:,} latents{first}.")
        st.stop()
    source, n, method, dim, params = last["settings"]
    coords = shown
    x_all, y_all = sources.source_images(model, source)
    st.info(f"Showing the previous map ({method.upper()}, {n:,} images, {dim}-D). Press **Compute map** to apply "
            f"the new settings{first}.")
else:
    st.session_state["map_last"] = {"spec": spec, "settings": (source, n, method, dim, params)}

x, y = x_all[:n], (None if y_all is None else y_all[:n])
labels = None if y is None else y.numpy()
picked = latents.map_selection(spec, source)
fig = figures.latent_map_figure(coords, labels, x, thumbnails=int(thumbs) if dim == 2 else 0, highlight=picked[:2])

left, right = st.columns([3, 1])
with left:
    event = st.plotly_chart(fig, key=f"map_chart_{dim}", on_select="rerun",
                            selection_mode=("points", "box", "lasso") if dim == 2 else ("points",),
                            config={"displaylogo": False})
    st.caption(f"{len(coords):,} points · {method.upper()} · model **{catalog.model_label(spec)}** · "
               f"source **{source}**. " + ("Drag to lasso (box in the toolbar), click a point, double-click to clear."
                                           if dim == 2 else "3-D: drag to rotate; pick a point by index on the right."))

selection = event.selection if event is not None and hasattr(event, "selection") else None
indices = proj.selection_indices(selection, coords) if selection else []
if indices:
    latents.set_map_selection(spec, source, indices)
elif picked and (st.session_state.get(latents.MAP_SELECTION_KEY) or {}).get("source") == source:
    indices = [i for i in picked if i < len(coords)]

with right:
    st.markdown("**Point**")
    default = indices[0] if indices else 0
    i = int(st.number_input("Image index", 0, len(coords) - 1, value=min(default, len(coords) - 1),
                            key=f"map_point_{default}"))
    recon = caches.reconstruction_pairs(model, x[i:i + 1])
    c1, c2 = st.columns(2)
    c1.image(widgets.image_png(recon[0]), caption=f"#{i} {widgets.label_text(y, i)}")
    c2.image(widgets.image_png(recon[1]), caption="reconstruction")
    st.caption("Coordinates: " + ", ".join(f"{v:.2f}" for v in coords[i]))

if indices:
    st.subheader(f"Selection: {len(indices):,} point{'s' if len(indices) != 1 else ''}")
    if labels is not None:
        chosen = labels[indices]
        counts = np.bincount(chosen[chosen >= 0], minlength=int(max(labels.max(), 0)) + 1)
        unlabelled = int((chosen < 0).sum())
        st.caption("Labels: " + ", ".join([f"{k}: {c}" for k, c in enumerate(counts) if c]
                                          + ([f"no label: {unlabelled}"] if unlabelled else [])))
    shown = indices[:64]
    widgets.show_images(caches.reconstruction_pairs(model, x[shown]), nrow=8,
                   caption=f"rows in pairs: images, then their reconstructions"
                           f"{f' (first 64 of {len(indices):,})' if len(indices) > 64 else ''}")
    if len(indices) >= 2:
        st.page_link("pages/3_Interpolation.py", label="Interpolate between the first two selected images",
                     icon=":material/linear_scale:")
else:
    st.caption("No selection yet: lasso or box-select points on the map (2-D), or click one.")
