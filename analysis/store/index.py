"""The run store: one folder per run (the record, metrics, predictions, artefacts) and an SQLite index.

The folder is the truth; `index.sqlite` (WAL) is an index over it for fast listing and atomic claims.
Every file is written to a temporary name and renamed, so a kill mid-write leaves the old file or the
new one, never half of one. Arrays are stored as safetensors or .npy, never pickled.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from analysis.core import settings
from analysis.core.config import recorded_precision
from analysis.core.errors import StoreError
from analysis.core.paths import check_run_id, child
from analysis.store.liveness import STALE_SECONDS, _death_note, _is_dead, _own_start, this_host  # noqa: F401

STATUSES = ("queued", "running", "done", "failed", "interrupted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
    method TEXT, dataset TEXT, model TEXT, seed INTEGER, label TEXT,
    created REAL, updated REAL, heartbeat REAL, pid INTEGER,
    progress REAL DEFAULT 0, message TEXT DEFAULT '', duration REAL,
    metrics TEXT DEFAULT '{}', summary TEXT DEFAULT '{}', config TEXT NOT NULL, error TEXT,
    host TEXT, pid_start TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind);
"""
LIST_COLUMNS = ("run_id", "kind", "status", "method", "dataset", "model", "seed", "label", "created",
                "updated", "heartbeat", "progress", "message", "duration", "metrics", "summary", "error")


ADDED_COLUMNS = {"host": "TEXT", "pid_start": "TEXT"}  # columns newer than some stores: added when missing


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # created like open() creates files (0666 less the umask; mkstemp would make them 0600), and never over another
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextmanager
def _rollback_on_error(db: sqlite3.Connection, created: Path | None = None) -> Iterator[None]:
    """Inside a BEGIN IMMEDIATE: COMMIT when the block ends, ROLLBACK (and remove `created` if this block made it)
    when it raises, so an index change and the file write it goes with happen together or not at all."""
    new_folder = created is not None and not created.exists()
    try:
        if created is not None:
            created.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        db.execute("ROLLBACK")
        if new_folder:
            shutil.rmtree(created, ignore_errors=True)  # type: ignore[arg-type]
        raise
    db.execute("COMMIT")


@dataclass
class RunRecord:
    """A run as stored: its index row plus the record.json written at the end."""

    run_id: str
    kind: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    summary: dict[str, Any]
    error: str | None
    path: Path
    row: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "status": self.status, "metrics": self.metrics,
                "summary": self.summary, "error": self.error, "config": self.config, "path": str(self.path)}


