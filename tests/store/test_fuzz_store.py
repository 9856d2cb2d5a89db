"""Stateful fuzzing of the run store: random operations against a plain model of what the store should hold.

After every step the store agrees with the model (statuses, metrics, logs, artefacts, listings) and an
integrity walk passes: every index row has a folder with a readable record.json that agrees with it, every
run folder has a row, and no temp file is left. Writes can crash between the temp-file write and the rename
(an exception injected into os.replace); a crashed operation leaves the store as it was before it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from analysis.core.errors import PruneScopeError, StoreError
from analysis.store.bundles import export_runs, import_runs
from analysis.store.index import RunStore
from tests.fuzz_common import fuzz_settings

RUN_IDS = ("00000000000000a1", "00000000000000b2", "00000000000000c3", "00000000000000d4")
DEAD_PID = 4_194_304 + 4_321  # above Linux's pid_max: never a live process
STATUSES = ("running", "done", "failed", "interrupted")
METRICS = st.dictionaries(st.sampled_from(["accuracy", "loss", "pearson"]),
                          st.floats(-10, 10, allow_nan=False), max_size=2)


class SimulatedCrash(BaseException):
    """A crash between a temp file's write and its rename (BaseException: nothing may swallow it)."""


@contextlib.contextmanager
def crash_at_rename(nth: int) -> Iterator[list[int]]:
    """Make the nth os.replace in this block raise SimulatedCrash; yields [renames attempted]."""
    real, calls = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            raise SimulatedCrash(f"crash before renaming {src} to {dst}")
        return real(src, dst, *args, **kwargs)

    os.replace = replace
    try:
        yield calls
    finally:
        os.replace = real


