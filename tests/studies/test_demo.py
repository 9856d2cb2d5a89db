"""The demo study at test size: every part is a real run in the store, found again on a second launch."""

from __future__ import annotations

import json

import pytest

from analysis.cli.base import main
from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.studies.quick_tour import DemoConfig


def tiny_demo(tiny_models, sentiment_files, **changes) -> DemoConfig:
    train, evaluation = sentiment_files
    ft = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                       "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    return DemoConfig(finetune=ft, methods=("sparsebert", "small-dense"), sparsities=(0.5,), probes=("fidelity",),
                      **changes)


def test_the_demo_runs_every_part_and_is_served_from_the_store_the_second_time(tiny_models, sentiment_files):
    config = tiny_demo(tiny_models, sentiment_files)
    seen: list[tuple[int, int, str]] = []
    outcome = jobs.execute("demo", config, progress=lambda d, t, m: seen.append((d, t, m)))
    rec = outcome.record
    store = RunStore()
    assert rec.status == "done" and not outcome.cached
    table = store.load_artifact_json(rec.run_id, "table")
    steps = [row["step"] for row in table]
    heads = "heads" in jobs.EXPERIMENTS
    assert steps == ["finetune", "prune", "prune", "probe", "probe", "probe"] + (["heads"] if heads else [])
    kinds = {store.require(r).kind for r in rec.summary["run_ids"]}
    assert kinds == {"finetune", "prune", "sweep-pruning", "probe"} | ({"heads"} if heads else set())
    assert all(store.require(r).status == "done" for r in rec.summary["run_ids"])
    # the dense fine-tune is the sweep's teacher (one run, not two), and the pruned runs are probed against it
    assert {store.require(r["run_id"]).summary["teacher"] for r in table if r["step"] == "prune"} == {table[0]["run_id"]}
    fidelity = [r for r in table if r["step"] == "probe" and r["target"] != table[0]["run_id"]]
    assert len(fidelity) == 2 and all(0 <= r["teacher_agreement"] <= 1 for r in fidelity)
    assert set(rec.metrics) == {"accuracy", "sparsebert_50", "small-dense_50"}
    assert rec.summary["notes"] == ([] if heads else [rec.summary["notes"][0]])
    # progress went from 0 to the end, in one bar
    fractions = [d / t for d, t, _ in seen]
    assert fractions[0] == 0 and fractions[-1] == 1 and fractions == sorted(fractions)
    assert any("pruning sweep" in m for _, _, m in seen)
    again = jobs.execute("demo", config)
    assert again.cached and again.record.run_id == rec.run_id
    assert len(store.list()) == len(rec.summary["run_ids"]) + 1


def test_demo_config_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown pruning method 'nope'"):
        DemoConfig(methods=("nope",))
    with pytest.raises(ConfigError, match="plain fine-tuning"):
        DemoConfig(finetune=FinetuneConfig(method="child-f"))
    assert DemoConfig().sweep().prune.data.train_size == 2000


def test_demo_command_prints_one_json_line(tiny_models, sentiment_files, capsys):
    config = tiny_demo(tiny_models, sentiment_files)
    ft = config.finetune
    code = main(["demo", "--model", ft.model.model, "--dataset", ft.data.dataset, "--eval-file", ft.data.eval_file,
                 "--epochs", "1", "--batch-size", "16", "--methods", "sparsebert", "--sparsities", "0.5",
                 "--probes", "fidelity", "--no-head-importance", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "done" and [r["step"] for r in out["table"]] == ["finetune", "prune", "probe", "probe"]
