"""Crash safety: checkpoints leave a run's numbers unchanged, and a run killed mid-training (SIGKILL, or an
exception) continues from its last checkpoint to the same metrics and weights as an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from analysis.cli import base as cli
from analysis.core.config import FinetuneConfig, TrainConfig, without_defaults
from analysis.core.errors import StoreError
from analysis.core.settings import PROJECT_ROOT
from analysis.methods.pruning import PruneConfig
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.training import checkpoint


@pytest.fixture(autouse=True)
def every_epoch_checkpoints(monkeypatch):
    """Tiny epochs take milliseconds: checkpoint at every epoch boundary anyway (real runs: at most once a minute)."""
    monkeypatch.setattr(checkpoint, "EPOCH_MIN_SECONDS", 0.0)


class Crash(Exception):
    """Stands for a process dying mid-training."""


def config(kind: str, tiny_models, files, method: str, train: dict[str, Any] | None = None,
           model: dict[str, Any] | None = None, **extra: Any):
    """A tiny run: the tiny BERT on the tiny sentiment task, 3 epochs of 6 steps (nested keys, as in a YAML file)."""
    raw = {"model": model or {"model": str(tiny_models["bert"])},
           "data": {"dataset": str(files[0]), "eval_file": str(files[1])},
           "train": {"epochs": 3, "batch_size": 8, "checkpoint_every": 4, **(train or {})},
           "method": method, "seed": 1, **extra}
    return (FinetuneConfig if kind == "finetune" else PruneConfig).from_dict(raw)


def crash_at(step: int):
    def progress(done: int, total: int, message: str) -> None:
        if done == step:
            raise Crash(f"killed at step {done}")

    return progress


def history(store: RunStore, rid: str) -> list[dict[str, Any]]:
    """metrics.jsonl without the wall-clock times."""
    return [{k: v for k, v in row.items() if k != "time"} for row in store.read_metrics(rid)]


def weights(store: RunStore, rid: str) -> dict[str, torch.Tensor]:
    """Every tensor of the stored model folder (a HF model.safetensors, or the LSTM's lstm.safetensors)."""
    return {k: v for f in sorted((store.run_dir(rid) / "model").glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def assert_same_run(ref: RunStore, got: RunStore, rid: str, atol: float = 0.0) -> None:
    """Same metrics, epoch metrics, loss curve, dev outputs, artefacts and every weight tensor."""
    a, b = ref.require(rid), got.require(rid)
    assert b.status == "done"
    close = (lambda x, y: torch.equal(x, y)) if atol == 0 else (lambda x, y: torch.allclose(x, y, atol=atol, rtol=0))
    for key in a.metrics:
        assert math.isclose(a.metrics[key], b.metrics[key], rel_tol=0, abs_tol=atol), key
    if atol == 0:
        assert a.metrics == b.metrics and a.summary["epoch_metrics"] == b.summary["epoch_metrics"]
        assert history(ref, rid) == history(got, rid)
    wa, wb = weights(ref, rid), weights(got, rid)
    assert wa.keys() == wb.keys() and len(wa) >= 5
    for name in wa:
        assert close(wa[name], wb[name]), name
    for name in ref.artefacts(rid):
        if name.endswith(".safetensors"):
            xa, xb = (s.load_arrays(rid, name[: -len(".safetensors")]) for s in (ref, got))
            assert all(close(torch.from_numpy(xa[k]), torch.from_numpy(xb[k])) for k in xa), name
    for name in ("weight_change", "mask_schedule", "sparsity"):
        if f"{name}.json" in ref.artefacts(rid) and atol == 0:
            assert ref.load_artifact_json(rid, name) == got.load_artifact_json(rid, name), name


def crash_and_resume(kind: str, cfg: Any, tmp_path: Path, seed: int, atol: float = 0.0) -> dict[str, Any]:
    """Run `cfg` uninterrupted, then crash it at a random step after a checkpoint and run it again."""
    ref = RunStore(tmp_path / "reference")
    rid = jobs.execute(kind, cfg, ref).record.run_id
    steps, every = ref.require(rid).summary["steps"], cfg.train.checkpoint_every
    step = random.Random(seed).choice([s for s in range(every + 1, steps) if s % every])
    store = RunStore(tmp_path / "crashed")
    with pytest.raises(Crash):
        jobs.execute(kind, cfg, store, progress=crash_at(step))
    assert store.require(rid).status == "failed"
    saved = checkpoint.latest(store.run_dir(rid) / "checkpoints")
    assert saved is not None and step // every * every <= saved.step < step  # (epoch boundaries save too)
    outcome = jobs.execute(kind, cfg, store)  # the path every study runner takes: continues from the checkpoint
    assert outcome.resumed and not outcome.cached
    assert store.record(rid)["resumed_from"]["step"] == saved.step
    assert not (store.run_dir(rid) / "checkpoints").exists()  # a finished run keeps no checkpoint
    assert_same_run(ref, store, rid, atol)
    return {"rid": rid, "crashed_at": step, "resumed_from": saved.step}


def test_checkpointing_leaves_the_numbers_unchanged(tiny_models, sentiment_files, monkeypatch):
    """Off, at epoch boundaries (the default), and every 3 steps: the same run, bit for bit."""
    assert without_defaults(TrainConfig()) == {}  # the new field keeps every existing run id
    saves = []
    real_save = checkpoint.Checkpointer.save
    monkeypatch.setattr(checkpoint.Checkpointer, "save", lambda self, p: saves.append(self.state.step) or real_save(self, p))
    store = RunStore()
    runs = {every: jobs.execute("finetune", config("finetune", tiny_models, sentiment_files, "child-f",
                                                   {"checkpoint_every": every}), store).record.run_id
            for every in (-1, 0, 3)}
    assert saves == [6, 12] + [3, 6, 6, 9, 12, 12, 15]  # epoch boundaries (not the last), then every 3 steps too
    base = runs[-1]
    for every in (0, 3):
        rid = runs[every]
        assert store.require(rid).metrics == store.require(base).metrics
        assert history(store, rid) == history(store, base)
        wa, wb = weights(store, base), weights(store, rid)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
        assert np.array_equal(store.load_arrays(rid, "predictions")["outputs"],
                              store.load_arrays(base, "predictions")["outputs"])
        assert not (store.run_dir(rid) / "checkpoints").exists()


def test_epoch_checkpoints_are_at_most_one_a_minute(tiny_models, sentiment_files, monkeypatch):
    """Epochs of milliseconds get no epoch-boundary checkpoints; the step ones asked for are all written."""
    monkeypatch.setattr(checkpoint, "EPOCH_MIN_SECONDS", 60.0)
    saves = []
    real_save = checkpoint.Checkpointer.save
    monkeypatch.setattr(checkpoint.Checkpointer, "save", lambda self, p: saves.append(self.state.step) or real_save(self, p))
    jobs.execute("finetune", config("finetune", tiny_models, sentiment_files, "vanilla", {"checkpoint_every": 5}))
    assert saves == [5, 10, 15]


@pytest.mark.parametrize("kind, method, extra, seed", [
    ("finetune", "vanilla", {}, 0),
    ("finetune", "child-f", {"options": {"p": 0.5}}, 1),
    ("finetune", "child-d", {"options": {"p": 0.5}}, 2),
    ("finetune", "vanilla", {"train": {"holdout_fraction": 0.25, "patience": 1, "epochs": 4}}, 3),
    ("finetune", "vanilla", {"model": "lstm", "train": {"fused_optimizer": True, "lr": 2e-3}}, 7),
    ("finetune", "vanilla", {"train": {"lr_schedule": "cosine"}}, 8),
    ("prune", "gradual-magnitude", {"sparsity": 0.5, "options": {"update_every": 2}}, 4),
    ("prune", "movement", {"sparsity": 0.5, "options": {"update_every": 2}}, 5),
])
def test_a_crashed_run_resumes_to_the_uninterrupted_result(kind, method, extra, seed, tiny_models, sentiment_files,
                                                           tmp_path):
    extra = dict(extra)
    if extra.get("model") == "lstm":  # the BiLSTM on the tiny model's vocabulary: lazy AdamW, fused kernels
        extra["model"] = {"model": "lstm", "tokenizer": str(tiny_models["bert"]), "lstm_hidden": 16}
    cfg = config(kind, tiny_models, sentiment_files, method, extra.pop("train", None), **extra)
    crash_and_resume(kind, cfg, tmp_path, seed)


def test_a_distilled_pruning_run_resumes_within_float_tolerance(tiny_models, sentiment_files, tmp_path):
    """sparsebert: the teacher's outputs are recomputed after a resume (not cached), equal up to float noise."""
    cfg = config("prune", tiny_models, sentiment_files, "sparsebert", sparsity=0.5, options={"update_every": 2})
    crash_and_resume("prune", cfg, tmp_path, seed=6, atol=1e-5)


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tiny_models, sentiment_files, tmp_path, monkeypatch):
    """The third checkpoint write dies after its first file: the run fails, the second checkpoint is intact and
    the resumed run ends where the uninterrupted one does."""
    cfg = config("finetune", tiny_models, sentiment_files, "child-f")
    ref = RunStore(tmp_path / "reference")
    rid = jobs.execute("finetune", cfg, ref).record.run_id
    real_write, calls = checkpoint._write_tensors, []

    def dying_write(path: Path, tensors: Any) -> None:
        calls.append(path.name)
        if len(calls) == 6:  # checkpoint 3 (step 8), its second file: half written, then the process "dies"
            path.write_bytes(b"\x00" * 100)
            raise Crash("killed mid-write")
        real_write(path, tensors)

    monkeypatch.setattr(checkpoint, "_write_tensors", dying_write)
    store = RunStore(tmp_path / "crashed")
    with pytest.raises(Crash):
        jobs.execute("finetune", cfg, store)
    folder = store.run_dir(rid) / "checkpoints"
    saved = checkpoint.latest(folder)
    assert saved is not None and saved.step == 6  # steps 4 and 6 were saved; the one at step 8 died
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    monkeypatch.setattr(checkpoint, "_write_tensors", real_write)
    assert jobs.execute("finetune", cfg, store).resumed
    assert_same_run(ref, store, rid)


def test_an_unloadable_checkpoint_fails_once_then_the_run_starts_afresh(tiny_models, sentiment_files):
    store = RunStore()
    cfg = config("finetune", tiny_models, sentiment_files, "vanilla")
    with pytest.raises(Crash):
        jobs.execute("finetune", cfg, store, progress=crash_at(9))
    rid = jobs.run_id("finetune", cfg)
    folder = checkpoint.latest(store.run_dir(rid) / "checkpoints").folder
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")  # disk rot, tampering
    with pytest.raises(checkpoint.CheckpointError, match="cannot be loaded"):
        jobs.execute("finetune", cfg, store)
    assert store.require(rid).status == "failed" and not folder.parent.exists()
    outcome = jobs.execute("finetune", cfg, store)
    assert outcome.record.status == "done" and not outcome.resumed


def test_checkpoint_folders_are_complete_or_ignored(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    first = {"w": torch.arange(6.0).reshape(2, 3)}
    checkpoint.write_checkpoint(root, "a", {"model.safetensors": first, "state.safetensors": {}},
                                {"step": 1, "epoch": 0})

    real_write = checkpoint._write_tensors

    def half(path: Path, tensors: Any) -> None:
        path.write_bytes(b"{\"partial")
        raise Crash("killed")

    monkeypatch.setattr(checkpoint, "_write_tensors", half)
    with pytest.raises(Crash):
        checkpoint.write_checkpoint(root, "b", {"model.safetensors": {"w": torch.ones(2)}}, {"step": 2, "epoch": 0})
    found = checkpoint.latest(root)
    assert found is not None and found.folder.name == "a"
    assert torch.equal(load_file(str(found.folder / "model.safetensors"))["w"], first["w"])
    # what a SIGKILL leaves: a half-written temp folder, even one with a meta.json, and a torn pointer
    torn = root / ".tmp-killed"
    torn.mkdir()
    (torn / "meta.json").write_text('{"step": 9, "epoch": 9}')
    (root / checkpoint.POINTER).write_text('{"na')
    assert checkpoint.latest(root).folder.name == "a"
    monkeypatch.setattr(checkpoint, "_write_tensors", real_write)
    checkpoint.write_checkpoint(root, "c", {"model.safetensors": first, "state.safetensors": {}}, {"step": 3, "epoch": 0})
    assert sorted(p.name for p in root.iterdir()) == ["c", "latest"]


def run_cli(argv: list[str], capsys) -> dict[str, Any]:
    code = cli.main(argv + ["--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out["exit"] = code
    return out


def test_resume_command_explains_what_it_cannot_do(tiny_models, sentiment_files, capsys, monkeypatch):
    store = RunStore()
    assert "no run" in run_cli(["resume", "0123456789abcdef"], capsys)["error"]
    cfg = config("finetune", tiny_models, sentiment_files, "vanilla", {"checkpoint_every": 0})
    with pytest.raises(Crash):  # before the first epoch ends: no checkpoint yet
        jobs.execute("finetune", cfg, store, progress=crash_at(3))
    rid = jobs.run_id("finetune", cfg)
    out = run_cli(["resume", rid], capsys)
    assert out["exit"] == 2 and "no checkpoint" in out["error"] and "from scratch" in out["error"]
    with pytest.raises(Crash):  # after the first epoch's checkpoint
        jobs.execute("finetune", cfg, store, progress=crash_at(9))
    code_version = jobs.CODE_VERSION
    monkeypatch.setattr(jobs, "CODE_VERSION", "another")
    assert "another code version" in run_cli(["resume", rid], capsys)["error"]
    monkeypatch.setattr(jobs, "CODE_VERSION", code_version)  # (not undo(): that would drop the private store too)
    meta_path = checkpoint.latest(store.run_dir(rid) / "checkpoints").folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "identity": {**meta["identity"], "config": {"seed": 99}}}))
    assert "another config" in run_cli(["resume", rid], capsys)["error"]
    meta_path.write_text(json.dumps(meta))
    out = run_cli(["resume", rid], capsys)
    assert out["status"] == "done" and out["resumed"] and out["resumed_from"]["step"] == 6
    assert "already done" in run_cli(["resume", rid], capsys)["error"]


def test_resume_refuses_a_run_that_is_still_alive(tiny_models, sentiment_files):
    store = RunStore()
    cfg = config("finetune", tiny_models, sentiment_files, "vanilla")
    rid = jobs.run_id("finetune", cfg)
    assert store.claim(rid, "finetune", cfg.to_dict(), {})  # this (live) process holds it
    with pytest.raises(StoreError, match="is running"):
        jobs.resume(rid, store)


def test_a_sweep_continues_its_interrupted_member(tiny_models, sentiment_files, tmp_path):
    from analysis.studies.pruning_sweep import PruningSweepConfig

    base = config("prune", tiny_models, sentiment_files, "gradual-magnitude")
    sweep = PruningSweepConfig(prune=base, methods=("gradual-magnitude",), sparsities=(0.5, 0.8), seeds=(1,))
    member = sweep.grid()[1]
    ref = RunStore(tmp_path / "reference")
    rid = jobs.execute("prune", member, ref).record.run_id
    store = RunStore()
    with pytest.raises(Crash):
        jobs.execute("prune", member, store, progress=crash_at(11))
    jobs.execute("sweep-pruning", sweep, store)
    assert store.record(rid)["resumed_from"]["step"] == 8
    assert_same_run(ref, store, rid)


# -- the fault test of issue 8: SIGKILL a real `python -m analysis finetune` process ---------------------


def bigger_task(folder: Path, n: int = 600) -> tuple[Path, Path]:
    """A seeded sentiment-like task big enough for a few seconds of training."""
    rng = random.Random(0)
    good, bad = ["good", "great", "fine", "superb", "moving"], ["bad", "dull", "weak", "awful", "boring"]
    filler = ["the", "film", "was", "a", "story", "and", "acting", "plot", "really", "quite", "not", "very"]
    rows = []
    for _ in range(n + 200):
        label = rng.randint(0, 1)
        words = rng.choices(filler, k=rng.randint(2, 14)) + [rng.choice(good if label else bad)]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{label}\n")
    train, evaluation = folder / "big-train.csv", folder / "big-eval.csv"
    train.write_text("text,label\n" + "".join(rows[:n]))
    evaluation.write_text("text,label\n" + "".join(rows[n:]))
    return train, evaluation


def launch(argv: list[str], store_root: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PRUNESCOPE_STORE": str(store_root), "OMP_NUM_THREADS": "1", "PRUNESCOPE_OFFLINE": "1"}
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "analysis", *argv, "--json"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def last_json(log: Path) -> dict[str, Any]:
    return json.loads(log.read_text().strip().splitlines()[-1])


def logged_step(store: RunStore) -> tuple[str | None, int]:
    rows = store.list()
    if not rows:
        return None, 0
    rid = rows[0]["run_id"]
    steps = [r["step"] for r in store.read_metrics(rid) if "loss" in r]
    return rid, max(steps, default=0)


def test_sigkill_at_a_random_step_then_resume_matches_the_uninterrupted_run(tiny_models, tmp_path, monkeypatch):
    import analysis.store.index as store_module

    train, evaluation = bigger_task(tmp_path)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(json.dumps({  # JSON is YAML
        "model": {"model": str(tiny_models["bert"])}, "data": {"dataset": str(train), "eval_file": str(evaluation)},
        "train": {"epochs": 2, "batch_size": 8, "checkpoint_every": 10}, "seed": 3}))
    argv = ["finetune", "--config", str(yaml_file)]
    total = 2 * math.ceil(600 / 8)
    target = random.Random(8).randint(11, total - 30)  # after the first checkpoint (step 10), well before the end
    timings = {}
    start = time.monotonic()
    reference = launch(argv, tmp_path / "ref-store", tmp_path / "ref.log")  # uninterrupted, alongside
    root = tmp_path / "store"
    victim = launch(argv, root, tmp_path / "victim.log")
    store = RunStore(root)
    rid, reached = None, 0
    while reached < target:
        assert victim.poll() is None and time.monotonic() - start < 90, "the run ended before it could be killed"
        time.sleep(0.02)
        rid, reached = logged_step(store)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    timings["until_kill"] = time.monotonic() - start
    _, reached = logged_step(store)
    saved = checkpoint.latest(store.run_dir(rid) / "checkpoints")
    assert saved is not None and 10 <= saved.step <= reached < total

    # killed: its row still says "running" with a fresh heartbeat, but its process on this machine is gone, so
    # `resume` takes it as interrupted at once (no waiting for the heartbeat to age)
    row = store.require(rid)
    assert row.status == "running" and time.time() - row.row["heartbeat"] < store_module.STALE_SECONDS
    resumer = launch(["resume", rid], root, tmp_path / "resume.log")
    assert resumer.wait(timeout=120) == 0, (tmp_path / "resume.log").read_text()[-2000:]
    timings["until_resumed"] = time.monotonic() - start
    assert reference.wait(timeout=120) == 0, (tmp_path / "ref.log").read_text()[-2000:]
    ref_out, out = last_json(tmp_path / "ref.log"), last_json(tmp_path / "resume.log")
    assert ref_out["run_id"] == rid and ref_out["summary"]["steps"] == total
    assert out["status"] == "done" and out["resumed"] and out["resumed_from"]["step"] == saved.step
    assert out["metrics"] == ref_out["metrics"]
    assert timings["until_resumed"] - timings["until_kill"] < store_module.STALE_SECONDS
    assert_same_run(RunStore(tmp_path / "ref-store"), store, rid)
    import resource

    timings["cpu_of_the_three_processes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    print(json.dumps({"target_step": target, "killed_after_step": reached, "checkpoint_step": saved.step,
                      "total_steps": total, "metrics": out["metrics"], "seconds": timings}))


def test_sigterm_marks_the_run_interrupted_and_keeps_its_checkpoint(tiny_models, tmp_path):
    """`kill PID` (SIGTERM) on a CLI run: the run is marked interrupted at once, not left "running"."""
    train, evaluation = bigger_task(tmp_path)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(json.dumps({
        "model": {"model": str(tiny_models["bert"])}, "data": {"dataset": str(train), "eval_file": str(evaluation)},
        "train": {"epochs": 2, "batch_size": 8, "checkpoint_every": 10}, "seed": 3}))
    root = tmp_path / "store"
    victim = launch(["finetune", "--config", str(yaml_file)], root, tmp_path / "victim.log")
    store, start, (rid, reached) = RunStore(root), time.monotonic(), (None, 0)
    while reached < 15:
        assert victim.poll() is None and time.monotonic() - start < 90, "the run ended before it could be stopped"
        time.sleep(0.02)
        rid, reached = logged_step(store)
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=60) == 130
    assert last_json(tmp_path / "victim.log")["status"] == "interrupted"
    rec = store.require(rid)
    assert rec.status == "interrupted"
    assert checkpoint.latest(store.run_dir(rid) / "checkpoints") is not None