@dataclass
class Run:
    """What the model knows of a run."""

    status: str
    kind: str = "finetune"
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, list[float]] = field(default_factory=dict)
    ours: bool = True  # False: its worker was killed (dead pid, old heartbeat)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-store-"))
        self.store = RunStore(self.tmp / "runs")
        self.model: dict[str, Run] = {}
        self.exported: dict[str, Run] = {}  # what the bundle folders hold, first export of each run first
        self.exports = 0

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------------

    def attempt(self, fn, crash: int | None) -> tuple[Any, BaseException | None]:
        """Run fn, with a crash at the `crash`th rename when given; returns (result, exception)."""
        with crash_at_rename(crash or 0) as calls:
            try:
                return fn(), None
            except SimulatedCrash as exc:
                event("simulated crash mid-write")
                return None, exc
            except PruneScopeError as exc:
                event(f"clear error: {type(exc).__name__}")
                return None, exc
            finally:
                self.renames = calls[0]

    # -- rules ----------------------------------------------------------------------------------

    @initialize(metrics=METRICS, values=st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=4))
    def a_finished_run(self, metrics, values):
        """Every sequence starts with one finished run (log, arrays, metrics), so export and import paths run."""
        rid = RUN_IDS[0]
        assert self.store.claim(rid, "finetune", {"seed": 0}, {"method": "vanilla"})
        self.store.append_metrics(rid, {"step": 1, "loss": 0.5})
        self.store.save_arrays(rid, "predictions", {"w": np.asarray(values, np.float32)})
        self.store.finish(rid, metrics, {"steps": 1}, {"versions": {}})
        self.model[rid] = Run("done", metrics=dict(metrics), log=[{"step": 1, "loss": 0.5}],
                              arrays={"predictions": list(values)})

    @rule(rid=st.sampled_from(RUN_IDS), metrics=METRICS)
    def run_to_the_end(self, rid, metrics):
        """A claim followed by a finish, as a whole run does (when the run can be claimed)."""
        if self.store.claim(rid, "finetune", {"seed": 0}, {"method": "vanilla"}):
            old = self.model.get(rid)
            self.store.finish(rid, metrics, {"steps": 1}, {"versions": {}})
            self.model[rid] = Run("done", metrics=dict(metrics), arrays=old.arrays if old else {})

    @rule(rid=st.sampled_from(RUN_IDS), redo=st.booleans(), keep_log=st.booleans(),
          crash=st.sampled_from([None, None, None, 1]))
    def claim(self, rid, redo, keep_log, crash):
        old = self.model.get(rid)
        claimable = old is None or not ((old.status == "done" and not redo) or (old.status == "running" and old.ours))
        result, exc = self.attempt(lambda: self.store.claim(rid, "finetune", {"seed": 0}, {"method": "vanilla"},
                                                            redo=redo, keep_log=keep_log), crash)
        if exc is not None:
            assert isinstance(exc, SimulatedCrash) and claimable
            return  # the claim rolled back: the model is unchanged
        assert result == claimable
        if claimable:
            log = old.log if (old is not None and keep_log) else []
            self.model[rid] = Run("running", log=log, arrays=old.arrays if old else {})

    @rule(rid=st.sampled_from(RUN_IDS), progress=st.floats(0, 1), message=st.text(max_size=20))
    def heartbeat(self, rid, progress, message):
        self.store.heartbeat(rid, progress, message)  # never changes a status

    @rule(rid=st.sampled_from(RUN_IDS), step=st.integers(0, 100), loss=st.floats(0, 5))
    def append_metrics(self, rid, step, loss):
        _, exc = self.attempt(lambda: self.store.append_metrics(rid, {"step": step, "loss": loss}), None)
        if rid not in self.model:
            assert isinstance(exc, StoreError)
        else:
            assert exc is None
            self.model[rid].log.append({"step": step, "loss": loss})

    @rule(rid=st.sampled_from(RUN_IDS), metrics=METRICS, crash=st.sampled_from([None, None, 1]))
    def finish(self, rid, metrics, crash):
        _, exc = self.attempt(lambda: self.store.finish(rid, metrics, {"steps": 1}, {"versions": {}}), crash)
        if rid not in self.model:
            assert isinstance(exc, StoreError)
        elif exc is None:
            self.model[rid].status, self.model[rid].metrics = "done", dict(metrics)
        else:
            assert isinstance(exc, SimulatedCrash)

    @rule(rid=st.sampled_from(RUN_IDS), status=st.sampled_from(["failed", "interrupted"]),
          crash=st.sampled_from([None, None, 1]))
    def fail(self, rid, status, crash):
        run = self.model.get(rid)
        expected = run is not None and run.status == "running" and run.ours
        changed, exc = self.attempt(lambda: self.store.fail(rid, "boom", status), crash)
        if exc is not None:
            assert isinstance(exc, SimulatedCrash) and expected
            return
        assert changed == expected
        if expected:
            run.status = status

    @rule(rid=st.sampled_from(RUN_IDS))
    def worker_dies(self, rid):
        """Another process's worker was killed: the row is running under a dead pid with an old heartbeat."""
        run = self.model.get(rid)
        if run is None or run.status != "running":
            return
        with self.store._db() as db:
            db.execute("UPDATE runs SET pid=?, heartbeat=? WHERE run_id=?", (DEAD_PID, time.time() - 3600, rid))
        run.ours = False

    @rule()
    def mark_stale(self):
        dead = [rid for rid, r in self.model.items() if r.status == "running" and not r.ours]
        assert self.store.mark_stale() == len(dead)
        for rid in dead:
            self.model[rid].status = "interrupted"

    @rule(rid=st.sampled_from(RUN_IDS))
    def delete(self, rid):
        _, exc = self.attempt(lambda: self.store.delete(rid), None)
        if rid in self.model:
            assert exc is None
            del self.model[rid]
        else:
            assert isinstance(exc, StoreError)

    @rule(rid=st.sampled_from(RUN_IDS), values=st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=4),
          crash=st.sampled_from([None, None, 1]))
    def save_arrays(self, rid, values, crash):
        _, exc = self.attempt(lambda: self.store.save_arrays(rid, "predictions", {"w": np.asarray(values, np.float32)}),
                              crash)
        if rid not in self.model:
            assert isinstance(exc, StoreError)
        elif exc is None:
            self.model[rid].arrays["predictions"] = list(values)  # exported with the run (masks are not)

    @rule(rid=st.sampled_from(RUN_IDS), crash=st.sampled_from([None, None, 1, 2]))
    def export(self, rid, crash):
        folder = self.tmp / "bundle" / f"{self.exports:03d}"
        run = self.model.get(rid)
        result, exc = self.attempt(lambda: export_runs(self.store, [rid], folder), crash)
        if run is None or run.status != "done":
            assert isinstance(exc, StoreError)
        elif exc is None:
            assert result["runs"] == 1
            self.exports += 1
            self.exported.setdefault(rid, Run("done", metrics=dict(run.metrics), log=list(run.log),
                                              arrays={k: list(v) for k, v in run.arrays.items()}))
        if isinstance(exc, SimulatedCrash) and (folder / "manifest.json").exists():
            event("export crashed between its manifest and its runs file")
            with pytest.raises(StoreError, match="runs.jsonl, which is not in"):  # reported, never read as whole
                import_runs(RunStore(self.tmp / "never"), folder)
            shutil.rmtree(folder)  # what the error tells a user to do: restore or re-export the folder
        assert not (folder / "runs.jsonl").exists() or exc is None  # a crashed export leaves no runs file

    @rule(k=st.integers(0, 3), crash=st.sampled_from([None, 1, 2, 3]))
    def round_trip(self, k, crash):
        """Export a finished run, delete it, import it back (perhaps crashing mid-import): whole or absent."""
        done = sorted(rid for rid, r in self.model.items() if r.status == "done")
        if not done:
            return
        rid = done[k % len(done)]
        folder = self.tmp / "round-trip" / f"{self.exports:03d}"
        self.exports += 1
        export_runs(self.store, [rid], folder)
        self.store.delete(rid)
        result, exc = self.attempt(lambda: import_runs(self.store, folder), crash)
        event(f"round trip, crash at rename {crash}")
        if exc is None:
            assert result["added"] == 1
        elif self.store.get(rid) is None:
            assert isinstance(exc, SimulatedCrash)
            del self.model[rid]

    @rule(crash=st.sampled_from([None, None, 1, 2, 3, 5]))
    def import_bundle(self, crash):
        pending = [rid for rid in self.exported if rid not in self.model]
        before = set(self.model)
        result, exc = self.attempt(lambda: import_runs(self.store, self.tmp / "bundle"), crash)
        if not self.exported:
            assert isinstance(exc, StoreError)
            return
        if exc is None:
            assert result["added"] == len(pending)
            added = pending
        else:  # a crash mid-import: the runs before it are whole and in, the one it hit is not in at all
            assert isinstance(exc, SimulatedCrash)
            now = {r["run_id"] for r in self.store.list()}
            added = [rid for rid in pending if rid in now]
            assert added == pending[:len(added)] and now - set(added) == before
        for rid in added:
            src = self.exported[rid]
            self.model[rid] = Run("done", metrics=dict(src.metrics), log=list(src.log),
                                  arrays={k: list(v) for k, v in src.arrays.items()}, ours=True)

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def agrees_with_model(self):
        rows = {r["run_id"]: r for r in self.store.list()}
        assert set(rows) == set(self.model)
        self.steps = getattr(self, "steps", 0) + 1
        status = STATUSES[self.steps % len(STATUSES)]  # one status filter per step, each in turn
        assert {r["run_id"] for r in self.store.list(status=status)} == {
            rid for rid, r in self.model.items() if r.status == status}
        for rid, run in self.model.items():
            assert rows[rid]["status"] == run.status
            if run.status == "done":
                assert rows[rid]["metrics"] == run.metrics and rows[rid]["error"] is None
            assert self.store.read_metrics(rid) == run.log
            for name, values in run.arrays.items():
                assert self.store.load_arrays(rid, name)["w"].tolist() == pytest.approx(values)
        for rid in set(RUN_IDS) - set(self.model):
            assert not (self.store.root / rid).exists()

    @invariant()
    def integrity_walk(self):
        """Every row has a folder with a readable record.json agreeing with it; every folder has a row; no temp file."""
        root = self.store.root
        with self.store._db() as db:
            rows = {r["run_id"]: r["status"] for r in db.execute("SELECT run_id, status FROM runs")}
        for rid, status in rows.items():
            record = json.loads((root / rid / "record.json").read_text())
            assert record["run_id"] == rid and record["status"] == status, (rid, status, record)
        folders = {p.name for p in root.iterdir() if p.is_dir() and p.name != "cache"}
        assert folders == set(rows), (folders, set(rows))
        assert not [p for p in root.rglob("*.tmp")]
        if hasattr(self.store, "check") and all(r.ours for r in self.model.values() if r.status == "running"):
            assert self.store.check() == []


