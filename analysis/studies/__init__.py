"""Studies: one config -> many runs (pruning sweep, data-scale study, Child-Tuning comparison)."""

from . import child_tuning_study, data_scale, pruning_sweep  # noqa: F401  (each registers its study)
