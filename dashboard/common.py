"""Widgets and cached readers shared by the pages (UI only: every number comes from analysis/)."""

from __future__ import annotations

import hmac
import os
from typing import Any, Callable, TypeVar

import streamlit as st

from analysis.service.runs import RunStore, store_root

T = TypeVar("T")


def get_store() -> RunStore:
    """The store named by PRUNESCOPE_STORE (read on every rerun, so a changed setting takes effect)."""
    return _store_at(str(store_root()))


@st.cache_resource
def _store_at(root: str) -> RunStore:
    return RunStore(root)


def short_name(value: object) -> object:
    """A dataset or model as a table shows it: a file or folder path by its last part ('train.csv')."""
    return value.replace("\\", "/").rstrip("/").split("/")[-1] if isinstance(value, str) and "/" in value else value


def show_error(exc: Exception) -> None:
    """A message with the fix, never a raw traceback."""
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    st.error(message)


# -- access token: with $PRUNESCOPE_TOKEN set, launching, cancelling and deleting need it ----------------------

TOKEN_ENV = "PRUNESCOPE_TOKEN"
GRANTED_KEY = "access:granted"  # the token this session entered (kept across pages)
LOCKED = (f"Launching, cancelling and deleting are locked: this dashboard was started with {TOKEN_ENV}. "
          "Enter that token in the sidebar to unlock them for this session.")


def required_token() -> str | None:
    """The token the dashboard was started with ($PRUNESCOPE_TOKEN), or None when actions are open."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def token_matches(given: str | None, required: str) -> bool:
    """Constant-time comparison of an entered token with the required one."""
    return hmac.compare_digest((given or "").strip().encode(), required.encode())


def actions_allowed() -> bool:
    """Whether this session may launch, cancel and delete (no token required, or the right one entered)."""
    required = required_token()
    return required is None or token_matches(st.session_state.get(GRANTED_KEY), required)


def _remember_token() -> None:
    st.session_state[GRANTED_KEY] = st.session_state.get("access:input", "")


def access_gate() -> bool:
    """The sidebar token field (only when a token is required); returns actions_allowed(). Once per page run."""
    if required_token() is None:
        return True
    if actions_allowed():
        st.sidebar.caption("Launch, cancel and delete are unlocked for this session.")
        return True
    st.sidebar.text_input("Access token", type="password", key="access:input", on_change=_remember_token,
                          help=f"the value of {TOKEN_ENV} the dashboard was started with")
    if st.session_state.get(GRANTED_KEY):
        st.sidebar.error("That token is not the one this dashboard was started with.")
    st.info(LOCKED)
    return False


# -- shared page openings: load or stop with a message; pick a study and read it (cached per study state) -------


def runs_or_stop(read: Callable[[], T], empty: str, has: Callable[[T], Any] = len) -> T:
    """`read()` (e.g. the store's runs); an error, or nothing worth showing (`has` false), stops the page with a
    message instead of a traceback."""
    try:
        value = read()
    except Exception as exc:  # an unreadable store is a message, not a traceback
        show_error(exc)
        st.stop()
    if not has(value):
        st.info(empty)
        st.stop()
    return value


def _study_reader(topic: str) -> Callable[[RunStore, str], tuple[list[dict], dict, bool]]:
    from analysis.service.studies import study_inputs

    return study_inputs[topic]


@st.cache_data(max_entries=16, show_spinner="Summarising the study…")
def _study_inputs(root: str, topic: str, run_id: str, status: str, updated: float) -> tuple[list[dict], dict, bool]:
    """Cached per study state: a running study is re-read (curve fits, masks) only when it moved on."""
    return _study_reader(topic)(_store_at(root), run_id)


def study_picker(store: RunStore, studies: list[dict], topic: str, label: Callable[[dict], str],
                 unit: str = "run", preface: Callable[[dict], None] | None = None) -> tuple[list[dict], dict, bool]:
    """A "Study" select box over `studies` (topic: "scale" or "child-tuning") and the chosen study's (rows,
    summary, complete); stops with a message while it has no finished `unit`, warns while it is unfinished.
    `preface(study row)` draws what the study shows before its first `unit` finishes (e.g. its selection)."""
    labels = {label(r): r for r in studies}
    row = labels[st.selectbox("Study", list(labels))]
    if preface is not None:
        preface(row)
    try:
        rows, summary, complete = _study_inputs(str(store.root), topic, row["run_id"], row["status"],
                                                row["updated"] or 0.0)
    except Exception as exc:  # a study without its artefacts: say so
        show_error(exc)
        st.stop()
    if not rows:
        st.info(f"This study has not finished a {unit} yet; its results show here as they complete.")
        st.stop()
    if not complete:
        st.warning(f"This study is not finished: {len(rows)} {unit}s so far, summarised as they stand.")
    return rows, summary, complete


def page_link(path: str, label: str, icon: str | None = None) -> None:
    """A link to another page of the app; when this page runs on its own (outside the app's navigation, e.g. in a
    test or `streamlit run dashboard/x.py`) the page is named instead."""
    try:
        st.page_link(path, label=label, icon=icon)
    except st.errors.StreamlitAPIException:
        st.caption(f"{label} ({path})")
