"""Runs: every run in the store with its status, method, dataset, metrics and duration."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.tables import runs_table
from dashboard.common import get_store, show_error

st.title("Runs")
store = get_store()
try:
    store.mark_stale()
    rows = store.list()
except Exception as exc:  # a store we cannot read is shown as a message, not a traceback
    show_error(exc)
    st.stop()

if not rows:
    st.info(
        "The store is empty. Start a run from a terminal, e.g. "
        "`python -m analysis finetune --model default --dataset sst2 --train-size 2000 --epochs 1`, "
        "and it appears here."
    )
    st.stop()

table = runs_table(rows)
left, mid, right = st.columns(3)
kinds = left.multiselect("Kind", sorted(table["kind"].unique()))
statuses = mid.multiselect("Status", sorted(table["status"].unique()))
datasets = right.multiselect("Dataset", sorted(table["dataset"].dropna().unique()))
shown = table
for column, chosen in (("kind", kinds), ("status", statuses), ("dataset", datasets)):
    if chosen:
        shown = shown[shown[column].isin(chosen)]

st.caption(f"{len(shown)} of {len(table)} runs in `{store.root}`")
st.dataframe(shown, hide_index=True, width="stretch",
             column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})

for row in rows:
    if row["status"] == "running":
        st.progress(float(row["progress"] or 0), text=f"{row['run_id']} {row['label'] or ''}: {row['message']}")
failed = [r for r in rows if r["status"] in ("failed", "interrupted")]
if failed:
    st.subheader("Failed and interrupted runs")
    for row in failed:
        with st.expander(f"{row['run_id']} · {row['label'] or row['kind']} · {row['status']}"):
            st.code((row["error"] or "no error recorded").strip(), language=None)
