"""Models side by side: which runs compare, paired tests of their predictions, flipped examples, config diffs."""

from analysis.reports.compare import (comparable_runs, compare_runs, config_diff, dev_texts,  # noqa: F401
                                      flipped_examples, run_label)
