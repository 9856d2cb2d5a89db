"""`evaluate`: stored models on a user's file with paired tests; repeated from the store; wrong labels refused."""

import json

import pytest

from analysis.cli.base import main
from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError, DataError
from analysis.reports.evaluation import EvalData, evaluate_run
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore


@pytest.fixture
def two_runs(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    ids = []
    for seed in (0, 1):
        cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train), "seed": seed,
                                            "eval_file": str(evaluation), "epochs": 2, "batch_size": 8, "lr": 1e-3})
        ids.append(jobs.execute("finetune", cfg).record.run_id)
    return ids


def test_two_models_on_a_user_csv_then_again_from_the_store(two_runs, tmp_path, capsys):
    held = tmp_path / "held-out.csv"
    held.write_text("review,sentiment\n" + "".join(f'"{t}",{y}\n' for t, y in [
        ("a great story", 1), ("so dull", 0), ("i loved the acting", 1), ("awful and boring", 0),
        ("wonderful film", 1), ("weak and bad", 0)] * 3), encoding="utf-8")
    argv = ["evaluate", ",".join(two_runs), "--eval-file", str(held), "--text-columns", "review",
            "--label-column", "sentiment", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["run_id"] for r in first["runs"]] == two_runs and all(r["examples"] == 18 for r in first["runs"])
    assert all(0 <= r["metrics"]["accuracy"] <= 1 and not r["cached"] for r in first["runs"])
    pair = first["pairs"][0]
    assert pair["a"] == two_runs[0] and pair["ci_low"] <= pair["diff"] <= pair["ci_high"]
    assert 0 <= pair["mcnemar_p_exact"] <= 1
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(r["cached"] for r in again["runs"])
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in first["runs"]]
    assert any(name.startswith("eval-") for name in RunStore().artefacts(two_runs[0]))


def test_a_file_whose_labels_are_not_the_models_is_refused(two_runs, tmp_path):
    bad = tmp_path / "three-way.csv"
    bad.write_text("text,label\nfine,0\ngreat,1\nmeh,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="outside the label set"):
        evaluate_run(RunStore(), two_runs[0], EvalData(eval_file=str(bad)))
    with pytest.raises(ConfigError, match="exactly one of"):
        evaluate_run(RunStore(), two_runs[0], EvalData())
    with pytest.raises(ConfigError, match="name a file's columns"):  # given, so honoured or refused: refused here
        evaluate_run(RunStore(), two_runs[0], EvalData(dataset="sst2", label_column="label"))
    missing = tmp_path / "cols.csv"
    missing.write_text("body,label\nfine,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="not found"):
        evaluate_run(RunStore(), two_runs[0], EvalData(eval_file=str(missing)))


def test_a_registered_dataset_with_another_label_set_is_refused(two_runs):
    with pytest.raises(ConfigError, match="the model of run .* predicts \\['0', '1'\\]"):
        evaluate_run(RunStore(), two_runs[0], EvalData(dataset="stsb"))
