"""Likelihood comparison: evaluation metrics of several models on a test subset, with the papers' numbers."""

from __future__ import annotations

import streamlit as st

from explorer import caches, figures, state, tables, widgets

st.title("Likelihood comparison")
st.caption("Evaluate models on the same test images: bounds on the likelihood, reconstruction error, "
           "latent usage and sample quality. Results are cached per model version and settings.")
state.session_id()
picked = state.model_picker()

try:
    from vaecore.evaluation.metrics import METRICS
    from vaecore.samplers import SAMPLERS
except ImportError as e:
    st.warning(f"The evaluation engine is not available yet ({e}). This page works once "
               "`vaecore.metrics` and `vaecore.samplers` are installed.")
    st.stop()

choices = state.model_choices()
if not choices:
    st.info("No models to compare yet: bundled checkpoints appear here, and so do your training runs.")
    st.stop()
default_models = ([picked] if picked in choices else []) + [c for c in choices if c != picked]
specs = st.multiselect("Models", list(choices), format_func=choices.get, default=default_models[:3],
                       key="lc_models", persist_state="session")
offered = [m for m in tables.COMPARISON_METRICS if m in METRICS]
offered += [m for m in METRICS if m not in tables.COMPARISON_METRICS and m != "kl-per-dim"]
names = st.multiselect("Metrics", offered, default=[m for m in tables.DEFAULT_METRICS if m in METRICS],
                       format_func=tables.metric_title, key="lc_metrics", persist_state="session")
c2, c3, c4 = st.columns(3)
n_test = c2.select_slider("Test images", [50, 100, 250, 500, 1000, 2000, 5000, 10000], value=500,
                          key="lc_n_test", persist_state="session",
                          help="The first N images of the test split (bigger: slower but less noisy).")
iwae_k = c3.select_slider("IWAE samples K", [10, 50, 100, 250, 500, 1000], value=100, key="lc_k",
                          persist_state="session", help="Importance samples per image for IWAE, −log pdf, −log p "
                                                        "and bits/dim (the papers use K = 1000 or more).")
sampler = c4.selectbox("Sampler for FD and samples", list(SAMPLERS), key="lc_sampler", persist_state="session",
                       help="Where generated images draw z: " + "; ".join(f"{k}: {v}" for k, v in SAMPLERS.items()))
with st.popover("More settings"):
    n_samples = st.select_slider("Generated images for FD", [250, 500, 1000, 2000, 5000], value=1000,
                                 key="lc_n_samples", persist_state="session")
    seed = st.number_input("Seed", 0, 2**31 - 1, value=0, key="lc_seed", persist_state="session")
settings = {"seed": int(seed), "sampler": sampler, "iwae_k": int(iwae_k), "n_samples": int(n_samples)}

if st.button("Compute", type="primary", icon=":material/calculate:", key="lc_compute",
             disabled=not specs or not names):
    bar = st.progress(0.0, text="starting…")
    for i, spec in enumerate(specs):
        label = choices.get(spec, spec)
        if caches.cached_evaluation(spec, names, n_test, **settings) is not None:
            continue

        def report(stage: str, done: int, total: int, i: int = i, label: str = label) -> None:
            frac = (i + (done / total if total else 1.0)) / len(specs)
            bar.progress(min(frac, 1.0), text=f"{label} ({i + 1}/{len(specs)}): {stage} {done}/{total}")

        try:
            caches.evaluate_model(spec, names, n_test, progress=report, **settings)
        except Exception as e:  # noqa: BLE001 - one model's failure must not hide the others
            st.error(f"**{label}**: {type(e).__name__}: {e}")
    bar.progress(1.0, text="done")

results = {spec: r for spec in specs if (r := caches.cached_evaluation(spec, names, n_test, **settings)) is not None}
if not specs:
    st.info("Choose models to compare.")
elif not results:
    st.info(f"Press **Compute** to evaluate {len(specs)} model(s) on {n_test} test images.")
else:
    missing = [choices.get(s, s) for s in specs if s not in results]
    if missing:
        st.caption("Not computed yet with these settings: " + ", ".join(missing))
    table = tables.metrics_table({choices.get(s, s): r for s, r in results.items()}, names)
    st.subheader("Metrics")
    st.dataframe(table, hide_index=True, column_config=tables.metric_column_config(names))
    st.caption(f"First {n_test} test images · IWAE with K = {iwae_k} · FD on {n_samples} generated images from "
               f"the '{sampler}' sampler, in the feature space of the bundled small classifier (not Inception).")
    notes = tables.metric_notes({choices.get(s, s): r for s, r in results.items()})
    if notes:
        with st.expander("Why some cells are empty"):
            for line in notes:
                st.markdown(f"- {line}")
    charts = [m for m in names if any(isinstance(r.get(m), int | float) for r in results.values())]
    for start in range(0, len(charts), 2):
        for col, metric in zip(st.columns(2), charts[start:start + 2], strict=False):
            col.plotly_chart(figures.metric_bar({choices.get(s, s): r for s, r in results.items()}, metric),
                             key=f"lc_bar_{metric}")

    published = tables.published_numbers({choices.get(s, s): s for s in results}, results)
    st.subheader("Published numbers")
    if published:
        st.caption(tables.reference_note())
        st.dataframe(published, hide_index=True)
    else:
        st.caption("None of the chosen models matches a setting the papers report (AR-ELBO Table 3 is MNIST; "
                   "σ-VAE's likelihood table is CIFAR-10).")

st.subheader("Samples")
samplers = st.multiselect("Samplers", list(SAMPLERS), default=list(dict.fromkeys(["prior", sampler])),
                          key="lc_grid_samplers", persist_state="session",
                          help="Fitted samplers (GMM, 2-stage, MAF) are fitted once on training latents and saved.")
for spec in specs:
    label = choices.get(spec, spec)
    st.markdown(f"**{label}**")
    cols = st.columns(max(len(samplers), 1))
    for col, name in zip(cols, samplers, strict=False):
        try:
            with st.spinner(f"{name} sampler for {label}…"):
                png = widgets.sample_grid_png(spec, name, n=36, seed=int(seed))
        except Exception as e:  # noqa: BLE001 - a sampler that does not apply shows why
            col.caption(f"{name}: {e}")
        else:
            col.image(png, caption=name)
