"""Measurements of stored runs: CPU latency, and reproducing a run to compare its results with the stored ones."""

from analysis.reports.evaluation import EvalData, evaluate_run, evaluate_runs  # noqa: F401  (any model, any data)
from analysis.reports.latency import LatencyOptions, measure_runs  # noqa: F401
from analysis.reports.reproduce import DEFAULT_TOLERANCE, reproduce  # noqa: F401


def allowed_file(path: str) -> str:
    """A file the dashboard may read: inside the data root, the store, the embedded model or
    $PRUNESCOPE_ALLOWED_PATHS (the same rule as queued configs); else a PathError with the fix."""
    from analysis.core.paths import allowed_roots, confine

    return str(confine(path, allowed_roots(), "evaluation file"))
