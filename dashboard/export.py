"""Export: any registered figure of a study or of chosen runs as PDF/SVG/PNG at paper size, its table as CSV and
LaTeX, a provenance JSON beside each, and "all figures of this study" as one zip."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from analysis.figures.export import bundle_zip, prepare_figure
from analysis.figures.registry import FIGURES, NotApplicable, build_figure, expand_runs, figures_for
from analysis.service.runs import run_labels
from dashboard.common import get_store, show_error
from dashboard.widgets import MIME, file_downloads, options_form

st.title("Export figures and tables")
st.caption("Paper sizes (single column 3.3 in, double 6.9 in), fonts embedded, the colour-blind-safe Okabe-Ito "
           "palette or greyscale; every file comes with a provenance JSON (runs, configs, seeds, versions).")
store = get_store()
finished = store.list(status="done")
if not finished:
    st.info("Nothing to export yet: the store has no finished runs. Run a sweep, e.g. `python -m analysis sweep "
            "pruning --dataset sst2 --train-size 2000 --epochs 1 --sparsities 0.5,0.9`.")
    st.stop()


studies = [r for r in finished if r["summary"].get("run_ids")]
source = st.radio("Export from", ["A study", "Chosen runs"], horizontal=True, index=0 if studies else 1)
if source == "A study":
    if not studies:
        st.info("No finished study (sweep) in the store; choose runs instead.")
        st.stop()
    labels = {f"{r['label'] or r['kind']} ({r['run_id']})": r["run_id"] for r in studies}
    picked = [labels[st.selectbox("Study", list(labels))]]
else:
    named = run_labels([r for r in finished if not r["summary"].get("run_ids")])
    labels = {f"{label} ({rid[:8]})": rid for rid, label in named.items()}
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:1])
    picked = [labels[c] for c in chosen]
if not picked:
    st.info("Pick at least one run.")
    st.stop()

try:
    run_ids = expand_runs(store, picked)
except Exception as exc:
    show_error(exc)
    st.stop()
kinds = sorted({store.require(r).kind for r in run_ids})
names = figures_for(kinds)
if not names:
    st.info(f"No registered figure uses runs of kind {', '.join(kinds)}.")
    st.stop()


def first_applicable(candidates: list[str]) -> int:
    """Index of the first figure these runs can make (remembered per selection), so the page opens on one."""
    slot = ("export-default", tuple(picked))
    if slot not in st.session_state:
        st.session_state[slot] = 0
        for i, candidate in enumerate(candidates):
            try:
                build_figure(store, candidate, run_ids)
            except Exception:  # not applicable (or broken): try the next one
                continue
            st.session_state[slot] = i
            break
    return st.session_state[slot]


name = st.selectbox("Figure", names, index=first_applicable(names),
                    format_func=lambda n: f"{n}: {FIGURES.get(n).description}")

try:
    result = build_figure(store, name, run_ids)
except NotApplicable as exc:
    st.warning(exc.message)
    st.stop()
except Exception as exc:
    show_error(exc)
    st.stop()

st.subheader("Options")
options = options_form(f"export-page-{name}", default_width=FIGURES.get(name).width)
if options is None:
    st.stop()
w, h = options.size()
st.caption(f"{name} at {w:g} x {h:g} in, from {len(result.run_ids)} run(s); preview as it will print:")
st.plotly_chart(prepare_figure(result.figure, options), width="content", key="export-preview",
                config={"displayModeBar": False}, theme=None)  # theme=None: as it prints, not restyled
if result.table is not None and len(result.table):
    st.dataframe(result.table, hide_index=True, width="stretch")

provenance = {"run_ids": list(result.run_ids), "function": result.function, "arguments": result.arguments}
st.subheader("Files")
file_downloads(result.figure, result.table, provenance, name, options, key=f"export-page-files-{name}")

if source == "A study":
    st.subheader("All figures of this study")
    st.caption("Each figure at its own default width (multi-panel heatmaps across two columns), with the formats, "
               "DPI and greyscale chosen above; every figure's table and provenance included.")
    bundle_options = replace(options, width=None, height=None)
    bundle_key = ("export-bundle", tuple(picked), str(bundle_options))
    if st.button("Export all figures of this study (zip)", key="export-bundle-button"):
        try:
            with st.spinner("Rendering every figure of the study..."):
                data, manifest = bundle_zip(store, picked, bundle_options)
            st.session_state["export-bundle"] = (bundle_key, data, manifest)
        except Exception as exc:
            show_error(exc)
    held = st.session_state.get("export-bundle")
    if held and held[0] == bundle_key:
        _, data, manifest = held
        st.write(f"{len(manifest['figures'])} figure(s): {', '.join(manifest['figures'])}")
        for skipped, reason in manifest["skipped"].items():
            st.caption(f"skipped {skipped}: {reason}")
        for failed, reason in manifest.get("failed", {}).items():
            st.warning(f"{failed} could not be made: {reason}")
        st.download_button(f"study-{picked[0]}.zip", data, file_name=f"study-{picked[0]}.zip", mime=MIME["zip"],
                           key="export-bundle-download", on_click="ignore", type="primary")
