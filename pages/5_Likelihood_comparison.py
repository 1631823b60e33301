"""Likelihood comparison: rank models on −log p of the 8-bit test images, bounds within each likelihood family,
sample grids per sampler, the papers' numbers; bundled models show their precomputed evaluation at once."""

from __future__ import annotations

import time

import streamlit as st

from explorer import caches, downloads, evaluations, figures, ood, state, tables, widgets
from vaecore.files import EVAL

st.title("Likelihood comparison")
st.caption("Models are ranked on **−log p of the 8-bit test images** (nats, lower is better, ± its standard error "
           "over the test images): the one likelihood comparable across every model with a density. Only models "
           "evaluated on the same test images are ranked together, each compared with the best by the paired "
           "difference on those images. A continuous density is compared only on dequantised images (−log p (deq.)); "
           "−log pdf of the 8-bit images themselves is unbounded and ranks nothing. ELBO and IWAE are compared only "
           "within a likelihood family. Bundled models show their precomputed evaluation at once; other settings "
           "compute in the background.")
state.session_id()
picked = state.model_picker()

try:
    from vaecore.evaluation.metrics import ACTIVE_THRESHOLD, METRICS
    from vaecore.samplers import SAMPLERS
except ImportError as e:
    st.warning(f"The evaluation engine is not available ({e}).")
    st.stop()

choices = state.model_choices()
if not choices:
    st.info("No models to compare yet: bundled checkpoints appear here, and so do your training runs.")
    st.stop()
specs = st.multiselect("Models", list(choices), format_func=choices.get,
                       default=evaluations.good_default_models(choices, picked), key="lc_models",
                       persist_state="session")
offered = [m for m in tables.COMPARISON_METRICS if m in METRICS]
names = st.multiselect("Metrics", offered, default=[m for m in tables.DEFAULT_METRICS if m in METRICS],
                       format_func=tables.metric_title, key="lc_metrics", persist_state="session",
                       help="FD (Fréchet distance of generated images) needs 1,000 generated images per model.")
c2, c3, c4 = st.columns(3)
n_test = c2.select_slider("Test images", [50, 100, 250, 500, 1000, 2000, 5000, 10000], value=500,
                          key="lc_n_test", persist_state="session",
                          help="The first N images of the test split (bigger: slower but less noisy).")
iwae_k = c3.select_slider("IWAE samples K", [10, 50, 100, 250, 500, 1000], value=100, key="lc_k",
                          persist_state="session", help="Importance samples per image for IWAE, −log pdf, −log p "
                                                        "and bits/dim (the papers use K = 1000 or more).")
sampler = c4.selectbox("Sampler for FD", list(SAMPLERS), key="lc_sampler", persist_state="session",
                       disabled="fd" not in names,
                       help="Where generated images draw z: " + "; ".join(f"{k}: {v}" for k, v in SAMPLERS.items()))
with st.popover("More settings"):
    n_samples = st.select_slider("Generated images for FD", [250, 500, 1000, 2000, 5000], value=1000,
                                 key="lc_n_samples", persist_state="session")
    seed = st.number_input("Seed", 0, 2**31 - 1, value=0, key="lc_seed", persist_state="session")
settings = {"seed": int(seed), "sampler": sampler, "iwae_k": int(iwae_k), "n_samples": int(n_samples)}


def gather() -> tuple[dict[str, dict], dict[str, str], list[evaluations.EvalTask]]:
    """Per model: the result with these settings (computed here) or its precomputed eval.json; the source of
    each; the background tasks still running."""
    results, sources, running = {}, {}, []
    for spec in specs:
        label = choices.get(spec, spec)
        task = evaluations.evaluation_task(spec, names, n_test, **settings)
        if task is not None and task.result is not None:
            results[label], sources[label] = task.result, f"computed here: {n_test} test images, K = {iwae_k}"
            continue
        if task is not None and task.running:
            running.append(task)
        if task is not None and task.error:
            st.error(f"**{label}**: {task.error}")
        pre = evaluations.precomputed(spec)
        if pre is not None:
            s = pre.get("settings") or {}
            results[label] = evaluations.under_current_rules(spec, pre)
            sources[label] = (f"precomputed ({EVAL}): {s.get('n_test', pre.get('n_test', '?'))} test images, "
                              f"K = {s.get('iwae_k', '?')}")
    return results, sources, running


