"""Moving whole runs between stores: a run folder packed into bytes, unpacked into a scratch store on a
remote worker, and written back into the driver's store; and what a run needs from the store beforehand.

A packed run is a plain dict `{run_id, kind, status, row, record, files: {relative path: bytes}}` (no
pickled objects of ours), so it travels through Ray's object store or any other transport unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from analysis.core.config import ConfigBase
from analysis.core.registry import Registry
from analysis.store.index import RunStore, write_atomic

CHECKPOINTS = "checkpoints"  # the folder of a run's training checkpoints (see runs.experiment.execute)
ROW_FIELDS = ("method", "dataset", "model", "seed", "label", "created", "duration")


def pack_run(store: RunStore, run_id: str) -> dict[str, Any]:
    """Every file of a run's folder (record, metrics, artefacts, weights) plus its index fields."""
    rec = store.require(run_id)
    files = {}
    for path in sorted(p for p in rec.path.rglob("*") if p.is_file()):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue  # a write in progress (or torn by a kill): never copied
        files[path.relative_to(rec.path).as_posix()] = path.read_bytes()
    return {"run_id": run_id, "kind": rec.kind, "status": rec.status, "config": rec.config,
            "row": {k: rec.row.get(k) for k in ROW_FIELDS}, "record": store.record(run_id),
            "metrics": rec.metrics, "summary": rec.summary, "error": rec.error, "files": files}


def write_files(store: RunStore, packed: dict[str, Any], exact: bool = False) -> None:
    """Write a packed run's files into its folder in `store` (each atomically; record.json last).

    `exact`: files of an earlier attempt that the packed run does not have (an old checkpoint) are removed."""
    folder = store.run_dir(packed["run_id"])
    if exact and folder.is_dir():
        for path in sorted(folder.rglob("*"), reverse=True):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and name not in packed["files"] and name != "record.json":
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    names = sorted(packed["files"], key=lambda name: name == "record.json")
    for name in names:
        target = (folder / name).resolve()
        if folder.resolve() not in target.parents:
            raise ValueError(f"packed file {name!r} escapes its run folder")
        write_atomic(target, packed["files"][name])


def unpack_done(store: RunStore, packed: dict[str, Any]) -> None:
    """Add a finished packed run to a (scratch) store, as an import would."""
    if store.get(packed["run_id"]) is not None:
        return
    write_files(store, packed)
    store.insert_done(packed["run_id"], packed["kind"], packed["record"], packed["row"])


def write_back(store: RunStore, packed: dict[str, Any], claimed: bool) -> bool:
    """Write a run computed elsewhere into the store, as if it had run here. Returns whether it was written.

    `claimed`: this process already holds the run's claim (it submitted it). Otherwise the run is claimed
    now, and left alone when the store already has it (done, or running in a live process)."""
    rid = packed["run_id"]
    if not claimed:
        existing = store.get(rid)
        if existing is not None and existing.status == "done":
            return False
        fields = {k: packed["row"].get(k) for k in ("method", "dataset", "model", "seed", "label")}
        if not store.claim(rid, packed["kind"], packed["config"], fields):
            return False
    write_files(store, packed, exact=True)
    if packed["status"] == "done":
        extra = {k: v for k, v in packed["record"].items() if k not in ("status", "metrics", "summary", "error")}
        store.finish(rid, packed["metrics"], packed["summary"], extra)
    else:
        store.fail(rid, packed["error"] or f"the run ended {packed['status']} on the worker",
                   "interrupted" if packed["status"] == "interrupted" else "failed")
    return True


def restore_stopped(store: RunStore, packed: dict[str, Any]) -> None:
    """Put a failed or interrupted run (with its checkpoints) into a scratch store as it was, so that
    `runs.experiment.execute` continues it from its last checkpoint instead of starting again."""
    fields = {k: packed["row"].get(k) for k in ("method", "dataset", "model", "seed", "label")}
    if store.claim(packed["run_id"], packed["kind"], packed["config"], fields):
        write_files(store, packed, exact=True)
        store.fail(packed["run_id"], packed["error"] or f"it was {packed['status']}",
                   "interrupted" if packed["status"] == "interrupted" else "failed")


def resumable(store: RunStore, run_id: str) -> bool:
    """A stopped run that left a checkpoint to continue from."""
    rec = store.get(run_id)
    return rec is not None and rec.status in ("failed", "interrupted") and (rec.path / CHECKPOINTS).is_dir()


# -- what a run needs from the store ------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """A run another run looks up: an existing run by id, or one it would compute itself (kind + config)."""

    run_id: str | None = None
    kind: str | None = None
    config: ConfigBase | None = None
    weights: bool = False  # the run's weights are needed (a teacher), not only its record and artefacts


NEEDS: Registry[Callable[[Any], list[Need]]] = Registry("run dependency rule")


def needs_of(kind: str, config: ConfigBase) -> list[Need]:
    """The runs a `kind` run looks up in the store (none for kinds without a rule)."""
    return NEEDS.get(kind)(config) if kind in NEEDS else []


@NEEDS.register("prune")
def prune_needs(config: Any) -> list[Need]:
    """A pruning run's teacher (given, or the auto fine-tune) and a run id given as --masks."""
    from analysis.methods.pruning import PRUNING_METHODS
    from analysis.runs.prune import teacher_config

    method = PRUNING_METHODS.get(config.method)()
    try:
        options = method.Options.from_dict(config.options)
    except Exception:
        return []  # the run itself reports a bad option, with its own message
    out = []
    if method.needs_teacher(options):
        out.append(Need(kind="finetune", config=teacher_config(config), weights=True) if config.teacher == "auto"
                   else Need(run_id=config.teacher, weights=True))
    masks = getattr(options, "masks", None)
    if masks and not Path(masks).suffix and not Path(masks).exists():
        out.append(Need(run_id=masks))
    return out


def has_weights(store: RunStore, run_id: str) -> bool:
    rec = store.get(run_id)
    return rec is not None and rec.status == "done" and (rec.path / "model").is_dir()
