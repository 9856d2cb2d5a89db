"""Export to results/ and import into an empty store: the same records, metrics and predictions."""

import json
import os

import numpy as np

from analysis.core.config import FinetuneConfig
from analysis.runs import experiment as jobs
from analysis.store.bundles import export_entry, export_runs, import_runs
from analysis.store.index import RunStore


def test_export_import_round_trip(tiny_models, sentiment_files, tmp_path):
    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1})
    rec = jobs.execute("finetune", cfg).record
    source = RunStore()
    out = export_runs(source, [rec.run_id], tmp_path / "results" / "demo")
    assert out["runs"] == 1 and out["bytes"] < 200_000  # records and small artefacts only, no weights
    target = RunStore(tmp_path / "fresh")
    assert import_runs(target, tmp_path / "results") == {"added": 1, "skipped": 0,
                                                          "files": [str(tmp_path / "results" / "demo" / "runs.jsonl")]}
    got = target.require(rec.run_id)
    assert got.status == "done" and got.metrics == rec.metrics and got.config == rec.config
    assert target.record(rec.run_id)["versions"] == source.record(rec.run_id)["versions"]
    assert np.array_equal(target.load_arrays(rec.run_id, "predictions")["outputs"],
                          source.load_arrays(rec.run_id, "predictions")["outputs"])
    assert target.read_metrics(rec.run_id) == source.read_metrics(rec.run_id)
    assert import_runs(target, tmp_path / "results")["skipped"] == 1  # idempotent


def test_an_imported_teacher_without_weights_is_trained_again(tiny_models, sentiment_files, tmp_path, monkeypatch):
    from analysis.methods.pruning import PruneConfig

    train, evaluation = sentiment_files
    flags = {"model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation), "epochs": 1}
    teacher = jobs.execute("finetune", FinetuneConfig.from_flat({}, flags)).record
    export_runs(RunStore(), [teacher.run_id], tmp_path / "results")
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("PRUNESCOPE_STORE", str(fresh))
    import_runs(RunStore(), tmp_path / "results")
    assert not (RunStore().require(teacher.run_id).path / "model").exists()
    pruned = jobs.execute("prune", PruneConfig.from_flat({}, {**flags, "method": "sparsebert", "sparsity": 0.5})).record
    assert pruned.summary["teacher"] == teacher.run_id
    again = RunStore().require(teacher.run_id)
    assert (again.path / "model").is_dir() and again.metrics == teacher.metrics  # deterministic re-run


def test_a_large_export_is_split_into_files_under_the_limit_and_imports_whole(tiny_models, sentiment_files, tmp_path,
                                                                              monkeypatch):
    """Over MAX_FILE_BYTES the export goes on in runs-2.jsonl, ...; a re-export replaces the old parts; the import
    reads every part; predictions come back exactly; the files get the usual mode, not mkstemp's 0600."""
    from analysis.store import bundles

    train, evaluation = sentiment_files
    ids = [jobs.execute("finetune", FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]),
                                                                 "dataset": str(train), "eval_file": str(evaluation),
                                                                 "epochs": 1, "seed": seed})).record.run_id
           for seed in (0, 1, 2)]
    source, folder = RunStore(), tmp_path / "results" / "big"
    (folder / "runs-9.jsonl").parent.mkdir(parents=True)
    (folder / "runs-9.jsonl").write_text("stale\n")
    one_line = max(len(json.dumps(bundles.export_entry(source, rid), sort_keys=True)) + 1 for rid in ids)
    monkeypatch.setattr(bundles, "MAX_FILE_BYTES", one_line + 10)  # about one run per file
    (folder / "runs-old.jsonl").write_text("a user's copy\n")  # not a part: neither removed nor imported
    umask = os.umask(0o022)
    try:
        out = export_runs(source, ids, folder)
    finally:
        os.umask(umask)
    names = sorted(p.name for p in folder.glob("runs*.jsonl"))
    assert names == ["runs-2.jsonl", "runs-3.jsonl", "runs-old.jsonl", "runs.jsonl"] and out["runs"] == 3
    assert [p.name for p in bundles.bundle_files(folder)] == ["runs.jsonl", "runs-2.jsonl", "runs-3.jsonl"]
    assert all(p.stat().st_size <= one_line + 10 for p in bundles.bundle_files(folder))
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in bundles.bundle_files(folder))  # as open() makes them
    target = RunStore(tmp_path / "fresh")
    assert import_runs(target, tmp_path / "results")["added"] == 3
    for rid in ids:
        got, want = target.load_arrays(rid, "predictions"), source.load_arrays(rid, "predictions")
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype
                                                 for k in want)
    partial = RunStore(tmp_path / "partial")  # a study whose members sit in a part that was not copied
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "runs.jsonl").write_text(json.dumps({**bundles.export_entry(source, ids[0]),
                                                                "run_id": "0123456789abcdef", "kind": "study-x",
                                                                "artefacts": {"table.json": [{"run_id": ids[2]}]}}) + "\n")
    assert import_runs(partial, tmp_path / "copied")["missing"] == {"0123456789abcdef": [ids[2]]}
    monkeypatch.setattr(bundles, "MAX_FILE_BYTES", 1_000_000)
    export_runs(source, ids, folder)  # fits in one file again: the parts of the larger export are gone
    assert sorted(p.name for p in folder.glob("runs*.jsonl")) == ["runs-old.jsonl", "runs.jsonl"]