@contextmanager
def connect(root: Path) -> Iterator[sqlite3.Connection]:
    """The one way to open a store's SQLite index (runs and jobs tables): autocommit, WAL, rows by name, and a
    60 s wait for another process's write."""
    db = sqlite3.connect(Path(root) / "index.sqlite", timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        yield db
    finally:
        db.close()


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else settings.store_root()
        self.root.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
            have = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            for name, kind in ADDED_COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")

    # -- the index --------------------------------------------------------------------------

    def _db(self) -> Iterator[sqlite3.Connection]:
        return connect(self.root)

    def run_dir(self, run_id: str) -> Path:
        """The run's folder; the id is checked (16 hex digits) before any path is built from it."""
        return self.root / check_run_id(run_id)

    def artefact_path(self, run_id: str, name: str, suffix: str) -> Path:
        """artefacts/NAME.SUFFIX of a run, for a plain artefact name (no '/', no '..')."""
        return child(self.run_dir(run_id) / "artefacts", f"{name}{suffix}", what="artefact name")

    def check(self) -> list[str]:
        """Integrity problems of this store (index vs folders, liveness, temp files, jobs); empty when healthy."""
        from analysis.store.integrity import check_store  # noqa: PLC0415  (integrity imports this module)

        return check_store(self)

    def claim(self, run_id: str, kind: str, config: Mapping[str, Any], fields: Mapping[str, Any],
              redo: bool = False, keep_log: bool = False) -> bool:
        """Atomically mark a run as running by this process. False if it is done (unless `redo`) or alive elsewhere.

        `keep_log`: a run resuming from a checkpoint keeps the metrics it logged so far."""
        now = time.time()
        run_dir = self.run_dir(run_id)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status, heartbeat, pid, host, pid_start FROM runs WHERE run_id=?",
                             (run_id,)).fetchone()
            if row is not None and ((row["status"] == "done" and not redo) or (
                    row["status"] in ("running", "queued") and not _is_dead(row, now))):
                db.execute("COMMIT")
                return False
            db.execute(
                "INSERT OR REPLACE INTO runs (run_id, kind, status, method, dataset, model, seed, label, created,"
                " updated, heartbeat, pid, progress, message, config, error, host, pid_start)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,'starting',?,NULL,?,?)",
                (run_id, kind, "running", fields.get("method"), fields.get("dataset"), fields.get("model"),
                 fields.get("seed"), fields.get("label"), now, now, now, os.getpid(), json.dumps(config),
                 this_host(), _own_start()),
            )
            with _rollback_on_error(db, run_dir):  # the row and its record.json change together or not at all
                write_json(run_dir / "record.json", {"run_id": run_id, "kind": kind, "status": "running",
                                                      "config": config, "started": now})
        if not keep_log:
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # a re-run after a failure starts clean
        return True

    def insert_done(self, run_id: str, kind: str, record: Mapping[str, Any], row: Mapping[str, Any]) -> None:
        """Index a finished run whose folder was written from elsewhere (an import)."""
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_id, kind, status, method, dataset, model, seed, label, created,"
                " updated, heartbeat, progress, message, duration, metrics, summary, config)"
                " VALUES (?,?,'done',?,?,?,?,?,?,?,?,1,'imported',?,?,?,?)",
                (run_id, kind, row.get("method"), row.get("dataset"), row.get("model"), row.get("seed"),
                 row.get("label"), row.get("created") or time.time(), time.time(), time.time(), row.get("duration"),
                 json.dumps(record.get("metrics", {})), json.dumps(record.get("summary", {}), default=_json_default),
                 json.dumps(record.get("config", {}))),
            )

    def heartbeat(self, run_id: str, progress: float, message: str) -> None:
        now = time.time()
        with self._db() as db:
            db.execute("UPDATE runs SET heartbeat=?, updated=?, progress=?, message=? WHERE run_id=?",
                       (now, now, progress, message[:500], run_id))

    def beat(self, run_id: str) -> None:
        """Only the liveness timestamp (progress and message are left as they are)."""
        with self._db() as db:
            db.execute("UPDATE runs SET heartbeat=? WHERE run_id=? AND status='running'", (time.time(), run_id))

    def finish(self, run_id: str, metrics: Mapping[str, Any], summary: Mapping[str, Any],
               record: Mapping[str, Any]) -> None:
        """Write the final record (atomically) and flip the index row to done, together or not at all."""
        path = self.run_dir(run_id) / "record.json"
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is None:
                db.execute("ROLLBACK")
                raise self._missing(run_id)  # deleted while it ran: no orphan folder
            old = self._read_record(run_id)
            now = time.time()
            duration = now - old.get("started", now)
            with _rollback_on_error(db):
                write_json(path, {**old, **record, "status": "done", "metrics": dict(metrics),
                                  "summary": dict(summary), "finished": now, "duration": duration, "error": None})
                db.execute("UPDATE runs SET status='done', updated=?, progress=1, message='done', duration=?,"
                           " metrics=?, summary=?, error=NULL WHERE run_id=?",
                           (now, duration, json.dumps(dict(metrics), default=_json_default),
                            json.dumps(dict(summary), default=_json_default), run_id))

    def fail(self, run_id: str, error: str, status: str = "failed", pid: int | None = None) -> bool:
        """Mark this process's run failed (or interrupted) with its error; whatever it wrote so far stays.

        Only a running row owned by `pid` (default: this process) changes, so a run re-claimed by
        another process is never clobbered. Returns whether the row changed."""
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            with _rollback_on_error(db):  # the row and its record.json change together or not at all
                changed = db.execute("UPDATE runs SET status=?, error=?, updated=?, message=? WHERE run_id=? AND "
                                     "status='running' AND pid=?",
                                     (status, error, now, status, run_id, pid or os.getpid())).rowcount
                if changed:
                    old = self._read_record(run_id)
                    write_json(self.run_dir(run_id) / "record.json",
                               {**old, "status": status, "error": error, "finished": now})
        return bool(changed)

    def wait_while_active(self, run_id: str, seconds: float | None = None, poll: float = 2.0) -> RunRecord | None:
        """The one wait for a run another process is running: poll its record (marking dead runs as it goes) until
        it is no longer queued or running, or `seconds` have passed; returns the record then (None if deleted)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        record = self.get(run_id)
        while record is not None and record.status in ("running", "queued") and (
                deadline is None or time.monotonic() < deadline):
            time.sleep(poll)
            self.mark_stale()
            record = self.get(run_id)
        return record

    def mark_stale(self) -> int:
        """Runs marked running whose process is gone (this machine) or whose heartbeat stopped (another machine)
        are marked interrupted. Returns how many."""
        now = time.time()
        with self._db() as db:
            rows = db.execute("SELECT run_id, pid, heartbeat, host, pid_start FROM runs WHERE status='running'").fetchall()
        return sum(self.fail(row["run_id"], _death_note(row), "interrupted", pid=row["pid"])
                   for row in rows if _is_dead(row, now))

    # -- reading ----------------------------------------------------------------------------

    def _read_record(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / "record.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def get(self, run_id: str) -> RunRecord | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            return None
        row = dict(row)
        return RunRecord(run_id, row["kind"], row["status"], json.loads(row["config"]),
                         json.loads(row["metrics"] or "{}"), json.loads(row["summary"] or "{}"), row["error"],
                         self.run_dir(run_id), row)

    def require(self, run_id: str) -> RunRecord:
        rec = self.get(run_id)
        if rec is None:
            raise self._missing(run_id)
        return rec

    def _missing(self, run_id: str) -> StoreError:
        return StoreError(f"no run {run_id!r} in the store at {self.root}",
                          fix="list the runs with `python -m analysis runs` (it may have been deleted)")

    def _folder(self, run_id: str) -> Path:
        """The folder of a run that exists: a late write for a deleted run is refused, never an orphan folder."""
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            raise self._missing(run_id)
        return folder

    def record(self, run_id: str) -> dict[str, Any]:
        """The full record.json of a run (config, metrics, versions, machine, timings)."""
        self.require(run_id)
        return self._read_record(run_id)

    def list(self, kind: str | None = None, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Index rows, newest first, with JSON columns decoded."""
        query = f"SELECT {', '.join(LIST_COLUMNS)}, config FROM runs"
        clauses, args = [], []
        for column, value in (("kind", kind), ("status", status)):
            if value:
                clauses.append(f"{column}=?")
                args.append(value)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY created DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self._db() as db:
            rows = [dict(r) for r in db.execute(query, args).fetchall()]
        for row in rows:
            row["metrics"] = json.loads(row["metrics"] or "{}")
            row["summary"] = json.loads(row["summary"] or "{}")
            config = row.pop("config")
            row["precision"] = row["summary"].get("precision") or recorded_precision(json.loads(config or "{}"))
        return rows

    def delete(self, run_id: str) -> None:
        import shutil

        self.require(run_id)
        with self._db() as db:
            db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # -- per-run files ----------------------------------------------------------------------

    def append_metrics(self, run_id: str, record: Mapping[str, Any]) -> None:
        try:
            with open(self._folder(run_id) / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(dict(record), default=_json_default) + "\n")
        except FileNotFoundError:  # deleted between the check and the open
            raise self._missing(run_id) from None

    def read_metrics(self, run_id: str) -> list[dict[str, Any]]:
        path = self.run_dir(run_id) / "metrics.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line torn by a kill is the last one; everything before it is whole
        return out

    def save_arrays(self, run_id: str, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Save named arrays as one safetensors file under artefacts/."""
        from safetensors.numpy import save

        self._folder(run_id)
        path = self.artefact_path(run_id, name, ".safetensors")
        write_atomic(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
        return path

    def load_arrays(self, run_id: str, name: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load

        path = self.artefact_path(run_id, name, ".safetensors")
        if not path.is_file():
            raise StoreError(f"run {run_id} has no artefact {name!r}", fix="re-run it, or pick another run")
        return load(path.read_bytes())

    def save_artifact_json(self, run_id: str, name: str, obj: Any) -> None:
        self._folder(run_id)
        write_json(self.artefact_path(run_id, name, ".json"), obj)

    def load_artifact_json(self, run_id: str, name: str) -> Any:
        path = self.artefact_path(run_id, name, ".json")
        if not path.is_file():
            raise StoreError(f"run {run_id} has no artefact {name!r}", fix="re-run it, or pick another run")
        return json.loads(path.read_text())

    def artefacts(self, run_id: str) -> list[str]:
        folder = self.run_dir(run_id) / "artefacts"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
