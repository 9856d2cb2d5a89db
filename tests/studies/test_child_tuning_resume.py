"""A Child-Tuning study resumed in another store from `export --partial`: its finished members (weights not
exported) are served from the import, their transfer results from the `transfer.json` each source member got as it
finished, and only the missing member trains."""

import pytest

from analysis.core.config import FinetuneConfig
from analysis.core.errors import PruneScopeError
from analysis.runs import executors
from analysis.runs import experiment as jobs
from analysis.service.runs import finished_so_far
from analysis.store.bundles import export_runs, import_runs
from analysis.store.index import RunStore
from analysis.studies.child_tuning_study import ChildTuningStudyConfig


def test_a_study_resumes_in_a_fresh_store_from_its_partial_export(tiny_models, sentiment_files, tmp_path,
                                                                   monkeypatch):
    train, evaluation = sentiment_files
    base = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 8})
    cfg = ChildTuningStudyConfig(finetune=base, tasks=(str(train),), seeds=(0, 1), p_f=(0.3,), p_d=(0.3,),
                                 transfer_from=str(train), transfer_to=("mr",), transfer_eval_size=40)
    real_execute = executors.execute

    def dies_on_one_member(kind, config, *args, **kwargs):
        if config.method == "child-d" and config.seed == 1:
            raise RuntimeError("this machine went away")
        return real_execute(kind, config, *args, **kwargs)

    monkeypatch.setattr(executors, "execute", dies_on_one_member)
    with pytest.raises(executors.MembersFailed, match="this machine went away"):
        jobs.execute("study-child-tuning", cfg)
    first = RunStore()
    study = first.require(jobs.run_id("study-child-tuning", cfg))
    assert study.status == "failed"
    members = finished_so_far(first, [study.run_id])
    assert len(members) == 5 and study.run_id not in members  # 2 seeds x 3 arms, less the one that died
    for rid in members:  # each transfer source was evaluated as it finished, while its weights were here
        assert any(key.startswith("mr:40:") for key in first.load_artifact_json(rid, "transfer"))
    with pytest.raises(PruneScopeError, match="--partial"):
        export_runs(first, [study.run_id], tmp_path / "whole")  # a study not finished exports only with --partial
    export_runs(first, members, tmp_path / "wip")

    monkeypatch.setattr(executors, "execute", real_execute)
    monkeypatch.setenv("PRUNESCOPE_STORE", str(tmp_path / "elsewhere"))
    assert import_runs(RunStore(), tmp_path / "wip")["added"] == 5
    assert not any((RunStore().require(rid).path / "model").exists() for rid in members)  # no weights came along
    trained = []
    monkeypatch.setattr(executors, "execute", lambda kind, config, *a, **k: trained.append(config.method) or
                        real_execute(kind, config, *a, **k))
    again = jobs.execute("study-child-tuning", cfg).record
    assert again.status == "done", again.error
    assert again.run_id == study.run_id and trained == ["child-d"]  # only the member that had died trains
    transfer = RunStore().load_artifact_json(again.run_id, "summary")["transfer"]
    assert len(transfer) == 6 and all(0 <= row["value"] <= 1 for row in transfer)


def test_a_partial_export_of_a_study_with_nothing_finished_says_so(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    base = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 8})
    cfg = ChildTuningStudyConfig(finetune=base, tasks=(str(train),), seeds=(0,), p_f=(0.3,), p_d=(0.3,),
                                 transfer_from=None)
    store = RunStore()
    rid = jobs.run_id("study-child-tuning", cfg)
    store.claim(rid, "study-child-tuning", cfg.to_dict(), jobs.EXPERIMENTS.get("study-child-tuning")().describe(cfg))
    with pytest.raises(PruneScopeError, match="finished no member run yet"):
        finished_so_far(store, [rid])
