"""The home page's sections: the zoo table (every bundled model and this session's runs, sortable and filterable),
the picked rows side by side on the same test images, and the model cards behind a toggle."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
import torch

from explorer import caches, state, widgets, zoo
from explorer.models import has_prior_samples
from vaecore.evaluation.registry import METRICS
from vaecore.files import EVAL

MAX_SIDE_BY_SIDE = 6
SHOWN_IMAGES = 8


def _column_config() -> dict[str, Any]:
    config: dict[str, Any] = {
        "model": st.column_config.TextColumn("model", pinned=True, width="medium"),
        "epochs": st.column_config.NumberColumn("epochs", format="%g", help="the training budget"),
        "test images": st.column_config.NumberColumn("test images", format="%d",
                                                     help="how many test images its evaluation used"),
        "± SE": st.column_config.NumberColumn(
            "± SE", format="%.1f", help="standard error of −log p over the test images (where the per-image values "
                                        f"are stored beside {EVAL})"),
        "flags": st.column_config.TextColumn("flags", help="the engine's health checks that fired (the cards and "
                                                           "the sidebar summary say why)"),
    }
    for key in zoo.TABLE_METRICS:
        m = METRICS[key]
        config[m.short_title] = st.column_config.NumberColumn(
            m.short_title, format="%.4g", help=f"{m.title}: {m.description}")
    for key, column in zoo.SPREAD_COLUMNS.items():
        config[column] = st.column_config.NumberColumn(column, format="%.3g", help=f"{METRICS[key].uncertainty} of "
                                                       f"{METRICS[key].label} (empty: not stored by an older "
                                                       "evaluation)")
    return config


def zoo_table(run_folders: list) -> list[zoo.ZooRow]:
    """The filters and the table; returns the rows the user picked (in table order)."""
    rows = zoo.zoo_rows(run_folders)
    st.subheader(f"The zoo: {sum(r.source == 'bundled' for r in rows)} bundled models"
                 + (f" and {sum(r.source == 'run' for r in rows)} runs of yours" if run_folders else ""))
    st.caption("One row per model, on the same test images of its evaluation: **−log p** of the 8-bit images "
               f"({METRICS['nll-discrete'].unit}, lower is better, comparable across every model with a density), "
               "**MSE** of the reconstructions, **FD** of prior samples (a small MNIST classifier's features, not "
               "Inception FID), **active** latent dimensions; empty where a model does not define a metric or has "
               "not been evaluated. Each value has its ± beside it (SE over the test images, s.d. over 3 sample "
               "seeds); an empty ± is an evaluation from before they were stored. A sorted column orders values, "
               "it does not decide them (the Likelihood comparison page ranks with paired differences). Click a "
               "header to sort; tick rows to see those models side by side below.")
    c1, c2, c3 = st.columns([3, 4, 2], vertical_alignment="bottom")
    text = c1.text_input("Filter", key="zoo_filter", placeholder="name, family or likelihood").strip().lower()
    families = sorted({r.family for r in rows})
    chosen = c2.multiselect("Families", families, key="zoo_families", placeholder="all families")
    flagged = c3.toggle("Flagged only", key="zoo_flagged", help="models a health check flags")
    shown = [r for r in rows if (not text or text in f"{r.name} {' '.join(r.aliases)} {r.family} {r.likelihood} "
                                               f"{r.data}".lower())
             and (not chosen or r.family in chosen) and (not flagged or r.flags)]
    if not shown:
        st.info("No model matches the filters.")
        return []
    frame = pd.DataFrame([r.record() for r in shown])
    event = st.dataframe(frame, hide_index=True, column_config=_column_config(), on_select="rerun",
                         selection_mode="multi-row", key="zoo_table", width="stretch",
                         height=min(38 * (len(shown) + 1) + 3, 560))
    picked = [shown[i] for i in (event.selection.rows if event is not None else []) if i < len(shown)]
    return picked


@torch.no_grad()
def _recon(spec: str, x: torch.Tensor) -> torch.Tensor:
    model = caches.load_model(spec)
    model.eval()
    return model.reconstruct(x.to(model.device)).cpu()


def side_by_side(rows: list[zoo.ZooRow]) -> None:
    """The picked models on the same test images: each model's reconstructions of them and its samples."""
    if not rows:
        return
    if len(rows) > MAX_SIDE_BY_SIDE:
        st.caption(f"Showing the first {MAX_SIDE_BY_SIDE} of {len(rows)} picked models.")
        rows = rows[:MAX_SIDE_BY_SIDE]
    st.subheader("Side by side")
    start = int(st.number_input("First test image", 0, 9_000, 0, step=SHOWN_IMAGES, key="zoo_first",
                                help=f"Every model reconstructs the same {SHOWN_IMAGES} test images from here on."))
    by_data: dict[str, list[zoo.ZooRow]] = {}
    for r in rows:
        by_data.setdefault(r.data, []).append(r)
    for data, members in by_data.items():
        try:
            model = caches.load_model(members[0].spec)
            x = caches.dataset_for(model).x_test[start:start + SHOWN_IMAGES]
        except (ValueError, OSError) as e:
            st.error(f"Could not load the test images of {data}: {e}")
            continue
        if len(by_data) > 1:
            st.markdown(f"**{data}**")
        head = st.columns([2, 5, 5])
        head[0].caption(f"test images #{start}–#{start + len(x) - 1}")
        widgets.show_images(x, nrow=SHOWN_IMAGES, where=head[1])
        head[2].caption(f"samples ({SHOWN_IMAGES * 2} draws, seed 0): the model's prior, or a GMM fitted on its "
                        "training latents for a model without one")
        for r in members:
            cols = st.columns([2, 5, 5])
            cols[0].markdown(f"**{r.name}**  \n{r.family} · {r.likelihood}")
            cols[0].button("Use", key=f"zoo_use_{r.spec}", on_click=state.set_pick,
                           args=("Bundled" if r.source == "bundled" else "Runs", r.spec))
            try:
                widgets.show_images(_recon(r.spec, x), nrow=SHOWN_IMAGES, where=cols[1])
                model = caches.load_model(r.spec)
                sampler = "prior" if has_prior_samples(model) else "gmm"
                widgets.show_images(caches.sample_images(r.spec, sampler, SHOWN_IMAGES * 2, seed=0),
                                    nrow=SHOWN_IMAGES, where=cols[2])
            except Exception as e:  # noqa: BLE001 - one model that fails must not hide the others
                cols[1].error(f"{type(e).__name__}: {e}")
