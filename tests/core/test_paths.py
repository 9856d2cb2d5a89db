"""Path confinement: run ids, artefact and export names, imported bundles and queued launches stay inside the
data root, the store and the explicitly allowed folders (`..`, absolute paths and escaping symlinks refused)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from analysis.core import paths
from analysis.core.config import FinetuneConfig
from analysis.core.errors import StoreError
from analysis.core.paths import PathError, check_run_id, child, confine, confine_config
from analysis.figures.export import write_files
from analysis.runs.queue import JobQueue
from analysis.store.bundles import import_runs
from analysis.store.index import RunStore

RID = "0123456789abcdef"


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """A data root and a store under tmp_path, an outside folder beside them, nothing else allowed."""
    data, store, outside = tmp_path / "data", tmp_path / "store", tmp_path / "outside"
    for folder in (data, store, outside):
        folder.mkdir()
    monkeypatch.setenv("PRUNESCOPE_DATA", str(data))
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store))
    monkeypatch.delenv(paths.ALLOWED_ENV, raising=False)
    return data, store, outside


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "r1", "0123456789ABCDEF", "0123456789abcde", RID + "0",
                                 "0123456789abcde/", "..", "/tmp/x", "0123456789abcdeg", None, 12])
def test_run_ids_must_be_16_hex_digits_before_any_path(bad, tmp_path):
    with pytest.raises(StoreError, match="not a run id"):
        check_run_id(bad)
    with pytest.raises(StoreError):
        RunStore(tmp_path / "s").run_dir(bad)


def test_a_valid_run_id_is_a_folder_of_the_store(tmp_path):
    store = RunStore(tmp_path / "s")
    assert check_run_id(RID) == RID and store.run_dir(RID) == store.root / RID


def test_confine_accepts_paths_inside_a_root_and_names_the_roots_otherwise(roots):
    data, store, outside = roots
    (data / "train.csv").write_text("text,label\n")
    assert confine(data / "train.csv") == (data / "train.csv").resolve()
    assert confine(str(data / "sub" / ".." / "train.csv")) == (data / "train.csv").resolve()
    for bad in (data / ".." / "outside" / "x.csv", outside / "x.csv", Path("/etc/passwd")):
        with pytest.raises(PathError) as info:
            confine(bad, what="dataset")
        message = info.value.message
        assert str(bad) in message and str(data.resolve()) in message and str(store.resolve()) in message
        assert paths.ALLOWED_ENV in message  # how to allow a path explicitly


def test_a_symlink_escaping_the_root_is_refused(roots):
    data, _, outside = roots
    (outside / "secret.csv").write_text("text,label\n")
    (data / "innocent.csv").symlink_to(outside / "secret.csv")
    (data / "linked").symlink_to(outside, target_is_directory=True)
    for path in (data / "innocent.csv", data / "linked" / "secret.csv"):
        with pytest.raises(PathError, match="resolves to"):
            confine(path)
    # a symlink that stays inside the root is fine
    (data / "real.csv").write_text("text,label\n")
    (data / "alias.csv").symlink_to(data / "real.csv")
    assert confine(data / "alias.csv") == (data / "real.csv").resolve()


def test_an_explicitly_allowed_folder_is_accepted(roots, monkeypatch):
    _, _, outside = roots
    with pytest.raises(PathError):
        confine(outside / "x.csv")
    monkeypatch.setenv(paths.ALLOWED_ENV, f"/nonexistent{os.pathsep}{outside}")
    assert confine(outside / "x.csv") == (outside / "x.csv").resolve()


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "a\\b", "/abs"])
def test_child_names_cannot_leave_their_folder(name, tmp_path):
    with pytest.raises(PathError, match="not a plain file name"):
        child(tmp_path, name)


def test_artefact_names_stay_inside_the_run(tmp_path):
    store = RunStore(tmp_path / "s")
    store.claim(RID, "finetune", {}, {})
    for bad in ("../../escape", "../record", "a/b"):
        with pytest.raises(PathError):
            store.save_arrays(RID, bad, {"w": np.zeros(2)})
        with pytest.raises(PathError):
            store.save_artifact_json(RID, bad, {})
        with pytest.raises(PathError):
            store.load_artifact_json(RID, bad)
    assert not list(tmp_path.rglob("escape*")) and store.artefacts(RID) == []


def test_export_file_names_cannot_leave_the_destination(tmp_path):
    with pytest.raises(PathError):
        write_files({"../evil.pdf": b"x"}, tmp_path / "out")
    assert not (tmp_path / "evil.pdf").exists()
    assert [p.name for p in write_files({"fig.pdf": b"%PDF"}, tmp_path / "out")] == ["fig.pdf"]


def _bundle(folder: Path, run_id: str, artefacts: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"run_id": run_id, "kind": "finetune", "row": {"method": "vanilla"}, "history": [],
             "record": {"run_id": run_id, "kind": "finetune", "status": "done", "config": {}},
             "artefacts": artefacts, "arrays": {}}
    (folder / "runs.jsonl").write_text(json.dumps(entry) + "\n")
    return folder


def test_an_imported_bundle_cannot_write_outside_the_store(tmp_path):
    store = RunStore(tmp_path / "s")
    with pytest.raises(StoreError, match="line 1: run id '../../pwned' is not a run id"):
        import_runs(store, _bundle(tmp_path / "b1", "../../pwned", {}))
    with pytest.raises(PathError, match="artefact name"):
        import_runs(store, _bundle(tmp_path / "b2", RID, {"../../../pwned.json": {}}))
    assert not list(tmp_path.rglob("pwned*")) and store.list() == []
    assert import_runs(store, _bundle(tmp_path / "b3", RID, {"table.json": [1]}))["added"] == 1
    assert store.check() == []


def test_config_paths_finds_every_file_a_config_names(roots):
    data, _, outside = roots
    cfg = FinetuneConfig.from_dict({"model": {"model": str(outside / "model")},
                                    "data": {"dataset": str(data / "train.csv"), "eval_file": "../dev.csv"},
                                    "options": {"masks": "m.safetensors"}})
    found = dict(paths.config_paths(cfg.to_dict()))
    assert found == {"config.model.model": str(outside / "model"), "config.data.dataset": str(data / "train.csv"),
                     "config.data.eval_file": "../dev.csv", "config.options.masks": "m.safetensors"}
    registered = FinetuneConfig()  # sst2 and the embedded default model are names, not paths
    assert list(paths.config_paths(registered.to_dict())) == []


def test_a_queued_launch_outside_the_roots_is_refused_before_any_file_is_read(roots, sentiment_files):
    data, store_root, _ = roots
    train, evaluation = sentiment_files  # pytest's tmp folder: outside the data root and the store
    cfg = FinetuneConfig.from_dict({"data": {"dataset": str(train), "eval_file": str(evaluation)}})
    store = RunStore(store_root)
    with pytest.raises(PathError) as info:
        JobQueue(store).submit("finetune", cfg)
    assert "config.data.dataset" in info.value.message and str(train) in info.value.message
    with store._db() as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    # the same files copied under the data root are accepted (queued only: no worker started)
    inside = [data / p.name for p in (train, evaluation)]
    for src, dst in zip((train, evaluation), inside):
        dst.write_bytes(src.read_bytes())
    confine_config(cfg.replace(data=cfg.data.replace(dataset=str(inside[0]), eval_file=str(inside[1]))))
