"""Widgets and cached readers shared by the pages (UI only: every number comes from analysis/)."""

from __future__ import annotations

import streamlit as st

from analysis import settings
from analysis.store import RunStore


def get_store() -> RunStore:
    """The store named by PRUNESCOPE_STORE (read on every rerun, so a changed setting takes effect)."""
    return _store_at(str(settings.store_root()))


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
