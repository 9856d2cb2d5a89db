"""Runs: every run in the store with its status, method, dataset, metrics and duration; live progress of
running work; delete and re-run; on an empty store, the demo study in one click."""

from __future__ import annotations

import streamlit as st

from analysis.service.runs import DemoConfig, JobQueue, PruneScopeError, delete_run, rerun, runs_table
from dashboard.common import LOCKED, access_gate, actions_allowed, get_store, short_name, show_error
from dashboard.queue_view import REFRESH_SECONDS, show_queue

DEMO_COMMAND = "python -m analysis demo"


def first_run(store) -> None:
    """The empty-store panel: what to do first, and the demo study as one click through the queue."""
    st.info("The store is empty. Start a run from the Launch page or a terminal, or load the reference studies "
            "(a pruning sweep on SST-2) that come with the code:")
    st.code("python -m analysis finetune --model default --dataset sst2 --train-size 2000 --epochs 1\n"
            "python -m analysis import results/", language=None)
    st.markdown("**Quick tour.** The demo is a small real study on the embedded model: a fine-tune on 2,000 SST-2 "
                "sentences, a pruning sweep (SparseBERT, gradual magnitude, small-dense at 50% and 90%), probes "
                "and head importance. It runs in a background worker (about 15 minutes on 2 cores, to be "
                f"measured on yours); afterwards every page has something real to show. Same as `{DEMO_COMMAND}`.")
    if st.button("Run the demo", type="primary", key="runs:demo", disabled=not actions_allowed()):
        try:
            if not actions_allowed():  # a disabled button is not enough: check again on the server
                raise PermissionError(LOCKED)
            sub = JobQueue(store).submit("demo", DemoConfig())
        except PermissionError as exc:
            st.error(str(exc))
        except PruneScopeError as exc:
            show_error(exc)
        else:
            st.success(f"The demo is {sub.status} as run `{sub.run_id}`: watch it below.")
    show_queue(store, key="runs-first", title="Progress")


def live_progress(store, running_now: bool) -> None:
    """Running runs with their progress, refreshed every few seconds while there are any."""

    @st.fragment(run_every=REFRESH_SECONDS if running_now else None)
    def panel() -> None:
        running = store.list(status="running")
        for row in running:
            st.progress(min(max(float(row["progress"] or 0), 0.0), 1.0),
                        text=f"{row['run_id']} {row['label'] or ''}: {row['message']}")
        if running_now and not running:
            st.rerun()  # all finished: refresh the tables

    panel()


def manage(store, rows: list[dict]) -> None:
    """Delete or re-run one run, each after a confirmation."""
    st.subheader("Delete or re-run")
    names = {r["run_id"]: f"{r['run_id']} · {r['label'] or r['kind']} · {r['status']}" for r in rows}
    picked = st.selectbox("Run", list(names), format_func=names.get, key="runs:pick")
    buttons, locked = st.container(horizontal=True), not actions_allowed()
    if buttons.button("Re-run…", key="runs:rerun", help="delete this record, then queue the same config again",
                      disabled=locked):
        st.session_state["runs:confirm"] = ("re-run", picked)
    if buttons.button("Delete…", key="runs:delete", help="delete the record, metrics, artefacts and weights",
                      disabled=locked):
        st.session_state["runs:confirm"] = ("delete", picked)
    action, target = st.session_state.get("runs:confirm") or (None, None)
    if target != picked:
        return
    st.warning(f"{action.capitalize()} run `{target}`? Its record, metrics, artefacts and weights are deleted"
               + (" and its config is queued again." if action == "re-run" else "."))
    answer = st.container(horizontal=True)
    yes, no = answer.container(width="content"), answer.container(width="content")
    if no.button("Keep it", key="runs:no"):
        del st.session_state["runs:confirm"]
        st.rerun()
    if yes.button(f"Yes, {action}", key="runs:yes", type="primary", disabled=locked):
        del st.session_state["runs:confirm"]
        if not actions_allowed():  # a disabled button is not enough: check again on the server
            st.error(LOCKED)
            return
        try:
            if action == "delete":
                delete_run(store, target)
                st.session_state["runs:flash"] = f"Deleted run {target}."
            else:
                sub = rerun(store, target)
                st.session_state["runs:flash"] = f"Run {target} deleted and queued again as {sub.run_id} ({sub.status})."
        except PruneScopeError as exc:
            show_error(exc)
            return
        st.rerun()


st.title("Runs")
store = get_store()
access_gate()
try:
    store.mark_stale()
    rows = store.list()
except Exception as exc:  # a store we cannot read is shown as a message, not a traceback
    show_error(exc)
    st.stop()

if "runs:flash" in st.session_state:
    st.success(st.session_state.pop("runs:flash"))
if not rows:
    first_run(store)
    st.stop()

table = runs_table(rows)
table["dataset"], table["model"] = table["dataset"].map(short_name), table["model"].map(short_name)
left, mid, right = st.columns(3)
kinds = left.multiselect("Kind", sorted(table["kind"].unique()))
statuses = mid.multiselect("Status", sorted(table["status"].unique()))
datasets = right.multiselect("Dataset", sorted(table["dataset"].dropna().unique()))
shown = table
for column, chosen in (("kind", kinds), ("status", statuses), ("dataset", datasets)):
    if chosen:
        shown = shown[shown[column].isin(chosen)]

active = any(r["status"] in ("running", "queued") for r in rows)
st.caption(f"{len(shown)} of {len(table)} runs in `{store.root}` (dataset and model paths shown by their last part)")
st.dataframe(shown, hide_index=True, width="stretch",
             column_order=[c for c in shown.columns if c != "progress" or active],  # bars only while work runs
             column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
                            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
                            "value": st.column_config.NumberColumn("value", format="%.4f")})

live_progress(store, any(r["status"] == "running" for r in rows))
failed = [r for r in rows if r["status"] in ("failed", "interrupted")]
if failed:
    st.subheader("Failed and interrupted runs")
    for row in failed:
        with st.expander(f"{row['run_id']} · {row['label'] or row['kind']} · {row['status']}"):
            st.code((row["error"] or "no error recorded").strip(), language=None)
manage(store, rows)
show_queue(store, key="runs", title="Launched jobs")
