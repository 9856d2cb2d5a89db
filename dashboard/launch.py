"""Launch: one form per experiment kind, generated from the registries and config dataclasses; a launch
goes to the job queue and runs in a background worker process, never in this script."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st
import yaml

from analysis.service import forms
from analysis.service.runs import JobQueue, PruneScopeError
from dashboard.common import LOCKED, access_gate, actions_allowed, get_store, show_error
from dashboard.queue_view import show_queue

FOLDED = ("model", "train")  # groups shown folded: most launches keep their defaults
COLUMNS = 3


def widget(field: forms.FormField, key: str) -> Any:
    """One input for a form field; its value goes back through forms.build_config."""
    label, common = field.name.replace("_", " "), {"key": key, "help": field.help}
    hint = {"placeholder": "none (leave empty)"} if field.optional else {}
    if field.widget == "checkbox":
        return st.checkbox(label, value=bool(field.default), **common)
    if field.widget == "int":
        return st.number_input(label, value=field.default, step=1, **hint, **common)
    if field.widget == "float":
        return st.number_input(label, value=field.default, step=field.step, format="%g", **hint, **common)
    if field.widget == "select":
        options = ([None] if field.optional else []) + list(field.choices)
        index = options.index(field.default) if field.default in options else 0
        return st.selectbox(label, options, index=index, format_func=lambda v: "none" if v is None else str(v), **common)
    if field.widget == "multiselect":
        default = [v for v in (field.default or ()) if v in field.choices]
        return st.multiselect(label, list(field.choices), default=default, **common)
    if field.widget == "mapping":
        text = yaml.safe_dump(field.default, sort_keys=True).strip() if field.default else ""
        return st.text_area(label, value=text, placeholder="key: value", **common)
    return st.text_input(label, value=field.default_text, **hint, **common)


def render(fields: list[forms.FormField], prefix: str) -> dict[str, Any]:
    """Fields grouped by where they sit in the config tree, a few per row."""
    values: dict[str, Any] = {}
    seen = list(dict.fromkeys(f.group for f in fields))
    groups = sorted(seen, key=lambda g: (g != "experiment", g in FOLDED, seen.index(g)))
    for group in groups:
        members = [f for f in fields if f.group == group]
        box = st.expander(group.capitalize(), expanded=group not in FOLDED)
        columns = box.columns(COLUMNS)
        for i, field in enumerate(members):
            with columns[i % COLUMNS]:
                values[field.name] = widget(field, f"{prefix}:{field.name}")
    return values


def method_options(kind: str, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The option fields of the chosen method(s): they appear as soon as a method is picked."""
    out: dict[str, dict[str, Any]] = {}
    for slot in forms.option_slots(kind):
        chosen = values.get(slot.method_field)
        for method in chosen if isinstance(chosen, list) else [chosen]:
            fields = forms.option_fields(slot.registry, method) if method else []
            if fields:
                st.markdown(f"**Options of `{method}`**")
                out[method] = render([replace(f, group=method) for f in fields],
                                     f"launch:{kind}:{method}")
    return out


def submit(kind: str, fields: list[forms.FormField], values: dict[str, Any], options: dict, keep: bool) -> None:
    if not actions_allowed():  # a disabled button is not enough: check again on the server
        st.error(LOCKED)
        return
    try:
        config = forms.build_config(kind, fields, values, options)
        sub = JobQueue(get_store()).submit(kind, config, save_weights=keep)
    except PruneScopeError as exc:
        show_error(exc)
        return
    except Exception as exc:  # never a traceback on the page
        show_error(exc)
        return
    if sub.status == "done":
        st.success(f"Run `{sub.run_id}` is already in the store: served from it, nothing to run.")
    elif sub.note:
        st.info(f"Run `{sub.run_id}`: {sub.note}.")
    else:
        st.success(f"Queued as run `{sub.run_id}` (job {sub.job_id}); a background worker runs it.")


st.title("Launch")
store = get_store()
allowed = access_gate()
kind = st.radio("Experiment", forms.kinds(), format_func=forms.title, horizontal=True, key="launch:kind")
if forms.describe(kind):
    st.caption(forms.describe(kind))
try:
    spec = forms.form_fields(kind, store)
except Exception as exc:
    show_error(exc)
    st.stop()
values = render(spec, f"launch:{kind}")
options = method_options(kind, values)
keep = st.checkbox("Keep the trained weights", value=True, key=f"launch:{kind}:keep-weights",
                   help="probes, head importance and pruning teachers need them")
if st.button("Launch", type="primary", key=f"launch:{kind}:go", disabled=not allowed):
    submit(kind, spec, values, options, keep)
show_queue(store, key="launch")
