"""Latent map: encode a split (or your uploads), project the latents with PCA, t-SNE or UMAP, select points."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from explorer import (
    caches,
    catalog,
    diagnostics,
    downloads,
    figures,
    latents,
    models,
    prior_holes,
    sources,
    state,
    widgets,
)
from explorer import geometry as geom
from vaecore.components.kinds import Geometry
from vaecore.evaluation.metrics import COLLAPSED_KL, METRICS
from vaecore.latent import projection as proj

st.title("Latent map")
st.caption("Where a model puts each image: latent points projected to 2-D or 3-D, coloured by label or by any "
           "per-image quantity. Select points (box, lasso or a click) to see them, their reconstructions and "
           "nearest neighbours; isolate a selection and re-project it; decode any map position (PCA).")
spec, model = state.require_model()
shape = tuple(model.config.input_shape)
model_facts = models.facts(model)

with st.expander("Bring your own images", expanded=False):
    widgets.upload_panel(shape, key="map_upload")

with st.container(border=True):
    c1, c2, c3, c4 = st.columns([5, 3, 5, 3])
    with c1:
        source = widgets.source_picker(model, key="map_source")
    x_all, y_all = sources.source_images(model, source)
    total = int(x_all.shape[0])
    images_token = sources.source_token(model, source)
    if st.session_state.get("map_n_images", images_token) != images_token:
        for stale in ("map_n", f"map_labels_{source}"):  # other images (a new upload, another split): defaults
            st.session_state.pop(stale, None)
    st.session_state["map_n_images"] = images_token
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
    b1, b2 = st.columns([2, 7], vertical_alignment="center")
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
z_all = latents.latents_for(spec, source, n)
quantities = latents.image_quantities(spec, source, n)

# isolate a selection and re-project it; filter by label; colour by a per-image quantity
subset_state = st.session_state.get("map_subset") or {}
subset = subset_state.get("indices") if subset_state.get("key") == (spec, source, n) else None
shown = np.arange(len(coords)) if subset is None else np.asarray(subset)
shown_coords = coords if subset is None else latents.subset_map(spec, source, n, subset, method, dim, params)
shown_coords_all = shown_coords
t1, t2, t3 = st.columns([3, 4, 3])
colour_by = t1.selectbox("Colour by", latents.colour_options(quantities), format_func=latents.QUANTITIES.get,
                         key="map_colour", help="Per-image quantities are computed once per model and source; "
                                                "decoder σ only for models whose σ varies per image.")
if colour_by == "sigma":
    t1.caption(models.decoder_sigma_note(model))
if colour_by == "elbo":
    t1.caption(f"ELBO per image: {latents.ELBO_NOTE}.")
if labels is not None:
    classes = sorted(int(c) for c in np.unique(labels))
    keep = t2.multiselect("Show labels", classes, default=classes, key=f"map_labels_{source}",
                          help="Filter the map to some classes (selections keep their image indices).")
    mask = np.isin(labels[shown], keep)
    shown, shown_coords = shown[mask], shown_coords[mask]
if subset is not None:
    t3.caption(f"Showing the isolated selection: {len(subset):,} images, re-projected with {method.upper()}.")
    if t3.button("Back to all points", key="map_unsubset", icon=":material/zoom_out_map:"):
        st.session_state.pop("map_subset", None)
        st.rerun()

mouse = st.segmented_control("Mouse on the map", list(latents.MOUSE_MODES), default="box", required=True,
                             key="map_mouse", format_func=lambda m: latents.MOUSE_MODES[m][0], disabled=dim != 2,
                             help="What the mouse does on the 2-D map: drag a box, draw a lasso, or click one point "
                                  "(then a drag pans; shift-click adds points). 3-D: drag rotates, a click picks.") \
    or "box"
stored = latents.map_selection(spec, source)
view = (spec, source, n, None if subset is None else tuple(subset))  # what the map shows: neighbours belong to it
on_map = set(int(j) for j in shown)
neighbours_state = st.session_state.get("map_neighbours") or {}
neighbours_of = neighbours_state.get("i") if neighbours_state.get("view") == view else None
neighbours_of = neighbours_of if neighbours_of in on_map else None
colour = None if colour_by == "label" else quantities[colour_by][shown]
marked = [j for j, _ in latents.nearest_neighbours(z_all, neighbours_of, 8, among=shown)] \
    if neighbours_of is not None else []
fig = figures.latent_map_figure(shown_coords, None if labels is None else labels[shown], x[shown],
                                thumbnails=int(thumbs) if dim == 2 else 0, indices=shown, colour=colour,
                                colour_title=latents.QUANTITIES.get(colour_by, ""), marked=marked,
                                dragmode=latents.MOUSE_MODES[mouse][1])

left, right = st.columns([3, 1])
chart_key = f"map_chart_{dim}_{mouse}"  # a fresh chart per mouse mode: its dragmode is the figure's
# a figure redrawn by the page itself (rings, colours, a filter) may come back without the chart's selection:
# that is not the user clearing it, so the remembered selection stays
figure_signature = latents.figure_signature(view, shown, marked, colour_by, thumbs, dim, mouse)
fresh_chart = chart_key not in st.session_state or st.session_state.get("map_figure_seen") != figure_signature
st.session_state["map_figure_seen"] = figure_signature
with left:
    event = st.plotly_chart(fig, key=chart_key, on_select="rerun",
                            selection_mode=("points", "box", "lasso") if dim == 2 else ("points",),
                            config={"displaylogo": False})
    st.caption(f"{len(shown):,} points · {method.upper()} · model **{catalog.model_label(spec)}** · "
               f"source **{source}**. " + (latents.MOUSE_MODES[mouse][2] if dim == 2 else
                                           "3-D: drag to rotate; click a point to pick it."))

selection = event.selection if event is not None and hasattr(event, "selection") else None
signature = latents.selection_signature(selection)
found = proj.selection_indices(selection, None) if selection else []
if not found and selection and (selection.get("box") or selection.get("lasso")):
    found = [int(shown[j]) for j in proj.selection_indices(selection, shown_coords) if j < len(shown)]
seen = None if fresh_chart else st.session_state.get("map_selection_seen")
indices = latents.updated_selection(stored, seen, signature, found)
st.session_state["map_selection_seen"] = signature
if indices != stored:
    latents.set_map_selection(spec, source, indices)
indices = [i for i in indices if i in on_map]

with right:
    st.markdown("**Point**")
    default = indices[0] if indices else (int(shown[0]) if len(shown) else 0)
    i = int(st.number_input("Image index", 0, n - 1, value=min(default, n - 1), key=f"map_point_{default}",
                            help="The first selected image; type any index of the source."))
    if i not in on_map:
        st.caption(f"#{i} is not on the map as shown (filtered out, or outside the isolated selection).")
    recon = caches.reconstruction_pairs(model, x[i:i + 1])
    c1, c2 = st.columns(2)
    c1.image(widgets.image_png(recon[0]), caption=f"#{i} {widgets.label_text(y, i)}")
    c2.image(widgets.image_png(recon[1]), caption="reconstruction")
    facts_line = [f"{latents.QUANTITIES[q].split(' (')[0]} {float(v[i]):.4g}" for q, v in quantities.items()]
    st.caption(" · ".join(facts_line) + (" (ELBO: one seeded draw of z, the same at any number of images)"
                                         if "elbo" in quantities else ""))
    st.button("Nearest neighbours", key="map_nn", icon=":material/hub:", disabled=i not in on_map,
              on_click=lambda: st.session_state.update(map_neighbours={"view": view, "i": i}),
              help="The 8 images on the map whose latents are closest to this one (Euclidean distance in z), "
                   "ringed on the map; the selection and this panel stay as they are.")
    if neighbours_of is not None:
        near = latents.nearest_neighbours(z_all, neighbours_of, 8, among=shown)
        st.markdown(f"**Nearest to #{neighbours_of}** (latent distance)")
        cols = st.columns(4)
        for k, (j, d) in enumerate(near):
            cols[k % 4].image(widgets.image_png(x[j], 56), caption=f"#{j} · {d:.2f}")

if indices:
    st.subheader(f"Selection: {len(indices):,} point{'s' if len(indices) != 1 else ''}")
    if labels is not None:
        chosen = labels[indices]
        counts = np.bincount(chosen[chosen >= 0], minlength=int(max(labels.max(), 0)) + 1)
        unlabelled = int((chosen < 0).sum())
        st.caption("Labels: " + ", ".join([f"{k}: {c}" for k, c in enumerate(counts) if c]
                                          + ([f"no label: {unlabelled}"] if unlabelled else [])))
    first = indices[:64]
    widgets.show_images(caches.reconstruction_pairs(model, x[first]), nrow=8,
                        caption=f"rows in pairs: images, then their reconstructions"
                                f"{f' (first 64 of {len(indices):,})' if len(indices) > 64 else ''}")
    b1, b2, b3 = st.columns(3)
    if len(indices) >= 3 and b1.button("Isolate and re-project the selection", key="map_isolate",
                                       icon=":material/filter_center_focus:"):
        st.session_state["map_subset"] = {"key": (spec, source, n), "indices": list(indices)}
        latents.set_map_selection(spec, source, [])
        st.rerun()
    sel = np.asarray(indices)
    b2.download_button("Selection as CSV", downloads.csv_bytes(downloads.latents_rows(
        sel, z_all[sel], None, None if labels is None else labels[sel])), file_name="selection.csv",
        mime="text/csv", key="map_dl_sel", icon=":material/download:")
    if len(indices) >= 2:
        b3.page_link("pages/3_Interpolation.py", label="Interpolate between the first two selected images",
                     icon=":material/linear_scale:")
else:
    st.caption("No selection yet: box-select, lasso or click points on the map (pick the Mouse mode above it), "
               "or type an index in the Point panel.")

with st.expander("Downloads: latents and map coordinates"):
    shown_labels = None if labels is None else labels[shown]
    shown_quantities = {k: v[shown] for k, v in quantities.items()}
    d1, d2 = st.columns(2)
    # built when clicked (a callable), not on every rerun: 2,000 rows of a 784-D VQ latent took seconds
    d1.download_button("CSV (index, label, map x/y, z…, per-image quantities)", lambda: downloads.csv_bytes(
        downloads.latents_rows(shown, z_all[shown], shown_coords, shown_labels, shown_quantities)),
        file_name=f"latent_map_{method}.csv", mime="text/csv", key="map_dl_csv", icon=":material/download:")
    d2.download_button(".npz (arrays: index, z, coords, labels, …)", lambda: downloads.npz_bytes(
        index=shown, z=z_all[shown], coords=shown_coords, labels=shown_labels, **shown_quantities),
        file_name=f"latent_map_{method}.npz", mime="application/octet-stream", key="map_dl_npz",
        icon=":material/download:")

st.subheader("Decode the map")
inverse = latents.map_inverse(spec, source, n, method, dim, params, subset)
map_points = coords if subset is None else shown_coords_all
if inverse is None and model_facts.latent_dim == 2:
    inverse, map_points = latents.latent_plane(), z_all
if inverse is None:
    st.caption("Decoding map positions needs an invertible projection: PCA (exact inverse), a 2-D UMAP map "
               f"(its inverse_transform), or a model with a 2-D latent. {method.upper()}"
               + (" in 3-D" if method == "umap" else "") + " has no inverse here.")
else:
    row = i if subset is None else (subset.index(i) if i in subset else 0)
    c1, c2, c3 = st.columns([1, 1, 2])
    lo, hi = map_points.min(0), map_points.max(0)
    hi = np.where(hi - lo < 1e-6, lo + 1.0, hi)  # a collapsed map (all codes equal) still gets a slider range
    start = [float(np.clip(map_points[row, a], lo[a], hi[a])) for a in range(inverse.dims)]
    at = [c1.slider(name, float(lo[a]), float(hi[a]), start[a], key=f"map_dec_{'xyz'[a]}_{i}")
          for a, name in enumerate(inverse.axis_names)]
    zp = inverse.inverse(np.array([at], dtype=np.float32))
    decoded = model.decode(torch.from_numpy(zp).to(model.device)).detach().cpu()
    c2.image(widgets.image_png(decoded[0], 140), caption="decoded at (" + ", ".join(f"{v:.2f}" for v in at) + ")")
    c2.caption(f"Starts at #{i}'s point on the map; decoded through {inverse.how}.")
    steps = c3.select_slider("Manifold grid", [5, 8, 10, 12, 15], value=10, key="map_grid_steps",
                             help="Decode an even grid over the central 96 % of the map's first two axes.")
    zg, _ = latents.manifold_grid(inverse, map_points, steps)
    grid = model.decode(torch.from_numpy(zg).to(model.device)).detach().cpu()
    c3.image(widgets.grid_png(grid, nrow=steps, scale=1), caption=f"{steps}×{steps} decoded grid over the map "
             f"(left→right: {inverse.axis_names[0]}, top→bottom: {inverse.axis_names[1]}"
             + (f", {inverse.axis_names[2]} at 0" if inverse.dims > 2 else "") + ")")
    c3.download_button("Grid as PNG", widgets.grid_png(grid, nrow=steps, scale=2), file_name="manifold_grid.png",
                       mime="image/png", key="map_dl_grid", icon=":material/download:")

st.subheader("Latent usage")
m_usage = min(n, diagnostics.USAGE_IMAGES)
usage = diagnostics.latent_usage(model, x[:m_usage])
st.markdown(f"**{usage.active} of {usage.latent_size} {METRICS['active-units'].label}** on the first {m_usage:,} "
            f"{source} images — the engine's `active-units`, the number the zoo table shows (computed there on the "
            f"first {diagnostics.USAGE_IMAGES:,} test images): {METRICS['active-units'].description}.")
if usage.kl_why_not:
    st.caption(f"{METRICS['kl-per-dim'].label}: not defined for this model: {usage.kl_why_not}.")
else:
    st.plotly_chart(figures.kl_per_dim_figure(usage.kl), key="map_kl_dims", config={"displaylogo": False})
    st.caption(f"{METRICS['kl-per-dim'].label} on the same images (the engine's `kl-per-dim`): "
               f"{usage.collapsed} dimension{'s' if usage.collapsed != 1 else ''} carry under {COLLAPSED_KL} nats "
               "(grey: collapsed by KL, a stricter reading than active units, which look at how the posterior "
               "means vary across images).")

st.subheader("Prior holes")
holes, holes_why, hole_images, filled_images = prior_holes.holes_for(spec, source, m_usage)
if holes is None:
    st.caption(f"Not defined for this model: {holes_why}.")
else:
    share = holes.fraction
    st.markdown(f"**{100 * share.value:.1f} % ± {100 * share.se:.1f} %** of {len(holes.in_hole):,} draws from the "
                f"prior N(0, I) fall in a hole: where the aggregate posterior q(z) of the first {m_usage:,} {source} "
                f"images is thinner than at {100 * (1 - holes.level):.0f} % of its own draws (by construction "
                f"{100 * holes.level:.0f} % of q's own draws are that thin). Decoded, hole draws are what prior "
                "samples look like when they go wrong — why a sampler fitted to q(z) (GMM) beats the prior.")
    h1, h2 = st.columns(2)
    if hole_images is not None:
        h1.image(widgets.grid_png(hole_images, nrow=8, scale=1), caption="decoded from prior draws in a hole")
    if filled_images is not None:
        h2.image(widgets.grid_png(filled_images, nrow=8, scale=1), caption="decoded from prior draws the data reaches")
    st.plotly_chart(prior_holes.dims_figure(holes), key="map_holes_dims", config={"displaylogo": False})
    st.caption("Per latent dimension: the variance of the aggregate posterior (the prior's is 1, dotted) and the KL of "
               "its moment-matched Gaussian from N(0, 1). A variance well below 1 leaves prior mass unreached.")
    fitted = getattr(inverse, "fitted", None) if method == "pca" and subset is None else None
    if fitted is not None and hasattr(fitted, "transform"):
        prior_xy = np.asarray(fitted.transform(holes.z_prior.numpy()))[:, :2]
    elif inverse is not None and getattr(inverse, "fitted", 0) is None:  # a 2-D latent, drawn as it is
        prior_xy = holes.z_prior.numpy()[:, :2]
    else:
        prior_xy = None
    if prior_xy is not None:
        st.plotly_chart(prior_holes.map_figure(map_points[:, :2], prior_xy, holes.in_hole), key="map_holes_map",
                        config={"displaylogo": False})
        st.caption("The prior draws placed on this map by the same projection (the map's PCA). A hole is a region of "
                   "the whole latent space: projected to the map's axes, red draws can lie among the images' points, "
                   "and red draws outside the cloud are prior mass the data never reaches even along these axes.")
    else:
        st.caption("Switch the map to PCA (all points) to see the prior draws on it.")

latent_geometry = model.capabilities.geometry
if latent_geometry in (Geometry.SPHERE, Geometry.POINCARE_BALL):
    on_sphere = latent_geometry is Geometry.SPHERE
    st.subheader("The latents on the sphere" if on_sphere else "The latents in the Poincaré disk")
    curvature = float(getattr(model.config, "curvature", 1.0) or 1.0)
    points = geom.sphere_coordinates(z_all[shown]) if on_sphere else geom.disk_coordinates(z_all[shown], curvature)
    st.plotly_chart((geom.sphere_figure if on_sphere else geom.disk_figure)(
        points, None if labels is None else labels[shown], shown), key="map_manifold", config={"displaylogo": False})
    st.caption(f"{len(shown):,} latent means (the map's points) on the "
               + (f"unit sphere S², from S^{model_facts.latent_dim - 1}: " + geom.SPHERE_METHOD if on_sphere else
                  f"unit disk, from the {model_facts.latent_dim}-D Poincaré ball (c = {curvature:g}): "
                  + geom.DISK_METHOD) + ".")

if geom.is_quantised(model):
    st.subheader("Codebook")
    counts = latents.codebook_usage_for(spec, source, n)
    n_levels, k_codes = counts.shape
    st.plotly_chart(geom.usage_figure(counts), key="map_codebook_usage", config={"displaylogo": False})
    st.caption(f"Codes chosen for {n:,} {source} images × {geom.positions(model)} positions"
               + (f", at each of {n_levels} residual levels" if n_levels > 1 else "") + ": "
               + "; ".join(f"{'level ' + str(lv) + ': ' if n_levels > 1 else ''}{int((row > 0).sum())} of "
                           f"{k_codes} codes used, perplexity {geom.perplexity(row):.1f}"
                           for lv, row in enumerate(counts)) + ". A codebook with few used codes has collapsed.")
    c1, c2, c3 = st.columns([2, 3, 2])
    level = int(c1.segmented_control("Level", list(range(n_levels)), default=0, required=True, key="map_vq_level")
                or 0) if n_levels > 1 else 0
    shown_codes = int(c2.select_slider("Decoded codes", [c for c in (16, 32, 64, 128, 256, 512) if c < k_codes]
                                       + [k_codes], value=min(64, k_codes), key="map_vq_codes"))
    order = [int(c) for c in np.argsort(-counts[level], kind="stable")[:shown_codes]]
    decoded = geom.decoded_codes(model, order, level)
    st.image(widgets.grid_png(decoded, nrow=16, scale=1),
             caption=f"Level {level} codes decoded on their own (the code at every position), most used first: "
                     + ", ".join(f"#{c} ({int(counts[level][c]):,})" for c in order[:8])
                     + ("…" if len(order) > 8 else "")
                     + (". Deeper levels are residual corrections of the level above." if level else ""))
    c3.download_button("Usage as CSV", downloads.csv_bytes(
        [{"level": lv, "code": c, "count": int(v)} for lv, row in enumerate(counts) for c, v in enumerate(row)]),
        file_name="codebook_usage.csv", mime="text/csv", key="map_dl_usage", icon=":material/download:")
