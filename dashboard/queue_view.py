"""The job queue as a live panel (UI only): queued and running jobs with progress bars and cancel buttons,
then the last finished jobs. Shared by the Launch and Runs pages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.service.runs import ACTIVE, JobQueue, PruneScopeError, RunStore
from dashboard.common import LOCKED, actions_allowed, show_error

REFRESH_SECONDS = 2.0


def _bar_text(job: dict) -> str:
    where = f"#{job['position']} in the queue" if job["status"] == "queued" else job["status"]
    message = f" · {job['message']}" if job["message"] and job["status"] != "queued" else ""
    return f"**{job['label'] or job['kind']}** ({job['run_id']}) · {where}{message}"


def _cancel(queue: JobQueue, job: dict) -> None:
    if not actions_allowed():  # a disabled button is not enough: check again on the server
        st.error(LOCKED)
        return
    try:
        status = queue.cancel(job["run_id"], grace=5.0)
    except PruneScopeError as exc:
        show_error(exc)
        return
    st.toast(f"job {job['job_id']} ({job['run_id']}): {status}")


def show_queue(store: RunStore, key: str, recent: int = 5, title: str = "Queue") -> None:
    """The queue panel; it refreshes itself every few seconds while a job is queued or running."""
    try:
        queue = JobQueue(store)
        busy = any(j["status"] in ACTIVE for j in queue.rows(recent=0))
    except Exception as exc:  # a store we cannot read is a message, not a traceback
        show_error(exc)
        return

    @st.fragment(run_every=REFRESH_SECONDS if busy else None)
    def panel() -> None:
        rows = queue.rows(recent=recent)
        active = [j for j in rows if j["status"] in ACTIVE]
        st.subheader(title)
        if not active:
            st.caption("Nothing queued or running.")
        for job in active:
            left, right = st.columns([6, 1], vertical_alignment="center")
            left.progress(min(max(float(job["progress"]), 0.0), 1.0), text=_bar_text(job))
            if right.button("Cancel", key=f"{key}:cancel:{job['job_id']}",
                            disabled=job["status"] == "cancelling" or not actions_allowed()):
                _cancel(queue, job)
        finished = [j for j in rows if j["status"] not in ACTIVE]
        if finished:
            table = pd.DataFrame([{"job": j["job_id"], "run_id": j["run_id"], "what": j["label"], "status": j["status"],
                                   "error": j["error"] or ""} for j in finished])
            st.dataframe(table, hide_index=True, width="stretch")
        if busy and not active:
            st.rerun()  # everything finished: refresh the whole page (tables, counts), which stops the timer

    panel()
