"""Accuracy: the task metric vs sparsity per method, and vs non-zero parameters (sparse vs small-dense)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.tables import prune_rows, teacher_metric
from dashboard.common import get_store, short_name

st.title("Accuracy vs sparsity")
rows = get_store().list()
pruned = prune_rows(rows)
if not pruned:
    st.info("No finished pruning runs yet. Run a sweep, e.g. `python -m analysis sweep pruning --dataset sst2 "
            "--train-size 2000 --epochs 1 --sparsities 0.5,0.9`.")
    st.stop()

counts = {d: sum(r["dataset"] == d for r in pruned) for d in {r["dataset"] for r in pruned}}
datasets = sorted(counts, key=lambda d: (-counts[d], str(d)))  # the one with the most runs first
dataset = st.selectbox("Dataset", datasets, format_func=lambda d: f"{short_name(d)} ({counts[d]} pruned runs)")
chosen = [r for r in pruned if r["dataset"] == dataset]
dense = teacher_metric(rows, {r["teacher"] for r in chosen if r["teacher"]})

st.plotly_chart(figures.metric_vs_sparsity(chosen, dense), width="stretch")
st.plotly_chart(figures.metric_vs_nonzero(chosen), width="stretch")
table = pd.DataFrame(chosen).sort_values(["method", "sparsity", "seed"])
st.dataframe(table.assign(dataset=table["dataset"].map(short_name)), hide_index=True, width="stretch")
