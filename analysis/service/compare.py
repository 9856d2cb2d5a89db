"""Models side by side: which runs compare, paired tests of their predictions, flipped examples, config diffs."""

from analysis.reports.compare import (  # noqa: F401
                                      comparable_runs,
                                      compare_runs,
                                      config_diff,
                                      dev_texts,
                                      flipped_examples,
)
from analysis.store.labels import run_label, run_labels  # noqa: F401
