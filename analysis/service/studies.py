"""Study views: the rows of a pruning study with their dense reference and knowledge floor."""

from analysis.reports.tables import floor_run, prune_rows, teacher_metric  # noqa: F401
