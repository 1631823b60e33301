"""Interpolation: walk the latent line (or arc) between two images, and move each latent dimension by hand."""

from __future__ import annotations

import streamlit as st
import torch

from explorer import caches, catalog, latents, sources, state, traversals, widgets
from explorer.diagnostics import kl_per_dimension, kl_undefined_reason
from vaecore import PretrainedModel
from vaecore.files import EVAL
from vaecore.latent import interpolation as interp

st.title("Interpolation")
st.caption("Decode the path between the latents of two images, linear or spherical, and traverse the latent "
           "space one dimension at a time. Add a second model to compare them side by side.")
spec, model = state.require_model()
shape = tuple(model.config.input_shape)

others = {s: label for s, label in state.model_choices().items() if s != spec}
c1, c2 = st.columns([2, 3])
with c1:
    source = widgets.source_picker(model, key="ip_source")
other = c2.selectbox("Compare with (side by side)", [None, *others], key="ip_other",
                     format_func=lambda s: "— none —" if s is None else others[s])
models = [(catalog.model_label(spec), spec, model)]
if other:
    second = caches.try_load_model(other)
    if second is not None and tuple(second.config.input_shape) != shape:
        st.warning(f"{catalog.model_label(other)} takes {tuple(second.config.input_shape)} images, "
                   f"{catalog.model_label(spec)} takes {shape}: they cannot share endpoints.")
    elif second is not None:
        models.append((catalog.model_label(other), other, second))

x_all, y_all = sources.source_images(model, source)
n = int(x_all.shape[0])
selected = latents.map_selection(spec, source)
if len(selected) >= 2:
    mode = st.segmented_control("Endpoints", ["Pick images", "Map selection"], default="Map selection",
                                required=True, key="ip_mode",
                                help="Pick two images here, or use the first two points selected on the Latent map.")
else:
    mode = "Pick images"
    st.caption("Pick the two endpoints below, or select points on the Latent map to start from them.")
if mode == "Map selection":
    i0, i1 = selected[0], selected[1]
    st.caption(f"From the latent map selection ({len(selected)} points): #{i0} and #{i1}.")
else:
    ca, cb = st.columns(2)
    with ca:
        i0 = widgets.pick_image("Image A", n, y_all, key="ip_a", default=0)
    with cb:
        i1 = widgets.pick_image("Image B", n, y_all, key="ip_b", default=1)
x0, x1 = x_all[i0], x_all[i1]

c1, c2, c3, c4 = st.columns([1, 1, 2, 3])
c1.image(widgets.image_png(x0), caption=f"A: #{i0} {widgets.label_text(y_all, i0)}")
c2.image(widgets.image_png(x1), caption=f"B: #{i1} {widgets.label_text(y_all, i1)}")
method = c3.segmented_control("Path", list(interp.METHODS), default="linear", required=True, key="ip_method",
                              format_func=str.capitalize) or "linear"
c3.caption(interp.METHODS[method])
steps = c4.slider("Steps in the strip", 3, 20, 10, key="ip_steps")

ends = {s: interp.encode_means(m, torch.stack([x0, x1])).cpu() for _, s, m in models}
st.subheader("Strip")
for k, (label, s, m) in enumerate(models):
    zs = interp.path(ends[s][0], ends[s][1], steps, method)
    strip = widgets.grid_png(interp.decode(m, zs), nrow=steps, scale=3)
    st.image(strip, caption=f"{label}: A → B in {steps} steps ({method})")
    st.download_button("Strip as PNG", strip, file_name=f"interpolation-{k}.png", mime="image/png",
                       key=f"ip_dl_strip_{k}", icon=":material/download:")


@st.fragment
def decode_at_t() -> None:
    """Only this part reruns when t moves: one decode per model."""
    t = st.slider("t (0 = A, 1 = B)", 0.0, 1.0, 0.5, 0.01, key="ip_t")
    cols = st.columns(max(len(models), 2) + 2)
    for col, (label, s, m) in zip(cols, models, strict=False):
        z0, z1 = ends[s]
        z = interp.interpolate(z0, z1, t, method)
        col.image(widgets.image_png(interp.decode(m, z)[0], 196), caption=f"{label} at t = {t:.2f}")
        col.caption(f"‖z‖ = {float(z.norm()):.2f} (A {float(z0.norm()):.2f}, B {float(z1.norm()):.2f})")


st.subheader("Decode at t")
decode_at_t()

st.subheader("Latent traversal")
st.caption("Start from an image's latent and move each dimension with its slider (the most active dimensions "
           "first, up to 32). Dimensions the model does not use change nothing.")
start = st.segmented_control("Start from", ["A", "B"], default="A", required=True, key="ip_start") or "A"
i_start = i0 if start == "A" else i1


