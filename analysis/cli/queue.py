"""Commands of the job queue: worker, queue, cancel."""

from __future__ import annotations

from typing import Any

from analysis.cli.base import arguments, command
from analysis.service.runs import JobQueue, cancel


@command("worker", "run queued jobs until the queue is empty (the dashboard starts these detached)")
def worker(args: Any) -> dict[str, Any]:
    return JobQueue().work()


@command("queue", "list the queued and running jobs, and the last finished ones")
@arguments(lambda p: p.add_argument("--recent", type=int, default=10, help="finished jobs to list"))
def queue(args: Any) -> dict[str, Any]:
    return {"jobs": JobQueue().rows(args.recent)}


@command("cancel", "cancel a queued or running job (SIGTERM, then SIGKILL); what it logged is kept")
@arguments(lambda p: p.add_argument("run_id"))
def cancel_command(args: Any) -> dict[str, Any]:
    return {"run_id": args.run_id, "status": cancel(args.run_id)}
