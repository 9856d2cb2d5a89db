"""Executors: a tiny pruning sweep run with --executor local and --executor ray (a local Ray cluster) stores
the same runs with the same metrics; a rerun submits nothing; a failing member is recorded as failed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.cli.base import main
from analysis.store.index import RunStore


def sweep_args(tiny_models, sentiment_files, *extra: str) -> list[str]:
    train, evaluation = sentiment_files
    return ["sweep", "pruning", "--model", str(tiny_models["bert"]), "--dataset", str(train),
            "--eval-file", str(evaluation), "--epochs", "1", "--batch-size", "16", "--json", *extra]


def run_cli(args: list[str], store: Path, monkeypatch, capsys) -> tuple[int, dict]:
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store))
    code = main(args)
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def ray_processes() -> int:
    """Ray's own daemons (raylet, gcs_server) running on this machine."""
    count = 0
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        count += Path(cmd.decode(errors="replace")).name in ("raylet", "gcs_server")
    return count


def wait_for_no_more_than(limit: int, seconds: float = 15.0) -> int:
    deadline = time.monotonic() + seconds
    while ray_processes() > limit and time.monotonic() < deadline:
        time.sleep(0.5)
    return ray_processes()


def test_ray_sweep_stores_what_the_local_sweep_stores(tiny_models, sentiment_files, tmp_path, monkeypatch, capsys):
    """8 tiny pruning runs (+ their teacher) and 4 that fail, through each executor; then a rerun from the store."""
    import ray

    config = tmp_path / "sweep.yaml"  # gradual-magnitude is given a mask file that does not exist: its runs fail
    config.write_text(f"method_options:\n  gradual-magnitude:\n    masks: {tmp_path / 'missing.safetensors'}\n")
    grid = ["--sparsities", "0.5,0.9", "--seeds", "0,1"]
    args = sweep_args(tiny_models, sentiment_files, "--config", str(config),
                      "--methods", "gradual-magnitude,sparsebert,random", *grid)
    local_store, ray_store = tmp_path / "local", tmp_path / "ray"
    before = ray_processes()

    started = time.monotonic()
    code, local = run_cli(args + ["--executor", "local"], local_store, monkeypatch, capsys)
    seconds = {"local": time.monotonic() - started}
    started = time.monotonic()
    code_ray, remote = run_cli(args + ["--executor", "ray", "--ray-num-cpus", "1"], ray_store, monkeypatch, capsys)
    seconds["ray"] = time.monotonic() - started
    assert not ray.is_initialized() and wait_for_no_more_than(before) <= before  # the local cluster is gone

    # each executor went on past the failing runs, recorded them failed, and failed the study at the end
    for code, out in ((code, local), (code_ray, remote)):
        assert code == 2 and "4 of 12 runs failed" in out["error"] and "missing.safetensors" in out["error"], out
    a, b = RunStore(local_store), RunStore(ray_store)
    rows_a, rows_b = ({r["run_id"]: r for r in s.list()} for s in (a, b))
    assert rows_a.keys() == rows_b.keys() and len(rows_a) == 14  # 12 members, the teacher, the sweep
    assert {k: r["status"] for k, r in rows_a.items()} == {k: r["status"] for k, r in rows_b.items()}
    failed = [r for r in rows_b.values() if r["status"] == "failed" and r["kind"] == "prune"]
    assert len(failed) == 4 and all(r["method"] == "gradual-magnitude" for r in failed)
    assert all("mask file" in r["error"] and "does not exist" in r["error"] for r in failed)

    # the same member and teacher runs: the same metrics, sparsities, predictions, files and logs
    done = [rid for rid, r in rows_a.items() if r["kind"] == "prune" and r["status"] == "done"]
    assert len(done) == 8
    for rid in done:
        mine, theirs = a.require(rid), b.require(rid)
        assert mine.metrics.keys() == theirs.metrics.keys()
        for key, value in mine.metrics.items():
            assert theirs.metrics[key] == pytest.approx(value, abs=1e-6), key
        assert theirs.summary["encoder_sparsity"] == pytest.approx(mine.summary["encoder_sparsity"])
        assert theirs.summary["teacher"] == mine.summary["teacher"]
        np.testing.assert_allclose(b.load_arrays(rid, "predictions")["outputs"],
                                   a.load_arrays(rid, "predictions")["outputs"], atol=1e-5)
        # everything the worker wrote came back: artefacts, the metrics log, the weights, the worker's record
        assert b.artefacts(rid) == a.artefacts(rid)
        assert len(b.read_metrics(rid)) == len(a.read_metrics(rid)) > 0
        assert (theirs.path / "model" / "model.safetensors").is_file()
        assert b.record(rid)["executor"]["name"] == "ray"
    assert a.check() == [] and b.check() == []  # the integrity check: index, folders, records, no temp files
    teacher = b.require(next(b.require(rid).summary["teacher"] for rid in done if rows_b[rid]["method"] == "sparsebert"))
    assert teacher.status == "done" and (teacher.path / "model").is_dir()

    # a sweep of the finished runs finds every member in the store: nothing submitted, no cluster started
    args = sweep_args(tiny_models, sentiment_files, "--methods", "sparsebert,random", *grid)
    code, again = run_cli(args + ["--executor", "ray"], ray_store, monkeypatch, capsys)
    assert code == 0, again
    assert again["executor"] == {"name": "ray", "members": 8, "served": 8, "submitted": 0, "prerequisites": 0,
                                 "failed": 0}
    assert sorted(r["run_id"] for r in again["table"]) == sorted(done)
    assert not ray.is_initialized()
    print("sweep seconds:", {k: round(v, 1) for k, v in seconds.items()})


