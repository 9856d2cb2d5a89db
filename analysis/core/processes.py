"""Process helpers for the worker pool: start detached, tell a live process from a dead one, signal it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from analysis.core.settings import PROJECT_ROOT

_CHILDREN: dict[int, subprocess.Popen] = {}  # processes started here: polled so none stays a zombie


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) from /proc, or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()
    return rest[0], rest[19]  # fields 3 and 22 of proc(5)


def process_token(pid: int) -> str | None:
    """Identifies a process beyond its pid (its start time), so a reused pid is not taken for it."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int | None, token: str | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, when `token` is given, is the process it names."""
    if not pid:
        return False
    poll_children()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return True
    return stat[0] not in ("Z", "X") and (token is None or stat[1] == token)


def poll_children() -> None:
    """Reap the processes started here that have exited."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def signal_group(pid: int, sig: int) -> None:
    """Signal a process's whole group when it leads one (a detached worker), else just the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def spawn_detached(args: list[str], log: Path, env: dict[str, str]) -> int:
    """Start `python -m analysis ARGS` in a session of its own (it outlives its starter), output to `log`."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "analysis", *args], cwd=os.getcwd(),
                                env={**os.environ, **env, "PYTHONPATH": path}, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    return proc.pid
