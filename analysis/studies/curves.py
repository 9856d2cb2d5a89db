"""Learning curves acc(n) = a - b * n^(-c), fitted with their uncertainty, and where two curves meet."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

GRID = np.logspace(1, 12, 2000)  # sizes searched for a break-even point (10 to 10^12 examples)


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def fit_curve(sizes: Sequence[float], values: Sequence[float]) -> dict[str, Any]:
    """Least-squares fit with bounds (a in [0, 1], b >= 0, c in (0, 3]); the covariance gives the uncertainty.
    The asymptote a is at most 1: every metric here (accuracy, F1, MCC, correlations) is."""
    from scipy.optimize import curve_fit

    n, y = np.asarray(sizes, float), np.asarray(values, float)
    if len(n) < 3:
        return {"ok": False, "reason": f"{len(n)} points; a 3-parameter curve needs at least 3"}
    p0 = (min(1.0, float(y.max()) + 0.02), max(1e-3, float(y.max() - y.min()) * float(n.min()) ** 0.5), 0.5)
    try:
        popt, pcov = curve_fit(power_law, n, y, p0=p0, bounds=([0, 0, 1e-3], [1, np.inf, 3]), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        return {"ok": False, "reason": f"the fit did not converge: {exc}"}
    residual = y - power_law(n, *popt)
    return {"ok": True, "a": float(popt[0]), "b": float(popt[1]), "c": float(popt[2]),
            "cov": np.nan_to_num(pcov, nan=0.0, posinf=0.0).tolist(), "rmse": float(np.sqrt(np.mean(residual ** 2))),
            "sizes": n.tolist(), "values": y.tolist()}


def crossing(params_a: Sequence[float], params_b: Sequence[float], threshold: float) -> float:
    """Smallest n on the grid from which curve a exceeds curve b by less than `threshold` (NaN if never)."""
    gap = power_law(GRID, *params_a) - power_law(GRID, *params_b)
    below = gap < threshold
    if not below.any():
        return math.nan
    # from the first point where the gap stays below the threshold
    last_above = np.flatnonzero(~below)
    start = 0 if last_above.size == 0 else last_above[-1] + 1
    return float(GRID[start]) if start < len(GRID) else math.nan


def break_even(curve_a: dict[str, Any], curve_b: dict[str, Any], largest_observed: float, threshold: float = 0.01,
               draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Where the gap a - b falls under `threshold` (1 point), with a parametric-bootstrap 95% interval."""
    if not (curve_a.get("ok") and curve_b.get("ok")):
        return {"ok": False, "reason": "a curve could not be fitted"}
    pa = [curve_a[k] for k in "abc"]
    pb = [curve_b[k] for k in "abc"]
    point = crossing(pa, pb, threshold)
    rng = np.random.default_rng(seed)
    lo, hi = np.array([0, 0, 1e-3]), np.array([1, np.inf, 3])
    sa = np.clip(rng.multivariate_normal(pa, curve_a["cov"], draws, check_valid="ignore"), lo, hi)
    sb = np.clip(rng.multivariate_normal(pb, curve_b["cov"], draws, check_valid="ignore"), lo, hi)
    samples = np.array([crossing(x, y, threshold) for x, y in zip(sa, sb)])
    found = samples[~np.isnan(samples)]
    return {
        "ok": True, "threshold": threshold, "n": point,
        "ci_low": float(np.percentile(found, 2.5)) if found.size else math.nan,
        "ci_high": float(np.percentile(found, 97.5)) if found.size else math.nan,
        "share_of_draws_with_a_crossing": float(found.size / draws),
        "extrapolation": bool(math.isnan(point) or point > largest_observed),
        "label": "extrapolated beyond the largest training size measured" if (math.isnan(point) or point > largest_observed)
        else "within the measured range",
    }
