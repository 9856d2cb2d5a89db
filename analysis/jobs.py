"""Running runs: config -> (validate, prepare) -> claim in the store -> run -> record.

Every experiment kind (fine-tune, prune, ...) registers an `Experiment`; `execute` is the one path from a
config to a stored run, used by the CLI, the dashboard's workers and the study runners.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from . import CODE_VERSION, provenance
from .config import ConfigBase, config_hash
from .registry import Registry
from .settings import device_name, using_store
from .errors import StoreError
from .store import RunRecord, RunStore

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class RunResult:
    metrics: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # extra fields for record.json


class Experiment:
    """One kind of run. Subclasses set `config_cls` and implement the three methods."""

    config_cls: type[ConfigBase]

    def describe(self, config: Any) -> dict[str, Any]:
        """Index fields: method, dataset, model, seed, label."""
        raise NotImplementedError

    def fingerprints(self, config: Any) -> dict[str, str]:
        """Content hashes of the data and model a config names; part of the run id."""
        return {}

    def prepare(self, config: Any, device: str) -> Any:
        """Load and validate everything the run needs. Raises user errors; writes nothing."""
        raise NotImplementedError

    def run(self, prepared: Any, ctx: "RunContext") -> RunResult:
        raise NotImplementedError


EXPERIMENTS: Registry[type[Experiment]] = Registry("experiment kind")


def run_id(kind: str, config: ConfigBase) -> str:
    """Derived from the kind, the non-default config values, the data and model content, the code version."""
    return config_hash(kind, config, CODE_VERSION, {"inputs": EXPERIMENTS.get(kind)().fingerprints(config)})


class RunContext:
    """What a running experiment may do: log metrics, report progress, save artefacts."""

    def __init__(self, store: RunStore, run_id: str, device: str, save_weights: bool,
                 callback: ProgressCallback | None = None, heartbeat_every: float = 2.0):
        self.store, self.run_id, self.device, self.save_weights = store, run_id, device, save_weights
        self.callback, self.heartbeat_every = callback, heartbeat_every
        self._last_beat = 0.0
        self.dir = store.run_dir(run_id)

    def start_heartbeat(self, every: float = 15.0) -> None:
        """Beat from a daemon thread, so a run waiting on a long sub-step (a teacher, a sweep member) stays alive."""
        self._stop = threading.Event()

        def beat() -> None:
            while not self._stop.wait(every):
                self.store.beat(self.run_id)

        threading.Thread(target=beat, name=f"heartbeat-{self.run_id}", daemon=True).start()

    def stop_heartbeat(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self._stop.set()

    def log(self, record: Mapping[str, Any]) -> None:
        self.store.append_metrics(self.run_id, {"time": time.time(), **record})

    def progress(self, done: int, total: int, message: str = "") -> None:
        if self.callback:
            self.callback(done, total, message)
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_every or done >= total:
            self._last_beat = now
            self.store.heartbeat(self.run_id, done / max(total, 1), message)

    def save_arrays(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        self.store.save_arrays(self.run_id, name, arrays)

    def save_json(self, name: str, obj: Any) -> None:
        self.store.save_artifact_json(self.run_id, name, obj)


@dataclass
class Outcome:
    record: RunRecord
    cached: bool  # served from the store without running


def execute(kind: str, config: ConfigBase, store: RunStore | None = None, device: str = "auto",
            save_weights: bool = True, progress: ProgressCallback | None = None,
            wait_seconds: float | None = None, need_weights: bool = False) -> Outcome:
    """Run `config` unless the store already has it; user errors surface before anything is written.

    `need_weights`: a stored run without its weights (imported from results/, or run with
    --no-save-weights) is run again, deterministically, to get them back. Everything the run looks up
    (teachers, masks, targets) comes from the same store."""
    store = store or RunStore()
    with using_store(store.root):
        return _execute(kind, config, store, device, save_weights, progress, wait_seconds, need_weights)


def _execute(kind: str, config: ConfigBase, store: RunStore, device: str, save_weights: bool,
             progress: ProgressCallback | None, wait_seconds: float | None, need_weights: bool) -> Outcome:
    experiment = EXPERIMENTS.get(kind)()
    rid = run_id(kind, config)
    existing = store.get(rid)
    redo = existing is not None and existing.status == "done" and need_weights and not (existing.path / "model").is_dir()
    if existing is not None and existing.status == "done" and not redo:
        return Outcome(existing, cached=True)
    resolved = device_name(device)
    prepared = experiment.prepare(config, resolved)
    fields = experiment.describe(config)
    if not store.claim(rid, kind, config.to_dict(), fields, redo=redo):
        return Outcome(_wait_for(store, rid, wait_seconds), cached=True)
    ctx = RunContext(store, rid, resolved, save_weights, progress)
    ctx.start_heartbeat()
    try:
        result = experiment.run(prepared, ctx)
        record = {"versions": provenance.versions(), "machine": provenance.machine(), "device": resolved,
                  "inputs": experiment.fingerprints(config), **result.record}
        store.finish(rid, result.metrics, result.summary, record)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.fail(rid, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=20)}", status)
        raise
    finally:
        ctx.stop_heartbeat()
    return Outcome(store.require(rid), cached=False)


def _wait_for(store: RunStore, rid: str, seconds: float | None) -> RunRecord:
    """Another process is running this config: wait for it (while it is alive) instead of running it twice."""
    deadline = None if seconds is None else time.monotonic() + seconds
    record = store.require(rid)
    while record.status in ("running", "queued") and (deadline is None or time.monotonic() < deadline):
        time.sleep(2.0)
        store.mark_stale()
        record = store.require(rid)
    if record.status != "done":
        raise StoreError(f"run {rid} with this config is {record.status} in another process",
                         fix="wait for it, or re-launch it once it has stopped")
    return record
