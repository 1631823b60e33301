"""Disentanglement: what each latent dimension does — traversals in KL order labelled by the factor they predict
best — the factor × latent mutual information, and the disentanglement metrics with their seed distributions."""

from __future__ import annotations

import streamlit as st
import torch

from explorer import caches, state, traversals, widgets
from explorer import disentanglement as dis
from vaecore.evaluation.metrics import METRICS
from vaecore.evaluation.metrics.disentanglement import GROUP
from vaecore.evaluation.registry import in_group, undefined_reason
from vaecore.latent import interpolation as interp

st.title("Disentanglement")
st.caption("Each latent dimension swept from −3 to 3 (rows in KL order, collapsed ones greyed), labelled with the "
           "ground-truth factor it predicts best (normalised mutual information) and its DCI importance; the "
           "factor × latent mutual information; the disentanglement metrics, one seed proving nothing.")
spec, model = state.require_model()
why = traversals.why_no_traversal(model)
if why:
    st.warning(f"No traversal grid for this model: {why}.")
    st.stop()
dataset = caches.dataset_for(model)
names = dis.factor_names(dataset)
if names is None:
    st.info(dis.missing_factors_note(dataset.name), icon=":material/info:")
else:
    st.caption(f"Ground-truth factors of {dataset.name}: {', '.join(names)}.")

points = st.select_slider("Test images for KL, mutual information and DCI", [1000, 2000, 5000, 10000],
                          value=dis.N_POINTS, key="dis_points")


@st.cache_resource(show_spinner="Encoding the test images and fitting DCI…", max_entries=8)
def report_for(spec: str, stamp: float, points: int) -> dis.LatentReport:
    return dis.latent_report(caches.load_model(spec), dataset, points)


report = report_for(spec, caches.model_stamp(spec), points)

st.subheader("Traversal grid per latent dimension")
c1, c2, c3 = st.columns([2, 3, 2])
start = c1.segmented_control("Start from", ["Test image", "Prior"], default="Test image", required=True,
                             key="dis_start") or "Test image"
x_test, y_test = dataset.split("test")
if start == "Test image":
    with c2:
        i = widgets.pick_image("Test image", int(x_test.shape[0]), y_test, key="dis_image")
    z = interp.encode_means(model, x_test[i:i + 1])[0].cpu()
    c3.image(widgets.image_png(x_test[i], 96), caption=f"test image #{i}")
    origin = f"test image #{i}'s posterior mean"
else:
    seed = c2.number_input("Prior draw (0: the prior mean z = 0)", 0, 10_000, 0, key="dis_seed")
    z = torch.zeros(model.capabilities.latent_size) if seed == 0 else \
        torch.randn(model.capabilities.latent_size, generator=torch.Generator().manual_seed(int(seed)))
    origin = "the prior mean" if seed == 0 else f"prior draw {seed}"
rows = report.order[:traversals.MAX_ROWS]
grid, values = traversals.traversal_grid(model, z, rows)
grid = dis.grey_rows(grid, [report.collapsed[d] for d in rows])
st.caption(f"Rows: {len(rows)} dimensions in KL order (from {report.points:,} test images), the others at {origin}; "
           "columns: " + ", ".join(f"{v:+.1f}" for v in values.tolist()) + ". Greyed: collapsed (KL < 0.01 nats).")
for r, d in enumerate(rows):
    st.image(widgets.grid_png(grid[r], nrow=len(values), scale=2), caption=dis.row_label(d, report))
d1, d2 = st.columns(2)
d1.download_button("Grid as PNG", widgets.grid_png(grid.flatten(0, 1), nrow=len(values), scale=2),
                   file_name="traversal-grid.png", mime="image/png", icon=":material/download:", key="dis_png")
d2.download_button("Grid as GIF (animated)", dis.traversal_gif(grid), file_name="traversal-grid.gif",
                   mime="image/gif", icon=":material/download:", key="dis_gif")

st.subheader("Factor × latent mutual information")
if report.nmi is None:
    st.caption(f"Needs ground-truth factors: {dis.missing_factors_note(dataset.name)}")
else:
    st.plotly_chart(dis.heatmap(report), use_container_width=True)
    st.caption(f"I(z_i; v_k) / H(v_k) on {report.points:,} test images, codes in 20 equal-width bins (the MIG "
               "estimator); a disentangled code has one bright cell per column and per row.")

st.subheader("Metrics")
keys = in_group(GROUP)
reasons = {k: undefined_reason(model, k, dataset) for k in keys}
saved = dis.recorded(spec)
if saved is not None:
    st.table(dis.metric_rows(saved))
    st.caption(dis.recorded_caption(saved))
if all(reasons.values()):
    st.error(f"Disentanglement metrics are undefined here: {next(iter(reasons.values()))}.")
else:
    n_test = st.select_slider("Test images scored", [1000, 2000, 5000, 10000], value=10000, key="dis_n_test")
    label = "Compute them again here" if saved is not None else "Compute the disentanglement metrics of this model"
    if st.button(label, key="dis_eval", icon=":material/calculate:"):
        bar = st.progress(0.0, text="starting")
        try:
            result = caches.evaluate_model(spec, keys, n_test, progress=lambda stage, done, total: bar.progress(
                done / max(total, 1), text=f"{stage}: {done}/{total}"))
        except ValueError as e:
            st.error(str(e))
        else:
            bar.empty()
            st.table(dis.metric_rows(result))
            st.caption("Settings: " + dis.settings_caption(result))

records = dis.study_records()
if records:
    st.markdown("**The study: procedural dSprites, five families × seeds** (experiments/disentanglement.py)")
    titles = dis.family_titles()
    st.dataframe(dis.study_rows(records, titles), hide_index=True)
    metric = st.selectbox("Seed distribution of", dis.STUDY_METRICS, format_func=lambda k: METRICS[k].title,
                          key="dis_strip")
    seat = dis.study_seat(spec)
    st.plotly_chart(dis.strip_figure(records, metric, seat, titles), use_container_width=True)
    st.caption("One point per seed (mean ± s.d. over seeds in the table)"
               + (f"; circled: this model (seed {seat[1]}, {seat[2]} steps)" if seat else "") + ". Every model trained "
               f"{', '.join(str(s) for s in sorted({r['steps'] for r in records}))} steps on CPU, far below the "
               "papers' 300,000: early-training numbers (docs/disentanglement.md). Settings: "
               + dis.settings_caption(records[0]))
