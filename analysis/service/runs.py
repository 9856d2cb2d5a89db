"""Runs, the store and the queue, as both shells use them: run a config here or in the queue, resume, list,
re-run, cancel, delete, export to and import from a results folder, check the store."""

from __future__ import annotations

from pathlib import Path

from analysis.core import settings
from analysis.core.errors import PruneScopeError  # noqa: F401  (the user errors the shells show with their fix)
from analysis.reports.tables import runs_table  # noqa: F401
from analysis.runs.executors import EXECUTORS, Executor, ExecutorOptions, using_executor  # noqa: F401
from analysis.runs.experiment import EXPERIMENTS, Outcome, canonical, execute, resume, run_id  # noqa: F401
from analysis.runs.queue import ACTIVE, JobQueue, Submission, cancel, delete_run, rerun  # noqa: F401
from analysis.store.bundles import export_runs, import_runs  # noqa: F401  (results/ out and in)
from analysis.store.index import RunStore
from analysis.store.integrity import check_store  # noqa: F401
from analysis.store.labels import run_label, run_labels  # noqa: F401  (the one run label)
from analysis.studies.quick_tour import DemoConfig  # noqa: F401  (the quick tour, launched from the Runs page)


def store_root() -> Path:
    """The store $PRUNESCOPE_STORE names (read on every call, so a changed setting takes effect)."""
    return settings.store_root()


def open_store(root: str | Path | None = None) -> RunStore:
    return RunStore(root if root is not None else store_root())


def finished_so_far(store: RunStore, run_ids: list[str]) -> list[str]:
    """`export --partial`: each unfinished study or sweep among run_ids replaced by the members it has finished so far
    (a finished run stays as it is). An unfinished run with no finished member (a plain run, or a study that has just
    begun) is an error: there would be nothing to resume from."""
    from analysis.studies.progress import finished_members

    out: list[str] = []
    for rid in run_ids:
        rec = store.require(rid)
        if rec.status == "done":
            out.append(rid)
            continue
        members = finished_members(store, rid)
        if not members:
            raise PruneScopeError(f"run {rid} ({rec.kind}, {rec.status}) has finished no member run yet",
                                  fix="--partial exports the finished members of a study or sweep; export a plain run "
                                      "once it is done")
        out += members
    return list(dict.fromkeys(out))


def transformer_runs_with_weights(store: RunStore) -> list[dict]:
    """Finished fine-tune and prune runs of a transformer that kept their weights (a baseline has no encoder):
    what probes, head importance and the what-if explorer can load."""
    from analysis.core.config import BASELINE_MODELS

    return [r for r in store.list(status="done") if r["kind"] in ("finetune", "prune")
            and r["model"] not in BASELINE_MODELS and (store.run_dir(r["run_id"]) / "model").is_dir()]
