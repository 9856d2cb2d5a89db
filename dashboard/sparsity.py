"""Sparsity: per layer x module heatmaps of achieved sparsity (runs side by side, one colour scale)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.service.studies import prune_rows
from dashboard.common import get_store, short_name, show_error

st.title("Sparsity per layer")
store = get_store()
rows = store.list()
pruned = prune_rows(rows)
if not pruned:
    st.info("No finished pruning runs yet. Start one with `python -m analysis prune --method sparsebert --sparsity 0.9`.")
    st.stop()

models = {r["run_id"]: r["model"] for r in rows}
labels = {f"{r['method']} s={r['sparsity']:g} seed={r['seed']} · {short_name(r['dataset'])} ({r['run_id']})": r
          for r in pruned}
# side by side on one colour scale: by default the newest run and the next one of the same model and dataset
newest = pruned[0]
alike = [lbl for lbl, r in labels.items() if (r["dataset"], models.get(r["run_id"])) ==
         (newest["dataset"], models.get(newest["run_id"]))]
picked = st.multiselect("Runs (up to 4)", list(labels), default=alike[:2], max_selections=4)
if not picked:
    st.info("Pick one or more pruned runs.")
    st.stop()
try:
    reports = {label.rsplit(" (", 1)[0]: store.load_artifact_json(labels[label]["run_id"], "sparsity")
               for label in picked}
except Exception as exc:  # an imported run may lack the artefact: say so, don't crash
    show_error(exc)
    st.stop()

st.plotly_chart(figures.sparsity_heatmap(reports), width="stretch")
first = next(iter(reports))
if len(reports) > 1:
    st.caption(f"Per layer, for the first run picked: {first}")
st.plotly_chart(figures.parameter_bars(reports[first]), width="stretch")
summary = pd.DataFrame([{"run": name, "encoder sparsity": r["encoder_sparsity"], "whole-model sparsity": r["model_sparsity"],
                         "non-zero params": r["nonzero_params"], "masked zeros": r["masked_zeros"],
                         "removed params": r["removed_params"], "CSR size (MB)": r["size_on_disk_bytes"]["sparse_csr_fp32"] / 1e6}
                        for name, r in reports.items()])
st.dataframe(summary, hide_index=True, width="stretch")
