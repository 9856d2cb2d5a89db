"""Summary statistics used by studies and comparisons: mean, std, t intervals, paired differences."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def describe(values: Sequence[float]) -> dict[str, float]:
    """n, mean, sample std and a 95% t interval (the interval is NaN for n < 2)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], dtype=float)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Statistics of a - b over matched pairs (same seed), with a paired t-test p-value."""
    from scipy import stats

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    out = describe(diff.tolist())
    out["p_value"] = float(stats.ttest_rel(a, b).pvalue) if len(diff) > 1 and np.std(diff) > 0 else math.nan
    return out


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
