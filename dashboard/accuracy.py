"""Accuracy: the task metric vs sparsity per method, vs non-zero parameters (sparse vs small-dense), the training
curves of the runs at one sparsity, and the metric vs measured CPU latency (stored measurements only)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.figures.pruning_named import latency_inputs, training_inputs
from analysis.service.runs import run_label
from analysis.service.studies import floor_run, prune_rows, teacher_metric
from dashboard.common import get_store, runs_or_stop, short_name

MAX_LISTED = 8  # run ids named in the "not measured" caption before it says "and N more"
MAX_CURVES = 8  # runs drawn in the training curves by default (one per method, and the teachers)

st.title("Accuracy vs sparsity")
store = get_store()
rows = runs_or_stop(store.list, "No finished pruning runs yet. Run a sweep, e.g. `python -m analysis sweep pruning "
                    "--dataset sst2 --train-size 2000 --epochs 1 --sparsities 0.5,0.9`.", has=prune_rows)
pruned = prune_rows(rows)
counts = {d: sum(r["dataset"] == d for r in pruned) for d in {r["dataset"] for r in pruned}}
datasets = sorted(counts, key=lambda d: (-counts[d], str(d)))  # the one with the most runs first
dataset = st.selectbox("Dataset", datasets, format_func=lambda d: f"{short_name(d)} ({counts[d]} pruned runs)")
chosen = [r for r in pruned if r["dataset"] == dataset]
teachers = {r["teacher"] for r in chosen if r["teacher"]}
dense = teacher_metric(rows, teachers)
floor = floor_run(rows, dataset)  # the best embedding-bag fine-tune of this dataset: no contextual knowledge

st.plotly_chart(figures.metric_vs_sparsity(chosen, dense, floor[1] if floor else None), width="stretch")
if floor is None:
    st.caption(f"No floor yet: fine-tune `--model embedding-bag` on {short_name(dataset)} to draw the knowledge "
               "window (between that floor and the dense fine-tuned metric).")
else:
    st.caption(f"Floor: the best embedding-bag fine-tune of {short_name(dataset)} (run {floor[0]}), mean-pooled "
               "token embeddings with no encoder; the shaded band up to the dense fine-tuned metric is the knowledge "
               "window.")
st.plotly_chart(figures.metric_vs_nonzero(chosen), width="stretch")
table = pd.DataFrame(chosen).sort_values(["method", "sparsity", "seed"])
st.dataframe(table.assign(dataset=table["dataset"].map(short_name)), hide_index=True, width="stretch")

# the index rows (with summaries) of this dataset's prune runs and their dense teachers
by_id = {r["run_id"]: r for r in rows}
members = [by_id[r["run_id"]] for r in chosen] + [by_id[t] for t in sorted(teachers) if t in by_id]

st.subheader("Training curves")
sparsities = sorted({r["sparsity"] for r in chosen if r["sparsity"] is not None})
level = st.selectbox("Runs at sparsity", sparsities, index=len(sparsities) - 1, format_func=lambda s: f"{s:g}",
                     help="the runs pruned to this sparsity, with the dense teacher they started from")
at_level = sorted((r for r in chosen if r["sparsity"] == level), key=lambda r: (r["method"], r["seed"] or 0))
pool = [r["run_id"] for r in at_level] + sorted({r["teacher"] for r in at_level if r["teacher"]} & set(by_id))
first_per_method = list({r["method"]: r["run_id"] for r in reversed(at_level)}.values())  # the lowest seed each
defaults = [r for r in pool if r in first_per_method or r not in {x["run_id"] for x in at_level}][:MAX_CURVES]
picked = st.multiselect("Runs", pool, default=defaults, format_func=lambda r: f"{run_label(by_id[r])} ({r[:8]})",
                        key=f"curves-{dataset}-{level}", help="one run per method by default (its lowest seed)")
losses, epochs, metric, used = training_inputs(store, [by_id[r] for r in picked])
if used:
    st.plotly_chart(figures.training_curves(losses, epochs, metric), width="stretch")
else:
    st.caption("None of the picked runs logged a training loss or a dev metric per epoch.")

st.subheader("Measured latency vs accuracy")
measured, missing = latency_inputs(store, members)
labels = {r["run_id"]: run_label(r) for r in members}
listed = ", ".join(f"{labels[m]} ({m})" for m in missing[:MAX_LISTED])
more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
command = f"`python -m analysis latency {','.join(missing)}`"
if measured:
    st.plotly_chart(figures.latency_vs_metric(measured, missing, measured[0]["metric"] or "metric"), width="stretch")
    st.caption("CPU latency as stored in each run's latency.json (median of timed passes over the dev set; "
               "unstructured-sparse runs through the sparse kernel, structured runs compacted). "
               + (f"Not measured, so not drawn: {listed}{more}. Measure them with {command}." if missing else ""))
    st.dataframe(pd.DataFrame([{"run": r["label"], "run_id": r["run_id"], r["metric"] or "metric": r["value"],
                                **{k: r["latency"][k] for k in ("latency_ms_per_batch", "examples_per_second",
                                                                "batch_size", "threads", "execution")}}
                               for r in measured]), hide_index=True, width="stretch")
else:
    st.info(f"No run of {short_name(dataset)} has a measured latency yet (latency is measured, never estimated). "
            f"Measure them with {command} (runs that kept their weights).")
