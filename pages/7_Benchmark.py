"""Benchmark: Pythae's four tasks for every bundled model, from their eval.json, with Pythae's MNIST FIDs; and the
reproduction board (test −log p(x) on binarized MNIST beside the published values), from its result files."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import benchmark, downloads, reproduction
from vaecore.files import EVAL


def reproduction_board() -> None:
    """The reproduction board: ours ± SE beside the published −log p(x), and the learning curves."""
    st.header("Reproduction board")
    results = reproduction.load()
    if not reproduction.has_results(results):
        st.info("No reproduction results yet: `python experiments/reproduction.py --epochs 10` trains and scores "
                "the rows into experiments/results/reproduction/.")
        return
    st.markdown(reproduction.budget_text(results))
    help_ = {c: st.column_config.Column(help=h) for c, h in reproduction.COLUMN_HELP.items()}
    for group, title in reproduction.GROUPS.items():
        st.subheader(title)
        st.caption(f"Source: {reproduction.source(group)}.")
        rows = reproduction.table(results, group)
        frame = pd.DataFrame(rows, columns=reproduction.COLUMNS)
        numbers = ["−log p(x), ours", "± SE", "published", "paper", "ours − published"]
        styled = frame.style.format(na_rep="", precision=2, subset=numbers).format(
            na_rep="", precision=0, subset=["epochs", "test images"])
        st.dataframe(styled, hide_index=True, width="stretch", column_config=help_, key=f"repro_{group}",
                     placeholder="")
        with st.expander("Differences from the published setting"):
            st.markdown("\n".join(f"- {line}" for line in reproduction.notes(group)) or "None stated.")
        if group == "iwae":
            st.caption("IWAE − VAE at the same k, per-image differences on the same test images (the paper: IWAE is "
                       "lower at k = 5 and 50); a difference counts beyond 2 SE.")
            st.dataframe(pd.DataFrame(reproduction.paired_rows(results)), hide_index=True, key="repro_paired",
                         placeholder="")
    ids = reproduction.curve_rows(results)
    shown = st.multiselect("Rows on the learning curve", ids, default=ids, key="repro_curve_rows")
    st.plotly_chart(reproduction.curve_figure(results, shown), key="repro_curve", config={"displaylogo": False})
    st.download_button("Board as CSV", downloads.csv_bytes([*reproduction.table(results, "iwae"),
                                                            *reproduction.table(results, "pythae")]),
                       file_name="reproduction_board.csv", mime="text/csv", key="repro_dl_csv",
                       icon=":material/download:")


st.title("Benchmark")
st.caption("Pythae's four tasks for every bundled model — reconstruction, generation, classification and "
           f"clustering — read from each model's precomputed {EVAL} (nothing is computed here), with Pythae's "
           "published MNIST FIDs beside them.")
with st.expander("What each task measures"):
    st.markdown("\n".join(f"- **{task}**: {text}" for task, text in benchmark.TASKS.items()))

rows = benchmark.benchmark_rows()
if not rows:
    st.info(f"No bundled model has an {EVAL} yet (checkpoints/<name>/{EVAL}). Run "
            "`python -m vaecore eval` on a model folder, or the zoo's eval stage.")
    reproduction_board()
    st.stop()

ours = [column for _, column in benchmark.OURS]
pythae = [column for _, column in benchmark.PYTHAE]
sortable = ["model", "epochs", *ours, *pythae]  # the ± columns are spreads, not scores: not offered for sorting
c1, c2, c3 = st.columns([3, 2, 3])
sort_by = c1.selectbox("Sort by", sortable, index=sortable.index(benchmark.SORT_DEFAULT), key="bm_sort",
                       help="Or click a column header of the table.")
descending = c2.toggle("Descending", value=False, key="bm_desc")
hide_empty = c3.toggle("Hide columns without any value", value=False, key="bm_hide")
rows = benchmark.sorted_rows(rows, sort_by, descending) if sort_by != "model" else \
    sorted(rows, key=lambda r: r["model"], reverse=descending)

columns = benchmark.column_order()
if hide_empty:
    columns = [c for c in columns if c == "model" or benchmark.has_values(rows, c)]
frame = pd.DataFrame(rows, columns=columns)
config: dict[str, object] = {c: st.column_config.NumberColumn(c, format="%.3g", help=benchmark.COLUMN_HELP.get(c))
                             for c in columns if c not in ("model", "Pythae model", "epochs")}
config.update({c: st.column_config.NumberColumn(c, format="%.3g", help="Pythae's published FID for this model on MNIST "
                                                "(Inception features, 100 epochs); not comparable with our FD")
               for c in pythae if c in columns})
config["epochs"] = st.column_config.NumberColumn("epochs", format="%d", help=benchmark.COLUMN_HELP.get("epochs"))
config[benchmark.EVALUATION] = st.column_config.TextColumn(benchmark.EVALUATION,
                                                           help=benchmark.COLUMN_HELP[benchmark.EVALUATION])
config["model"] = st.column_config.TextColumn("model", pinned=True)
st.dataframe(frame, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_config=config,
             key="bm_table", placeholder="")
st.caption(benchmark.caption())
st.download_button("Table as CSV", downloads.csv_bytes(rows), file_name="pythae_benchmark.csv", mime="text/csv",
                   key="bm_dl_csv", icon=":material/download:")

st.subheader("One column as bars")
chartable = [c for c in [*ours, *pythae] if benchmark.has_values(rows, c)]
if chartable:
    column = st.selectbox("Column", chartable, key="bm_chart_column")
    st.plotly_chart(benchmark.column_figure(rows, column), key="bm_chart", config={"displaylogo": False})

reproduction_board()