def test_a_packed_run_written_back_keeps_its_files_and_status(tiny_models, sentiment_files, tmp_path):
    """The driver's write-back: a run finished elsewhere lands with its files; a failed one stays failed."""
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs
    from analysis.runs.transfer import pack_run, write_back

    train, evaluation = sentiment_files
    config = FinetuneConfig.from_dict({"model": {"model": str(tiny_models["bert"])}, "train": {"epochs": 1},
                                       "data": {"dataset": str(train), "eval_file": str(evaluation)}})
    source, target = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    rid = jobs.execute("finetune", config, source).record.run_id
    source.claim("0123456789abcdef", "finetune", config.to_dict(), {"method": "vanilla"})
    source.append_metrics("0123456789abcdef", {"step": 1, "loss": 0.5})
    source.fail("0123456789abcdef", "RuntimeError: out of memory")

    assert write_back(target, pack_run(source, rid), claimed=False)
    assert not write_back(target, pack_run(source, rid), claimed=False)  # already done: left alone
    assert target.require(rid).status == "done" and target.require(rid).metrics == source.require(rid).metrics
    files = sorted(p.relative_to(source.run_dir(rid)) for p in source.run_dir(rid).rglob("*") if p.is_file())
    assert sorted(p.relative_to(target.run_dir(rid)) for p in target.run_dir(rid).rglob("*") if p.is_file()) == files
    assert write_back(target, pack_run(source, "0123456789abcdef"), claimed=False)
    failed = target.require("0123456789abcdef")
    assert failed.status == "failed" and "out of memory" in failed.error
    assert target.read_metrics("0123456789abcdef") == [{"step": 1, "loss": 0.5}]


def test_executor_flags_are_checked(tiny_models, sentiment_files, tmp_path, monkeypatch, capsys):
    args = sweep_args(tiny_models, sentiment_files, "--methods", "random", "--sparsities", "0.5")
    code, out = run_cli(args + ["--executor", "local", "--ray-num-gpus", "1"], tmp_path / "runs", monkeypatch, capsys)
    assert code == 2 and "--ray-num-gpus" in out["error"] and "--executor local" in out["error"]
    code, out = run_cli(args + ["--executor", "ray", "--workers", "2"], tmp_path / "runs", monkeypatch, capsys)
    assert code == 2 and "--workers" in out["error"]
    code, out = run_cli(args + ["--workers", "0"], tmp_path / "runs", monkeypatch, capsys)
    assert code == 2 and "at least 1" in out["error"]


