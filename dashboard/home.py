"""Home: what PruneScope is, what the reference studies in the store found (each with its figure and page), where
to start, and what is running now."""

from __future__ import annotations

import streamlit as st

from analysis.figures import build_figure
from analysis.service import home
from dashboard.common import get_store, page_link, show_error

PAGES = {"accuracy": ("dashboard/accuracy.py", "Accuracy"), "scale": ("dashboard/scale.py", "Data scale"),
         "child_tuning": ("dashboard/child_tuning.py", "Child-Tuning"), "probes": ("dashboard/probes.py", "Probes")}

st.title("PruneScope")
st.markdown(
    "Compress and fine-tune pre-trained transformers, and see what knowledge they lose.  \n"
    "Knowledge-aware pruning (SparseBERT) against its baselines, Child-Tuning against vanilla fine-tuning, and "
    "pretrained transformers against LSTMs as the training set grows.  \n"
    "Every number on these pages comes from a run in the store, traceable to its config, seed and versions.")
store = get_store()


@st.cache_data(max_entries=32, show_spinner=False)
def study_figure(root: str, name: str, run_id: str, updated: float):
    """The study's figure with its legend below the plot (a side legend leaves no room in this column)."""
    fig = build_figure(get_store(), name, [run_id]).figure
    return fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, xanchor="left"),
                             margin=dict(r=20, b=40), height=520)


def listed(read) -> list:
    """`read(store)`, or an empty list after showing why it could not be read (never a traceback)."""
    try:
        return read(store)
    except Exception as exc:
        show_error(exc)
        return []


left, right = st.columns([3, 2], gap="large")
with right:
    st.subheader("Start here")
    minutes = home.quick_tour_minutes(store)
    took = (f"it took {minutes:.0f} min here" if minutes is not None else
            "about 9 min on a 2-core CPU, measured on an AMD EPYC (NOTES.md)")
    st.markdown(f"**The quick tour** ({took}): a fine-tune, a pruning sweep, probes and head importance on the "
                f"embedded model. Run `{home.QUICK_TOUR_COMMAND}`, or start it on the Runs page.")
    page_link("dashboard/runs.py", label="Runs: start the quick tour", icon=":material/list:")
    page_link("dashboard/explore.py", label="Explore: prune a stored model live", icon=":material/tune:")
    page_link("dashboard/launch.py", label="Launch: any experiment", icon=":material/rocket_launch:")
    st.subheader("Running now")
    running = listed(home.running_now)
    if not running:
        st.caption("Nothing is running.")
    for run in running[:8]:
        st.progress(min(1.0, float(run.get("progress") or 0)),
                    text=f"{run['kind']} {run['run_id'][:8]} · {run['status']} · {run.get('message') or ''}")

with left:
    st.subheader("What the reference studies found")
    found = listed(home.headlines)
    if not found:
        st.info("No finished study in this store yet. `make app` imports the reference studies from results/ into "
                "an empty store; or run one: `python -m analysis sweep pruning --dataset sst2 --train-size 2000`.")
    rows = {r["run_id"]: r for r in store.list(status="done")}
    drawn: set[str] = set()
    for headline in found:
        st.markdown(f"**{headline.title}**  \n{headline.finding}")
        if headline.kind not in drawn:  # the figure of the largest study of each kind
            drawn.add(headline.kind)
            try:
                fig = study_figure(str(store.root), headline.figure, headline.run_id,
                                   float(rows.get(headline.run_id, {}).get("updated") or 0))
                st.plotly_chart(fig, width="stretch", key=f"home:{headline.run_id}")
            except Exception as exc:
                show_error(exc)
        path, title = PAGES[headline.page]
        page_link(path, label=f"Open on the {title} page", icon=":material/arrow_forward:")
