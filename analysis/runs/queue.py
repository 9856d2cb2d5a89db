"""Background work: a job queue in the store's SQLite index, run by detached worker processes.

- `submit(kind, config)`: a config whose run is finished is served from the store; otherwise one row is
  added to the `jobs` table of the store's `index.sqlite` (status `queued`). A unique index allows one
  active job per run id, so identical launches from any number of processes make one job and one run.
  A queued job has no row in `runs` yet: the worker's `runs.experiment.execute` claims the run as any run is claimed.
- Workers are `python -m analysis worker` processes started detached (a session of their own, so they
  survive a page reload, and the Streamlit script never trains). At most `PRUNESCOPE_WORKERS` (default 1;
  0 only queues) run at once, counted in the `workers` table. A worker takes the oldest queued job, runs it
  in-process through `runs.experiment.execute` (progress and heartbeats go to the store, as for any run) and exits
  when the queue is empty. Job statuses: queued, running, cancelling, done, failed, cancelled, interrupted.
- `cancel(run_id)`: a queued job is dropped; a running one is marked `cancelling` and its worker gets
  SIGTERM, which becomes a KeyboardInterrupt (so `execute` marks the run interrupted and keeps what it
  logged), then SIGKILL after a grace period. That worker stops; a new one serves what is still queued.
- A worker that dies (kill -9, out of memory) is noticed by `reap` as soon as its process is gone (or a
  zombie, or its pid reused): its job fails and its runs are marked interrupted at once, without waiting
  for the store's heartbeat timeout (which still covers runs started outside the queue).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from analysis.core import settings
from analysis.core.config import ConfigBase
from analysis.core.errors import ConfigError, PruneScopeError, StoreError
from analysis.core.paths import allowed_roots, confine_config
from analysis.core.processes import poll_children, process_alive, process_token, signal_group, spawn_detached
from analysis.runs.experiment import EXPERIMENTS, canonical, execute
from analysis.runs.experiment import run_id as run_id_of
from analysis.store.index import RunStore, connect

ACTIVE = ("queued", "running", "cancelling")
_ACTIVE_SQL = "('queued', 'running', 'cancelling')"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, kind TEXT NOT NULL, config TEXT NOT NULL,
    label TEXT, save_weights INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL, submitted REAL NOT NULL,
    started REAL, finished REAL, worker_pid INTEGER, error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs(run_id) WHERE status IN {_ACTIVE_SQL};
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS workers (pid INTEGER PRIMARY KEY, token TEXT, started REAL NOT NULL, log TEXT);
"""


max_workers = settings.max_workers


class JobStopped(KeyboardInterrupt):
    """Raised in a worker by SIGTERM: `execute` marks the run interrupted, keeping what it logged."""


class _WorkerState:
    current: int | None = None  # the job being executed
    stop = False  # SIGTERM seen: finish up and exit
    raised = False


def _on_sigterm(signum: int, frame: Any) -> None:
    _WorkerState.stop = True
    if _WorkerState.current is not None and not _WorkerState.raised:
        _WorkerState.raised = True
        raise JobStopped("stopped by SIGTERM (cancelled from the queue, or the machine is shutting down)")


@dataclass(frozen=True)
class Submission:
    run_id: str
    status: str  # done (served from the store), queued, running
    job_id: int | None = None
    note: str = ""


# -- the queue --------------------------------------------------------------------------------