def test_a_local_pool_of_two_processes_stores_what_one_process_stores(tiny_models, sentiment_files, tmp_path,
                                                                      monkeypatch, capsys):
    args = sweep_args(tiny_models, sentiment_files, "--methods", "random", "--sparsities", "0.5", "--seeds", "0,1")
    code, one = run_cli(args, tmp_path / "one", monkeypatch, capsys)
    assert code == 0, one
    code, two = run_cli(args + ["--workers", "2"], tmp_path / "two", monkeypatch, capsys)
    assert code == 0, two
    assert two["executor"]["submitted"] == 2 and two["table"][0]["run_id"] == one["table"][0]["run_id"]
    a, b = RunStore(tmp_path / "one"), RunStore(tmp_path / "two")
    for row in one["table"]:
        assert b.require(row["run_id"]).metrics == pytest.approx(a.require(row["run_id"]).metrics, abs=1e-6)
        assert b.require(row["run_id"]).row["pid"] != a.require(row["run_id"]).row["pid"]  # ran in a pool process


def test_a_task_continues_a_stopped_member_from_the_checkpoint_the_driver_sends(tiny_models, sentiment_files,
                                                                                tmp_path, monkeypatch):
    """The task function itself (run here, as a Ray worker runs it): a member that failed mid-training in the
    driver's store is shipped with its checkpoint; the task resumes it and the write-back equals a clean run."""
    from safetensors.torch import load_file

    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs
    from analysis.runs.ray_executor import run_member_task
    from analysis.runs.transfer import pack_run, resumable, write_back
    from analysis.training import checkpoint

    monkeypatch.setattr(checkpoint, "EPOCH_MIN_SECONDS", 0.0)  # tiny epochs: checkpoint at every boundary
    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_dict({"model": {"model": str(tiny_models["bert"])}, "seed": 1,
                                    "data": {"dataset": str(train), "eval_file": str(evaluation)},
                                    "train": {"epochs": 3, "batch_size": 8, "checkpoint_every": 4}})
    reference = RunStore(tmp_path / "reference")
    rid = jobs.execute("finetune", cfg, reference).record.run_id

    def crash(done: int, total: int, message: str) -> None:
        if done == 10:
            raise RuntimeError("the node went away at step 10")

    store = RunStore(tmp_path / "driver")
    with pytest.raises(RuntimeError):
        jobs.execute("finetune", cfg, store, progress=crash)
    assert resumable(store, rid)
    packed = pack_run(store, rid)
    assert store.claim(rid, "finetune", cfg.to_dict(), {"method": "vanilla"})  # as the driver does when submitting
    result = run_member_task("finetune", cfg, rid, True, "cpu", False, packed)
    assert result["status"] == "done" and [r["run_id"] for r in result["runs"]] == [rid]
    assert write_back(store, result["runs"][0], claimed=True)
    rec = store.require(rid)
    assert rec.status == "done" and store.record(rid)["resumed_from"]["step"] == 8
    assert not (rec.path / "checkpoints").exists()  # the old attempt's checkpoint is gone with it
    assert rec.metrics == reference.require(rid).metrics
    ours, theirs = (load_file(str(s.run_dir(rid) / "model" / "model.safetensors")) for s in (store, reference))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_scratch_folders_of_killed_tasks_are_removed_by_the_next_task(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    from analysis.runs.ray_executor import SCRATCH_PREFIX, remove_orphaned_scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan, mine = tmp_path / f"{SCRATCH_PREFIX}{gone.pid}-abc", tmp_path / f"{SCRATCH_PREFIX}{__import__('os').getpid()}-x"
    for folder in (orphan, mine):
        (folder / "runs").mkdir(parents=True)
    remove_orphaned_scratch()
    assert not orphan.exists() and mine.exists()
