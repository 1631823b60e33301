"""VAE Explorer: the Streamlit entry point (`streamlit run app.py`).

Navigation over the pages in pages/, a home page with the bundled model zoo, and the sidebar model
picker that every page shares.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
import torch

import explorer

ROOT = Path(__file__).resolve().parent
PAGES = (
    ("pages/1_Training_monitor.py", "Training monitor", ":material/monitoring:"),
    ("pages/2_Latent_map.py", "Latent map", ":material/scatter_plot:"),
    ("pages/3_Interpolation.py", "Interpolation", ":material/linear_scale:"),
    ("pages/4_Sigma_convergence.py", "σ convergence", ":material/show_chart:"),
    ("pages/5_Likelihood_comparison.py", "Likelihood comparison", ":material/leaderboard:"),
    ("pages/6_Transformations.py", "Transformations", ":material/transform:"),
    ("pages/7_Benchmark.py", "Benchmark", ":material/table_chart:"),
    ("pages/8_Disentanglement.py", "Disentanglement", ":material/grid_view:"),
)

# before any other project import: concurrent first runs must not import half a module
explorer.import_all([ROOT / path for path, _, _ in PAGES])

from explorer import catalog, latents, layout, state, widgets, zoo  # noqa: E402
from explorer import home as home_sections  # noqa: E402
from vaecore.files import EVAL  # noqa: E402


def home() -> None:
    """What this is, in two lines; the zoo table with the picked models side by side; the cards behind a toggle."""
    st.title("VAE Explorer")
    st.markdown("Train, load, compare and look inside variational autoencoders — σ-VAE, AR-ELBO, β-VAE, "
                "IWAE, WAE, RAE and more — on MNIST-like images.  \n"
                "Pick a model in the sidebar, watch one train, see how its decoder variance σ converges, "
                "and compare likelihoods, reconstructions and samples.")
    pages = existing_pages()
    for start in range(0, len(pages), 3):
        for col, (path, title, icon) in zip(st.columns(3), pages[start:start + 3], strict=False):
            col.page_link(path, label=title, icon=icon)
    models = catalog.bundled_catalog()
    runs = state.session_runs()
    if not models and not runs:
        st.info("No bundled checkpoints found in `checkpoints/`. Train a model on the Training monitor page, "
                "or point the sidebar picker at a model folder.")
        return
    home_sections.side_by_side(home_sections.zoo_table(runs))
    if not models or not st.toggle(f"Show the {len(models)} bundled models as cards", key="home_cards",
                                   help="Each card: what the model is, its metrics, its samples and health flags."):
        return
    st.caption("Every card shows the same test metrics: **−log p** of the 8-bit images (nats, lower is better; "
               "comparable across every model with a density, unlike ELBOs of different likelihoods), **MSE** of "
               "the reconstructions, **FD** of prior samples (small MNIST classifier) and the number of **active** "
               "latent dimensions. — where a model does not define it.")
    groups: dict[str, list[dict]] = {}
    for m in models:
        groups.setdefault(catalog.card_family(m), []).append(m)
    order = [f for f in catalog.group_order() if f in groups]
    for fam in order:
        st.markdown(f"#### {catalog.group_heading(fam)}")
        members = groups[fam]
        per_row = 3
        for start in range(0, len(members), per_row):
            for col, m in zip(st.columns(per_row), members[start:start + per_row], strict=False):
                with col.container(border=True):
                    model_card(m)


def model_card(m: dict) -> None:
    """One bundled model: title, facts, the shared card metrics, health flags, samples, a Use button."""
    st.markdown(f"**{m.get('title') or m['name']}**")
    st.caption(f"`{m['name']}` · {m.get('family') or '?'} · {m.get('likelihood') or '?'} · "
               f"latent {zoo.latent_label(m.get('config') or {})} · "
               f"{m.get('data') or '?'}")
    if m.get("description"):
        st.caption(m["description"])
    values = catalog.card_metrics(m["eval"])
    if m["eval"]:
        st.markdown(widgets.card_metrics_markdown(values, catalog.card_spreads(m["eval"])))
    else:
        st.caption(f"no {EVAL} yet")
    for flag in zoo.folder_flags(m["folder"]):
        st.warning(flag.message, icon=":material/warning:")
    if m.get("hub_repo_id") and m.get("hub_published"):
        st.caption(f"On the Hub: `{m['hub_repo_id']}`")
    else:
        st.caption(f"Not on the Hub yet; publish it with `python -m vaecore publish checkpoints/{m['name']} "
                   f"<user>/{m['name']}`.")
    if m["samples"] is not None:
        widgets.show_png_file(m["samples"], caption=m["samples_caption"])
    st.button("Use this model", key=f"use_{m['name']}", on_click=state.set_pick, args=("Bundled", m["name"]))


def existing_pages() -> list[tuple[str, str, str]]:
    """The pages whose files exist (part B's pages appear once they land)."""
    return [p for p in PAGES if (ROOT / p[0]).is_file()]


@st.cache_resource(show_spinner=False)
def configure_process() -> int:
    """Once per server process: torch threads for page work (VAE_TORCH_THREADS, default 1: on a busy 2-core
    machine one thread per computation was 2–5× faster than two fighting over the cores; training jobs run
    one thread each, one job per core), numba's cache in the writable cache folder, the UMAP warm-up."""
    threads = int(os.environ.get("VAE_TORCH_THREADS", "1"))
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(catalog.cache_root() / "numba"))
    if os.environ.get("VAE_WARM_UMAP", "1") != "0":
        latents.warm_up_umap()
    return threads


st.set_page_config(page_title="VAE Explorer", page_icon=":material/blur_on:", layout="wide")
configure_process()
navigation = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True)]
                           + [st.Page(path, title=title, icon=icon) for path, title, icon in existing_pages()])
state.session_id()
layout.collapse_sidebar_when_narrow()
state.render_model_picker()
try:
    navigation.run()
finally:
    state.end_of_run()
