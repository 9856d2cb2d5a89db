"""Data scale: metric vs training size per arm with bands, the gap per size, fitted curves and the break-even."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.figures.scale import scale_metric
from dashboard.common import get_store, runs_or_stop, short_name, study_picker

st.title("Data scale: pretrained transformer vs LSTM")
store = get_store()
studies = runs_or_stop(
    lambda: [r for r in store.list(kind="study-scale") if r["status"] in ("done", "running", "interrupted", "failed")],
    "No data-scale study yet. Start one with `python -m analysis scale --dataset sst2 "
    "--sizes 100,300,1000,3000,10000,30000 --seeds 0,1,2` (the finished points show here while it runs).")
rows, summary, complete = study_picker(
    store, studies, "scale", lambda r: f"{short_name(r['dataset'])} · {r['label'] or 'study'} · {r['status']} "
                                       f"({r['run_id']})", unit="point")

metric = scale_metric(rows)
st.plotly_chart(figures.scale_curves(summary, metric), width="stretch")
st.plotly_chart(figures.scale_gap(summary, metric), width="stretch")

st.subheader("Fitted curves and break-even size")
st.caption("acc(n) = a − b·n^(−c), least squares on the per-size means; the break-even is the size from which the "
           "fitted gap stays under the threshold, with a parametric-bootstrap 95% interval. A break-even beyond the "
           "largest size measured is an extrapolation of the fitted curves, not a measurement. The figures draw "
           "fitted curves and intervals within the metric's range (a fit can pass 1.0 where accuracy cannot; "
           "the hover gives the fitted value); this table keeps the fit as it is.")
st.dataframe(figures.curve_table(summary), hide_index=True, width="stretch")

st.subheader("Mean ± std per arm and size")
st.dataframe(figures.scale_table(summary), hide_index=True, width="stretch")
with st.expander(f"All {len(rows)} runs"):
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
