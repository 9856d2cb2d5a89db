"""Studies: one config -> many runs (pruning sweep, data-scale study, Child-Tuning comparison)."""

from . import pruning_sweep  # noqa: F401  (registers the study)
