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

from analysis import CODE_VERSION
from analysis.core import precision, provenance
from analysis.core.config import ConfigBase, config_hash, recorded_precision
from analysis.core.errors import StoreError
from analysis.core.registry import Registry
from analysis.core.settings import device_name, using_store
from analysis.store.index import STALE_SECONDS, RunRecord, RunStore
from analysis.training import checkpoint

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class RunResult:
    metrics: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # extra fields for record.json


class Experiment:
    """One kind of run. Subclasses set `config_cls` and implement the three methods."""

    config_cls: type[ConfigBase]
    checkpointed = False  # its runs save training checkpoints, so `resume` continues them mid-training

    def describe(self, config: Any) -> dict[str, Any]:
        """Index fields: method, dataset, model, seed, label."""
        raise NotImplementedError

    def fingerprints(self, config: Any) -> dict[str, str]:
        """Content hashes of the data and model a config names; part of the run id."""
        return {}

    def normalise(self, config: Any) -> Any:
        """The config in its one spelling (e.g. method options validated, defaults dropped), before it is hashed;
        raises a user error for a value that cannot work."""
        return config

    def prepare(self, config: Any, device: str) -> Any:
        """Load and validate everything the run needs. Raises user errors; writes nothing."""
        raise NotImplementedError

    def run(self, prepared: Any, ctx: "RunContext") -> RunResult:
        raise NotImplementedError


# the kinds: one module each in runs/ (finetune, prune, probe, heads) and studies/ (the studies, the quick tour)
EXPERIMENTS: Registry[type[Experiment]] = Registry("experiment kind", ("analysis.runs", "analysis.studies"))


def canonical(kind: str, config: ConfigBase, device: str = "auto") -> ConfigBase:
    """The config as a run records and hashes it: the precision resolved for `device` (so a bf16 run and an fp32
    run of one config are two runs) and the kind's own normalisation (method options validated, defaults dropped,
    so two spellings of one config are one run). Idempotent."""
    config = precision.resolve_config(config, device_name(device))
    return EXPERIMENTS.get(kind)().normalise(config)


def run_id(kind: str, config: ConfigBase, device: str = "auto") -> str:
    """Derived from the kind, the canonical config's non-default values, the data and model content, the code
    version."""
    config = canonical(kind, config, device)
    return config_hash(kind, config, CODE_VERSION, {"inputs": EXPERIMENTS.get(kind)().fingerprints(config)})


class RunContext:
    """What a running experiment may do: log metrics, report progress, save artefacts."""

    def __init__(self, store: RunStore, run_id: str, device: str, save_weights: bool,
                 callback: ProgressCallback | None = None, heartbeat_every: float = 2.0,
                 identity: dict[str, Any] | None = None, resume_from: checkpoint.Found | None = None):
        self.store, self.run_id, self.device, self.save_weights = store, run_id, device, save_weights
        self.callback, self.heartbeat_every = callback, heartbeat_every
        self._last_beat = 0.0
        self._pace_from: tuple[float, int, int] | None = None  # (time, done, total) where the current count began
        self.dir = store.run_dir(run_id)
        self.identity, self.resume_from = identity, resume_from  # resume_from: the checkpoint this run continues

    def checkpointer(self, train: Any) -> checkpoint.Checkpointer | None:
        """The training loop's checkpoints in this run's folder (None when `train.checkpoint_every` is -1)."""
        if train.checkpoint_every < 0 or self.identity is None:
            return None
        return checkpoint.Checkpointer(self.dir / "checkpoints", self.identity, train.checkpoint_every,
                                       self.resume_from, self.dir / "metrics.jsonl")

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
            left = self._time_left(done, total, now)
            self.store.heartbeat(self.run_id, done / max(total, 1), message + (f" · {left}" if left else ""))

    def restart_pace(self) -> None:
        """The next progress report starts a new count (a study's next stage), timed from then on."""
        self._pace_from = None

    def _time_left(self, done: int, total: int, now: float) -> str:
        """'about 12 min left': the pace seen by this process since the count began (a resumed run's earlier
        steps, or a study's earlier stage, do not count), once 30 s and a step have passed."""
        start = self._pace_from
        if start is None or start[2] != total or done < start[1]:
            self._pace_from = (now, done, total)
            return ""
        elapsed, gained = now - start[0], done - start[1]
        if elapsed < 30 or gained <= 0 or done >= total:
            return ""
        left = elapsed * (total - done) / gained
        return (f"about {left // 3600:.0f} h {left % 3600 // 60:.0f} min left" if left >= 3600
                else f"about {max(1, round(left / 60))} min left")

    def save_arrays(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        self.store.save_arrays(self.run_id, name, arrays)

    def save_json(self, name: str, obj: Any) -> None:
        self.store.save_artifact_json(self.run_id, name, obj)


@dataclass
class Outcome:
    record: RunRecord
    cached: bool  # served from the store without running
    resumed: bool = False  # continued from a checkpoint of an interrupted attempt


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
    resolved = device_name(device)
    config = canonical(kind, config, resolved)  # what this run records and its id hashes
    rid = run_id(kind, config, resolved)
    existing = store.get(rid)
    redo = existing is not None and existing.status == "done" and need_weights and not (existing.path / "model").is_dir()
    if existing is not None and existing.status == "done" and not redo:
        return Outcome(existing, cached=True)
    prepared = experiment.prepare(config, resolved)
    fields = experiment.describe(config)
    identity = checkpoint_identity(kind, config, rid)
    # an interrupted or failed attempt continues from its checkpoint (CLI, workers and every study runner alike)
    resume_from = usable_checkpoint(store, rid, identity) if existing is not None and not redo else None
    if not store.claim(rid, kind, config.to_dict(), fields, redo=redo, keep_log=resume_from is not None):
        return Outcome(_wait_for(store, rid, wait_seconds), cached=True)
    ctx = RunContext(store, rid, resolved, save_weights, progress, identity=identity, resume_from=resume_from)
    folder = ctx.dir / "checkpoints"
    if resume_from is None:
        checkpoint.discard(folder)
    else:
        checkpoint.truncate_log(ctx.dir / "metrics.jsonl", resume_from.meta["log_bytes"])
    ctx.start_heartbeat()
    try:
        result = experiment.run(prepared, ctx)
        summary = {**result.summary, "precision": recorded_precision(config.to_dict())}
        record = {"versions": provenance.versions(), "machine": provenance.machine(), "device": resolved,
                  "precision": summary["precision"],
                  "inputs": experiment.fingerprints(config), **result.record}
        if resume_from is not None:
            record["resumed_from"] = resume_from.describe()
        store.finish(rid, result.metrics, summary, record)
        checkpoint.discard(folder)  # the run is complete: its model and artefacts are in the store
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if isinstance(exc, checkpoint.CheckpointError):
            checkpoint.discard(folder)  # unusable: the next attempt starts from scratch instead of failing again
        store.fail(rid, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=20)}", status)
        raise
    finally:
        ctx.stop_heartbeat()
    return Outcome(store.require(rid), cached=False, resumed=resume_from is not None)


