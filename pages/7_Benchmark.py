"""Benchmark: Pythae's four tasks for every bundled model, from their eval.json, with Pythae's MNIST FIDs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import benchmark, downloads
from vaecore.files import EVAL

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
    st.stop()

ours = [column for _, column in benchmark.OURS]
pythae = [column for _, column in benchmark.PYTHAE]
sortable = ["model", "epochs", *ours, *pythae]
c1, c2, c3 = st.columns([3, 2, 3])
sort_by = c1.selectbox("Sort by", sortable, index=sortable.index(benchmark.SORT_DEFAULT), key="bm_sort",
                       help="Or click a column header of the table.")
descending = c2.toggle("Descending", value=False, key="bm_desc")
hide_empty = c3.toggle("Hide columns without any value", value=False, key="bm_hide")
rows = benchmark.sorted_rows(rows, sort_by, descending) if sort_by != "model" else \
    sorted(rows, key=lambda r: r["model"], reverse=descending)

columns = ["model", "epochs", *ours, "Pythae model", *pythae]
if hide_empty:
    columns = [c for c in columns if c == "model" or benchmark.has_values(rows, c)]
frame = pd.DataFrame(rows, columns=columns)
numbers = [c for c in columns if c not in ("model", "Pythae model", "epochs")]
styled = frame.style.format(na_rep="").format(na_rep="", precision=4, subset=numbers)
if "epochs" in columns:
    styled = styled.format(na_rep="", precision=0, subset=["epochs"])
config = {c: st.column_config.Column(help=benchmark.COLUMN_HELP.get(c)) for c in columns
          if c in benchmark.COLUMN_HELP}
config.update({c: st.column_config.Column(help="Pythae's published FID for this model on MNIST (Inception "
                                               "features, 100 epochs); not comparable with our FD")
               for c in pythae if c in columns})
config["model"] = st.column_config.Column(pinned=True)
st.dataframe(styled, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_config=config,
             key="bm_table", placeholder="")
st.caption(benchmark.caption())
st.download_button("Table as CSV", downloads.csv_bytes(rows), file_name="pythae_benchmark.csv", mime="text/csv",
                   key="bm_dl_csv", icon=":material/download:")

st.subheader("One column as bars")
chartable = [c for c in [*ours, *pythae] if benchmark.has_values(rows, c)]
if chartable:
    column = st.selectbox("Column", chartable, key="bm_chart_column")
    st.plotly_chart(benchmark.column_figure(rows, column), key="bm_chart", config={"displaylogo": False})
