"""Whether a run's process is alive: the one liveness rule the store, the queue and the integrity check share."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from analysis.core.processes import process_alive, process_token

STALE_SECONDS = 120.0  # a running run whose heartbeat is older than this is taken as dead


def this_host() -> str:
    """This machine, as a run's row names it: the host name and the boot (a reboot reuses process ids)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}/{boot}"


def _is_dead(row: Any, now: float) -> bool:
    """The one liveness rule. A run of this machine is dead as soon as its process is gone (its id and start time
    tell it from a reused id); a run of another machine (or a row from before hosts were recorded) when its
    heartbeat is STALE_SECONDS old. A row this very process owns goes by its heartbeat too."""
    keys = row.keys() if hasattr(row, "keys") else row
    host = row["host"] if "host" in keys else None
    pid = row["pid"]
    if host == this_host() and pid and pid != os.getpid():
        return not process_alive(pid, row["pid_start"] if "pid_start" in keys else None)
    stale = now - (row["heartbeat"] or 0) >= STALE_SECONDS
    return stale and (host not in (None, this_host()) or not _process_alive(pid))


def _death_note(row: Any) -> str:
    if row["host"] == this_host() and row["pid"] != os.getpid():
        return f"its process {row['pid']} on this machine is gone (killed or crashed)"
    return "the worker stopped sending heartbeats (killed or crashed)"


def _own_start() -> str | None:
    return process_token(os.getpid())


def _process_alive(pid: int | None) -> bool:
    """True if another live process (not a zombie) has this id: a worker that is merely slow to beat."""
    return bool(pid) and pid != os.getpid() and process_alive(pid)
