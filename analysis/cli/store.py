"""Command: the store's integrity check."""

from __future__ import annotations

from typing import Any

from analysis.cli.base import command
from analysis.service.runs import RunStore, check_store


@command("check-store", "check the store's integrity (index vs folders, stuck runs, temp files, jobs); exit 1 on problems")
def check_store_command(args: Any) -> dict[str, Any]:
    store = RunStore()
    problems = check_store(store)
    return {"status": "failed" if problems else "done", "store": str(store.root), "problems": problems,
            "runs": len(store.list())}
