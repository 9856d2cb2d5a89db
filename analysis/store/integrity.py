"""The store's integrity check: the index and the folders agree, nothing is left running by a dead process,
no temp file is left behind, and the job queue agrees with the runs. `python -m analysis check-store --json`.

Meant for a store at rest (a write in progress can show up as a temp file or a folder without its record).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from analysis.core.paths import RUN_ID
from analysis.core.processes import process_alive
from analysis.store.liveness import STALE_SECONDS, _is_dead

if TYPE_CHECKING:
    from analysis.store.index import RunStore

ACTIVE_JOBS = ("queued", "running", "cancelling")
TERMINAL_RUNS = ("done", "failed", "interrupted")


def check_store(store: RunStore) -> list[str]:
    """Every problem found, one sentence each naming the run or job; an empty list means healthy."""
    with store._db() as db:
        rows = [dict(r) for r in db.execute("SELECT run_id, status, heartbeat, pid, host, pid_start FROM runs")]
        jobs = _jobs(db)
        workers = _workers(db)
    problems = _index_vs_folders(store, rows)
    problems += _liveness(rows)
    problems += _temp_files(store)
    problems += _jobs_vs_runs(jobs, workers, {r["run_id"]: r for r in rows})
    return problems


def _jobs(db: sqlite3.Connection) -> list[dict[str, Any]]:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='jobs'").fetchone():
        return []  # no job was ever queued in this store
    return [dict(r) for r in db.execute("SELECT job_id, run_id, status, worker_pid FROM jobs ORDER BY job_id")]


def _workers(db: sqlite3.Connection) -> list[dict[str, Any]]:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='workers'").fetchone():
        return []
    return [dict(r) for r in db.execute("SELECT pid, token FROM workers")]


def _index_vs_folders(store: RunStore, rows: list[dict[str, Any]]) -> list[str]:
    """Each index row has a folder with a readable record.json that agrees with it, and each run folder a row."""
    problems, indexed = [], set()
    for row in rows:
        rid, status = row["run_id"], row["status"]
        indexed.add(rid)
        if not RUN_ID.fullmatch(rid or ""):
            problems.append(f"index row {rid!r} is not a run id (16 lowercase hex digits)")
            continue
        record_path = store.root / rid / "record.json"
        try:
            record = json.loads(record_path.read_text())
        except FileNotFoundError:
            problems.append(f"run {rid} ({status}) is in the index but has no {record_path}")
            continue
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"run {rid}: {record_path} is unreadable ({type(exc).__name__}: {exc})")
            continue
        if not isinstance(record, dict) or record.get("run_id") != rid:
            problems.append(f"run {rid}: record.json names run {record.get('run_id') if isinstance(record, dict) else None!r}")
        elif status in TERMINAL_RUNS and record.get("status") != status:
            problems.append(f"run {rid} is {status} in the index but {record.get('status')!r} in record.json")
    for folder in sorted(p for p in store.root.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name)):
        if folder.name not in indexed:
            problems.append(f"folder {folder} has no row in the index (a run lost from it, or a half-deleted one)")
    return problems


def _liveness(rows: list[dict[str, Any]]) -> list[str]:
    """No run is marked running or queued whose process is gone and whose heartbeat stopped."""
    now = time.time()
    return [f"run {r['run_id']} is marked {r['status']} but its process {r['pid']} is gone (heartbeat "
            f"{now - (r['heartbeat'] or 0):.0f} s old; another machine's runs wait {STALE_SECONDS:.0f} s)"
            for r in rows if r["status"] in ("running", "queued") and _is_dead(r, now)]


def _temp_files(store: RunStore) -> list[str]:
    """write_atomic's temp files (.NAME.XXXX.tmp) left behind by a kill mid-write."""
    return [f"leftover temp file {path}" for path in sorted(store.root.rglob(".*.tmp")) if path.is_file()]


def _jobs_vs_runs(jobs: list[dict[str, Any]], workers: list[dict[str, Any]],
                  runs: dict[str, dict[str, Any]]) -> list[str]:
    """One active job per run, a live worker under every running job, and a finished job's run finished too."""
    problems = []
    live = {w["pid"] for w in workers if process_alive(w["pid"], w["token"])}
    problems += [f"worker {w['pid']} is in the pool but its process is gone" for w in workers if w["pid"] not in live]
    active: dict[str, int] = {}
    latest: dict[str, dict[str, Any]] = {}
    for job in jobs:
        latest[job["run_id"]] = job
        if job["status"] in ACTIVE_JOBS:
            if job["run_id"] in active:
                problems.append(f"run {job['run_id']} has two active jobs ({active[job['run_id']]} and {job['job_id']})")
            active[job["run_id"]] = job["job_id"]
        if job["status"] in ("running", "cancelling") and job["worker_pid"] not in live:
            problems.append(f"job {job['job_id']} (run {job['run_id']}) is {job['status']} but its worker "
                            f"{job['worker_pid']} is not a live worker")
    for rid, job in latest.items():
        run = runs.get(rid)
        if job["status"] == "done" and run is not None and run["status"] in ("failed", "interrupted"):
            problems.append(f"job {job['job_id']} is done but its run {rid} is {run['status']}")  # (deleted: fine)
    return problems
