"""Sparsity: per layer x module heatmaps of achieved sparsity (runs side by side, one colour scale)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.tables import prune_rows
from dashboard.common import get_store, show_error

st.title("Sparsity per layer")
store = get_store()
pruned = prune_rows(store.list())
if not pruned:
    st.info("No finished pruning runs yet. Start one with `python -m analysis prune --method sparsebert --sparsity 0.9`.")
    st.stop()

labels = {f"{r['method']} s={r['sparsity']:g} seed={r['seed']} ({r['run_id']})": r["run_id"] for r in pruned}
picked = st.multiselect("Runs (up to 4)", list(labels), default=list(labels)[:2], max_selections=4)
if not picked:
    st.stop()
try:
    reports = {label.split(" (")[0]: store.load_artifact_json(labels[label], "sparsity") for label in picked}
except Exception as exc:  # an imported run may lack the artefact: say so, don't crash
    show_error(exc)
    st.stop()

st.plotly_chart(figures.sparsity_heatmap(reports), width="stretch")
first = next(iter(reports))
st.plotly_chart(figures.parameter_bars(reports[first]), width="stretch")
summary = pd.DataFrame([{"run": name, "encoder sparsity": r["encoder_sparsity"], "whole-model sparsity": r["model_sparsity"],
                         "non-zero params": r["nonzero_params"], "masked zeros": r["masked_zeros"],
                         "removed params": r["removed_params"], "CSR size (MB)": r["size_on_disk_bytes"]["sparse_csr_fp32"] / 1e6}
                        for name, r in reports.items()])
st.dataframe(summary, hide_index=True, width="stretch")
