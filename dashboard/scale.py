"""Data scale: metric vs training size per arm with bands, the gap per size, fitted curves and the break-even."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.figures.scale import scale_metric, study_inputs
from dashboard.common import get_store, short_name, show_error

st.title("Data scale: pretrained transformer vs LSTM")
store = get_store()
try:
    studies = [r for r in store.list(kind="study-scale") if r["status"] in ("done", "running", "interrupted", "failed")]
except Exception as exc:  # an unreadable store is a message, not a traceback
    show_error(exc)
    st.stop()

if not studies:
    st.info("No data-scale study yet. Start one with `python -m analysis scale --dataset sst2 "
            "--sizes 100,300,1000,3000,10000,30000 --seeds 0,1,2` (the finished points show here while it runs).")
    st.stop()


@st.cache_data(max_entries=16, show_spinner="Summarising the study…")
def _inputs(root: str, run_id: str, status: str, updated: float):
    """Cached per study state: a running study is re-summarised (curve fits, bootstrap) only when it moved on."""
    return study_inputs(store, run_id)


labels = {f"{short_name(r['dataset'])} · {r['label'] or 'study'} · {r['status']} ({r['run_id']})": r for r in studies}
row = labels[st.selectbox("Study", list(labels))]
try:
    rows, summary, complete = _inputs(str(store.root), row["run_id"], row["status"], row["updated"] or 0.0)
except Exception as exc:  # a study without its artefacts: say so
    show_error(exc)
    st.stop()
if not rows:
    st.info("This study has not finished a point yet; its first runs show here as they complete.")
    st.stop()
if not complete:
    st.warning(f"This study is not finished: {len(rows)} points so far, summarised as they stand.")

metric = scale_metric(rows)
st.plotly_chart(figures.scale_curves(summary, metric), width="stretch")
st.plotly_chart(figures.scale_gap(summary, metric), width="stretch")

st.subheader("Fitted curves and break-even size")
st.caption("acc(n) = a − b·n^(−c), least squares on the per-size means; the break-even is the size from which the "
           "fitted gap stays under the threshold, with a parametric-bootstrap 95% interval. A break-even beyond the "
           "largest size measured is an extrapolation of the fitted curves, not a measurement.")
st.dataframe(figures.curve_table(summary), hide_index=True, width="stretch")

st.subheader("Mean ± std per arm and size")
st.dataframe(figures.scale_table(summary), hide_index=True, width="stretch")
with st.expander(f"All {len(rows)} runs"):
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