StoreMachine.TestCase.settings = fuzz_settings(35, stateful_step_count=20)
test_store_against_its_model = StoreMachine.TestCase


def _walk(store: RunStore) -> None:
    """The integrity walk of the state machine, for a store at rest."""
    with store._db() as db:
        rows = {r["run_id"]: r["status"] for r in db.execute("SELECT run_id, status FROM runs")}
    for rid, status in rows.items():
        record = json.loads((store.root / rid / "record.json").read_text())
        assert record["run_id"] == rid and record["status"] == status
    assert {p.name for p in store.root.iterdir() if p.is_dir() and not p.name.startswith(".")} == set(rows)
    assert not list(store.root.rglob("*.tmp")) and not list(store.root.glob(".import-*"))


@functools.lru_cache(maxsize=1)
def _exported_line() -> str:
    """One real exported entry (record, history, JSON artefact, arrays), as export writes it."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-export-"))
    store = RunStore(folder / "source")
    rid = RUN_IDS[0]
    store.claim(rid, "finetune", {"seed": 0}, {"method": "vanilla"})
    store.append_metrics(rid, {"step": 1, "loss": 0.5})
    store.save_arrays(rid, "predictions", {"outputs": np.arange(4, dtype=np.float32)})
    store.save_artifact_json(rid, "table", [{"a": 1}])
    store.finish(rid, {"accuracy": 0.5}, {}, {})
    export_runs(store, [rid], folder / "bundle")
    line = (folder / "bundle" / "runs.jsonl").read_text()
    shutil.rmtree(folder)
    return line


MUTATIONS = st.sampled_from(["none", "drop", "retype", "run_id", "artefact_name", "dtype", "shape", "array_name",
                             "not_object", "garbage_line", "non_utf8"])
ODD_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                       st.sampled_from([{}, "../x", "..", "a/b", "0123456789abcdeF", "object", "float128"]))


@fuzz_settings(40)
@given(mutation=MUTATIONS, key=st.sampled_from(["run_id", "kind", "record", "row", "artefacts", "arrays", "history"]),
       value=ODD_VALUES)
def test_import_of_damaged_bundles_is_all_or_nothing(mutation, key, value):
    """A damaged runs.jsonl line is a StoreError naming the file and line, and leaves no trace in the store."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        entry = json.loads(_exported_line())
        arrays = entry["arrays"]["predictions"]["outputs"]
        if mutation == "drop":
            entry.pop(key)
        elif mutation == "retype":
            entry[key] = value
        elif mutation == "run_id":
            entry["run_id"] = value
        elif mutation == "artefact_name":
            entry["artefacts"][value if isinstance(value, str) else "../up.json"] = {"x": 1}
        elif mutation in ("dtype", "shape"):
            arrays[mutation] = value
        elif mutation == "array_name":
            entry["arrays"][value if isinstance(value, str) else "../up"] = entry["arrays"]["predictions"]
        line = {"not_object": json.dumps([entry]), "garbage_line": "{not json"}.get(mutation, json.dumps(entry))
        bundle = folder / "damaged"
        bundle.mkdir()
        (bundle / "runs.jsonl").write_bytes(b"\xff\xfe" if mutation == "non_utf8" else line.encode() + b"\n")
        store = RunStore(folder / "target")
        try:
            result = import_runs(store, bundle)
        except PruneScopeError as exc:
            event(f"clear error: {type(exc).__name__}")
            assert "runs.jsonl" in str(exc) or "artefact name" in str(exc), str(exc)
            assert store.list() == []
        else:
            event("imported")
            assert result["added"] == 1 and store.require(entry["run_id"]).status == "done"
        _walk(store)


def test_known_store_failures_stay_fixed(tmp_path):
    """The sequences the state machine found once, kept as plain regression cases."""
    store = RunStore(tmp_path / "runs")
    rid = RUN_IDS[0]
    for op in (lambda: store.finish(rid, {}, {}, {}), lambda: store.append_metrics(rid, {"step": 1}),
               lambda: store.save_arrays(rid, "masks", {"w": np.zeros(2)})):
        with pytest.raises(StoreError, match="no run"):
            op()  # a late write for a deleted run: a clear error, and no orphan folder
        assert not (store.root / rid).exists()
    with crash_at_rename(1), pytest.raises(SimulatedCrash):
        store.claim(rid, "finetune", {}, {})
    assert store.get(rid) is None and not (store.root / rid).exists()  # the claim rolled back
    assert store.claim(rid, "finetune", {}, {})
    with crash_at_rename(1), pytest.raises(SimulatedCrash):
        store.fail(rid, "boom")
    assert store.require(rid).status == "running" and store.record(rid)["status"] == "running"
