"""The home page's facts: what each finished study found, how long the quick tour took here, what is running."""

from __future__ import annotations

from typing import Any

from analysis.reports.headlines import Headline, headlines  # noqa: F401
from analysis.runs.queue import JobQueue
from analysis.store.index import RunStore

QUICK_TOUR_COMMAND = "python -m analysis demo"


def quick_tour_minutes(store: RunStore) -> float | None:
    """Minutes the quick tour took in this store (the newest finished one), or None if it never ran here."""
    for row in store.list(kind="demo", status="done"):
        if row.get("duration"):
            return row["duration"] / 60
    return None


def running_now(store: RunStore) -> list[dict[str, Any]]:
    """Runs in progress (queued or running), with their progress and message, newest first."""
    active = [r for r in store.list() if r["status"] in ("queued", "running")]
    jobs = [j for j in JobQueue(store).rows(recent=0) if j["status"] in ("queued", "running", "cancelling")]
    known = {r["run_id"] for r in active}
    return active + [{"run_id": j["run_id"], "kind": j["kind"], "status": j["status"], "progress": j["progress"],
                      "message": j["message"], "label": j.get("label") or ""} for j in jobs if j["run_id"] not in known]
