"""Export to results/ and import into an empty store: the same records, metrics and predictions."""

import numpy as np

from analysis.core.config import FinetuneConfig
from analysis.runs import experiment as jobs
from analysis.store.bundles import export_runs, import_runs
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
