import json
import time

import numpy as np
import pytest

from analysis.core.config import FinetuneConfig
from analysis.core.errors import StoreError
from analysis.runs import experiment as jobs
from analysis.runs.finetune import Finetune
from analysis.store.index import RunStore, write_atomic

R1 = "0123456789abcdef"  # run ids are 16 lowercase hex digits
DEAD_PID = 4_194_304 + 4_321  # above Linux's pid_max: never a live process


def test_round_trip(tmp_path):
    store = RunStore(tmp_path / "s")
    assert store.claim(R1, "finetune", {"a": 1}, {"method": "vanilla", "dataset": "x", "seed": 0})
    store.append_metrics(R1, {"step": 1, "loss": 0.5})
    store.save_arrays(R1, "masks", {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    store.finish(R1, {"accuracy": 0.9}, {"steps": 1}, {"versions": {"torch": "x"}})
    rec = store.require(R1)
    assert rec.status == "done" and rec.metrics == {"accuracy": 0.9} and rec.config == {"a": 1}
    assert store.read_metrics(R1) == [{"step": 1, "loss": 0.5}]
    assert np.array_equal(store.load_arrays(R1, "masks")["w"], np.arange(6).reshape(2, 3))
    assert store.record(R1)["versions"] == {"torch": "x"}
    assert [r["run_id"] for r in store.list()] == [R1]
    # a second claim of a finished run is refused: it is served, not re-run
    assert not store.claim(R1, "finetune", {"a": 1}, {})
    store.delete(R1)
    assert store.get(R1) is None and not (store.root / R1).exists()


def test_torn_metrics_line_is_ignored(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(R1, "finetune", {}, {})
    store.append_metrics(R1, {"step": 1})
    with open(store.run_dir(R1) / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 2, "lo')
    assert store.read_metrics(R1) == [{"step": 1}]


def test_stale_running_run_is_marked_interrupted(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(R1, "finetune", {}, {})
    with store._db() as db:
        db.execute("UPDATE runs SET heartbeat=? WHERE run_id=?", (time.time() - 3600, R1))
    assert store.mark_stale() == 1
    rec = store.require(R1)
    assert rec.status == "interrupted" and "heartbeat" in rec.error
    # an interrupted run may be claimed again
    assert store.claim(R1, "finetune", {}, {})


def test_a_run_whose_process_is_gone_on_this_machine_is_interrupted_at_once(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(R1, "finetune", {}, {})
    with store._db() as db:  # as a killed worker leaves it: a fresh heartbeat, a process that no longer exists
        db.execute("UPDATE runs SET pid=?, pid_start=NULL WHERE run_id=?", (DEAD_PID, R1))
    assert store.mark_stale() == 1
    rec = store.require(R1)
    assert rec.status == "interrupted" and "on this machine is gone" in rec.error


def test_a_run_of_another_machine_waits_for_its_heartbeat(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(R1, "finetune", {}, {})
    with store._db() as db:  # its pid means nothing here: only the heartbeat tells
        db.execute("UPDATE runs SET pid=?, host='elsewhere/0' WHERE run_id=?", (DEAD_PID, R1))
    assert store.mark_stale() == 0 and store.require(R1).status == "running"
    assert not store.claim(R1, "finetune", {}, {})  # alive elsewhere: not taken over
    with store._db() as db:
        db.execute("UPDATE runs SET heartbeat=? WHERE run_id=?", (time.time() - 3600, R1))
    assert store.mark_stale() == 1
    assert "heartbeat" in store.require(R1).error


def test_a_reused_process_id_is_not_taken_for_the_run(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(R1, "finetune", {}, {})
    with store._db() as db:  # pid 1 is alive, but it started at another time than the run's process
        db.execute("UPDATE runs SET pid=1, pid_start='0' WHERE run_id=?", (R1,))
    assert store.mark_stale() == 1


def test_write_atomic_leaves_no_temp_files(tmp_path):
    target = tmp_path / "f.json"
    write_atomic(target, b"{}")
    write_atomic(target, json.dumps({"a": 1}).encode())
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_bad_run_ids_are_refused(tmp_path):
    store = RunStore(tmp_path / "s")
    for bad in ("../etc", "a/b", "", "r1", "0123456789ABCDEF", "0123456789abcdef/"):
        with pytest.raises(StoreError):
            store.run_dir(bad)
    with pytest.raises(StoreError, match="no run"):
        store.require("nope")


def _config(tiny_models, files, **train):
    train_file, eval_file = files
    return FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train_file),
                                         "eval_file": str(eval_file), "epochs": 1, "batch_size": 8, **train})


def test_execute_twice_serves_the_stored_run(tiny_models, sentiment_files):
    cfg = _config(tiny_models, sentiment_files)
    first = jobs.execute("finetune", cfg, save_weights=False)
    second = jobs.execute("finetune", cfg, save_weights=False)
    assert not first.cached and second.cached
    assert first.record.run_id == second.record.run_id
    assert second.record.metrics == first.record.metrics
    record = RunStore().record(first.record.run_id)
    assert record["versions"]["torch"] and record["machine"]["cores"] and record["inputs"]["data"]


def test_a_crashed_run_is_marked_failed_and_keeps_its_logs(tiny_models, sentiment_files, monkeypatch):
    cfg = _config(tiny_models, sentiment_files)
    real_run = Finetune.run

    def crash(self, prepared, ctx):
        ctx.log({"step": 1, "loss": 1.0})
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(Finetune, "run", crash)
    with pytest.raises(RuntimeError):
        jobs.execute("finetune", cfg, save_weights=False)
    store = RunStore()
    (row,) = store.list()
    assert row["status"] == "failed" and "simulated crash" in row["error"]
    (logged,) = store.read_metrics(row["run_id"])
    assert logged["step"] == 1 and logged["loss"] == 1.0
    # the next attempt re-runs it (and succeeds)
    monkeypatch.setattr(Finetune, "run", real_run)
    outcome = jobs.execute("finetune", cfg, save_weights=False)
    assert not outcome.cached and outcome.record.status == "done"


def test_an_experiment_looks_up_teachers_in_the_store_it_was_given(tiny_models, sentiment_files, tmp_path):
    from analysis.core.config import FinetuneConfig
    from analysis.methods.pruning import PruneConfig
    from analysis.runs import experiment as jobs

    other = RunStore(tmp_path / "elsewhere")  # not $PRUNESCOPE_STORE
    flat = {"model": str(tiny_models["bert"]), "dataset": str(sentiment_files[0]),
            "eval_file": str(sentiment_files[1]), "epochs": 1, "batch_size": 16}
    teacher = jobs.execute("finetune", FinetuneConfig.from_flat({}, flat), store=other).record
    prune = PruneConfig.from_flat({}, {**flat, "method": "sparsebert", "sparsity": 0.5, "teacher": teacher.run_id})
    record = jobs.execute("prune", prune, store=other).record
    assert record.status == "done" and record.summary["teacher"] == teacher.run_id
    assert RunStore().list() == []  # nothing went to the default store
