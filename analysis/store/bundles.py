"""Export finished runs to small files under results/ (no weights) and import them into a store.

A newcomer's empty store is filled from results/ so every page shows real studies at once; each entry
keeps its full config, seed, versions and metrics, so `reproduce` can run it again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from analysis.core.errors import StoreError
from analysis.core.paths import check_run_id, child
from analysis.store.index import RunStore, write_atomic, write_json

MAX_ARTEFACT_BYTES = 2_000_000  # JSON artefacts larger than this (none today) stay out of results/
ARRAY_ARTEFACTS = ("predictions",)  # small arrays worth keeping (dev outputs, for paired comparisons)
MAX_FILE_BYTES = 1_000_000  # one results file stays under this; a larger export is split into runs-2.jsonl, ...
BUNDLE_NAME = re.compile(r"runs(?:-([2-9]|[1-9][0-9]+))?\.jsonl")  # runs.jsonl, then runs-2.jsonl, runs-3.jsonl, ...
MANIFEST = "manifest.json"  # written first by an export: the parts it is about to write, each with its sha256
MANIFEST_FORMAT = "prunescope-runs/1"


def bundle_files(folder: Path) -> list[Path]:
    """Every exported runs file under folder, folder by folder, each folder's parts in the order they were written.

    A folder with our manifest.json yields exactly the parts it lists, each checked against its run count and
    sha256: a listed part that is missing, or that an interrupted export (or an edit) changed, is a StoreError naming
    it, and a part it does not list (left by an earlier, larger export) is not read. A folder exported before
    manifests existed (or beside another tool's manifest.json) yields runs.jsonl and its parts runs-2.jsonl, ... (not
    runs-old.jsonl or other copies)."""
    root = Path(folder)
    found = [p for p in root.rglob("runs*.jsonl") if BUNDLE_NAME.fullmatch(p.name)] + list(root.rglob(MANIFEST))
    return [part for where in sorted({p.parent for p in found if p.is_file()}, key=str) for part in _parts(where)]


def _parts(folder: Path) -> list[Path]:
    manifest = _read_manifest(folder)
    if manifest is None:
        def number(path: Path) -> int:
            match = BUNDLE_NAME.fullmatch(path.name)
            return int(match.group(1)) if match and match.group(1) else 1
        return sorted((p for p in folder.glob("runs*.jsonl") if BUNDLE_NAME.fullmatch(p.name) and p.is_file()),
                      key=number)
    where, again = folder / MANIFEST, _export_command(manifest, folder)
    parts = []
    for item in manifest["parts"]:
        path = folder / item["file"]
        if not path.is_file():
            raise StoreError(f"{where} lists {item['file']}, which is not in {folder}: an export was interrupted, or "
                             "the folder was copied in part", fix=f"restore the folder (`git checkout -- {folder}`) "
                                                                    f"or copy all of it, or {again}")
        data = path.read_bytes()
        if _digest(data) != item["sha256"] or data.count(b"\n") != item["runs"]:
            raise StoreError(f"{path} does not match {where} (sha256 or run count): an export was interrupted, or "
                             f"the file was edited", fix=f"restore the folder (`git checkout -- {folder}`) or {again}")
        parts.append(path)
    return parts


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """folder's manifest, checked for shape (file names are runs files, never paths; no file twice), or None when the
    folder has none or has another tool's manifest.json (a figure zip's, say). Ours and damaged is a StoreError."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):  # damaged if runs sit beside it, else not ours
        if not any(BUNDLE_NAME.fullmatch(p.name) for p in folder.glob("runs*.jsonl")):
            return None
        data = {"format": MANIFEST_FORMAT}
    elif not str(data.get("format", "")).startswith("prunescope-runs/"):
        return None  # another tool's manifest
    try:
        if data["format"] != MANIFEST_FORMAT:
            raise StoreError(f"{path} is in format {data['format']!r}; this PruneScope reads {MANIFEST_FORMAT!r}",
                             fix="update PruneScope, or re-export the runs with this version")
        files = [item["file"] for item in data["parts"]]
        if not files or len(set(files)) != len(files) or not all(
                isinstance(i["file"], str) and BUNDLE_NAME.fullmatch(i["file"]) and isinstance(i["runs"], int)
                and isinstance(i["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", i["sha256"]) for i in data["parts"]):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise StoreError(f"{path} is damaged: it is not a runs manifest ({{format: {MANIFEST_FORMAT}, exported: [run "
                         "ids], parts: [{file, runs, sha256}, ...]})",
                         fix=f"restore the folder (`git checkout -- {folder}`) or re-export the runs") from None
    return data


def _export_command(manifest: dict[str, Any], folder: Path) -> str:
    ids = [str(i) for i in manifest.get("exported") or []] if isinstance(manifest.get("exported"), list) else []
    return (f"re-export it from a store that has its runs (`python -m analysis export {' '.join(ids) or 'RUN_ID ...'} "
            f"--to {folder}`)")


def _digest(data: bytes) -> str:
    """sha256 of a runs file, blind to CRLF line ends (a checkout with core.autocrlf; JSON lines hold no raw CR)."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def export_runs(store: RunStore, run_ids: Iterable[str], folder: Path) -> dict[str, Any]:
    """Write one JSON line per run (and its sub-runs, for studies) to folder/runs.jsonl.

    An export over MAX_FILE_BYTES goes on in runs-2.jsonl, runs-3.jsonl, ...; the runs files an earlier export left
    in the folder are replaced, so the folder holds exactly this export. manifest.json (the exported run ids, and each
    part's run count and sha256) is written first, then the parts, each atomically: an export that dies part-way
    leaves parts that are missing or do not match the manifest, which an import reports, never a mix of old and new
    runs read as if whole."""
    roots = list(dict.fromkeys(run_ids))
    seen: dict[str, dict[str, Any]] = {}
    pending = list(roots)
    while pending:
        rid = pending.pop(0)
        if rid in seen:
            continue
        entry = export_entry(store, rid)
        seen[rid] = entry
        pending.extend(linked_runs(entry))
    parts = _split_lines([(json.dumps(e, sort_keys=True) + "\n").encode() for e in seen.values()])
    names = ["runs.jsonl"] + [f"runs-{n}.jsonl" for n in range(2, len(parts) + 1)]
    manifest = {"format": MANIFEST_FORMAT, "exported": roots, "runs": len(seen),
                "parts": [{"file": n, "runs": len(p), "sha256": _digest(b"".join(p))} for n, p in zip(names, parts)]}
    write_atomic(folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    for name, part in zip(names, parts):
        write_atomic(folder / name, b"".join(part))
    for stale in {p for p in folder.glob("runs-*.jsonl") if BUNDLE_NAME.fullmatch(p.name)} - {folder / n for n in names}:
        stale.unlink()  # a part of an earlier, larger export of this folder
    return {"folder": str(folder), "runs": len(seen), "bytes": sum(len(line) for part in parts for line in part),
            "files": [str(folder / n) for n in names], "manifest": str(folder / MANIFEST)}


def linked_runs(entry: dict[str, Any]) -> list[str]:
    """The runs an exported entry needs beside it: a study's members (its summary's run ids, its table's rows, its
    selection candidates) and a distilled run's teacher."""
    summary, table = entry["record"].get("summary"), entry["artefacts"].get("table.json")
    ids = list(summary.get("run_ids", [])) if isinstance(summary, dict) else []
    ids += [r["run_id"] for r in table if isinstance(r, dict) and "run_id" in r] if isinstance(table, list) else []
    selection = entry["artefacts"].get("selection.json")  # a tuned study's candidates: its choice can be checked
    candidates = selection.get("candidates") if isinstance(selection, dict) else None
    ids += [r["run_id"] for r in candidates if isinstance(r, dict) and "run_id" in r] if isinstance(candidates, list) \
        else []
    teacher = entry["record"].get("teacher")
    return [str(i) for i in ids + ([teacher] if teacher else [])]


def _split_lines(lines: list[bytes]) -> list[list[bytes]]:
    """Lines in order, grouped so each group stays under MAX_FILE_BYTES (a single larger line is a group alone)."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if parts[-1] and size + len(line) > MAX_FILE_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(line)
        size += len(line)
    return parts


def export_entry(store: RunStore, run_id: str) -> dict[str, Any]:
    rec = store.require(run_id)
    if rec.status != "done":
        raise StoreError(f"run {run_id} is {rec.status}", fix="export finished runs only; of a study or sweep not yet "
                         "finished, `export --partial` saves the member runs it has finished, to resume it elsewhere")
    folder = rec.path / "artefacts"
    artefacts, arrays = {}, {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.stat().st_size <= MAX_ARTEFACT_BYTES:
            artefacts[path.name] = json.loads(path.read_text())
    for name in ARRAY_ARTEFACTS:
        if (folder / f"{name}.safetensors").is_file():
            arrays[name] = {k: _encode_array(v) for k, v in store.load_arrays(run_id, name).items()}
    return {"run_id": run_id, "kind": rec.kind, "row": {k: rec.row[k] for k in ("method", "dataset", "model", "seed",
                                                                                "label", "created", "duration")},
            "record": store.record(run_id), "history": store.read_metrics(run_id), "artefacts": artefacts,
            "arrays": arrays}


def import_runs(store: RunStore, folder: Path) -> dict[str, Any]:
    """Add every run of the exports under folder (bundle_files) that the store does not have yet. `missing` names,
    per imported run, the linked runs (study members, teacher) that neither the folder nor the store has: a run
    exported apart from the study that needs it, say."""
    files = bundle_files(folder)
    if not files:
        raise StoreError(f"no runs.jsonl under {folder}", fix="point at a results/ folder written by export")
    added = skipped = 0
    links: dict[str, list[str]] = {}
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise StoreError(f"{file} is not UTF-8 text", fix="re-export the results") from None
        for n, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise StoreError(f"{file} line {n} is not valid JSON", fix="re-export the results") from None
            _check_entry(entry, f"{file} line {n}")
            check_run_id(entry.get("run_id"), f"{file} line {n}: run id")
            if store.get(entry["run_id"]) is not None:
                skipped += 1
                continue
            import_entry(store, entry, f"{file} line {n}")
            links[entry["run_id"]] = linked_runs(entry)
            added += 1
    missing = {rid: absent for rid, ids in links.items() if (absent := [i for i in ids if store.get(i) is None])}
    return {"added": added, "skipped": skipped, "files": [str(f) for f in files], **({"missing": missing} if missing
                                                                                      else {})}


def import_entry(store: RunStore, entry: dict[str, Any], where: str = "entry") -> None:
    """Write the run's folder under a temporary name, move it into place, then index it: a crash leaves no half run."""
    _check_entry(entry, where)
    rid, record = entry["run_id"], entry["record"]
    run_dir = store.run_dir(rid)
    if run_dir.exists():
        raise StoreError(f"{where}: folder {run_dir} exists but run {rid} is not in the index",
                         fix="run `python -m analysis check-store` and remove the stray folder")
    staging = Path(tempfile.mkdtemp(dir=store.root, prefix=f".import-{rid}-"))
    try:
        for name, obj in entry["artefacts"].items():
            write_json(child(staging / "artefacts", name, "artefact name"), obj)
        for name, arrays in entry.get("arrays", {}).items():
            write_atomic(child(staging / "artefacts", f"{name}.safetensors", "artefact name"),
                         save_arrays_bytes(_arrays(arrays, f"{where}: arrays {name!r}"), f"{where}: arrays {name!r}"))
        history = "".join(json.dumps(h) + "\n" for h in entry.get("history", []))
        write_atomic(staging / "metrics.jsonl", history.encode())
        write_json(staging / "record.json", {**record, "imported": time.time()})
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    store.insert_done(rid, entry["kind"], record, entry["row"])


ENTRY_TYPES = {"run_id": str, "kind": str, "record": dict, "row": dict, "artefacts": dict, "arrays": dict,
               "history": list}


def _check_entry(entry: Any, where: str) -> None:
    """An exported entry has the fields export_entry writes, of the right types."""
    if not isinstance(entry, dict):
        raise StoreError(f"{where} is not a JSON object", fix="re-export the results")
    for key, kind in ENTRY_TYPES.items():
        if key in ("arrays", "history") and key not in entry:
            continue  # older exports have neither
        if not isinstance(entry.get(key), kind):
            raise StoreError(f"{where}: field {key!r} is missing or not a {kind.__name__}", fix="re-export the results")


def _encode_array(values: np.ndarray) -> dict[str, Any]:
    """An array as JSON: dtype, shape and its little-endian bytes, zlib-compressed and base64-encoded (exact, and a
    third of the size of a list of numbers)."""
    raw = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
    return {"dtype": values.dtype.newbyteorder("<").str, "shape": list(values.shape),
            "zlib_base64": base64.b64encode(zlib.compress(raw, 9)).decode("ascii")}


def _decode_array(value: dict[str, Any]) -> np.ndarray:
    """One exported array back: the compressed bytes `_encode_array` writes, or a list of numbers (older exports)."""
    dtype, shape = np.dtype(str(value["dtype"])), [int(n) for n in value["shape"]]
    if "zlib_base64" in value:
        expected = int(np.prod(shape)) * dtype.itemsize
        inflate = zlib.decompressobj()
        raw = inflate.decompress(base64.b64decode(value["zlib_base64"], validate=True), max(expected, 1))  # no more
        if len(raw) != expected or inflate.unconsumed_tail or not inflate.eof:
            raise ValueError(f"the bytes do not hold a {dtype} array of shape {shape}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return np.asarray(value["data"], dtype=dtype).reshape(shape)


def _arrays(arrays: Any, where: str) -> dict[str, np.ndarray]:
    """Exported arrays ({name: {dtype, shape, zlib_base64 or data}}) back as numpy arrays, or a StoreError naming the
    entry."""
    try:
        return {str(k): _decode_array(v) for k, v in arrays.items()}
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError, zlib.error) as exc:
        raise StoreError(f"{where} cannot be read back ({type(exc).__name__}: {exc})",
                         fix="re-export the results") from None


def save_arrays_bytes(arrays: dict[str, np.ndarray], where: str) -> bytes:
    """Arrays as safetensors bytes; a dtype safetensors cannot hold is a StoreError naming the entry."""
    from safetensors.numpy import save

    try:
        return save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    except Exception as exc:  # safetensors refuses e.g. object and void dtypes
        raise StoreError(f"{where} cannot be stored ({exc})", fix="re-export the results") from None