results, sources, running = gather()
missing = [s for s in specs if choices.get(s, s) not in results or not sources[choices.get(s, s)].startswith(
    "computed")]
b1, b2 = st.columns([2, 3], vertical_alignment="center")
if b1.button("Compute with these settings", icon=":material/calculate:", key="lc_compute",
             disabled=not specs or not names or not missing,
             help="Runs in the background, one model at a time; the page stays usable."):
    for spec in missing:
        evaluations.start_evaluation(spec, choices.get(spec, spec), names, n_test, **settings)
    st.rerun()
b2.caption("Every chosen model is evaluated with these settings." if not missing else
           f"{len(missing)} model(s) not yet evaluated with these settings "
           "(bundled ones show their precomputed numbers meanwhile).")


@st.fragment(run_every=1.5 if running else None)
def progress_panel() -> None:
    now = [t for t in running if t.running]
    for task in now:
        frac = task.done / task.total if task.total else 0.0
        st.progress(min(1.0, frac), text=f"{task.label}: {task.stage} {task.done}/{task.total} · "
                                         f"{tables.format_seconds(time.monotonic() - task.started)}")
    if running and not now:
        st.rerun(scope="app")


progress_panel()

if not specs:
    st.info("Choose models to compare.")
    st.stop()
families = {choices.get(s, s): evaluations.likelihood_family(s) for s in specs}
missing_labels = [choices.get(s, s) for s in specs if choices.get(s, s) not in results]
ranked, unranked = evaluations.ranking_rows(results, families, names, missing=missing_labels)
st.subheader(f"Ranking: {METRICS[evaluations.RANK_METRIC].title}, {METRICS[evaluations.RANK_METRIC].direction.phrase}")
if ranked:
    st.caption(evaluations.ranking_note(results))
    st.dataframe(tables.display_rows(ranked), hide_index=True, width="stretch",
                 column_config=tables.display_column_config(ranked[0]))
    st.plotly_chart(figures.metric_bar({r["model"]: results[r["model"]] for r in ranked}, "nll-discrete"),
                    key="lc_bar_rank", config={"displaylogo": False})
    paired = evaluations.paired_rows(results, ranked)
    if paired:
        st.markdown(f"**Against the best ({ranked[0]['model']}) on the other metrics**")
        st.caption("Per-image metrics by the paired difference on the same test images; metrics of generated images "
                   "by the difference of the sample seeds' means (Welch SE); decided beyond 2 SE. A metric a model "
                   "stores without its spread is left out, not compared on bare means.")
        st.dataframe(tables.display_rows(paired), hide_index=True, width="stretch", key="lc_paired")
else:
    st.caption("None of the chosen models has −log p of the 8-bit images on a recorded set of test images yet.")
if unranked:
    st.markdown("**Not ranked**, each with why (no probability of the 8-bit images, other test images, or no "
                "per-image values: a mean without its SE is shown, never ranked)")
    st.dataframe(tables.display_rows(unranked), hide_index=True, width="stretch",
                 column_config=tables.display_column_config(unranked[0]))
for spec in specs:
    for warning in caches.collapse_warnings(spec):
        st.warning(f"**{choices.get(spec, spec)}**: {warning}", icon=":material/warning:")
for label, where in sources.items():
    st.caption(f"**{label}**: {where}")
shown = [m for m in ("fd",) if m in names]
fd_note = (f" FD: Fréchet distance of {n_samples} images from the '{sampler}' sampler in the bundled small "
           "classifier's feature space (not Inception)." if shown else "")
st.caption("MSE: squared error of reconstructions, summed over pixels. Active: latent dimensions with posterior "
           f"variance of the means above {ACTIVE_THRESHOLD}." + fd_note)
st.download_button("Metrics as CSV", downloads.csv_bytes(ranked + unranked), file_name="comparison.csv",
                   mime="text/csv", key="lc_dl_csv", icon=":material/download:")

