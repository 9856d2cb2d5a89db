"""Soak test on loopback (issue 8, "what it must show" 2): 8 launch requests from 8 processes released at the same
moment (4 of them the same config) while a dashboard session reads the store; a worker pool bound of 2. Exactly 5
runs execute, all finish, the store passes its integrity check, and every request maps to a finished run."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.core.config import FinetuneConfig
from analysis.core.processes import process_alive, signal_group
from analysis.runs.experiment import canonical
from analysis.runs.queue import JobQueue
from analysis.store.index import RunStore

ROOT = Path(__file__).resolve().parents[2]
REQUESTS, IDENTICAL, POOL = 8, 4, 2
DEADLINE = 240.0  # seconds for the runs to finish; measured ~40-60 s on 2 busy cores


def tiny_config(tiny_models, sentiment_files, seed: int) -> FinetuneConfig:
    train, evaluation = sentiment_files
    return FinetuneConfig.from_dict({"model": {"model": str(tiny_models["bert"])}, "seed": seed,
                                     "data": {"dataset": str(train), "eval_file": str(evaluation)},
                                     "train": {"epochs": 1, "batch_size": 16}})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """The local addresses (as /proc/net/tcp* writes them) of sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode(errors="replace")


def launch_request(index: int, config: FinetuneConfig, store_root: str, barrier, results) -> None:
    """One launch, as the Launch page makes it, in a process of its own; released with the others by the barrier."""
    barrier.wait(timeout=120)
    released = time.monotonic()
    try:
        sub = JobQueue(RunStore(store_root)).submit("finetune", config)
        results.put({"index": index, "run_id": sub.run_id, "status": sub.status, "job_id": sub.job_id,
                     "released": released, "pid": os.getpid()})
    except BaseException as exc:  # reported to the test, which fails with it
        results.put({"index": index, "error": f"{type(exc).__name__}: {exc}", "released": released})


class Dashboard(threading.Thread):
    """A dashboard session reading the store while the runs execute: Runs and Launch pages rendered in turn
    (AppTest), and the real server's health endpoint polled."""

    def __init__(self, health_url: str):
        super().__init__(daemon=True)
        self.health_url, self.stop, self.first = health_url, threading.Event(), threading.Event()
        self.renders, self.problems, self.health, self.seen = 0, [], [], set()

    def run(self) -> None:
        pages = ("runs", "launch")
        while not self.stop.is_set():
            name = pages[self.renders % 2]
            try:
                at = AppTest.from_file(str(ROOT / "dashboard" / f"{name}.py"), default_timeout=60).run()
                if at.exception:
                    self.problems.append(f"{name}: {[e.value for e in at.exception]}")
                if name == "runs" and at.dataframe:
                    self.seen |= set(at.dataframe[0].value["run_id"])
                self.health.append(get(self.health_url))
            except Exception as exc:
                self.problems.append(f"{name}: {type(exc).__name__}: {exc}")
            self.renders += 1
            self.first.set()


class PoolMonitor(threading.Thread):
    """Samples the worker table and the running jobs: how many run at once, and which worker processes there were."""

    def __init__(self, store: RunStore):
        super().__init__(daemon=True)
        self.queue, self.stop = JobQueue(store), threading.Event()
        self.max_workers = self.max_running = 0
        self.pids: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.queue._db() as db:
                pids = [r[0] for r in db.execute("SELECT pid FROM workers")]
                running = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('running', 'cancelling')").fetchone()
            live = [p for p in pids if process_alive(p)]
            self.pids |= set(live)
            self.max_workers, self.max_running = max(self.max_workers, len(live)), max(self.max_running, running[0])
            time.sleep(0.05)


