"""Study views: the rows of a pruning study with their dense reference and knowledge floor; a study's rows and
summary so far; a Child-Tuning study's choice of lr and p per arm."""

from analysis.reports.tables import floor_run, prune_rows, teacher_metric  # noqa: F401
from analysis.studies import child_tuning_study, data_scale

# a study's rows and summary so far, by the page topic that shows it
study_inputs = {"scale": data_scale.study_inputs, "child-tuning": child_tuning_study.study_inputs}
selection_inputs = child_tuning_study.selection_inputs
