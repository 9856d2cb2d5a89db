"""`reproduce`: a stored run's config runs again (temporary store, or in place) and its results are compared."""

from __future__ import annotations

import json

import pytest

from analysis.cli.base import main
from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError, StoreError
from analysis.reports.reproduce import reproduce
from analysis.runs import experiment as jobs
from analysis.store.bundles import export_runs, import_runs
from analysis.store.index import RunStore


def tiny_finetune(tiny_models, sentiment_files) -> FinetuneConfig:
    train, evaluation = sentiment_files
    return FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})


def test_a_finished_run_reproduces_exactly_in_a_temporary_store(tiny_models, sentiment_files, capsys):
    rec = jobs.execute("finetune", tiny_finetune(tiny_models, sentiment_files)).record
    before = RunStore().record(rec.run_id)
    out = reproduce(rec.run_id)
    assert out["status"] == "match" and out["reproduced_run_id"] == rec.run_id and out["notes"] == []
    assert out["max_abs_difference"] == 0.0 and out["prediction_agreement"] == 1.0
    assert [m["name"] for m in out["metrics"]] == [f"metrics.{k}" for k in sorted(rec.metrics)]
    assert out["where"] == "a temporary store (deleted)"
    assert RunStore().record(rec.run_id) == before and len(RunStore().list()) == 1  # the store is untouched
    # the command prints one JSON line
    assert main(["reproduce", rec.run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "match"


def test_changed_stored_metrics_are_reported_as_a_mismatch(tiny_models, sentiment_files):
    store = RunStore()
    rec = jobs.execute("finetune", tiny_finetune(tiny_models, sentiment_files)).record
    store.finish(rec.run_id, {**rec.metrics, "accuracy": rec.metrics["accuracy"] - 0.25}, rec.summary, {})
    out = reproduce(rec.run_id, tolerance=0.01)
    assert out["status"] == "mismatch"
    assert [d["name"] for d in out["differences"]] == ["metrics.accuracy"]
    assert out["differences"][0]["difference"] == pytest.approx(0.25)


def test_an_imported_run_without_weights_reproduces_and_in_place_gets_its_weights(
        tiny_models, sentiment_files, tmp_path, monkeypatch):
    rec = jobs.execute("finetune", tiny_finetune(tiny_models, sentiment_files)).record
    export_runs(RunStore(), [rec.run_id], tmp_path / "results" / "one")
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("PRUNESCOPE_STORE", str(fresh))
    store = RunStore()
    import_runs(store, tmp_path / "results")
    assert not (store.run_dir(rec.run_id) / "model").exists()
    out = reproduce(rec.run_id)
    assert out["status"] == "match" and out["prediction_agreement"] == 1.0
    assert not (store.run_dir(rec.run_id) / "model").exists()
    out = reproduce(rec.run_id, in_place=True)
    assert out["status"] == "match" and out["where"].startswith("in place")
    assert (store.run_dir(rec.run_id) / "model").is_dir()
    with pytest.raises(ConfigError, match="leave out --in-place"):
        reproduce(rec.run_id, in_place=True)


def test_a_probe_run_brings_its_target_and_teacher_along(tiny_models, sentiment_files, tmp_path):
    from analysis.methods.pruning import PruneConfig
    from analysis.runs.probe import ProbeConfig

    train, evaluation = sentiment_files
    prune = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train), "sparsity": 0.5,
                                       "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    pruned = jobs.execute("prune", prune).record
    probe = jobs.execute("probe", ProbeConfig(target=pruned.run_id, probes=("fidelity",))).record
    assert "teacher_agreement" in probe.metrics
    out = reproduce(probe.run_id, keep=tmp_path / "kept")
    assert out["status"] == "match" and out["compared"] >= 3  # the metric and the probe's numbers
    kept = RunStore(tmp_path / "kept")
    assert {r["kind"] for r in kept.list()} == {"finetune", "prune", "probe"}


def test_an_unfinished_run_cannot_be_reproduced():
    store = RunStore()
    store.claim("badc0ffee0000001", "finetune", {}, {})
    store.fail("badc0ffee0000001", "RuntimeError: boom")
    with pytest.raises(StoreError, match="no results to compare"):
        reproduce("badc0ffee0000001")
