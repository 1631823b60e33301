"""σ convergence: the decoder's ln σ against training time for runs and bundled models (σ-VAE Figure 5)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from explorer import caches, catalog, figures, state, sweeps, tables, widgets
from vaecore.evaluation import rate_distortion
from vaecore.files import METRICS

st.title("σ convergence")
st.caption("How the decoder variance of each model evolves during training, as in Figure 5 of the σ-VAE paper.")
sid = state.session_id()
picked = state.model_picker()
manager = caches.job_manager()

bundled = catalog.bundled_with_logs()
runs = {str(r.folder): r for r in manager.runs(sid)
        if r.running or tables.logs_sigma(caches.read_records(r.folder))}
extra = {}
if picked and picked not in bundled and picked not in runs:
    folder = catalog.local_folder(picked)
    if folder is not None and (folder / METRICS).is_file():
        extra[str(folder)] = folder

c1, c2 = st.columns(2)
chosen_bundled = c1.multiselect("Bundled models", list(bundled), default=tables.default_sigma_models(bundled),
                                key="sc_bundled", persist_state="session",
                                help=f"Models whose training log ({METRICS}) is shipped with the checkpoint.")
run_labels = {k: r.label for k, r in runs.items()}
run_labels.update({k: f"sidebar: {catalog.model_label(k)}" for k in extra})
chosen_runs = c2.multiselect("Your runs", list(run_labels), format_func=run_labels.get,
                             default=[k for k in list(runs)[:1] if runs[k].running] + list(extra)[:1],
                             key="sc_runs", persist_state="session")
c1, c2, c3, c4 = st.columns(4)
x_axis = c1.segmented_control("x axis", ["epoch", "step"], default="epoch", key="sc_x", persist_state="session")
quantity = c2.segmented_control("y axis", ["log_sigma", "sigma2"], default="log_sigma", key="sc_y",
                                format_func={"log_sigma": "ln σ", "sigma2": "σ² (σx² MLE)"}.get,
                                persist_state="session")
beta = c3.number_input("β of the β-VAE reference line", 1e-4, 10.0, value=0.01, format="%g", key="sc_beta",
                       persist_state="session")
log_x = c4.toggle("log-scale x axis", key="sc_logx", persist_state="session")

sources: dict[str, Path] = {name: bundled[name] for name in chosen_bundled}
sources.update({f"run: {runs[k].title}" if k in runs else catalog.model_label(k): Path(k) for k in chosen_runs})
live = any(runs[k].running for k in chosen_runs if k in runs)


@st.fragment(run_every=widgets.LIVE_REFRESH_S if live else None)
def plot() -> None:
    traces, skipped = tables.sigma_traces(sources)
    if not sources:
        st.info("Choose bundled models or runs above.")
    elif not traces:
        st.warning("None of the chosen models logs a decoder σ.")
    else:
        st.plotly_chart(figures.sigma_figure(traces, x=x_axis or "epoch", quantity=quantity or "log_sigma", beta=beta,
                                        log_x=bool(log_x)), key="sc_figure")
        st.caption(f"{len(traces)} trace{'s' if len(traces) != 1 else ''}: " + ", ".join(traces)
                   + (" · refreshing live" if live else ""))
        curves = {k: tables.sigma_trace(v, x_axis or "epoch", quantity or "log_sigma") for k, v in traces.items()}
        for a, b, gap in figures.coinciding(curves):
            st.caption(f"**{a}** and **{b}** lie on one curve (they differ by at most {gap:.2g} at every logged "
                       "point): the dashed or dotted one is drawn over the other.")
        summary = tables.sigma_summary(traces, sources)
        if summary:  # an empty table would draw an empty grey box under the chart
            st.dataframe(tables.display_rows(summary), hide_index=True, column_config={
                "effective ln σ": st.column_config.Column(
                    help="ln σ + ½ ln β: a KL weight β acts like a decoder variance σ² scaled by β")})
    for label, why in skipped.items():
        st.caption(f"**{label}**: {why}")


plot()
st.markdown("""
**What the curves mean.** A Gaussian decoder p(x|z) = N(μθ(z), σ²I) weighs reconstruction against the
KL term by 1/(2σ²). With **σ fixed at 1** (ln σ = 0, dashed line) the KL term dominates and samples are
blurry; a **β-VAE** with σ = 1 and KL weight β has the same optimum as a fixed σ² = β, i.e. ln σ = ½ ln β
(dotted line). A **σ-VAE** learns σ (or sets it to its optimum, the RMS reconstruction error): its curve
falls quickly and settles far below 0, to the level where the model is calibrated — the balance a β
would have to be tuned to find. **AR-ELBO** sets σx² to its maximum-likelihood value every step; it is
drawn as ln σ = ½ ln σx². Models without a Gaussian σ (Bernoulli, categorical, …) have no curve; the
discretized likelihoods show the log of their learned scale.
""")

st.subheader("The rate–distortion plane")
st.caption("Rate R = E KL(q(z|x) ‖ p(z)) against distortion D = −E log p(x|z), both in nats per image from each "
           "model's stored evaluation (the same test images), so −ELBO = R + D: the dotted lines join models with "
           "the same ELBO. A σ = 1 Gaussian VAE buys a low rate with a high distortion, the σ-VAE spends rate to "
           "reconstruct far better; a β sweep (Training monitor → Sweep one setting) draws the curve between. Bars: "
           "± 2 SE over the test images.")
rd_points = {name: sweeps.stored_point(folder) for name, folder in
             {**{n: catalog.checkpoints_dir() / n for n in catalog.bundled_names()},
              **{f"run: {r.title}": r.folder for r in manager.runs(sid)}}.items()}
rd_points = {k: p for k, p in rd_points.items() if p is not None}
families = sorted({p.family for p in rd_points.values()})
if not rd_points:
    st.info("No stored evaluation with an ELBO and a KL yet: evaluate a run on the Training monitor.")
else:
    fam = st.segmented_control("Likelihood family", families, default=families[0], required=True, key="sc_rd_family",
                               help="Distortions compare only among likelihoods that score the same thing.") or \
        families[0]
    shown = {k: p for k, p in rd_points.items() if p.family == fam}
    rates = [p.rate for p in shown.values()]
    span = (max(rates) - min(rates)) or 1.0
    iso = rate_distortion.iso_elbo_lines((max(0.0, min(rates) - 0.05 * span), max(rates) + 0.05 * span),
                                         points=list(shown.values()))
    st.plotly_chart(figures.rate_distortion_figure(shown, None, iso), key="sc_rd", config={"displaylogo": False})
    left_out = sorted(set(catalog.bundled_names()) - set(rd_points))
    if left_out:
        st.caption(f"Not on the plane ({len(left_out)}): no ELBO or no KL in their evaluation — "
                   + ", ".join(left_out) + ".")
