"""Heads: layers x heads importance (removed heads crossed out), one head's attention map on a text, token
attributions, and a second model side by side (e.g. dense vs pruned). UI only: numbers come from analysis/."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import streamlit as st

from analysis import figures
from analysis.service.explain import (
    HeadsConfig,
    TruncationWarning,
    explain,
    heads_per_layer,
    load_explained,
    stored_importance,
    with_attention_weights,
)
from analysis.service.runs import RunStore
from dashboard.common import LOCKED, actions_allowed, get_store, show_error

DEFAULT = "default"
EXAMPLE_TEXT = "a gripping, funny and beautifully acted film that never drags"
SCORES = {"Michel et al. (|dL/dgate|, normalised per layer)": "michel",
          "integrated gradients on the gates (E|IG|)": "ig"}


def model_runs(store: RunStore) -> dict[str, str]:
    """Short label -> run id of every finished finetune/prune run that kept its weights, and the pre-trained model."""
    options = {"default (pre-trained)": DEFAULT}
    rows = sorted(store.list(status="done"), key=lambda r: r["kind"] != "prune")  # pruned models first, newest first
    for row in rows:
        if row["kind"] in ("finetune", "prune") and (store.run_dir(row["run_id"]) / "model").is_dir():
            sparsity = row["summary"].get("requested_sparsity")
            extra = f" s={sparsity:g}" if isinstance(sparsity, (int, float)) else ""
            method = "dense" if row["kind"] == "finetune" and row["method"] == "vanilla" else row["method"]
            options[f"{method}{extra} ({row['run_id'][:8]})"] = row["run_id"]
    return options


def describe(store: RunStore, target: str) -> str:
    """The longer description shown in the pickers."""
    if target == DEFAULT:
        return "the embedded pre-trained model; its classifier head is untrained"
    row = store.get(target)
    dataset = Path(str(row.row["dataset"])).name  # a user file by its name, not its whole path
    return f"{row.kind} · {dataset} · seed {row.row['seed']} · {target}"


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def loaded(root: str, target: str, num_labels: int) -> Any:
    """One model per (store, run): shared across reruns and sessions, never changed (maps use an eager copy)."""
    return load_explained(RunStore(root), target, num_labels)


@st.cache_resource(max_entries=6, show_spinner="Preparing attention maps…")
def eager(root: str, target: str, num_labels: int) -> Any:
    """A copy of the cached model running eager attention (SDPA returns no attention weights)."""
    item = loaded(root, target, num_labels)
    return with_attention_weights(item)


@st.cache_data(max_entries=64, show_spinner="Explaining…")
def explanation(root: str, target: str, num_labels: int, text: str, cls: int | None) -> dict[str, Any]:
    """Attention of every head and token attributions of one model on `text` (plus any truncation warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = explain(eager(root, target, num_labels), text, target=cls)
    out["warnings"] = list(dict.fromkeys(str(w.message) for w in caught if isinstance(w.message, TruncationWarning)))
    return out


def num_labels_of(store: RunStore, targets: list[str]) -> int:
    """The class count the pre-trained default gets: that of the run it is compared with (else 2)."""
    for target in targets:
        if target != DEFAULT:
            return int(store.record(target).get("summary", {}).get("num_labels") or 2)
    return 2


def importance_section(store: RunStore, names: dict[str, str], score: str) -> None:
    """The stored importance heatmap(s), or how to compute them."""
    grids, captions = {}, []
    for name, target in names.items():
        stored = stored_importance(store, target)
        if stored is None:
            missing(store, name, target)
            continue
        grids[name] = stored[score]
        captions.append(f"**{name}**: {stored['examples']} examples of {Path(stored['dataset']).name} (integrated "
                        f"gradients on {stored.get('ig_examples', stored['examples'])}, {stored['ig_steps']} steps, "
                        f"mean |delta| {stored['ig_relative_delta']:.1e} of the attributed total; run "
                        f"`{stored['run_id']}`)" + "".join(f". {note}" for note in stored.get("notes", [])))
    if not grids:
        return
    label = "importance" if score == "michel" else "E|IG|"
    if len(grids) == 1:
        name, grid = next(iter(grids.items()))
        st.plotly_chart(figures.head_importance_heatmap(grid, f"Head importance: {name}", label), width="stretch")
    else:
        st.plotly_chart(figures.head_importance_panels(grids, label), width="stretch")
    st.caption("Crossed-out cells are heads the model no longer has (pruned).")
    for caption in captions:
        st.caption(caption)


def missing(store: RunStore, name: str, target: str) -> None:
    """No stored importance for this model: the command, and a button that queues it for a background worker."""
    st.info(f"No head importance stored for {name} yet. Compute it here (in a background worker) or with "
            f"`python -m analysis heads {target}`.")
    locked = not actions_allowed()
    if st.button(f"Compute head importance of {name}", key=f"heads:compute:{target}", disabled=locked,
                 help=LOCKED if locked else None):
        try:
            from analysis.service.runs import JobQueue

            if not actions_allowed():  # a disabled button is not enough: check again on the server
                raise PermissionError(LOCKED)
            sub = JobQueue(store).submit("heads", HeadsConfig(target=target))
        except Exception as exc:  # a user error or an unreadable store: a message, not a traceback
            show_error(exc)
        else:
            st.success(f"Head importance of {name} is {sub.status} as run `{sub.run_id}`; reload this page when "
                       "the Runs page shows it done.")


def pick_head(num_layers: int, num_heads: int) -> tuple[int, int]:
    left, right = st.columns(2)
    layer = left.selectbox("Layer", list(range(num_layers)), key="heads:layer")
    head = right.selectbox("Head", list(range(num_heads)), key="heads:head")
    return int(layer), int(head)


def head_map(result: dict[str, Any], layer: int, head: int) -> Any:
    return result["attention"][str(layer)].get(str(head))


def explain_section(root: str, names: dict[str, str], labels: int) -> None:
    text = st.text_area("Input text", EXAMPLE_TEXT, key="heads:text", height=80)
    items = list(names.items())
    try:
        first = explanation(root, items[0][1], labels, text, None)
        results = {items[0][0]: first}
        for name, target in items[1:]:  # the second model explains the first one's predicted class
            results[name] = explanation(root, target, labels, text, first["target"])
    except Exception as exc:
        show_error(exc)
        return
    for message in dict.fromkeys(m for r in results.values() for m in r["warnings"]):
        st.warning(message)
    model = loaded(root, items[0][1], labels).model
    layer, head = pick_head(len(first["head_ids"]), heads_per_layer(model))
    title = f"Attention of layer {layer}, head {head}"
    if len(results) == 1:
        matrix = head_map(first, layer, head)
        if matrix is None:
            st.info(f"Head {head} of layer {layer} was removed from this model: pick another one.")
        else:
            st.plotly_chart(figures.attention_heatmap(first["tokens"], matrix, title), width="stretch")
        st.plotly_chart(figures.attribution_bars(first["tokens"], first["attributions"],
                                                 f"Token attributions to class {first['target']}", first["delta"]),
                        width="stretch")
    else:
        maps = {name: (r["tokens"], head_map(r, layer, head)) for name, r in results.items()}
        st.plotly_chart(figures.attention_side_by_side(maps, title), width="stretch")
        strips = {name: (r["tokens"], r["attributions"]) for name, r in results.items()}
        st.plotly_chart(figures.attribution_strip(strips, f"Token attributions to class {first['target']}"),
                        width="stretch")
    columns = st.columns(len(results))
    for column, (name, r) in zip(columns, results.items()):
        column.metric(f"{name}: p(class {first['target']})", f"{r['prediction'][first['target']]:.3f}"
                      if len(r["prediction"]) > first["target"] else "n/a")
        column.caption(f"sum of attributions {r['attribution_sum']:.4f} = F(text) - F(baseline) "
                       f"{r['output'] - r['baseline_output']:.4f} up to the convergence delta {r['delta']:.1e}")
        for note in r["notes"]:
            column.caption(note)


st.title("Attention heads")
store = get_store()
options = model_runs(store)
labels_of = {label: f"{label}: {describe(store, target)}" for label, target in options.items()}
choice = st.selectbox("Model", list(options), index=min(1, len(options) - 1), format_func=labels_of.get,
                      key="heads:model")
others = ["(none)"] + [o for o in options if o != choice]
teacher = store.get(options[choice]).summary.get("teacher") if options[choice] != DEFAULT else None
default_other = next((i for i, o in enumerate(others) if options.get(o) == teacher), 0)
other = st.selectbox("Side by side with", others, index=default_other, format_func=lambda o: labels_of.get(o, o),
                     key="heads:other", help="e.g. the dense model a pruned one came from")
names = {choice: options[choice], **({other: options[other]} if other != "(none)" else {})}

st.header("Head importance")
score = SCORES[st.radio("Score", list(SCORES), horizontal=True, key="heads:score")]
try:
    importance_section(store, names, score)
except Exception as exc:
    show_error(exc)

st.header("Attention and token attributions")
try:
    labels = num_labels_of(store, list(names.values()))
except Exception as exc:
    show_error(exc)
    st.stop()
explain_section(str(store.root), names, labels)
