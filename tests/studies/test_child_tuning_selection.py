"""The Child-Tuning study with per-arm selection: every (lr, p) of each arm trained on the training set minus a
held-out share (seed 0), the best held-out score chooses, then the seeds run at the chosen values."""

from analysis.core.config import FinetuneConfig
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.studies.child_tuning_study import ChildTuningStudyConfig, choose


def test_choose_takes_the_best_held_out_score_and_breaks_ties_toward_small_values():
    rows = [{"task": "t", "method": "child-f", "p": p, "lr": lr, "holdout": h}
            for p, lr, h in ((0.2, 1e-4, 0.7), (0.3, 1e-4, 0.8), (0.3, 1e-3, 0.8), (0.4, 1e-3, 0.6))]
    rows += [{"task": "t", "method": "vanilla", "p": None, "lr": lr, "holdout": h} for lr, h in ((1e-4, 0.5), (1e-3, 0.9))]
    assert choose(rows) == {("t", "child-f"): (1e-4, 0.3), ("t", "vanilla"): (1e-3, None)}


def test_a_study_selects_lr_and_p_per_arm_then_runs_its_seeds(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    base = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 8})
    cfg = ChildTuningStudyConfig(finetune=base, tasks=(str(train),), seeds=(1, 2), p_f=(0.2, 0.4), p_d=(0.3,),
                                 transfer_from=None, select_lrs=(1e-4, 1e-3), select_holdout=0.25)
    study = jobs.execute("study-child-tuning", cfg).record
    assert study.status == "done", study.error
    store = RunStore()
    selection = store.load_artifact_json(study.run_id, "selection")
    assert len(selection["candidates"]) == 2 * (1 + 2 + 1)  # two lrs x (vanilla, F at two p, D at one p)
    assert all(c["holdout"] is not None for c in selection["candidates"])
    for cand in selection["candidates"]:
        assert store.require(cand["run_id"]).summary["holdout_examples"] == 12  # a quarter of the 48 rows
    chosen = {c["method"]: (c["lr"], c["p"]) for c in selection["chosen"]}
    assert set(chosen) == {"vanilla", "child-f", "child-d"} and chosen["child-d"][1] == 0.3
    table = store.load_artifact_json(study.run_id, "table")
    assert len(table) == 2 * 3 and {r["seed"] for r in table} == {1, 2}
    for row in table:
        assert (row["lr"], row["p"]) == chosen[row["method"]]
        assert store.require(row["run_id"]).summary["holdout_examples"] == 0  # the seeds train on everything
