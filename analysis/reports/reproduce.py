"""`python -m analysis reproduce RUN_ID`: run a stored run's exact config again and compare the results.

By default the run is repeated in a fresh temporary store (deleted afterwards; `--store DIR` keeps it), so
the stored record is untouched. The runs it builds on (a probe's target and that target's teacher, a given
teacher, a reused mask) are copied over, and re-run there first when they kept no weights (runs imported
from results/ have none). `--in-place` instead re-runs a fine-tune or prune run that has no weights in the
real store, which gives it its weights back. Compared: every metric, the metrics of a study's member runs,
the numbers of the probe and head-importance artefacts, and the dev predictions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from analysis.core.errors import ConfigError, StoreError
from analysis.runs.experiment import execute
from analysis.runs.experiment import run_id as run_id_of
from analysis.runs.queue import stored_config
from analysis.store.index import RunStore

WEIGHTED_KINDS = ("finetune", "prune")  # kinds whose runs keep a model
COMPARED_ARTEFACTS = ("probes", "heads")  # JSON artefacts whose numbers are compared
DEFAULT_TOLERANCE = 0.005  # absolute; half a point of accuracy (one prediction in 200)


def config_references(store: RunStore, value: Any) -> list[str]:
    """Run ids of this store named anywhere in a config (a probe target, a teacher, a reused mask)."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in config_references(store, v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in config_references(store, v)]
    if isinstance(value, str) and value and all(c.isalnum() or c in "-_" for c in value) and store.get(value):
        return [value]
    return []


def bring(src: RunStore, dst: RunStore, rid: str, device: str) -> None:
    """Copy a run the reproduction builds on (and what it builds on) into `dst`, with its weights."""
    if dst.get(rid) is not None:
        return
    rec = src.require(rid)
    for dep in config_references(src, rec.config) + [t for t in [src.record(rid).get("teacher")] if t]:
        bring(src, dst, dep, device)
    shutil.copytree(rec.path, dst.run_dir(rid), dirs_exist_ok=True)
    dst.insert_done(rid, rec.kind, src.record(rid), rec.row)
    if rec.kind in WEIGHTED_KINDS and not (dst.run_dir(rid) / "model").is_dir():
        kind, config = stored_config(src, rid)
        execute(kind, config, dst, device=device, need_weights=True)


@contextmanager
def store_env(root: Path) -> Iterator[None]:
    """Point PRUNESCOPE_STORE at `root` meanwhile (experiments that open the default store find it)."""
    old = os.environ.get("PRUNESCOPE_STORE")
    os.environ["PRUNESCOPE_STORE"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PRUNESCOPE_STORE", None)
        else:
            os.environ["PRUNESCOPE_STORE"] = old


def _numbers(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON object, by dotted path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _numbers(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in _numbers(val, f"{prefix}{i}.").items()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {prefix.rstrip("."): float(obj)}
    return {}


def snapshot(store: RunStore, rid: str) -> dict[str, Any]:
    """What is compared, read before anything is re-run: metrics, artefact numbers, predictions, members."""
    rec = store.require(rid)
    numbers = {f"metrics.{k}": float(v) for k, v in rec.metrics.items() if isinstance(v, (int, float))}
    present = store.artefacts(rid)
    for name in COMPARED_ARTEFACTS:
        if f"{name}.json" in present:
            numbers.update(_numbers(store.load_artifact_json(rid, name), f"{name}."))
    outputs = store.load_arrays(rid, "predictions")["outputs"] if "predictions.safetensors" in present else None
    members = [(m, store.require(m).metrics) for m in rec.summary.get("run_ids", []) if store.get(m)]
    return {"run_id": rid, "numbers": numbers, "outputs": outputs, "members": members}


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    keys = [k for k in set(a) | set(b) if isinstance(a.get(k), (int, float)) or isinstance(b.get(k), (int, float))]
    if any(k not in a or k not in b for k in keys):
        return float("inf")
    return max((abs(float(a[k]) - float(b[k])) for k in keys), default=0.0)


def compare(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Differences between two snapshots; `match` when all lie within `tolerance`."""
    a, b = old["numbers"], new["numbers"]
    rows = [{"name": k, "stored": a.get(k), "reproduced": b.get(k),
             "difference": None if k not in a or k not in b else b[k] - a[k]} for k in sorted(set(a) | set(b))]
    for row in rows:
        row["ok"] = row["difference"] is not None and abs(row["difference"]) <= tolerance
    members = [{"run_id": m, "reproduced_run_id": n, "max_abs_difference": _max_diff(ma, na)}
               for (m, ma), (n, na) in zip(old["members"], new["members"])]
    for row in members:
        row["ok"] = row["max_abs_difference"] <= tolerance
    ok = all(r["ok"] for r in rows + members) and len(old["members"]) == len(new["members"])
    diffs = [abs(r["difference"]) for r in rows if r["difference"] is not None]
    return {"status": "match" if ok else "mismatch", "compared": len(rows), "max_abs_difference": max(diffs, default=0.0),
            "differences": [r for r in rows if not r["ok"]], "metrics": [r for r in rows if r["name"].startswith("metrics.")],
            "members": members, "prediction_agreement": agreement(old["outputs"], new["outputs"])}


def agreement(x: np.ndarray | None, y: np.ndarray | None) -> float | None:
    """The share of dev examples predicted alike (classification outputs), when both runs kept predictions."""
    if x is None or y is None or x.shape != y.shape or x.ndim < 2 or x.shape[-1] < 2:
        return None
    return float((x.argmax(-1) == y.argmax(-1)).mean())


def reproduce(run_id: str, store: RunStore | None = None, tolerance: float = DEFAULT_TOLERANCE, in_place: bool = False,
              keep: str | Path | None = None, device: str = "auto",
              progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Re-run a stored run's config (temporary store, a kept folder, or in place) and compare its results."""
    store = store or RunStore()
    rec = store.require(run_id)
    if rec.status != "done":
        raise StoreError(f"run {run_id} is {rec.status}: there are no results to compare",
                         fix="reproduce a finished run; re-run this one from the Runs page")
    kind, config = stored_config(store, run_id)
    notes = []
    if run_id_of(kind, config) != run_id:
        notes.append("the config now hashes to another run id: the code version or the input files changed since")
    old, started = snapshot(store, run_id), time.perf_counter()
    if in_place:
        if kind not in WEIGHTED_KINDS or (rec.path / "model").is_dir():
            raise ConfigError(f"--in-place re-runs a fine-tune or prune run that has no weights; {run_id} is a "
                              f"{kind} run {'with' if (rec.path / 'model').is_dir() else 'without'} weights",
                              fix="leave out --in-place to reproduce it in a temporary store")
        new_rec = execute(kind, config, store, device=device, progress=progress, need_weights=True).record
        result = compare(old, snapshot(store, new_rec.run_id), tolerance)
        where = "in place (the run has its weights now)"
    else:
        root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="prunescope-reproduce-")) / "runs"
        target = RunStore(root)
        try:
            with store_env(target.root):
                for dep in config_references(store, rec.config):
                    bring(store, target, dep, device)
                new_rec = execute(kind, config, target, device=device, save_weights=keep is not None,
                                  progress=progress).record
                result = compare(old, snapshot(target, new_rec.run_id), tolerance)
        finally:
            if keep is None:
                shutil.rmtree(root.parent, ignore_errors=True)
        where = str(target.root) if keep else "a temporary store (deleted)"
    return {**result, "run_id": run_id, "reproduced_run_id": new_rec.run_id, "kind": kind, "tolerance": tolerance,
            "where": where, "seconds": round(time.perf_counter() - started, 1), "notes": notes}