class JobQueue:
    """The jobs and workers tables beside the store's runs index (same SQLite file, WAL)."""

    _ready: set[str] = set()  # stores whose tables exist (created once per process)

    def __init__(self, store: RunStore | None = None):
        self.store = store or RunStore()
        if str(self.store.root) not in JobQueue._ready:
            with self._db() as db:
                db.executescript(SCHEMA)
            JobQueue._ready.add(str(self.store.root))

    def _db(self) -> Iterator[sqlite3.Connection]:
        return connect(self.store.root)

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, kind: str, config: ConfigBase, save_weights: bool = True) -> Submission:
        """Queue `config` unless its run is finished (served) or already queued/running (one run per id)."""
        if not isinstance(config, EXPERIMENTS.get(kind).config_cls):
            raise ConfigError(f"a {type(config).__name__} is not a {kind} config",
                              fix=f"build it with {EXPERIMENTS.get(kind).config_cls.__name__}")
        # the worker rebuilds the config from JSON: hash that same config (an int in a float field becomes a float)
        config = type(config).from_dict(config.to_dict())
        confine_config(config, allowed_roots() + [self.store.root])  # before any file it names is opened
        # queued as the run will record it (precision resolved here, options normalised): the worker runs exactly it
        config = canonical(kind, config)
        rid = run_id_of(kind, config)  # hashes the data and model: a missing file is reported here
        self.reap()
        existing = self.store.get(rid)
        if existing is not None and existing.status == "done":
            return Submission(rid, "done", note="served from the store")
        label = EXPERIMENTS.get(kind)().describe(config).get("label") or kind
        with self._txn() as db:
            row = db.execute(f"SELECT job_id, status FROM jobs WHERE run_id=? AND status IN {_ACTIVE_SQL}",
                             (rid,)).fetchone()
            if row is None and existing is not None and existing.status == "running":
                return Submission(rid, "running", note="already running in another process")
            if row is not None:
                return Submission(rid, row["status"], row["job_id"], note="the same config is already in the queue")
            job_id = db.execute(
                "INSERT INTO jobs (run_id, kind, config, label, save_weights, status, submitted)"
                " VALUES (?,?,?,?,?,'queued',?)",
                (rid, kind, json.dumps(config.to_dict()), label, int(save_weights), time.time())).lastrowid
        self.ensure_workers()
        return Submission(rid, "queued", job_id)

    def ensure_workers(self, limit: int | None = None) -> list[int]:
        """Start workers (up to the limit) while queued jobs outnumber idle workers. Returns new pids."""
        limit = max_workers() if limit is None else limit
        self.reap()
        started: list[int] = []
        with self._txn() as db:
            queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]
            live = db.execute("SELECT COUNT(*) FROM workers").fetchone()[0]
            busy = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('running', 'cancelling')").fetchone()[0]
            for _ in range(max(0, min(queued - max(live - busy, 0), limit - live))):
                pid, log = self._spawn()
                db.execute("INSERT OR REPLACE INTO workers (pid, token, started, log) VALUES (?,?,?,?)",
                           (pid, process_token(pid), time.time(), log))
                started.append(pid)
        return started

    def _spawn(self) -> tuple[int, str]:
        """Start `python -m analysis worker` detached, on this store, logging to the store's worker-logs/."""
        logs = self.store.root / "worker-logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.log"
        return spawn_detached(["worker"], log, {"PRUNESCOPE_STORE": str(self.store.root)}), str(log)

    # -- the worker ---------------------------------------------------------------------------

    def work(self) -> dict[str, Any]:
        """The worker loop: run queued jobs one at a time, oldest first, until none is left or SIGTERM."""
        pid = os.getpid()
        with self._txn() as db:
            db.execute("INSERT OR IGNORE INTO workers (pid, token, started) VALUES (?,?,?)",
                       (pid, process_token(pid), time.time()))
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        finished = []
        try:
            while not _WorkerState.stop:
                job = self._take(pid)
                if job is None:
                    break
                finished.append(self._run(job))
        finally:
            signal.signal(signal.SIGTERM, previous)
            with self._db() as db:
                db.execute("DELETE FROM workers WHERE pid=?", (pid,))
        return {"status": "done", "worker": pid, "jobs": finished}

    def _take(self, pid: int) -> dict[str, Any] | None:
        """Claim the oldest queued job; with none left, leave the pool in the same transaction."""
        with self._txn() as db:
            row = db.execute("SELECT * FROM jobs WHERE status='queued' ORDER BY job_id LIMIT 1").fetchone()
            if row is None:
                db.execute("DELETE FROM workers WHERE pid=?", (pid,))
                return None
            db.execute("UPDATE jobs SET status='running', started=?, worker_pid=? WHERE job_id=?",
                       (time.time(), pid, row["job_id"]))
            return dict(row)

    def _run(self, job: dict[str, Any]) -> dict[str, Any]:
        status, error = "failed", None
        try:
            _WorkerState.current, _WorkerState.raised = job["job_id"], False
            config = EXPERIMENTS.get(job["kind"]).config_cls.from_dict(json.loads(job["config"]))
            confine_config(config, allowed_roots() + [self.store.root])  # again: a symlink may have moved since
            record = execute(job["kind"], config, self.store, save_weights=bool(job["save_weights"])).record
            status, error = ("done", None) if record.status == "done" else ("failed", record.error)
        except KeyboardInterrupt:
            status, error = "interrupted", "stopped by SIGTERM or Ctrl-C"
        except PruneScopeError as exc:
            error = exc.message
        except Exception as exc:  # the run's record holds the traceback; the job keeps the one-line reason
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _WorkerState.current = None
        return self._finish(job, status, error)

    def _finish(self, job: dict[str, Any], status: str, error: str | None) -> dict[str, Any]:
        run = self.store.get(job["run_id"])
        if status == "interrupted" and run is not None and run.status == "done":
            status, error = "done", None  # the signal came after the run had finished
        with self._txn() as db:
            before = db.execute("SELECT status FROM jobs WHERE job_id=?", (job["job_id"],)).fetchone()["status"]
            if before == "cancelling":
                _WorkerState.stop = True  # a cancel's SIGTERM is on its way: take no other job
                status = "cancelled" if status == "interrupted" else status
            db.execute("UPDATE jobs SET status=?, finished=?, error=? WHERE job_id=?",
                       (status, time.time(), error, job["job_id"]))
        return {"job_id": job["job_id"], "run_id": job["run_id"], "status": status, "error": error}

    # -- watching, cancelling, cleaning up ----------------------------------------------------

    def reap(self) -> int:
        """Fail the jobs of workers that died and mark their runs interrupted. Returns how many jobs."""
        poll_children()
        with self._db() as db:
            workers = [dict(r) for r in db.execute("SELECT pid, token FROM workers")]
            busy = [r["worker_pid"] for r in db.execute("SELECT worker_pid FROM jobs WHERE status IN "
                                                        "('running', 'cancelling')")]
        live = {w["pid"] for w in workers if process_alive(w["pid"], w["token"])}
        lost = self._reap_dead() if len(live) < len(workers) or any(p not in live for p in busy) else []
        self.store.mark_stale()
        return len(lost)

    def _reap_dead(self) -> list[dict[str, Any]]:
        """Under the write lock (so a worker registering meanwhile is seen), drop dead workers and fail their jobs."""
        now, lost = time.time(), []
        with self._txn() as db:
            live = set()
            for row in db.execute("SELECT pid, token FROM workers").fetchall():
                if process_alive(row["pid"], row["token"]):
                    live.add(row["pid"])
                else:
                    db.execute("DELETE FROM workers WHERE pid=?", (row["pid"],))
            for job in db.execute("SELECT * FROM jobs WHERE status IN ('running', 'cancelling')").fetchall():
                if job["worker_pid"] in live:
                    continue
                status = "cancelled" if job["status"] == "cancelling" else "failed"
                db.execute("UPDATE jobs SET status=?, finished=?, error=? WHERE job_id=?",
                           (status, now, f"worker process {job['worker_pid']} died (killed or out of memory)",
                            job["job_id"]))
                lost.append(dict(job))
        for job in lost:
            self._interrupt_runs_of(job["worker_pid"])
        return lost

    def _interrupt_runs_of(self, pid: int) -> None:
        """Runs still marked running by a dead worker (a study and its current sub-run) become interrupted."""
        for row in self.store.list(status="running"):
            rec = self.store.get(row["run_id"])
            if rec is not None and rec.row.get("pid") == pid:
                self.store.fail(rec.run_id, f"the worker process {pid} was killed; what it logged is kept",
                                "interrupted", pid=pid)

    def cancel(self, run_id: str, grace: float = 10.0) -> str:
        """Drop a queued job, or stop a running one (SIGTERM, then SIGKILL after `grace` s). Returns its status."""
        self.reap()
        with self._txn() as db:
            job = db.execute(f"SELECT * FROM jobs WHERE run_id=? AND status IN {_ACTIVE_SQL}", (run_id,)).fetchone()
            job = job or self._owner_job(db, run_id)
            rec = self.store.get(run_id) if job is not None and job["status"] != "queued" else None
            if job is None or (rec is not None and rec.status != "running"):  # finished, its worker wrapping up
                raise StoreError(f"run {run_id} is not queued or running in the job queue"
                                 + (f" (it has finished: {rec.status})" if rec is not None else ""),
                                 fix="only launched jobs can be cancelled here; stop a terminal run with Ctrl-C")
            if job["status"] == "queued":
                db.execute("UPDATE jobs SET status='cancelled', finished=?, error=? WHERE job_id=?",
                           (time.time(), "cancelled before it started", job["job_id"]))
                return "cancelled"
            db.execute("UPDATE jobs SET status='cancelling' WHERE job_id=? AND status='running'", (job["job_id"],))
        pid = job["worker_pid"]
        signal_group(pid, signal.SIGTERM)
        if not self._wait(lambda: self.job(job["job_id"])["status"] != "cancelling", grace):
            signal_group(pid, signal.SIGKILL)
            self._wait(lambda: not process_alive(pid), 10.0)
            self.reap()
        self.ensure_workers()
        return self.job(job["job_id"])["status"]

    def _owner_job(self, db: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
        """The job whose worker runs `run_id` as part of it (a sweep member, a teacher)."""
        rec = self.store.get(run_id)
        if rec is None or rec.status != "running":
            return None
        return db.execute("SELECT * FROM jobs WHERE worker_pid=? AND status IN ('running', 'cancelling')",
                          (rec.row.get("pid"),)).fetchone()

    def _wait(self, condition: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            poll_children()
            if condition():
                return True
            time.sleep(0.1)
        return bool(condition())

    def job(self, job_id: int) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            raise StoreError(f"no job {job_id}", fix="list jobs with `python -m analysis queue`")
        return dict(row)

    def rows(self, recent: int = 10) -> list[dict[str, Any]]:
        """Active jobs (queue order) then the most recent finished ones, each with its run's progress."""
        self.reap()
        with self._db() as db:
            active = [dict(r) for r in db.execute(f"SELECT * FROM jobs WHERE status IN {_ACTIVE_SQL} ORDER BY job_id")]
            done = [dict(r) for r in db.execute(f"SELECT * FROM jobs WHERE status NOT IN {_ACTIVE_SQL} "
                                                "ORDER BY job_id DESC LIMIT ?", (recent,))]
        position = 0
        for row in active + done:
            run = self.store.get(row["run_id"])
            row.pop("config")
            row["progress"] = float(run.row["progress"] or 0) if run else 0.0
            row["message"] = (run.row["message"] or "") if run else ""
            row["run_status"] = run.status if run else None
            if row["status"] == "queued":
                position += 1
                row["position"] = position
        return active + done


# -- module-level shortcuts -----------------------------------------------------------------


def submit(kind: str, config: ConfigBase, store: RunStore | None = None, save_weights: bool = True) -> str:
    """Queue a run (served from the store when finished, deduplicated when queued). Returns its run id."""
    return JobQueue(store).submit(kind, config, save_weights).run_id


def cancel(run_id: str, store: RunStore | None = None, grace: float = 10.0) -> str:
    """Cancel a queued or running job by its run id. Returns the job's final status."""
    return JobQueue(store).cancel(run_id, grace)


def stored_config(store: RunStore, run_id: str) -> tuple[str, ConfigBase]:
    """(kind, config) of a stored run, rebuilt from its record."""
    rec = store.require(run_id)
    return rec.kind, EXPERIMENTS.get(rec.kind).config_cls.from_dict(rec.config, where=f"config of run {run_id}")


def delete_run(store: RunStore, run_id: str) -> None:
    """Delete a run's record and folder; a running run must be cancelled first."""
    rec = store.require(run_id)
    if rec.status in ("running", "queued"):
        raise StoreError(f"run {run_id} is {rec.status}", fix="cancel it first, then delete it")
    store.delete(run_id)


def rerun(store: RunStore, run_id: str) -> Submission:
    """Submit a stored run's config again after deleting its record (e.g. a failed run)."""
    kind, config = stored_config(store, run_id)
    delete_run(store, run_id)
    return JobQueue(store).submit(kind, config)
