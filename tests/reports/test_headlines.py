"""Home's one-sentence findings are computed from the stored study tables."""

from analysis.reports.headlines import headlines


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
