"""The CLI as a user runs it: a subprocess, --json's last line, exit code 2 for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, store: Path) -> tuple[int, dict, str]:
    env = {**os.environ, "PRUNESCOPE_STORE": str(store), "PRUNESCOPE_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "analysis", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    return proc.returncode, json.loads(last), proc.stderr


def stored_runs(store: Path) -> list:
    return [p.name for p in store.iterdir() if p.is_dir() and p.name != "cache"] if store.exists() else []


def test_finetune_json_then_cached(tiny_models, sentiment_files, private_store):
    train, evaluation = sentiment_files
    args = ("finetune", "--model", str(tiny_models["bert"]), "--dataset", str(train), "--eval-file",
            str(evaluation), "--epochs", "1", "--batch-size", "16", "--seed", "0", "--no-save-weights")
    code, out, _ = cli(*args, store=private_store)
    assert code == 0 and out["status"] == "done" and not out["cached"] and "accuracy" in out["metrics"]
    code, again, _ = cli(*args, store=private_store)
    assert code == 0 and again["cached"] and again["run_id"] == out["run_id"]
    code, listing, _ = cli("runs", store=private_store)
    assert [r["run_id"] for r in listing["runs"]] == [out["run_id"]]
    code, shown, _ = cli("show", out["run_id"], store=private_store)
    assert shown["config"]["seed"] == 0 and shown["versions"]["torch"] and "predictions.safetensors" in shown["artefacts"]


@pytest.mark.parametrize("args, message", [
    (("--dataset", "nope"), "unknown dataset 'nope'"),
    (("--lr=-1e-4",), "learning rate must be positive"),
    (("--lr", "-1e-4"), "bad command line"),
    (("--dataset", "rte", "--train-size", "99999"), "larger than the rte/train split"),
    (("--model", "/definitely/not/here"), "does not exist"),
    (("--method", "magic"), "unknown fine-tuning method 'magic'"),
    (("--max-length", "600"), "max_length=600 is longer than 'default' accepts (512)"),
])
def test_bad_input_exits_2_and_writes_nothing(args, message, private_store):
    code, out, err = cli("finetune", *args, store=private_store)
    assert code == 2 and out["status"] == "error" and message in out["error"]
    assert "Fix:" in out["error"] and message in err
    assert stored_runs(private_store) == []


def test_missing_column_exits_2(tmp_path, private_store):
    f = tmp_path / "d.csv"
    f.write_text("sentence,y\na,0\nb,1\n")
    code, out, _ = cli("finetune", "--dataset", str(f), "--eval-file", str(f), "--text-columns", "text",
                       "--label-column", "y", store=private_store)
    assert code == 2 and "column(s) ['text'] not found" in out["error"]
    assert stored_runs(private_store) == []


def test_pickle_checkpoint_exits_2(tmp_path, private_store):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    code, out, _ = cli("finetune", "--model", str(tmp_path), store=private_store)
    assert code == 2 and "safetensors only" in out["error"]


def test_config_file_with_flag_override(tmp_path, tiny_models, sentiment_files, private_store):
    train, evaluation = sentiment_files
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {tiny_models['bert']}\ndata:\n  dataset: {train}\n  eval_file: {evaluation}\n"
                   "train:\n  epochs: 3\n  batch_size: 16\nseed: 4\n")
    code, out, _ = cli("finetune", "--config", str(cfg), "--epochs", "1", "--no-save-weights", store=private_store)
    assert code == 0
    code, shown, _ = cli("show", out["run_id"], store=private_store)
    assert shown["config"]["train"]["epochs"] == 1.0 and shown["config"]["seed"] == 4


def test_the_runs_listing_shows_where_running_work_stands_and_says_when_a_filter_matches_nothing():
    from analysis.cli.commands import describe_runs

    base = {"method": "vanilla", "dataset": "sst2", "seed": 0, "metrics": {}}
    rows = [{**base, "run_id": "a" * 16, "kind": "finetune", "status": "running", "progress": 0.25,
             "message": "epoch 1, loss 0.5 · about 30 min left"},
            {**base, "run_id": "b" * 16, "kind": "study-child-tuning", "status": "running", "progress": 0.5,
             "message": "select stsb (4/8)"},
            {**base, "run_id": "c" * 16, "kind": "finetune", "status": "done", "metrics": {"accuracy": 0.9}}]
    text = describe_runs({"runs": rows}).splitlines()
    assert text[1].endswith("25% · epoch 1, loss 0.5 · about 30 min left")
    assert text[2].endswith("50% · select stsb (4/8)")
    assert text[3].endswith("accuracy=0.9000") and len({line.index(" running") for line in text[1:3]}) == 1
    assert describe_runs({"runs": [], "filters": {"status": "running", "kind": None}}) == "no runs with status running"
    assert describe_runs({"runs": [], "filters": {"status": None, "kind": None}}) == "the store is empty"


def test_a_run_reports_its_time_left_from_the_pace_it_sees_itself(monkeypatch):
    from analysis.runs import experiment

    beats = []

    class Store:
        def heartbeat(self, run_id, progress, message):
            beats.append((round(progress, 2), message))

    clock = [1000.0]
    monkeypatch.setattr(experiment.time, "monotonic", lambda: clock[0])
    ctx = experiment.RunContext.__new__(experiment.RunContext)
    ctx.store, ctx.run_id, ctx.callback, ctx.heartbeat_every, ctx._last_beat, ctx._pace_from = \
        Store(), "r", None, 2.0, 0.0, None
    ctx.progress(30, 100, "epoch 1")  # resumed at 30%: the pace starts here
    clock[0] += 60
    ctx.progress(40, 100, "epoch 1")  # 10 steps a minute
    clock[0] += 10
    ctx.progress(5, 10, "stage two (5/10)")  # a new count: no estimate until its own pace is seen
    assert beats == [(0.3, "epoch 1"), (0.4, "epoch 1 · about 6 min left"), (0.5, "stage two (5/10)")]
