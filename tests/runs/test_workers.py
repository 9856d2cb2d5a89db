"""The job queue and its detached workers: real worker processes running tiny runs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from analysis.core.config import FinetuneConfig
from analysis.core.errors import StoreError
from analysis.core.processes import process_alive
from analysis.runs import queue as workers
from analysis.runs.queue import JobQueue
from analysis.store.index import RunStore

pytestmark = pytest.mark.usefixtures("no_stray_workers")


def tiny_finetune(tiny_models, sentiment_files, **flat) -> FinetuneConfig:
    train, evaluation = sentiment_files
    return FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 16, **flat})


def wait_for(condition, seconds: float = 180.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def job_of(queue: JobQueue, run_id: str) -> dict:
    return next(j for j in queue.rows(recent=50) if j["run_id"] == run_id)


def running_with_history(store: RunStore, run_id: str) -> bool:
    rec = store.get(run_id)
    return rec is not None and rec.status == "running" and len(store.read_metrics(run_id)) >= 2


def test_a_worker_process_runs_a_submitted_job_and_leaves(tiny_models, sentiment_files):
    store, cfg = RunStore(), tiny_finetune(tiny_models, sentiment_files)
    queue = JobQueue(store)
    sub = queue.submit("finetune", cfg)
    assert sub.status == "queued" and sub.job_id is not None
    rec = wait_for(lambda: (r := store.get(sub.run_id)) is not None and r.status == "done" and r, what="the run")
    job = wait_for(lambda: (j := job_of(queue, sub.run_id))["status"] == "done" and j, 30, "the job")
    assert job["worker_pid"] != os.getpid() and rec.row["pid"] == job["worker_pid"]
    assert rec.metrics["accuracy"] >= 0.0 and (rec.path / "model").is_dir()
    wait_for(lambda: not process_alive(job["worker_pid"]), 30, "the worker to exit on an empty queue")
    # the same config again is served from the store: no job, no run
    again = queue.submit("finetune", cfg)
    assert again.status == "done" and again.job_id is None and again.run_id == sub.run_id


def test_identical_submissions_make_one_job(tiny_models, sentiment_files, monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "0")  # queue only: nothing starts while we count
    store = RunStore()
    configs = [tiny_finetune(tiny_models, sentiment_files)] * 4 + [
        tiny_finetune(tiny_models, sentiment_files, seed=1), tiny_finetune(tiny_models, sentiment_files, seed=2)]
    results: list = []
    threads = [threading.Thread(target=lambda c=c: results.append(JobQueue(store).submit("finetune", c)))
               for c in configs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue = JobQueue(store)
    jobs = [j for j in queue.rows() if j["status"] == "queued"]
    assert len(results) == 6 and len({r.run_id for r in results}) == 3
    assert len(jobs) == 3 and [j["position"] for j in jobs] == [1, 2, 3]
    assert sum(r.note.startswith("the same config") for r in results) == 3
    # a queued job can be cancelled without any process; it never becomes a run
    assert queue.cancel(jobs[2]["run_id"]) == "cancelled" and store.get(jobs[2]["run_id"]) is None
    # one worker takes the rest in order
    assert len(queue.ensure_workers(limit=1)) == 1 and queue.ensure_workers(limit=1) == []
    first, second = jobs[0]["run_id"], jobs[1]["run_id"]
    wait_for(lambda: all((r := store.get(x)) is not None and r.status == "done" for x in (first, second)),
             what="both runs")
    assert store.get(first).row["created"] < store.get(second).row["created"]
    assert len(store.list()) == 2


def test_cancel_stops_the_worker_keeps_the_log_and_serves_the_rest(tiny_models, sentiment_files):
    store = RunStore()
    queue = JobQueue(store)
    slow = queue.submit("finetune", tiny_finetune(tiny_models, sentiment_files, epochs=400, batch_size=4))
    quick = queue.submit("finetune", tiny_finetune(tiny_models, sentiment_files, seed=3))
    wait_for(lambda: running_with_history(store, slow.run_id), what="the slow run to log")
    pid = job_of(queue, slow.run_id)["worker_pid"]
    assert queue.cancel(slow.run_id, grace=30) == "cancelled"
    rec = store.require(slow.run_id)
    assert rec.status == "interrupted" and "JobStopped" in rec.error
    assert len(store.read_metrics(slow.run_id)) >= 2  # what it logged is kept
    wait_for(lambda: not process_alive(pid), 30, "the cancelled worker to exit")
    # the job queued behind it is served by a new worker
    wait_for(lambda: (r := store.get(quick.run_id)) is not None and r.status == "done", what="the queued run")
    with pytest.raises(StoreError, match="not queued or running"):
        queue.cancel(quick.run_id)


def test_a_killed_worker_never_leaves_its_run_running(tiny_models, sentiment_files):
    store = RunStore()
    queue = JobQueue(store)
    sub = queue.submit("finetune", tiny_finetune(tiny_models, sentiment_files, epochs=400, batch_size=4))
    wait_for(lambda: running_with_history(store, sub.run_id), what="the run to start")
    pid = job_of(queue, sub.run_id)["worker_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid), 30, "the worker to die")
    assert queue.reap() == 1
    rec = store.require(sub.run_id)
    assert rec.status == "interrupted" and "killed" in rec.error
    job = job_of(queue, sub.run_id)
    assert job["status"] == "failed" and "died" in job["error"]
    # an interrupted run can be launched again
    assert queue.submit("finetune", tiny_finetune(tiny_models, sentiment_files, epochs=400, batch_size=4)).status \
        == "queued"
    workers.cancel(sub.run_id, store, grace=30)


def test_rerun_deletes_the_failed_record_and_queues_its_config(tiny_models, sentiment_files, monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "0")
    store = RunStore()
    cfg = tiny_finetune(tiny_models, sentiment_files)
    from analysis.runs.experiment import run_id

    rid = run_id("finetune", cfg)
    store.claim(rid, "finetune", cfg.to_dict(), {"method": "vanilla"})
    store.fail(rid, "RuntimeError: out of memory")
    store.claim("b0b0b0b0b0b0b0b1", "finetune", {}, {})
    with pytest.raises(StoreError, match="cancel it first"):
        workers.delete_run(store, "b0b0b0b0b0b0b0b1")
    sub = workers.rerun(store, rid)
    assert sub.run_id == rid and sub.status == "queued" and store.get(rid) is None
    assert JobQueue(store).cancel(rid) == "cancelled"


def test_a_submitted_id_is_the_id_the_worker_stores(tiny_models, sentiment_files, monkeypatch):
    """A config holding an int in a float field is hashed as the worker will rebuild it from JSON."""
    import dataclasses

    from analysis.runs.experiment import run_id

    monkeypatch.setenv("PRUNESCOPE_WORKERS", "0")
    config = tiny_finetune(tiny_models, sentiment_files)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))  # an int
    submitted = workers.submit("finetune", config)
    import json
    import sqlite3

    with sqlite3.connect(RunStore().root / "index.sqlite") as db:
        (raw,) = db.execute("SELECT config FROM jobs WHERE run_id=?", (submitted,)).fetchone()
    assert submitted == run_id("finetune", FinetuneConfig.from_dict(json.loads(raw)))
