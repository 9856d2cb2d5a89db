"""Studies: one config -> many runs (pruning sweep, data-scale study, Child-Tuning comparison)."""

from analysis.studies import child_tuning_study
from analysis.studies import data_scale
from analysis.studies import pruning_sweep  # noqa: F401  (each registers its study)
