"""Studies: one config -> many runs (pruning sweep, data-scale study, Child-Tuning comparison, the quick tour).
Each registers itself as an experiment kind; the EXPERIMENTS registry finds them here."""
