"""The store's integrity check finds each kind of damage (and nothing in a healthy store)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from analysis.runs.queue import JobQueue
from analysis.store.index import RunStore

ROOT = Path(__file__).resolve().parents[2]
A, B = "0123456789abcdef", "fedcba9876543210"
DEAD_PID = 2 ** 22 + 7  # above any pid_max default: no such process


def finished(store: RunStore, run_id: str) -> None:
    store.claim(run_id, "finetune", {"seed": 0}, {"method": "vanilla"})
    store.finish(run_id, {"accuracy": 0.5}, {}, {})


def problems_about(store: RunStore, text: str) -> list[str]:
    return [p for p in store.check() if text in p]


def test_a_healthy_store_has_no_problems(tmp_path):
    store = RunStore(tmp_path / "s")
    assert store.check() == []
    finished(store, A)
    store.claim(B, "finetune", {}, {})  # running, by this live process
    assert store.check() == []


def test_index_rows_and_folders_must_agree(tmp_path):
    store = RunStore(tmp_path / "s")
    finished(store, A)
    finished(store, B)
    (store.run_dir(A) / "record.json").unlink()
    (store.run_dir(B) / "record.json").write_text('{"run_id": "fedcba98765')  # torn
    orphan = store.root / "00000000000000aa"
    orphan.mkdir()
    found = store.check()
    assert len(found) == 3
    assert any(A in p and "no " in p and "record.json" in p for p in found)
    assert any(B in p and "unreadable" in p for p in found)
    assert any(str(orphan) in p and "no row in the index" in p for p in found)


def test_a_record_that_disagrees_with_its_row_is_reported(tmp_path):
    store = RunStore(tmp_path / "s")
    finished(store, A)
    record = json.loads((store.run_dir(A) / "record.json").read_text())
    (store.run_dir(A) / "record.json").write_text(json.dumps({**record, "status": "running"}))
    assert problems_about(store, "is done in the index but 'running' in record.json")


def test_a_run_left_running_by_a_dead_process_is_reported(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(A, "finetune", {}, {})
    with store._db() as db:
        db.execute("UPDATE runs SET pid=?, heartbeat=? WHERE run_id=?", (DEAD_PID, time.time() - 3600, A))
    assert problems_about(store, f"run {A} is marked running but its process {DEAD_PID} is gone")
    store.mark_stale()  # what the dashboard and the queue do: the run becomes interrupted, and the store is fine
    assert store.require(A).status == "interrupted" and store.check() == []


def test_leftover_temp_files_are_reported(tmp_path):
    store = RunStore(tmp_path / "s")
    finished(store, A)
    temp = store.run_dir(A) / "artefacts" / ".sparsity.json.abc123.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_text("{")
    assert store.check() == [f"leftover temp file {temp}"]


def test_jobs_must_agree_with_runs_and_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "0")
    store = RunStore(tmp_path / "s")
    queue = JobQueue(store)  # creates the job tables
    finished(store, A)
    store.claim(B, "finetune", {}, {})
    store.fail(B, "RuntimeError: boom")
    now = time.time()
    with queue._db() as db:
        db.execute("INSERT INTO jobs (run_id, kind, config, status, submitted, worker_pid) VALUES "
                   "(?, 'finetune', '{}', 'running', ?, ?)", (A, now, DEAD_PID))
        db.execute("INSERT INTO jobs (run_id, kind, config, status, submitted) VALUES (?, 'finetune', '{}', 'done', ?)",
                   (B, now))
        db.execute("INSERT INTO workers (pid, token, started) VALUES (?, NULL, ?)", (DEAD_PID, now))
    found = store.check()
    assert any(f"worker {DEAD_PID} is in the pool but its process is gone" in p for p in found)
    assert any(f"(run {A}) is running but its worker {DEAD_PID} is not a live worker" in p for p in found)
    assert any(f"is done but its run {B} is failed" in p for p in found)
    assert len(found) == 3


def test_check_store_command_exits_non_zero_on_problems(tmp_path):
    store = RunStore(tmp_path / "s")
    finished(store, A)
    env = {"PRUNESCOPE_STORE": str(store.root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    run = lambda: subprocess.run([sys.executable, "-m", "analysis", "check-store", "--json"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)  # noqa: E731
    healthy = run()
    assert healthy.returncode == 0 and json.loads(healthy.stdout.splitlines()[-1])["problems"] == []
    (store.run_dir(A) / "record.json").unlink()
    broken = run()
    result = json.loads(broken.stdout.splitlines()[-1])
    assert broken.returncode == 1 and result["status"] == "failed" and len(result["problems"]) == 1
