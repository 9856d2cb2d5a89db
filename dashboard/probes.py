"""Probes: the knowledge-loss probes per probed model, CKA per layer, the layer probe, compared across runs."""

from __future__ import annotations

import streamlit as st

from analysis import figures
from analysis.figures.probes import probe_label, probe_results
from dashboard.common import get_store, runs_or_stop, show_error

st.title("Knowledge-loss probes")
store = get_store()
index = runs_or_stop(lambda: {r["run_id"]: r for r in store.list()},
                     "No finished probe runs yet. Probe a stored model with `python -m analysis probe RUN_ID` (a "
                     "fine-tuned or pruned run; `python -m analysis probe default` for the pre-trained model).",
                     has=lambda rows: any(r["kind"] == "probe" and r["status"] == "done" for r in rows.values()))
runs = [r for r in index.values() if r["kind"] == "probe" and r["status"] == "done"]

options = {f"{probe_label(store, r, index)} · probe run {r['run_id'][:8]}": r["run_id"] for r in runs}
picked = st.multiselect("Probed models", list(options), default=list(options)[:6])
if not picked:
    st.info("Pick one or more probed models.")
    st.stop()
try:
    results, used = probe_results(store, [options[p] for p in picked])
except Exception as exc:  # a probe run without its artefact (e.g. imported partially)
    show_error(exc)
    st.stop()

st.subheader("Probe table")
st.dataframe(figures.probe_table(results), hide_index=True, width="stretch")
bars = figures.probe_bars(results)
if any(y is not None and y == y for trace in bars.data for y in (trace.y or ())):  # y == y: not NaN
    st.plotly_chart(bars, width="stretch")
else:  # e.g. only CKA was probed: an empty bar chart says nothing
    st.caption("None of these runs ran a probe drawn as bars (teacher agreement, transfer, STS-B, masked tokens); "
               "the table above has what they measured.")

st.subheader("Representation similarity")
if any(p.get("cka", {}).get("applicable") for p in results.values()):
    st.plotly_chart(figures.cka_lines(results), width="stretch")
else:
    st.caption("None of these runs ran the `cka` probe (`--probes cka`).")
if any(p.get("layer-probe", {}).get("applicable") for p in results.values()):
    st.subheader("Where the task lives")
    st.plotly_chart(figures.layer_probe_lines(results), width="stretch")

missing = figures.not_applicable(results)
if len(missing):
    st.subheader("Not applicable")
    st.dataframe(missing, hide_index=True, width="stretch")
