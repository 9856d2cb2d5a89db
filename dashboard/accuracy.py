"""Accuracy: the task metric vs sparsity per method, and vs non-zero parameters (sparse vs small-dense)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.tables import prune_rows, teacher_metric
from dashboard.common import get_store

st.title("Accuracy vs sparsity")
rows = get_store().list()
pruned = prune_rows(rows)
if not pruned:
    st.info("No finished pruning runs yet. Run a sweep, e.g. `python -m analysis sweep pruning --dataset sst2 "
            "--train-size 2000 --epochs 1 --sparsities 0.5,0.9`.")
    st.stop()

datasets = sorted({r["dataset"] for r in pruned})
dataset = st.selectbox("Dataset", datasets)
chosen = [r for r in pruned if r["dataset"] == dataset]
dense = teacher_metric(rows, {r["teacher"] for r in chosen if r["teacher"]})

st.plotly_chart(figures.metric_vs_sparsity(chosen, dense), width="stretch")
st.plotly_chart(figures.metric_vs_nonzero(chosen), width="stretch")
st.dataframe(pd.DataFrame(chosen).sort_values(["method", "sparsity", "seed"]), hide_index=True, width="stretch")
