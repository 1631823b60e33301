"""Transformations: extract a latent transformation T from a triplet with the T-VAE and apply it to other images."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from explorer import caches, catalog, figures, sources, state, tables, transforms, widgets
from vaecore.data.transforms import apply_affine, invert
from vaecore.evaluation.transfer import transfer_check
from vaecore.evaluation.uncertainty import Z
from vaecore.models import tvae
from vaecore.models.families import family_title

st.title("Transformations")
st.caption("The T-VAE (Giannone et al.) learns a latent transformation T from a triplet (f⁻¹(x), x, f(x)) such "
           "that z + T decodes to f(x) and z − T to f⁻¹(x). Extract T from one triplet, apply it to other images, "
           "and compare with a plain VAE, whose analogue is the latent difference (z₁ − z₂) / 2.")
picked = state.model_picker()
by_type = state.models_by_type()
tvaes, plains = by_type.get("tvae", {}), {s: label for t, d in by_type.items() if t != "tvae" for s, label in d.items()}
if not tvaes:
    st.warning("No T-VAE found among the bundled models or your runs. Train one with "
               "`python -m vaecore train --model tvae --out checkpoints/tvae` (or on the Training monitor page), "
               "then pick it here. Below, the plain VAE's latent-difference analogue still works.")
if not tvaes and not plains:
    st.info("No models to show: add a bundled checkpoint or train one.")
    st.stop()


def _default(options: dict[str, str], preferred: tuple[str, ...], pick_first: bool = True) -> int:
    keys = list(options)
    for p in (picked, *preferred) if pick_first else (*preferred, picked):
        if p in keys:
            return keys.index(p)
    return 0


c1, c2 = st.columns(2)
T_LABEL, VAE_LABEL = family_title("tvae"), family_title("vae")
t_spec = c1.selectbox(T_LABEL, list(tvaes), index=_default(tvaes, ("tvae",)), format_func=tvaes.get,
                      key="tf_tvae") if tvaes else None
p_spec = c2.selectbox("Plain VAE to compare with", [None, *plains],
                      index=1 + _default(plains, ("vae", "vae-plus"), pick_first=False) if plains else 0,
                      format_func=lambda s: "— none —" if s is None else plains[s], key="tf_plain")
models = {}
for label, spec in ((T_LABEL, t_spec), (VAE_LABEL, p_spec)):
    if spec:
        m = caches.try_load_model(spec)
        if m is not None:
            models[label] = (spec, m)
if not models:
    st.stop()
ref_spec, ref = next(iter(models.values()))
shape = tuple(ref.config.input_shape)
if len({tuple(m.config.input_shape) for _, m in models.values()}) > 1:
    st.error("The two models take images of different shapes; choose models trained on the same data.")
    st.stop()

st.subheader("Triplet")
c1, c2 = st.columns([2, 3])
with c1:
    source = widgets.source_picker(ref, key="tf_source")
mode = c2.segmented_control("Build it", ["Transform an image", "Choose x₁ and x₂"], default="Transform an image",
                            required=True, key="tf_mode")
x_all, y_all = sources.source_images(ref, source)
n = int(x_all.shape[0])
theta = None
if mode == "Transform an image":
    c1, c2, c3 = st.columns([2, 1, 2])
    with c1:
        i = widgets.pick_image("Image x", n, y_all, key="tf_x", default=0)
    kind = c2.selectbox("Transformation f", list(transforms.TRANSFORM_AMOUNTS), key="tf_kind")
    lo, hi, default, step, unit = transforms.TRANSFORM_AMOUNTS[kind]
    amount = c3.slider(f"Amount ({unit})", lo, hi, default, step, key=f"tf_amount_{kind}")
    amount_y = c3.slider("Shift down", lo, hi, 0.0, step, key="tf_amount_y") if kind == "translation" else 0.0
    theta = transforms.transform_matrix(kind, amount, amount_y)
    x = x_all[i:i + 1]
    x1 = apply_affine(x, theta)
    x2 = apply_affine(x, invert(theta))
    caption_x = f"x = #{i} {widgets.label_text(y_all, i)}"
else:
    c1, c2 = st.columns(2)
    with c1:
        i1 = widgets.pick_image("x₁ = f(x)", n, y_all, key="tf_x1", default=0)
    with c2:
        i2 = widgets.pick_image("x₂ = f⁻¹(x)", n, y_all, key="tf_x2", default=1)
    x1, x2 = x_all[i1:i1 + 1], x_all[i2:i2 + 1]
    x = x1
    caption_x = "x (unknown: T depends only on x₁ and x₂)"

cols = st.columns(6)
cols[0].image(widgets.image_png(x2[0]), caption="x₂ = f⁻¹(x)")
if theta is not None:
    cols[1].image(widgets.image_png(x[0]), caption=caption_x)
cols[2].image(widgets.image_png(x1[0]), caption="x₁ = f(x)")

Ts = {label: tvae.extract_transformation(m, x, x1, x2)[0].cpu() for label, (_, m) in models.items()}
st.subheader("Extracted T")
fig = go.Figure()
for label, T in Ts.items():
    fig.add_trace(go.Bar(name=f"{label} ({'h_ξ(z₁, z₂)' if label == T_LABEL else '(z₁ − z₂) / 2'}), ‖T‖ = "
                              f"{float(T.norm()):.2f}", x=[f"z{j}" for j in range(len(T))], y=T.tolist()))
fig.update_layout(barmode="group", height=300, yaxis_title="T", legend={"orientation": "h", "y": -0.25},
                  margin={"l": 50, "r": 10, "t": 10, "b": 40})
c1, c2 = st.columns([3, 1])
c1.plotly_chart(fig, key="tf_T")
for label, T in Ts.items():
    c2.metric(f"‖T‖ {label}", f"{float(T.norm()):.3f}", help=f"{len(T)} latent dimensions")

st.subheader("T applied to other images")
c1, c2, c3 = st.columns([2, 1, 1])
how_many = c1.slider("Images", 1, 10, 5, key="tf_count")
steps = c2.slider("Steps k (z ± k·T)", 1, 3, 2, key="tf_steps")
if "tf_seed" not in st.session_state:
    st.session_state["tf_seed"] = 1
if c3.button("Other images", key="tf_shuffle"):
    st.session_state["tf_seed"] += 1
idx = torch.randperm(n, generator=torch.Generator().manual_seed(st.session_state["tf_seed"]))[:how_many]
others = x_all[idx]
ks = list(range(-steps, steps + 1))
st.caption("Columns: k = " + ", ".join(f"{k:+d}" if k else "0 (reconstruction)" for k in ks)
           + ". Rows: the chosen images.")

panels: dict[str, torch.Tensor] = {}
truth = None
if theta is not None:
    truth = torch.stack([transforms.apply_power(others, theta, k) for k in ks], dim=1)
    panels["Ground truth f^k(x)"] = truth
names = {label: f"{label}: z + k·T" if label == T_LABEL else f"{label}: z + k·(z₁ − z₂)/2" for label in models}
for label, (_, m) in models.items():
    panels[names[label]] = tvae.apply_transformation(m, others, Ts[label], steps).cpu()
checks = {label: transfer_check(m, others, Ts[label], truth, steps)
          for label, (_, m) in models.items()} if truth is not None else {}
cols = st.columns(len(panels))
for col, (name, grid) in zip(cols, panels.items(), strict=True):
    col.markdown(f"**{name}**")
    widgets.show_images(grid.reshape(-1, *grid.shape[2:]), nrow=len(ks), where=col)
    label = next((lb for lb, nm in names.items() if nm == name), None)
    if label in checks:
        check = checks[label]
        col.caption("Squared error to the ground truth per k (mean ± SE over the rows): "
                    + ", ".join(f"{k:+d}: {check.error(k).text()}" for k in ks)
                    + ". Doing nothing (the k = 0 reconstruction at every k): "
                    + ", ".join(f"{k:+d}: {check.error(k, baseline=True).text()}" for k in ks if k))
if checks:
    st.markdown("**Against doing nothing** — does z ± T land nearer f^±1(x) than the reconstruction itself? "
                f"Error difference (z + k·T minus doing nothing) over the {how_many} images shown, paired; "
                f"decided when it exceeds {Z:g} standard errors, else no difference shown.")
    rows = []
    for label, check in checks.items():
        for k in (-1, 1):
            gain = check.gain(k)
            rows.append({"model": names[label], "k": f"{k:+d}", "with T": check.error(k).text(),
                         "doing nothing": check.error(k, baseline=True).text(), "difference": gain.text(),
                         "verdict": {"better": "T helps", "worse": "T hurts"}.get(str(check.verdict(k)),
                                                                               "no difference shown")})
    st.dataframe(rows, hide_index=True)
    failing = [label for label, check in checks.items() if any(str(check.verdict(k)) != "better" for k in (-1, 1))]
    for label in failing:
        st.warning(f"**{names[label]}** does not beat doing nothing at both k = −1 and k = +1 on these images: its "
                   f"T does not carry this {kind} over (it may change something else, such as the digit's "
                   "identity). Compare the rows with the ground truth.")

with st.expander("Interpolating between x₁ and x₂ (the middle frame should give back x)"):
    for label, (_, m) in models.items():
        widgets.show_images(tvae.interpolate_pair(m, x1, x2, n=9)[0].cpu(), nrow=9, caption=label)

st.subheader("KNN transfer accuracy")
report = catalog.transfer_report()
if report is None:
    st.info("No results yet. Run `python experiments/tvae_transfer.py`: it trains the VAE, VAE+ and T-VAE, fits a "
            "k-NN classifier on latent means of MNIST (and Fashion-MNIST when present) and tests it on the same data "
            "and on an affine-transformed copy (Aff), then writes `experiments/results/tvae_transfer.json`.")
else:
    st.caption("k-NN accuracy on encoder means, trained on one dataset and tested on the same data or on its affine-"
               "transformed copy (Aff). Bars: this project's runs; open diamonds: the paper's Table 1.")
    st.plotly_chart(figures.transfer_figure(report), key="tf_knn")
    st.dataframe(tables.transfer_table(report), hide_index=True)
    curve = figures.transfer_curve_figure(report)
    if curve is not None:
        st.markdown("**Aff accuracy against labelled latents** (the paper's Figure 2)")
        st.plotly_chart(curve, key="tf_knn_curve")
    settings = report.get("settings") or {}
    with st.expander("How these numbers were made"):
        if settings.get("command"):
            st.code(settings["command"], language="bash")
        for note in report.get("notes") or []:
            st.markdown(f"- {note}")
