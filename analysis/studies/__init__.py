"""Studies: one config -> many runs (pruning sweep, data-scale study, Child-Tuning comparison)."""

from analysis.studies import (
    child_tuning_study,  # noqa: F401
    data_scale,  # noqa: F401
    pruning_sweep,  # noqa: F401  (each registers its study)
)
