"""The store and the queue, as the pages use them: list, launch, re-run, cancel and delete runs."""

from __future__ import annotations

from pathlib import Path

from analysis.core import settings
from analysis.core.errors import PruneScopeError  # noqa: F401  (the user errors pages show with their fix)
from analysis.reports.tables import runs_table  # noqa: F401
from analysis.runs.queue import ACTIVE, JobQueue, Submission, delete_run, rerun  # noqa: F401
from analysis.store.index import RunStore
from analysis.store.labels import run_label, run_labels  # noqa: F401  (the one run label)
from analysis.studies.quick_tour import DemoConfig  # noqa: F401  (the quick tour, launched from the Runs page)


def store_root() -> Path:
    """The store $PRUNESCOPE_STORE names (read on every call, so a changed setting takes effect)."""
    return settings.store_root()


def open_store(root: str | Path | None = None) -> RunStore:
    return RunStore(root if root is not None else store_root())