with st.expander("Why this order? Where the nats of −log p go"):
    st.markdown(
        "−log p of an 8-bit MNIST image is dominated by its background: about 80 % of the pixels are exactly black. A "
        "Gaussian decoder whose mean lies above the open first bin's edge (0.5/255) gives that bin at most half its "
        "mass, so such a model pays at least ln 2 = 0.69 nats per black pixel, however small its σ; a small σ pays "
        "off only on the grey pixels it reconstructs well, and costs heavily on the stroke pixels it misses by more "
        "than σ. The KL term adds the nats the latent code costs. So the blurry σ = 1 VAE, whose collapsed posterior "
        "costs a few nats of KL, can rank **above** the σ-VAE, which spends about 50 nats of KL on a sharp code: "
        "−log p measures how well the 8-bit images are coded, not how good the samples look (compare FD and "
        "precision/recall for that). An all-black decoder (AR-ELBO Diag-D in the zoo, its posterior collapsed) puts "
        "its mean below the edge with a small σ, so it pays less than ln 2 a black pixel, pays nothing for the "
        "latent code, and loses only on the strokes — which is why it sits just tens of nats behind a good model. The "
        "breakdown below computes this for the chosen models (one draw z ~ q(z|x) per image; the sum is the 8-bit "
        "−ELBO, which IWAE tightens into −log p).")
    bd_n = st.select_slider("Test images", [50, 100, 200, 500], value=100, key="lc_bd_n")
    if st.button("Compute the breakdown", key="lc_bd_go", disabled=not specs):
        with st.spinner("Decoding one draw per test image…"):
            bd_rows, bd_skipped = evaluations.breakdown_rows(specs, choices, int(bd_n))
        if bd_rows:
            st.dataframe(tables.display_rows(bd_rows), hide_index=True, width="stretch")
        if bd_skipped:
            st.caption("No breakdown by pixel for " + ", ".join(bd_skipped) + " (its likelihood does not split "
                       "−log p by pixel, or it has no −log p).")

st.subheader("Bounds within each likelihood family")
st.caption("ELBO and IWAE (higher is better, ± SE over the test images) are densities of the pixel values under "
           "that family's model; numbers of different families are not comparable. An empty ± is an evaluation "
           "from before per-image values were stored: its value is shown, not to be compared.")
for fam, rows in evaluations.family_rows(results, families).items():
    st.markdown(f"**{fam}**")
    st.dataframe(tables.display_rows(rows), hide_index=True, column_config=tables.display_column_config(rows[0]))
notes = tables.metric_notes(results)
if notes:
    with st.expander("Why some cells are —"):
        for line in notes:
            st.markdown(f"- {line}")

st.subheader("IWAE K-curve: how the bound tightens with K")
st.caption("The importance-weighted estimate of −log p of the 8-bit images at K = 1 (the ELBO) … 5,000 draws per "
           "image, from one sequence of draws (the estimate at K uses the first K), mean ± SE over the test images. "
           "Where it still falls at the largest K, the reported −log p (K = 100 in the bundled evaluations) is loose.")
kc1, kc2, kc3 = st.columns(3)
kc_model = kc1.selectbox("Model", specs, format_func=choices.get, key="lc_kc_model") if specs else None
kc_n = kc2.select_slider("Test images", [10, 20, 50, 100, 200], value=20, key="lc_kc_n")
kc_max = kc3.select_slider("Largest K", [100, 500, 1000, 5000], value=1000, key="lc_kc_k")
kc_ks = [k for k in (1, 5, 10, 50, 100, 500, 1000, 5000) if k <= kc_max]
if kc_model and st.button("Compute the K-curve", key="lc_kc_go"):
    bar = st.progress(0.0, text="K-curve")
    try:
        rows = evaluations.k_curve(kc_model, int(kc_n), kc_ks,
                                   progress=lambda stage, done, total: bar.progress(done / max(total, 1),
                                                                                    text=f"{stage} {done}/{total}"))
        st.session_state["lc_kc_rows"] = (kc_model, rows)
    except ValueError as e:
        st.error(f"{choices.get(kc_model, kc_model)}: {e}")
    bar.empty()
if st.session_state.get("lc_kc_rows") and st.session_state["lc_kc_rows"][0] == kc_model:
    kc_rows = st.session_state["lc_kc_rows"][1]
    st.plotly_chart(figures.k_curve(kc_rows, choices.get(kc_model, kc_model)), key="lc_kc_fig",
                    config={"displaylogo": False})

st.subheader("Out of distribution: does the likelihood know what the model has not seen?")
st.caption("Likelihood models can give images of another dataset a *higher* likelihood than their own test images "
           "(Nalisnick et al. 2019: Fashion-MNIST models prefer MNIST). Measured here by the engine "
           "(`vaecore.evaluation.ood`): −log p of the model's test images against the other dataset's (Fashion-MNIST "
           "for an MNIST model and back) and your uploads, the typicality and input-complexity variants, and the "
           "AUROC of each score (0.5: no separation; below 0.5: the other data looks *more* in-distribution).")
