"""Compare: 2-4 runs on the same dev examples: metrics with bootstrap intervals, McNemar, flips, config diff."""

from __future__ import annotations

import streamlit as st

from analysis import figures
from analysis.service.compare import comparable_runs, compare_runs, config_diff, dev_texts, flipped_examples, run_labels
from analysis.service.reports import EvalData, allowed_file, evaluate_runs
from dashboard.common import get_store, show_error

st.title("Compare runs")
store = get_store()
try:
    candidates = comparable_runs(store)
except Exception as exc:  # an unreadable store is a message, not a traceback
    show_error(exc)
    st.stop()

if len(candidates) < 2:
    st.info("Compare needs two or more finished fine-tune or prune runs of one dataset. Run e.g. "
            "`python -m analysis finetune --dataset sst2 --train-size 2000 --epochs 1 --seed 0` and the same "
            "with `--seed 1` (or `--method child-d --p 0.3`), then come back.")
    st.stop()


@st.cache_data(show_spinner="Bootstrapping…", max_entries=32)
def _compare(root: str, run_ids: tuple[str, ...], n_resamples: int, seed: int):
    return compare_runs(store, run_ids, n_resamples, seed)


@st.cache_data(show_spinner="Reloading the dev set…", max_entries=8)
def _texts(root: str, run_id: str):
    return dev_texts(store, run_id)


by_dataset: dict[str, list[dict]] = {}
for row in candidates:
    by_dataset.setdefault(str(row["dataset"]), []).append(row)
datasets = sorted(by_dataset, key=lambda d: (-len(by_dataset[d]), d))
dataset = st.selectbox("Dataset", datasets,
                       help="Runs are compared on the same dev examples, so one dataset at a time.")
labels = {label: rid for rid, label in run_labels(by_dataset[dataset]).items()}
picked = st.multiselect("Runs (2 to 4; the first is A in every pair it is part of)", list(labels),
                        default=list(labels)[:2], max_selections=4)
left, right = st.columns(2)
n_resamples = int(left.number_input("Bootstrap resamples", min_value=200, max_value=20000, value=1000, step=200))
seed = int(right.number_input("Bootstrap seed", min_value=0, value=0, step=1))
if len(picked) < 2:
    st.info("Pick at least two runs.")
    st.stop()

ids = tuple(labels[p] for p in picked)
names = {labels[p]: p for p in picked}
try:
    comp = _compare(str(store.root), ids, n_resamples, seed)
except Exception as exc:  # runs on different examples, a missing artefact: say which and how to fix it
    show_error(exc)
    st.stop()

st.subheader("Metrics")
st.plotly_chart(figures.metrics_side_by_side(comp.metrics, names), width="stretch")
precisions = {row["run_id"]: row.get("precision") or "unknown" for row in by_dataset[dataset]}
st.dataframe(comp.metrics.assign(precision=comp.metrics["run"].map(precisions), run=comp.metrics["run"].map(names)),
             hide_index=True, width="stretch")

st.subheader("Paired differences and McNemar's test")
st.caption(f"Paired bootstrap over the same {len(comp.runs[0].labels)} dev examples ({n_resamples} resamples, "
           f"seed {seed}); McNemar exact and mid-p on which examples each run got right.")
st.plotly_chart(figures.paired_differences(comp.pairs, names), width="stretch")
shown = comp.pairs.drop(columns=["n_resamples", "seed", "confidence"]).assign(a=comp.pairs["a"].map(names),
                                                                              b=comp.pairs["b"].map(names))
st.dataframe(shown, hide_index=True, width="stretch")

st.subheader("Examples whose prediction flipped")
pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
pair = st.selectbox("Pair", pairs, format_func=lambda ab: f"A = {names[ab[0]]}  vs  B = {names[ab[1]]}")
run_a, run_b = (next(r for r in comp.runs if r.run_id == x) for x in pair)
if run_a.is_regression:
    st.info("A regression task has no flipped classes; compare the metric intervals above.")
else:
    try:
        texts, label_names = _texts(str(store.root), pair[0])
    except Exception as exc:  # the dev set moved: show the flips without their text
        st.warning(f"The dev texts could not be reloaded ({getattr(exc, 'message', exc)}); showing indices only.")
        texts, label_names = None, None
    flips = flipped_examples(run_a, run_b, texts, label_names)
    st.caption(f"{len(flips)} of {len(run_a.labels)} dev predictions differ.")
    st.dataframe(flips, hide_index=True, width="stretch")

st.subheader("Config diff")
show_all = st.checkbox("Show every key, not only the ones that differ")
configs = {names[r]: {"kind": store.require(r).kind, **store.record(r).get("config", {})} for r in ids}
diff = config_diff(configs, show_all)
if diff.empty:
    st.caption("The configs are identical (the runs differ only in what is not configured, e.g. the code version).")
else:
    st.dataframe(diff, hide_index=True, width="stretch")

st.subheader("On other data")
st.caption("The same comparison on any registered dataset's split or on a file (a test set, a shifted domain): "
           "each model's outputs are kept with its run and read back when asked again.")
with st.form("compare:other"):
    source = st.radio("Data", ["A registered dataset", "A file"], horizontal=True)
    left, right = st.columns(2)
    other = left.text_input("Dataset name, or the file's path", placeholder="mr  ·  /data/mine/test.csv")
    split = right.text_input("Split (a dataset) or text column(s) (a file)", placeholder="validation  ·  review")
    label_column = left.text_input("The file's label column (default: the run's)")
    asked = st.form_submit_button("Evaluate")
if asked and other.strip():
    try:
        if source == "A file":
            columns = tuple(c.strip() for c in split.split(",") if c.strip()) or None
            data = EvalData(eval_file=allowed_file(other.strip()), text_columns=columns,
                            label_column=label_column.strip() or None)
        else:
            data = EvalData(dataset=other.strip(), split=split.strip() or None)
        with st.spinner("Evaluating the models…"):
            result = evaluate_runs(store, list(ids), data, seed=seed, n_resamples=n_resamples)
    except Exception as exc:  # a file outside the allowed folders, labels not the models': the message and the fix
        show_error(exc)
    else:
        st.dataframe([{"run": names[r["run_id"]], "examples": r["examples"], **r["metrics"],
                       "from the store": r["cached"]} for r in result["runs"]], hide_index=True, width="stretch")
        if result.get("pairs"):
            st.dataframe([{"A": names[p["a"]], "B": names[p["b"]], "metric": p["metric"], "A − B": p["diff"],
                           "95% low": p["ci_low"], "95% high": p["ci_high"], "McNemar p": p["mcnemar_p_exact"]}
                          for p in result["pairs"]], hide_index=True, width="stretch")
