"""A real two-node Ray cluster on this machine (two raylets, `ray.cluster_utils.Cluster`, one CPU each): a pruning
sweep driven with `--ray-address` runs its members on both nodes and stores what the local executor stores; the
worker node is killed mid-sweep and the sweep still finishes; a driver killed mid-sweep and started again finishes
the same sweep without re-running what was done. Only the driver writes the store (every row is its claim)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.store.index import RunStore
from analysis.store.integrity import check_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
DEADLINE_S = 600


@pytest.fixture
def cluster():
    ray_utils = pytest.importorskip("ray.cluster_utils")
    cluster = ray_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster, worker
    finally:
        cluster.shutdown()


def sweep(tiny_models, sentiment_files, store: Path, executor: list[str], seeds: str) -> subprocess.Popen:
    train, evaluation = sentiment_files
    argv = [sys.executable, "-m", "analysis", "sweep", "pruning", "--model", str(tiny_models["bert"]),
            "--dataset", str(train), "--eval-file", str(evaluation), "--epochs", "20", "--batch-size", "8",
            "--methods", "magnitude,random", "--sparsities", "0.5,0.8", "--seeds", seeds, "--json", *executor]
    env = {**os.environ, "PRUNESCOPE_STORE": str(store), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def members(store: Path, status: str | None = "done") -> list:
    return [RunStore(store).require(r["run_id"]) for r in RunStore(store).list(kind="prune", status=status)]


def node_of(store: Path, run_id: str) -> str | None:
    """The Ray node a member ran on, as its record says."""
    return (RunStore(store).record(run_id).get("executor") or {}).get("node_id")


def wait_until(condition, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert proc.poll() is None, f"the driver ended before {what}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S} s"
        time.sleep(0.2)


def test_two_nodes_a_lost_node_and_a_restarted_driver(cluster, tiny_models, sentiment_files, tmp_path):
    cluster, worker = cluster
    on_ray = ["--executor", "ray", "--ray-address", cluster.address, "--ray-num-cpus", "1"]
    store, local = tmp_path / "ray", tmp_path / "local"

    # 1. sixteen members over two nodes; once the worker node has finished one, it is killed mid-sweep. Sixteen, not
    # eight: the worker node's first Ray worker may take as long to start (importing torch) as the head node takes
    # for seven members, and then the kill would land after the sweep (seen once in CI on a quiet 2-core machine)
    proc = sweep(tiny_models, sentiment_files, store, on_ray, "0,1,2,3")
    wait_until(lambda: any(node_of(store, m.run_id) == worker.node_id for m in members(store)),
               "member finished on the worker node", proc)
    assert len(members(store)) < 16  # the kill lands while members are still to run
    cluster.remove_node(worker, allow_graceful=False)
    result = finish(proc)
    assert result["status"] == "done"
    done = members(store)
    assert len(done) == 16
    nodes = {node_of(store, m.run_id) for m in done}
    assert worker.node_id in nodes and len(nodes) == 2  # both nodes ran members
    assert check_store(RunStore(store)) == []
    driver_pids = {RunStore(store).require(r["run_id"]).row["pid"] for r in RunStore(store).list()}
    assert len(driver_pids) == 1  # every row was claimed and written by the driver

    # the same sweep through the local executor: the same runs and numbers
    finish(sweep(tiny_models, sentiment_files, local, ["--executor", "local"], "0,1,2,3"))
    mine = {m.run_id: m.metrics for m in members(local)}
    assert mine.keys() == {m.run_id for m in done}
    for m in done:
        for key, value in mine[m.run_id].items():
            assert m.metrics[key] == pytest.approx(value, abs=1e-6), (m.run_id, key)

    # 2. a driver killed after its first member is done, started again on the same cluster (one node left now)
    again = tmp_path / "restart"
    proc = sweep(tiny_models, sentiment_files, again, on_ray, "2")
    wait_until(lambda: len(members(again)) >= 1, "first member", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {m.run_id: m.row["created"] for m in members(again)}
    assert 1 <= len(before) < 4
    result = finish(sweep(tiny_models, sentiment_files, again, on_ray, "2"))
    assert result["status"] == "done" and len(members(again)) == 4
    after = {m.run_id: m.row["created"] for m in members(again)}
    assert all(after[rid] == created for rid, created in before.items())  # what was done was not run again
    assert check_store(RunStore(again)) == []