o1, o2, o3 = st.columns(3)
ood_model = o1.selectbox("Model", specs, format_func=choices.get, key="lc_ood_model") if specs else None
ood_n = int(o2.select_slider("Images per set", [50, 100, 200, 500, 1000], value=200, key="lc_ood_n"))
ood_k = int(o3.select_slider("IWAE samples K", [1, 4, 8, 16, 64], value=8, key="lc_ood_k"))
ood_key = ood.view_key(ood_model, ood_n, ood_k)
other, no_other = ood.other_dataset(ood_model) if ood_model else (None, "")
if ood_model and other is None:
    st.caption(f"Not available for this model: {no_other}.")
elif ood_model and st.button("Compute the OOD scores", key="lc_ood_go", icon=":material/calculate:"):
    bar = st.progress(0.0, text="out-of-distribution scores")
    try:
        st.session_state["lc_ood"] = (ood_key, ood.compute(
            ood_model, ood_n, ood_k, progress=lambda stage, done, total: bar.progress(
                min(1.0, done / max(total, 1)), text=f"{stage}: {done}/{total}")))
    except ValueError as e:
        st.error(f"{choices.get(ood_model, ood_model)}: {e}")
    bar.empty()
if st.session_state.get("lc_ood") and st.session_state["lc_ood"][0] == ood_key:
    view = st.session_state["lc_ood"][1]
    inside, outside = view.result.inside["nll"], view.result.outside["nll"]
    st.markdown(f"Mean −log p ({view.result.measure}, IWAE K = {view.k}): **{inside.mean():,.1f}** nats on "
                f"{view.n} {view.inside} test images, **{outside.mean():,.1f}** on {view.n} {view.outside} test "
                f"images; AUROC of −log p **{view.result.aurocs['nll'].text()}** (± its Hanley–McNeil SE).")
    st.dataframe(ood.auroc_rows(view), hide_index=True)
    st.plotly_chart(ood.nll_histogram(view), key="lc_ood_hist", config={"displaylogo": False})
    if view.uploads:
        st.markdown("**Your uploads** — where each image's −log p falls among the test images")
        st.dataframe(view.uploads, hide_index=True)

published = tables.published_numbers({choices.get(s, s): s for s in specs},
                                     {s: results[choices.get(s, s)] for s in specs if choices.get(s, s) in results})
st.subheader("Published numbers")
if published:
    st.caption(tables.reference_note())
    st.dataframe(tables.display_rows(published), hide_index=True)
else:
    st.caption("None of the chosen models matches a setting the papers report (AR-ELBO Table 3 is MNIST; "
               "σ-VAE's likelihood table is CIFAR-10).")

st.subheader("Samples")
samplers = st.multiselect("Samplers", list(SAMPLERS), default=["prior"], key="lc_grid_samplers",
                          persist_state="session",
                          help="Fitted samplers (GMM, 2-stage, MAF) are fitted once on training latents and saved; "
                               "an unfitted one is fitted only when you ask (it can take minutes).")
per_row = 3
cells = [(spec, name) for spec in specs for name in samplers]
for start in range(0, len(cells), per_row):
    for col, (spec, name) in zip(st.columns(per_row), cells[start:start + per_row], strict=False):
        label = choices.get(spec, spec)
        col.markdown(f"**{label}** · {name}")
        if name == "prior" and (why := evaluations.prior_note(spec)):
            col.caption(f"Not meaningful: {why}.")
        if not evaluations.sampler_ready(spec, name) and not st.session_state.get(f"lc_fit_{spec}_{name}"):
            col.caption(f"The {name} sampler is not fitted for this model yet.")
            if col.button("Fit it (may take minutes)", key=f"lc_fitbtn_{spec}_{name}"):
                st.session_state[f"lc_fit_{spec}_{name}"] = True
                st.rerun()
            continue
        try:
            with col, st.spinner(f"{name} sampler for {label}…"):
                png = widgets.sample_grid_png(spec, name, n=36, seed=int(seed))
        except Exception as e:  # noqa: BLE001 - a sampler that does not apply shows why
            col.caption(f"{name}: {e}")
            continue
        col.image(png, width=300)
        col.download_button("PNG", png, file_name=f"{label}-{name}.png".replace("/", "_"), mime="image/png",
                            key=f"lc_dl_{spec}_{name}", icon=":material/download:")
