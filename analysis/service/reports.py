"""Measurements of stored runs: CPU latency, and reproducing a run to compare its results with the stored ones."""

from analysis.reports.evaluation import EvalData, evaluate_run, evaluate_runs  # noqa: F401  (any model, any data)
from analysis.reports.latency import LatencyOptions, measure_runs  # noqa: F401
from analysis.reports.reproduce import DEFAULT_TOLERANCE, reproduce  # noqa: F401
