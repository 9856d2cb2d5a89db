"""Sparsity: per layer x module heatmaps of achieved sparsity (runs side by side, one colour scale)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.service.runs import run_labels
from analysis.service.studies import prune_rows
from dashboard.common import get_store, show_error


def default_pair(names: list[str], labels: dict, models: dict) -> list[str]:
    """The most informative start: the highest-sparsity knowledge-aware (sparsebert) run beside the magnitude
    baseline of the same model, data, sparsity and seed (else the newest two runs of one model and dataset)."""
    def key(name: str) -> tuple:
        r = labels[name]
        return r["dataset"], models.get(r["run_id"]), r["sparsity"], r["seed"]

    baselines = ("gradual-magnitude", "magnitude")  # preferred in this order; then any other method alike
    aware = sorted((n for n in names if labels[n]["method"] == "sparsebert"), key=lambda n: -(labels[n]["sparsity"] or 0))
    for name in aware:
        twins = [n for n in names if key(n) == key(name) and n != name and labels[n]["method"] != "sparsebert"]
        if twins:
            rank = {m: i for i, m in enumerate(baselines)}
            return [name, min(twins, key=lambda n: rank.get(labels[n]["method"], len(baselines)))]
    if aware:
        return aware[:1]
    first = names[0] if names else None
    return [n for n in names if first and key(n)[:2] == key(first)[:2]][:2]


st.title("Sparsity per layer")
store = get_store()
rows = store.list()
pruned = prune_rows(rows)
if not pruned:
    st.info("No finished pruning runs yet. Start one with `python -m analysis prune --method sparsebert --sparsity 0.9`.")
    st.stop()

models = {r["run_id"]: r["model"] for r in rows}
labels = {f"{text} ({rid[:8]})": next(r for r in pruned if r["run_id"] == rid)
          for rid, text in run_labels([{**r, "model": models.get(r["run_id"]), "kind": "prune",
                                        "summary": {"requested_sparsity": r["sparsity"]}} for r in pruned]).items()}
picked = st.multiselect("Runs (up to 4)", list(labels), default=default_pair(list(labels), labels, models),
                        max_selections=4, help="opens on the sparsest knowledge-aware run beside its magnitude baseline")
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
