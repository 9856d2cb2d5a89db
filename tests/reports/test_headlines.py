"""Home's one-sentence findings are computed from the stored study tables."""

from analysis.reports.headlines import headlines
from analysis.reports.tables import lr_label


class TableStore:
    """The two store calls headlines make, over in-memory study rows and their `table` artefacts."""

    def __init__(self, studies):
        self.studies = studies

    def list(self, status=None):
        return [row for row, _ in self.studies]

    def load_artifact_json(self, run_id, name):
        assert name == "table"
        return next(table for row, table in self.studies if row["run_id"] == run_id)


def sweep(run_id, values, dataset="stsb"):
    row = {"run_id": run_id, "kind": "sweep-pruning", "dataset": dataset, "label": None}
    table = [{"method": m, "sparsity": s, "seed": seed, "metric": "pearson", "value": v}
             for (m, s), per_seed in values.items() for seed, v in enumerate(per_seed)]
    return row, table


def test_the_pruning_headline_states_sparsebert_against_small_dense_at_each_shared_sparsity():
    values = {("sparsebert", 0.5): [0.80, 0.78], ("small-dense", 0.5): [0.64, 0.64],
              ("sparsebert", 0.9): [0.08, 0.07], ("small-dense", 0.9): [0.10, 0.10], ("magnitude", 0.9): [0.11, 0.10],
              ("random", 0.9): [0.10, None]}
    (found,) = headlines(TableStore([sweep("a", values)]))
    assert found.finding == ("On stsb (pearson, mean of up to 2 seeds), sparsebert minus small-dense at equal "
                             "non-zero encoder weights: +0.150 at 0.5, -0.025 at 0.9; at 0.9 magnitude keeps the "
                             "most: 0.105; 4 methods compared.")
    assert found.runs == 11  # the unfinished member (no value) is not counted


def test_without_both_arms_of_the_claim_the_headline_names_the_best_method_at_the_highest_sparsity():
    (found,) = headlines(TableStore([sweep("b", {("random", 0.8): [0.5], ("magnitude", 0.8): [0.7],
                                                 ("magnitude", 0.5): [0.9]}, dataset="sst2")]))
    assert found.finding == "On sst2 (pearson, mean of up to 1 seed), at 0.8 magnitude keeps the most: 0.700; " \
                            "2 methods compared."


class ChildStore:
    """A finished Child-Tuning study's summary, config and (when it tuned its arms) its selection artefact."""

    def __init__(self, cells, selection=None, holdout=0.2):
        self.cells, self.selection, self.holdout = cells, selection, holdout

    def list(self, status=None):
        return [{"run_id": "c", "kind": "study-child-tuning", "label": None}]

    def artefacts(self, run_id):
        return ["summary.json", "table.json"] + (["selection.json"] if self.selection else [])

    def require(self, run_id):
        from types import SimpleNamespace

        return SimpleNamespace(config={"select_lrs": [2e-5, 1e-4] if self.selection else [],
                                       "select_holdout": self.holdout})

    def load_artifact_json(self, run_id, name):
        return {"summary": {"cells": self.cells}, "selection": self.selection}[name]


def test_the_child_tuning_headline_says_how_each_arm_got_its_lr_and_p():
    cells = [{"task": "stsb", "method": "vanilla", "p": None, "n": 5},
             {"task": "stsb", "method": "child-f", "p": 0.2, "n": 5, "diff_mean": 0.01, "diff_ci_low": 0.002,
              "diff_ci_high": 0.02},
             {"task": "stsb", "method": "child-d", "p": 0.3, "n": 5, "diff_mean": -0.01, "diff_ci_low": -0.03,
              "diff_ci_high": 0.01}]
    chosen = [{"task": "stsb", "method": "vanilla", "lr": 1e-4, "p": None},
              {"task": "stsb", "method": "child-f", "lr": 1e-4, "p": 0.2}]
    (tuned,) = headlines(ChildStore(cells, {"candidates": [], "chosen": chosen}))
    assert tuned.finding == ("Child-Tuning vs vanilla on 1 task(s) (stsb): 1 of 2 method-task cells better with a 95% "
                             "interval above zero, 0 worse, the rest not distinguishable from vanilla. Each arm's lr "
                             "and p were chosen per task on a held-out 20% of the training set (stsb vanilla lr "
                             "1e-4; stsb child-f lr 1e-4 p 0.2).")
    assert tuned.runs == 10
    assert [lr_label(v) for v in (2e-5, 1e-4, 1e-3, 0.01, 3e-3)] == ["2e-5", "1e-4", "0.001", "0.01", "0.003"]
    assert lr_label(float("nan")) == "nan"
    (fixed,) = headlines(ChildStore(cells))
    assert fixed.finding.endswith("the rest not distinguishable from vanilla. One fixed learning rate for every "
                                  "arm, not tuned on held-out data.")
    (unreadable,) = headlines(ChildStore(cells, ["not", "a", "selection"]))
    assert unreadable.finding.endswith("the rest not distinguishable from vanilla.")  # the clause is dropped, no crash


def test_a_study_tuned_on_held_out_data_leads_its_kind_before_a_larger_fixed_lr_one():
    cells = [{"task": "stsb", "method": "vanilla", "p": None, "n": 5},
             {"task": "stsb", "method": "child-f", "p": 0.2, "n": 5, "diff_mean": 0.01, "diff_ci_low": 0.002,
              "diff_ci_high": 0.02}]
    larger = [{**c, "n": 50} for c in cells]

    class TwoStudies(ChildStore):
        def list(self, status=None):
            return [{"run_id": "fixed", "kind": "study-child-tuning", "label": "fixed lr"},
                    {"run_id": "tuned", "kind": "study-child-tuning", "label": "tuned"}]

        def artefacts(self, run_id):
            return ["summary.json", "table.json"] + (["selection.json"] if run_id == "tuned" else [])

        def load_artifact_json(self, run_id, name):
            chosen = [{"task": "stsb", "method": "vanilla", "lr": 1e-4, "p": None}]
            return {"summary": {"cells": cells if run_id == "tuned" else larger},
                    "selection": {"candidates": [], "chosen": chosen}}[name]

    found = headlines(TwoStudies(cells))
    assert [(h.run_id, h.tuned, h.runs) for h in found] == [("tuned", True, 5), ("fixed", False, 50)]
