"""Models side by side: which runs compare, paired tests of their predictions, flipped examples, config diffs."""

from analysis.reports.compare import comparable_runs, compare_runs, config_diff, dev_texts, flipped_examples  # noqa: F401
from analysis.store.labels import run_label, run_labels  # noqa: F401
