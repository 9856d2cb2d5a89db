"""Child-Tuning: the study table with paired differences, D-mask overlap, Fisher and child share per layer,
weight change per layer against vanilla."""

from __future__ import annotations

import streamlit as st

from analysis import figures
from analysis.figures.child_tuning import (
    METHOD_ORDER,
    child_networks,
    finetune_rows,
    selection_lines,
    selection_table,
    short,
    weight_changes,
)
from analysis.service.studies import selection_inputs
from dashboard.common import get_store, show_error, study_picker

st.title("Child-Tuning vs vanilla fine-tuning")
store = get_store()
try:
    studies = [r for r in store.list(kind="study-child-tuning") if r["status"] != "queued"]
    singles = [r for r in store.list(kind="finetune", status="done") if r["method"] in METHOD_ORDER[1:]]
except Exception as exc:  # an unreadable store is a message, not a traceback
    show_error(exc)
    st.stop()

if not studies and not singles:
    st.info("No Child-Tuning results yet. Run the study with `python -m analysis sweep child-tuning --seeds 0,1,2,3,4` "
            "(or one run: `python -m analysis finetune --method child-d --p 0.3 --dataset rte --train-size 1000`).")
    st.stop()


def per_run_figures(rows: list[dict]) -> None:
    """Fisher and child share of the Child-D runs, and weight change per layer against vanilla."""
    nets = child_networks(store, rows)
    if nets:
        ps = {r["p"] for r in rows if r["method"] == "child-d"}
        st.plotly_chart(figures.fisher_per_layer(nets), width="stretch")
        st.plotly_chart(figures.child_share_per_layer(nets, ps.pop() if len(ps) == 1 else None), width="stretch")
    else:
        st.caption("No Child-D run here stored a child network (Fisher scores and child share).")
    changes = weight_changes(store, rows)
    if changes:
        st.plotly_chart(figures.weight_change_per_layer(changes), width="stretch")


def show_selection(study: dict) -> None:
    """The lr and p each arm chose on the held-out share (seed 0), and every candidate behind the choice."""
    try:
        selection = selection_inputs(store, study["run_id"])
        if selection is None:
            return
        table = selection_table(selection)
        lines = selection_lines(selection) if len(table) else None
    except Exception as exc:  # an unreadable selection is a message; the study table below still shows
        show_error(exc)
        return
    share = f"{100 * selection['holdout']:g}%" if selection.get("holdout") else "a share"
    st.subheader(f"Learning rate and p per arm, chosen on a held-out {share} of the training set "
                 f"(seed {selection.get('seed')})")
    if selection["complete"]:
        st.dataframe(table[table["chosen"]].drop(columns="chosen"), hide_index=True, width="stretch")
        st.caption("Each arm's seeds ran at its chosen values on the whole training set. The dev column is shown "
                   "for reference; the choice used the held-out score only.")
        edge = [c for c in selection.get("chosen", []) if c.get("at_edge")]
        if edge:
            st.warning("Chosen at the edge of the learning rates its series tried, so perhaps not tuned (a wider "
                       "grid, or `--select-extend`, would show): " + "; ".join(
                           f"{c['task']} {c['method']} at the {c['at_edge']} lr" for c in edge))
    elif study["status"] in ("running", "queued"):
        st.info(f"The selection is still running: {len(table)} candidates finished, nothing chosen yet.")
    else:
        st.warning(f"The study is {study['status']} before its selection finished ({len(table)} candidates done); "
                   f"resume it with `python -m analysis resume {study['run_id']}`.")
    if lines is not None:
        st.plotly_chart(lines, width="stretch")
        with st.expander(f"All {len(table)} candidates"):
            st.dataframe(table, hide_index=True, width="stretch")


source = st.radio("Show", ["a study", "single runs"], horizontal=True, index=0 if studies else 1,
                  disabled=not (studies and singles))
if source == "a study" and studies:
    rows, summary, complete = study_picker(store, studies, "child-tuning",
                                           lambda r: f"{r['label'] or 'study'} · {r['status']} ({r['run_id']})",
                                           preface=show_selection)
    st.subheader("Study table: mean ± std and the paired difference to vanilla")
    st.dataframe(figures.study_table(summary["cells"]), hide_index=True, width="stretch")
    st.plotly_chart(figures.study_differences(summary["cells"]), width="stretch")
    if summary.get("transfer"):
        st.subheader("Domain transfer (no further training)")
        st.dataframe(figures.transfer_table(summary["transfer"]), hide_index=True, width="stretch")
    overlap = summary.get("mask_overlap", {})
    if overlap.get("across_seeds"):
        st.subheader("Child-D mask overlap")
        st.plotly_chart(figures.mask_overlap_heatmap(overlap, "seeds"), width="stretch")
    if overlap.get("across_tasks"):
        st.plotly_chart(figures.mask_overlap_heatmap(overlap, "tasks"), width="stretch")
    tasks = sorted({r["task"] for r in rows}, key=str)
    task = st.selectbox("Task for the per-layer views", tasks, format_func=short)
    st.subheader(f"Per layer: {short(task)}")
    per_run_figures([r for r in rows if r["task"] == task])
else:
    datasets = sorted({str(r["dataset"]) for r in singles})
    dataset = st.selectbox("Dataset", datasets, format_func=short)
    # like with like: the model and training-set size of this dataset's Child-Tuning runs (not, say, the LSTM
    # or subsample runs of a data-scale study on the same file)
    setups = {(r["model"], r["summary"].get("train_examples")) for r in singles if str(r["dataset"]) == dataset}
    pool = [r["run_id"] for r in store.list(kind="finetune", status="done")
            if str(r["dataset"]) == dataset and r["method"] in METHOD_ORDER
            and (r["model"], r["summary"].get("train_examples")) in setups]
    st.caption(f"{len(pool)} vanilla and Child-Tuning runs of {short(dataset)} with the same model and training "
               "examples; weight changes are averaged over seeds.")
    per_run_figures(finetune_rows(store, pool))