@st.fragment
def traversal(label: str, m: PretrainedModel, z: torch.Tensor, dims: list[int], prefix: str, narrow: bool) -> None:
    """One model's sliders and decoded image; only this fragment reruns when a slider moves."""
    st.markdown(f"**{label}** · {m.latent_dim} latent dimensions" + (f", showing the {len(dims)} most active"
                                                                    if len(dims) < m.latent_dim else ""))
    if st.button("Reset to the encoded image", key=f"{prefix}_reset"):
        for j in dims:
            st.session_state.pop(f"{prefix}_{j}", None)
    image_col, slider_col = st.columns([1, 2] if narrow else [1, 3])
    values: dict[int, float] = {}
    cols = slider_col.columns(2 if narrow else 3)
    for k, j in enumerate(dims):
        start_value = max(-4.0, min(4.0, round(float(z[j]), 2)))
        values[j] = cols[k % len(cols)].slider(f"z{j}", -4.0, 4.0, start_value, 0.05, key=f"{prefix}_{j}")
    image_col.image(widgets.image_png(interp.decode(m, interp.with_values(z, values))[0], 196), caption="decoded")
    moved = sum(abs(values[j] - float(z[j])) > 0.026 for j in dims)
    image_col.caption(f"{moved} dimension{'s' if moved != 1 else ''} moved")


for column, (label, s, m) in zip(st.columns(len(models)), models, strict=True):
    z = interp.encode_means(m, x_all[i_start:i_start + 1])[0].cpu()
    dims = interp.rank_dims(latents.latents_for(s, source, min(n, 1000)), k=min(32, m.latent_dim))
    with column.container(border=True):
        traversal(label, m, z, dims, prefix=f"tr_{s}_{source}_{i_start}", narrow=len(models) > 1)
        j = st.selectbox("Sweep one dimension from −3 to 3", dims, key=f"sweep_{s}", format_func=lambda j: f"z{j}")
        sweep = widgets.grid_png(interp.traverse(m, z, int(j), torch.linspace(-3, 3, 11)), nrow=11,
                                 scale=3 if len(models) == 1 else 2)
        st.image(sweep, caption=f"{label}: z{j} from −3 to 3, the others as encoded")
        st.download_button("Sweep as PNG", sweep, file_name=f"traversal-z{j}.png", mime="image/png",
                           key=f"ip_dl_sweep_{s}", icon=":material/download:")

st.subheader("Traversal grid per latent dimension")
st.caption(f"One row per latent dimension: that coordinate set to each value from −3 to 3 (left to right), the "
           f"others fixed at image {start}'s posterior mean (#{i_start}). A dimension that changes one feature of "
           "the digit and nothing else is disentangled; one that changes nothing is unused (KL ≈ 0).")
for k, (label, s, m) in enumerate(models):
    why = traversals.why_no_traversal(m)
    if why:
        st.caption(f"**{label}**: no traversal grid — {why}.")
        continue
    highlight = traversals.is_disentanglement(m)
    kl = traversals.stored_kl_per_dim(s, m.latent_dim)
    kl_source = f"its {EVAL}"
    if kl is None:
        kl = kl_per_dimension(m, x_all[:500])
        kl_source = f"the first {min(n, 500)} images"
    with st.container(border=True):
        if highlight:
            st.info(f"**{label}** is a disentanglement model ({m.model_type}): each row should move one factor of "
                    "the digit (slant, width, thickness, size …) and leave the others alone.",
                    icon=":material/grid_view:")
        if not st.toggle(f"Traversal grid of {label}", value=highlight, key=f"ip_dimgrid_{k}_{s}",
                         help="Decodes latent_dim × 11 images (rows: dimensions, up to 32)."):
            continue
        z = interp.encode_means(m, x_all[i_start:i_start + 1])[0].cpu()
        dims = traversals.row_order(m.latent_dim, kl)
        grid, values = traversals.traversal_grid(m, z, dims)
        st.caption(f"{label}: {len(dims)} of {m.latent_dim} dimensions"
                   + (f" (the {len(dims)} with most KL)" if len(dims) < m.latent_dim else "")
                   + ("; KL per dimension (nats) from " + kl_source if kl is not None else
                      f"; no KL per dimension ({kl_undefined_reason(m)})")
                   + " · columns: " + ", ".join(f"{round(v, 1) + 0.0:+.1f}" for v in values.tolist()))
        for r, d in enumerate(dims):
            st.image(widgets.grid_png(grid[r], nrow=len(values), scale=2),
                     caption=traversals.row_caption(d, float(z[d]), kl))
        st.download_button("Traversal grid as PNG", widgets.grid_png(grid.flatten(0, 1), nrow=len(values), scale=2),
                           file_name=f"traversal-grid-{k}.png", mime="image/png", key=f"ip_dl_dimgrid_{k}",
                           icon=":material/download:")
