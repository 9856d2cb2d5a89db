"""A study's results so far: the stored table and summary once it is done, else a summary of the runs it has
finished (its `run_done` log events), made by the study's own summariser. Figures and pages read studies here."""

from __future__ import annotations

from typing import Any, Callable

PartialSummary = Callable[[Any, list[dict[str, Any]]], dict[str, Any]]  # (record, finished rows) -> summary


def finished_rows(store: Any, run_id: str, event: str = "run_done") -> list[dict[str, Any]]:
    """The per-run rows a study has logged so far as `event`, one per finished member run (of its seeds, or of a
    selection: "selection_done")."""
    return [{k: v for k, v in e.items() if k not in ("event", "time")} for e in store.read_metrics(run_id)
            if e.get("event") == event]


def finished_members(store: Any, run_id: str) -> list[str]:
    """The run ids of the members (seeds and selection candidates) an unfinished study has finished so far, and
    that the store holds as done: what `export --partial` saves so the study can be resumed from another store."""
    ids = [r.get("run_id") for event in ("selection_done", "run_done") for r in finished_rows(store, run_id, event)]
    return [i for i in dict.fromkeys(ids) if i and (rec := store.get(i)) is not None and rec.status == "done"]


def study_inputs(store: Any, run_id: str, partial: PartialSummary) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """(per-run rows, summary, complete) of a study; an unfinished one is summarised by `partial` from the runs
    it has finished so far."""
    record = store.require(run_id)
    if record.status == "done":
        return store.load_artifact_json(run_id, "table"), store.load_artifact_json(run_id, "summary"), True
    rows = finished_rows(store, run_id)
    return rows, partial(record, rows), False