@pytest.fixture
def server(private_store):
    """`python -m analysis app` on a free port (the default address: loopback), against the test's store."""
    port = free_port()
    log = open(private_store.parent / "streamlit.log", "wb")
    env = {**os.environ, "PRUNESCOPE_STORE": str(private_store), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "analysis", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if get(f"{url}/_stcore/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"the dashboard did not start: {(private_store.parent / 'streamlit.log').read_text()[-2000:]}")
    yield port, url, proc
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
    log.close()


pytestmark = pytest.mark.usefixtures("no_stray_workers")


def test_soak_eight_concurrent_launches_and_a_dashboard(tiny_models, sentiment_files, private_store, server,
                                                       monkeypatch):
    started = time.monotonic()
    monkeypatch.setenv("PRUNESCOPE_WORKERS", str(POOL))
    port, url, server_proc = server
    assert listening_addresses(port) == {"0100007F"}, "the dashboard must listen on 127.0.0.1 only"
    store = RunStore(private_store)
    configs = [tiny_config(tiny_models, sentiment_files, 0)] * IDENTICAL + [
        tiny_config(tiny_models, sentiment_files, seed) for seed in range(1, REQUESTS - IDENTICAL + 1)]

    # fork the 8 requesters first (no thread of ours runs yet), then start the dashboard and release them together
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(REQUESTS + 1), ctx.Queue()
    procs = [ctx.Process(target=launch_request, args=(i, c, str(private_store), barrier, results))
             for i, c in enumerate(configs)]
    for proc in procs:
        proc.start()
    dashboard, monitor = Dashboard(f"{url}/_stcore/health"), PoolMonitor(store)
    dashboard.start()
    monitor.start()
    assert dashboard.first.wait(120), "the dashboard session never rendered"
    barrier.wait(timeout=120)
    answers = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert [p.exitcode for p in procs] == [0] * REQUESTS
    assert not [a for a in answers if "error" in a], answers
    released = [a["released"] for a in answers]

    by_index = {a["index"]: a for a in answers}
    expected = {i: configs[i] for i in range(REQUESTS)}
    ids = {i: by_index[i]["run_id"] for i in expected}
    assert len({ids[i] for i in range(IDENTICAL)}) == 1, "identical configs must map to one run id"
    assert len(set(ids.values())) == REQUESTS - IDENTICAL + 1 == 5

    # every run finishes
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        rows = store.list()
        jobs = JobQueue(store).rows(recent=50)
        if len(rows) == 5 and all(r["status"] == "done" for r in rows) and all(j["status"] == "done" for j in jobs):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"runs did not finish: {[(r['run_id'], r['status']) for r in store.list()]}")
    finished = time.monotonic()
    renders_during_runs = dashboard.renders
    while any(process_alive(p) for p in monitor.pids) and time.monotonic() < deadline:
        time.sleep(0.2)  # the workers leave once the queue is empty
    dashboard.stop.set()
    monitor.stop.set()
    dashboard.join(120)
    monitor.join(10)

    # exactly 5 runs executed, once each, by the bounded pool
    rows = store.list()
    jobs = JobQueue(store).rows(recent=50)
    assert sorted(r["run_id"] for r in rows) == sorted(set(ids.values()))
    assert len(jobs) == 5 and sorted(j["run_id"] for j in jobs) == sorted(set(ids.values()))
    assert {j["status"] for j in jobs} == {"done"}
    for row in rows:
        rec = store.require(row["run_id"])
        job = next(j for j in jobs if j["run_id"] == row["run_id"])
        assert rec.row["pid"] == job["worker_pid"] and rec.metrics.get("accuracy") is not None
        assert store.record(row["run_id"])["started"] == pytest.approx(rec.row["created"])  # claimed once
    assert monitor.max_running <= POOL and monitor.max_workers <= POOL and 1 <= len(monitor.pids) <= 5
    assert not any(process_alive(p) for p in monitor.pids)

    # nothing lost: every request maps to a finished run, the store is consistent, the dashboard never failed
    for i in expected:
        assert store.require(ids[i]).status == "done"
        # the config as submitted, in its canonical form (precision resolved on this machine, options normalised)
        assert store.require(ids[i]).config == json.loads(json.dumps(canonical("finetune", configs[i]).to_dict()))
    assert store.check() == []
    assert not dashboard.problems, dashboard.problems
    assert dashboard.renders >= 2 and dashboard.health and all(h == (200, "ok") for h in dashboard.health)
    assert dashboard.seen <= set(ids.values())
    assert server_proc.poll() is None and get(f"{url}/_stcore/health") == (200, "ok")
    cli = subprocess.run([sys.executable, "-m", "analysis", "check-store", "--json"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PRUNESCOPE_STORE": str(private_store)}, timeout=120)
    assert cli.returncode == 0 and json.loads(cli.stdout.splitlines()[-1])["problems"] == []
    print(f"\nsoak: {len(procs)} requests released within {1000 * (max(released) - min(released)):.0f} ms; "
          f"5 runs by {len(monitor.pids)} workers (at most {monitor.max_workers} at once) done "
          f"{finished - min(released):.1f} s after release; {renders_during_runs} dashboard renders meanwhile; "
          f"total {time.monotonic() - started:.1f} s")
