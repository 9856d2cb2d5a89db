"""Explore: edit a stored model without retraining (weights, heads, FFN neurons, layers) and see at once what the
edit does on the task's dev set: an estimate on a seeded sample first, then the whole dev set."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures
from analysis.service import whatif
from analysis.service.runs import run_labels
from analysis.service.studies import prune_rows
from dashboard.common import access_gate, get_store, show_error

st.title("Explore: what if you prune this model?")
st.caption("Edits apply to a copy of the model in memory, never to its stored weights. Each edit is scored first on "
           f"a fixed sample of {whatif.SAMPLE_SIZE} dev examples, then on the whole dev set.")
store = get_store()
candidates = whatif.candidates(store)
if not candidates:
    st.info("No stored model to edit yet: a finished fine-tune or prune run that kept its weights. Make one with "
            "`python -m analysis finetune --dataset sst2 --train-size 2000 --epochs 1` (or run the quick tour: "
            "`python -m analysis demo`).")
    st.stop()

labels = run_labels(candidates)
by_label = {f"{labels[r['run_id']]} · {r['kind']} ({r['run_id'][:8]})": r for r in candidates}
# the most informative start: a dense fine-tune (the model pruning starts from), the newest first
order = sorted(by_label, key=lambda k: (by_label[k]["kind"] != "finetune", -by_label[k]["created"]))
row = by_label[st.selectbox("Model", order, help="finished fine-tune and prune runs that kept their weights")]
run_id = row["run_id"]
try:
    with st.spinner("Loading the model and its dev set…"):
        session = whatif.session(store, run_id)
except Exception as exc:
    show_error(exc)
    st.stop()
arch = session.arch
history_key = f"whatif:history:{run_id}"
history: list[dict] = st.session_state.setdefault(history_key, [])


def head_key(layer: int) -> str:
    return f"whatif:heads:{run_id}:{layer}"


def remove_least_important(k: int, by: str) -> None:
    """Button callback: select the k heads of lowest stored importance (before the head widgets are drawn)."""
    try:
        chosen = whatif.least_important_heads(store, run_id, k, by)
    except Exception as exc:
        st.session_state["whatif:error"] = getattr(exc, "message", str(exc))
        return
    for layer in range(arch.num_layers):
        st.session_state[head_key(layer)] = [h for (l_, h) in chosen if l_ == layer]


controls, results = st.columns([3, 2], gap="medium")  # twelve head pills fit on one row
with controls:
    st.subheader("Edit")
    sparsity = st.slider("Unstructured sparsity", 0.0, 0.95, 0.0, 0.05, key=f"whatif:sparsity:{run_id}",
                         help="share of the chosen weight matrices' weights set to zero")
    left, right = st.columns(2)
    criteria = [c for c in whatif.CRITERIA if c != "movement" or session.has_movement_scores]
    criterion = left.selectbox("Criterion", criteria, help="magnitude: smallest |w| first; random: seeded; movement: "
                                                            "the scores this movement-pruning run learned")
    scope = right.selectbox("Scope", whatif.SCOPES, help="global: one threshold over all matrices; per-tensor: the "
                                                          "share in each")
    modules = st.multiselect("Matrices", list(whatif.MODULE_TYPES), default=list(whatif.MODULE_TYPES),
                             help="which of each layer's weight matrices the sparsity applies to")
    st.markdown("**Attention heads** (click a head to remove it)")
    for layer in range(arch.num_layers):
        st.pills(f"Layer {layer}", list(range(arch.num_heads)), selection_mode="multi", key=head_key(layer),
                 format_func=lambda h: f"{h}")
    k_col, by_col, go_col = st.columns([1, 1, 2], vertical_alignment="bottom")
    k = int(k_col.number_input("k", min_value=1, max_value=arch.num_layers * arch.num_heads, value=min(12, arch.num_layers * arch.num_heads)))
    by = by_col.selectbox("by", ("michel", "ig"), help="stored importance: Michel et al., or integrated gradients")
    go_col.button("Remove k least important", on_click=remove_least_important, args=(k, by))
    if st.session_state.pop("whatif:error", None):
        st.warning(f"No stored importance for this model: compute it with `python -m analysis heads --target {run_id}`"
                   " (or from the Heads page).")
    with st.expander("FFN neurons and whole layers"):
        ffn = tuple((layer, share) for layer in range(arch.num_layers)
                    if (share := st.slider(f"FFN neurons removed, layer {layer}", 0.0, 1.0, 0.0, 0.05,
                                           key=f"whatif:ffn:{run_id}:{layer}")) > 0)
        dropped = tuple(st.multiselect("Layers dropped", list(range(arch.num_layers)), key=f"whatif:layers:{run_id}"))
    heads = tuple(sorted((layer, int(h)) for layer in range(arch.num_layers)
                         for h in (st.session_state.get(head_key(layer)) or [])))

try:
    edit = whatif.Edit(sparsity=sparsity, criterion=criterion, scope=scope, modules=tuple(modules) or ("query",),
                       heads=heads, ffn=ffn, layers=dropped)
    edit.validate(arch)
except Exception as exc:
    with results:
        show_error(exc)
    st.stop()


def show(box, result: dict, title: str) -> None:
    with box.container():
        st.markdown(f"**{title}** · {result['edit_text']}")
        a, b, c = st.columns(3)
        a.metric(result["metric"], f"{result['value']:.4f}", f"{result['change']:+.4f}",
                 help=f"95% interval [{result['ci_low']:.4f}, {result['ci_high']:.4f}]; unedited "
                      f"{result['unedited']:.4f}")
        if result["agreement"] is not None:
            b.metric("agreement", f"{result['agreement']:.1%}",
                     help="share of dev predictions the edit leaves as they were")
            c.metric("KL", f"{result['kl']:.3g}", help="mean KL(unedited ‖ edited) of the predicted distributions")
        st.caption(f"Change {result['change']:+.4f}, paired bootstrap 95% interval [{result['change_ci_low']:+.4f}, "
                   f"{result['change_ci_high']:+.4f}] on {result['examples']} examples · encoder sparsity "
                   f"{result['encoder_sparsity']:.1%} · {result['seconds']:.2f} s{' (cached)' if result['cached'] else ''}"
                   f" · {result['precision']}")


with results:
    st.subheader("What the edit does")
    estimate_box, full_box = st.empty(), st.empty()
    try:
        estimate = session.evaluate(edit, full=False)
        show(estimate_box, estimate, f"Estimate ({estimate['examples']} sampled dev examples)")
        full = session.evaluate(edit, full=True)
        show(full_box, full, f"Whole dev set ({full['examples']} examples)")
    except Exception as exc:
        show_error(exc)
        st.stop()
    if not edit.is_identity and (not history or history[-1]["edit"] != full["edit"]):
        history.append(full)
    st.plotly_chart(figures.layer_sparsity_bars(full["layer_sparsity"]), width="stretch")
    if edit.structured and st.button("Measure latency of the compacted edit"):
        lat = session.evaluate(edit, full=True, latency=True)["latency"]
        st.caption(f"{lat['edited_ms']:.1f} ms vs {lat['unedited_ms']:.1f} ms unedited per batch of "
                   f"{lat['batch_size']} ({lat['speedup']:.2f}x; zeroed weights cost as much as dense ones)")
    if full["flipped"]:
        st.markdown(f"**Examples whose prediction flipped** ({len(full['flipped'])} shown)")
        st.dataframe(pd.DataFrame(full["flipped"]), hide_index=True, width="stretch")

st.subheader("One-shot edits vs retrained runs")
rows = store.list()
same_task = [r for r in prune_rows(rows) if r["dataset"] == row["dataset"]
             and {x["run_id"]: x["model"] for x in rows}.get(r["run_id"]) == row["model"]]
st.plotly_chart(figures.whatif_vs_retrained(history, same_task, session.base_value, session.metric), width="stretch")
st.caption("How much of the one-shot loss retraining recovers: each numbered point is an edit tried here (scored "
           "without retraining); the circles are finished prune runs of the same model and task.")
if history:
    st.dataframe(pd.DataFrame([{"#": i + 1, "edit": h["edit_text"], "value": h["value"], "change": h["change"],
                                "encoder sparsity": h["encoder_sparsity"], "agreement": h["agreement"]}
                               for i, h in enumerate(history)]), hide_index=True, width="stretch")

st.subheader("Turn the edit into a run")
st.caption("Retrains the edited model with its masks fixed (a `prune` run with `--masks`, started from this "
           "fine-tune), in the background; dropped layers cannot be expressed as masks.")
if access_gate() and st.button("Retrain this edit", disabled=edit.is_identity or bool(edit.layers)):
    try:
        submission = whatif.retrain(store, run_id, edit)
        st.success(f"Queued run {submission.run_id} ({submission.status}); follow it on the Runs page.")
    except Exception as exc:
        show_error(exc)