def test_an_older_export_with_arrays_as_number_lists_still_imports(tiny_models, sentiment_files, tmp_path):
    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1})
    rid = jobs.execute("finetune", cfg).record.run_id
    source = RunStore()
    entry = export_entry(source, rid)
    want = source.load_arrays(rid, "predictions")
    entry["arrays"]["predictions"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "data": v.reshape(-1).tolist()}
                                      for k, v in want.items()}
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "runs.jsonl").write_text(json.dumps(entry) + "\n")
    target = RunStore(tmp_path / "fresh")
    assert import_runs(target, folder)["added"] == 1
    got = target.load_arrays(rid, "predictions")
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_damaged_compressed_arrays_are_a_store_error_naming_the_entry():
    import base64
    import zlib

    import pytest

    from analysis.core.errors import StoreError
    from analysis.store.bundles import _arrays, _encode_array

    good = _encode_array(np.arange(6, dtype=">f4").reshape(2, 3))  # big-endian in, little-endian stored
    back = _arrays({"outputs": good}, "here")["outputs"]
    assert back.dtype == np.dtype("float32") and back.tolist() == [[0, 1, 2], [3, 4, 5]]
    bomb = base64.b64encode(zlib.compress(bytes(10_000_000))).decode()  # far more bytes than the shape holds
    for damaged in ({**good, "zlib_base64": good["zlib_base64"][:-8]}, {**good, "zlib_base64": "not base64!"},
                    {**good, "shape": [4, 3]}, {**good, "zlib_base64": bomb}, {**good, "dtype": None},
                    {"dtype": "int8", "shape": [1], "data": [300]}):
        with pytest.raises(StoreError, match="here cannot be read back"):
            _arrays({"outputs": damaged}, "here")


def test_the_manifest_catches_an_interrupted_export_and_ignores_parts_it_does_not_list(tiny_models, sentiment_files,
                                                                                      tmp_path, monkeypatch):
    import pytest

    from analysis.core.errors import StoreError
    from analysis.store import bundles

    train, evaluation = sentiment_files
    ids = [jobs.execute("finetune", FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]),
                                                                 "dataset": str(train), "eval_file": str(evaluation),
                                                                 "epochs": 1, "seed": seed})).record.run_id
           for seed in (0, 1)]
    source, folder = RunStore(), tmp_path / "results" / "split"
    monkeypatch.setattr(bundles, "MAX_FILE_BYTES", 10)  # one run per file
    export_runs(source, ids, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["exported"] == ids and manifest["runs"] == 2
    assert [(p["file"], p["runs"]) for p in manifest["parts"]] == [("runs.jsonl", 1), ("runs-2.jsonl", 1)]
    (folder / "runs-3.jsonl").write_text((folder / "runs-2.jsonl").read_text())  # a part the manifest does not list
    (tmp_path / "results" / "figure").mkdir()  # another tool's manifest (a figure zip's) beside the exports
    (tmp_path / "results" / "figure" / "manifest.json").write_text(json.dumps({"figure": "metric-vs-sparsity"}))
    assert [p.name for p in bundles.bundle_files(tmp_path / "results")] == ["runs.jsonl", "runs-2.jsonl"]
    crlf = tmp_path / "crlf" / "split"  # a checkout that turned line ends into CRLF still verifies
    crlf.mkdir(parents=True)
    for path in folder.iterdir():
        (crlf / path.name).write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert import_runs(RunStore(tmp_path / "fresh"), tmp_path / "crlf")["added"] == 2

    real_write, calls = bundles.write_atomic, []

    def killed_at_write(n):
        def write(path, data):
            calls.append(path.name)
            if len(calls) == n:
                raise KeyboardInterrupt
            real_write(path, data)
        calls.clear()
        monkeypatch.setattr(bundles, "write_atomic", write)

    killed_at_write(2)  # the new manifest is written, runs.jsonl is not
    with pytest.raises(KeyboardInterrupt):
        export_runs(source, list(reversed(ids)), folder)  # the same runs, the other way round
    assert calls == ["manifest.json", "runs.jsonl"]
    with pytest.raises(StoreError, match="runs.jsonl does not match") as caught:
        import_runs(RunStore(tmp_path / "other"), tmp_path / "results")
    assert f"export {ids[1]} {ids[0]} --to" in caught.value.fix  # the exact command that mends it
    killed_at_write(2)  # a first export into an empty folder, killed the same way
    with pytest.raises(KeyboardInterrupt):
        export_runs(source, ids, tmp_path / "first")
    with pytest.raises(StoreError, match="lists runs.jsonl, which is not in"):
        bundles.bundle_files(tmp_path / "first")
    monkeypatch.setattr(bundles, "write_atomic", real_write)
    export_runs(source, ids, folder)  # whole again
    assert import_runs(RunStore(tmp_path / "other"), tmp_path / "results")["added"] == 2
    (folder / "manifest.json").write_text(json.dumps({**manifest, "parts": [{**manifest["parts"][0],
                                                                             "file": "../x.jsonl"}]}))
    with pytest.raises(StoreError, match="is damaged"):
        bundles.bundle_files(folder)
    (folder / "manifest.json").write_text("{truncated")
    with pytest.raises(StoreError, match="is damaged"):
        bundles.bundle_files(folder)


def test_an_export_without_a_manifest_reads_its_parts_in_number_order(tmp_path):
    from analysis.store import bundles

    for name in ("runs.jsonl", "runs-10.jsonl", "runs-9.jsonl", "runs-2.jsonl", "runs-old.jsonl", "runs-1.jsonl"):
        (tmp_path / name).write_text("")
    assert [p.name for p in bundles.bundle_files(tmp_path)] == ["runs.jsonl", "runs-2.jsonl", "runs-9.jsonl",
                                                                "runs-10.jsonl"]