def checkpoint_identity(kind: str, config: ConfigBase, rid: str) -> dict[str, Any]:
    """What a checkpoint must match to continue a run: its id, kind, code version and config."""
    return {"run_id": rid, "kind": kind, "code_version": CODE_VERSION, "config": config.to_dict()}


def usable_checkpoint(store: RunStore, rid: str, identity: dict[str, Any]) -> checkpoint.Found | None:
    """The run's latest checkpoint if it can continue this run; None (start from scratch) otherwise."""
    try:
        return checkpoint.find(store.run_dir(rid) / "checkpoints", identity)
    except checkpoint.CheckpointError:
        return None


def resume(rid: str, store: RunStore | None = None, device: str = "auto", save_weights: bool = True,
           progress: ProgressCallback | None = None) -> Outcome:
    """Continue an interrupted or failed run from its last checkpoint, finishing it as a normal run.

    Kinds without checkpoints of their own (studies) are run again: their finished member runs come from
    the store and an interrupted member continues from its checkpoint."""
    store = store or RunStore()
    store.mark_stale()
    record = store.require(rid)
    _check_resumable(record)
    kind = record.kind
    config = EXPERIMENTS.get(kind).config_cls.from_dict(record.config, where=f"config of run {rid}")
    current = run_id(kind, config)
    if current != rid:
        raise checkpoint.CheckpointError(
            f"run {rid} was made by another code version or from other data/model files (this code and these "
            f"inputs give its config the id {current}), so its checkpoint cannot continue here",
            fix=f"run its config again from scratch (`python -m analysis reproduce {rid}` compares the two)")
    if EXPERIMENTS.get(kind).checkpointed:
        found = checkpoint.latest(store.run_dir(rid) / "checkpoints")
        if found is None:
            raise checkpoint.CheckpointError(
                f"run {rid} has no checkpoint (it stopped before its first one was written)",
                fix=f"start it again with the command that launched it (`python -m analysis {kind} ...` with the "
                    "same settings): it restarts from scratch under the same run id")
        checkpoint.check(found, checkpoint_identity(kind, config, rid))
    with using_store(store.root):
        return _execute(kind, config, store, device, save_weights, progress, None, False)


def _check_resumable(record: RunRecord) -> None:
    """Only a run that stopped can be resumed: not a finished one, nor one still alive elsewhere."""
    if record.status == "done":
        raise StoreError(f"run {record.run_id} is already done", fix=f"see it with `python -m analysis show {record.run_id}`")
    if record.status in ("running", "queued"):
        age = time.time() - (record.row.get("heartbeat") or 0)
        raise StoreError(f"run {record.run_id} is {record.status} (process {record.row.get('pid')}, last heartbeat "
                         f"{age:.0f} s ago)", fix=f"wait for it or cancel it; a killed run of this machine is marked "
                         f"interrupted at once, one of another machine once its heartbeat is {STALE_SECONDS:.0f} s old")


def _wait_for(store: RunStore, rid: str, seconds: float | None) -> RunRecord:
    """Another process is running this config: wait for it (while it is alive) instead of running it twice."""
    record = store.wait_while_active(rid, seconds) or store.require(rid)
    if record.status != "done":
        raise StoreError(f"run {rid} with this config is {record.status} in another process",
                         fix="wait for it, or re-launch it once it has stopped")
    return record
