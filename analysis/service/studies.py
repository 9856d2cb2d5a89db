"""Study views: the rows of a pruning study with their dense reference and knowledge floor."""

from analysis.reports.tables import floor_run, prune_rows, teacher_metric  # noqa: F401
from analysis.studies import child_tuning_study, data_scale

# a study's rows and summary so far, by the page topic that shows it
study_inputs = {"scale": data_scale.study_inputs, "child-tuning": child_tuning_study.study_inputs}
