"""Export finished runs to small files under results/ (no weights) and import them into a store.

A newcomer's empty store is filled from results/ so every page shows real studies at once; each entry
keeps its full config, seed, versions and metrics, so `reproduce` can run it again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import StoreError
from .store import RunStore, write_atomic, write_json

MAX_ARTEFACT_BYTES = 2_000_000  # JSON artefacts larger than this (none today) stay out of results/
ARRAY_ARTEFACTS = ("predictions",)  # small arrays worth keeping (dev outputs, for paired comparisons)


def export_runs(store: RunStore, run_ids: Iterable[str], folder: Path) -> dict[str, Any]:
    """Write one JSON line per run (and its sub-runs, for studies) to folder/runs.jsonl."""
    seen: dict[str, dict[str, Any]] = {}
    pending = list(run_ids)
    while pending:
        rid = pending.pop(0)
        if rid in seen:
            continue
        entry = export_entry(store, rid)
        seen[rid] = entry
        pending.extend(entry["record"].get("summary", {}).get("run_ids", []))
        pending.extend(r["run_id"] for r in entry["artefacts"].get("table.json", []) if isinstance(r, dict) and "run_id" in r)
        teacher = entry["record"].get("teacher")
        if teacher:
            pending.append(teacher)
    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in seen.values())
    write_atomic(folder / "runs.jsonl", lines.encode())
    return {"folder": str(folder), "runs": len(seen), "bytes": len(lines)}


def export_entry(store: RunStore, run_id: str) -> dict[str, Any]:
    rec = store.require(run_id)
    if rec.status != "done":
        raise StoreError(f"run {run_id} is {rec.status}", fix="export finished runs only")
    folder = rec.path / "artefacts"
    artefacts, arrays = {}, {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.stat().st_size <= MAX_ARTEFACT_BYTES:
            artefacts[path.name] = json.loads(path.read_text())
    for name in ARRAY_ARTEFACTS:
        if (folder / f"{name}.safetensors").is_file():
            arrays[name] = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "data": v.reshape(-1).tolist()}
                            for k, v in store.load_arrays(run_id, name).items()}
    return {"run_id": run_id, "kind": rec.kind, "row": {k: rec.row[k] for k in ("method", "dataset", "model", "seed",
                                                                                "label", "created", "duration")},
            "record": store.record(run_id), "history": store.read_metrics(run_id), "artefacts": artefacts,
            "arrays": arrays}


def import_runs(store: RunStore, folder: Path) -> dict[str, Any]:
    """Add every run of folder/**/runs.jsonl that the store does not have yet."""
    files = sorted(Path(folder).rglob("runs.jsonl"))
    if not files:
        raise StoreError(f"no runs.jsonl under {folder}", fix="point at a results/ folder written by export")
    added = skipped = 0
    for file in files:
        for n, line in enumerate(file.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise StoreError(f"{file} line {n} is not valid JSON", fix="re-export the results") from None
            if store.get(entry["run_id"]) is not None:
                skipped += 1
                continue
            import_entry(store, entry)
            added += 1
    return {"added": added, "skipped": skipped, "files": [str(f) for f in files]}


def import_entry(store: RunStore, entry: dict[str, Any]) -> None:
    rid, record = entry["run_id"], entry["record"]
    run_dir = store.run_dir(rid)
    for name, obj in entry["artefacts"].items():
        write_json(run_dir / "artefacts" / name, obj)
    for name, arrays in entry.get("arrays", {}).items():
        store.save_arrays(rid, name, {k: np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"])
                                      for k, v in arrays.items()})
    history = "".join(json.dumps(h) + "\n" for h in entry.get("history", []))
    write_atomic(run_dir / "metrics.jsonl", history.encode())
    write_json(run_dir / "record.json", {**record, "imported": time.time()})
    store.insert_done(rid, entry["kind"], record, entry["row"])
