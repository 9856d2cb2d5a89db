"""Data-scale figures: metric vs training size per arm (95% bands, fitted curves, extrapolation dashed),
the gap to the transformer per size, and the break-even size with its bootstrap interval."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures.base import layout, log_axis, metric_range, series_colour, side_legend
from analysis.figures.registry import FigureResult, register_figure
from analysis.studies.curves import power_law
from analysis.studies.data_scale import study_inputs

ARM_ORDER = ("transformer", "lstm", "lstm-pretrained", "embedding-bag")
EXTRAPOLATE_FACTOR = 30.0  # fitted curves continue (dashed) to 30x the largest size measured
MAX_X = 1e8


def arm_colour(arm: str) -> str:
    """One Okabe-Ito colour per study arm, the same in every data-scale figure."""
    index = ARM_ORDER.index(arm) if arm in ARM_ORDER else len(ARM_ORDER) + sum(map(ord, arm)) % 3
    return series_colour(index)


def _arms(summary: Mapping[str, Any]) -> list[str]:
    found = {c["arm"] for c in summary.get("cells", [])}
    return sorted(found, key=lambda a: (ARM_ORDER.index(a) if a in ARM_ORDER else 99, a))


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def extrapolation_end(summary: Mapping[str, Any]) -> float:
    """Where dashed curves stop: past the break-even intervals when they are finite, at most 1e8."""
    largest = max((c["size"] for c in summary.get("cells", [])), default=10)
    end = largest * EXTRAPOLATE_FACTOR
    for be in summary.get("break_even", {}).values():
        for key in ("n", "ci_high"):
            if be.get("ok") and _finite(be.get(key)):
                end = max(end, float(be[key]) * 1.5)
    return min(end, MAX_X)


def x_range(summary: Mapping[str, Any]) -> list[float]:
    """Log10 x range: from below the smallest size (or break-even interval) to the end of the extrapolation."""
    lows = [c["size"] for c in summary.get("cells", [])] or [10]
    for be in summary.get("break_even", {}).values():
        lows += [float(be[k]) for k in ("n", "ci_low") if be.get("ok") and _finite(be.get(k))]
    return [math.log10(max(1.0, min(lows) / 1.5)), math.log10(extrapolation_end(summary))]


def _curve_xs(lo: float, hi: float, points: int = 60) -> np.ndarray:
    return np.logspace(math.log10(lo), math.log10(hi), points) if hi > lo else np.array([lo])


def _clip(values: Any, bounds: tuple[float, float] | None) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values if bounds is None else np.clip(values, *bounds)


def _band(fig: go.Figure, cells: list[dict[str, Any]], colour: str, name: str,
          bounds: tuple[float, float] | None = None) -> bool:
    """The 95% interval band, drawn inside the metric's range; True when it had to be clipped."""
    ok = [c for c in cells if _finite(c.get("ci_low")) and _finite(c.get("ci_high"))]
    if len(ok) < 2:
        return False
    xs = [c["size"] for c in ok]
    raw = np.array([c["ci_high"] for c in ok] + [c["ci_low"] for c in ok][::-1])
    shown = _clip(raw, bounds)
    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=shown,
                             mode="lines", fill="toself", fillcolor=colour, opacity=0.18, line=dict(width=0),
                             hoverinfo="skip",
                             showlegend=False, name=f"{name} 95% interval"))
    return not np.allclose(raw, shown)


def _fitted(fig: go.Figure, curve: Mapping[str, Any], lo: float, hi: float, end: float, colour: str, arm: str,
            transform: Any = None, bounds: tuple[float, float] | None = None) -> bool:
    """A fitted curve, solid over the measured sizes and dashed beyond them (extrapolation), drawn inside the
    metric's range `bounds` (the fitted values stay in the hover and the tables). True when it was clipped.
    `transform(xs, bounds)` draws another function of the fit (the gap) instead of the curve itself."""
    clipped = False
    for xs, dash, label in ((_curve_xs(lo, hi), "solid", "fit"), (_curve_xs(hi, end), "dash", "fit, extrapolated")):
        raw = transform(xs, None) if transform else power_law(xs, curve["a"], curve["b"], curve["c"])
        shown = transform(xs, bounds) if transform else _clip(raw, bounds)
        cut = not np.allclose(raw, shown)
        clipped |= cut
        note = "<br>fitted %{customdata:.3f}, drawn within the metric's range" if cut else ""
        fig.add_trace(go.Scatter(x=xs, y=shown, customdata=raw, mode="lines", name=f"{arm} {label}", legendgroup=arm,
                                 showlegend=False, line=dict(color=colour, width=1.5, dash=dash), opacity=0.9,
                                 hovertemplate=f"{arm} {label}<br>n=%{{x:,.0f}}<br>%{{y:.3f}}{note}<extra></extra>"))
    return clipped


def _clip_note(clipped: bool, bounds: tuple[float, float] | None) -> str:
    return f" · drawn within the metric's range [{bounds[0]:g}, {bounds[1]:g}]" if clipped and bounds else ""


def _log_x(fig: go.Figure, summary: Mapping[str, Any]) -> None:
    """The log x axis with 1-2-5 or decade ticks (10, 100, 1k, ...) and the largest size measured labelled."""
    low, high = x_range(summary)
    largest = max((c["size"] for c in summary.get("cells", [])), default=None)
    log_axis(fig, 10 ** low, 10 ** high, [largest] if largest else [])


def scale_curves(summary: Mapping[str, Any], metric: str = "accuracy") -> go.Figure:
    """Mean metric vs training size (log x) per arm with 95% t-interval bands and the fitted curves."""
    fig = go.Figure()
    end, bounds, clipped = extrapolation_end(summary), metric_range(metric), False
    for arm in _arms(summary):
        colour = arm_colour(arm)
        cells = sorted((c for c in summary["cells"] if c["arm"] == arm and c["n"] > 0), key=lambda c: c["size"])
        clipped |= _band(fig, cells, colour, arm, bounds)
        fig.add_trace(go.Scatter(x=[c["size"] for c in cells], y=[c["mean"] for c in cells], mode="lines+markers",
                                 name=arm, legendgroup=arm, line=dict(color=colour, width=2), marker=dict(size=7),
                                 customdata=[[c["n"], c["std"]] for c in cells],
                                 hovertemplate=f"{arm}<br>n=%{{x:,}}<br>mean %{{y:.3f}} ± %{{customdata[1]:.3f}}"
                                               " (%{customdata[0]} seeds)<extra></extra>"))
        curve = summary.get("curves", {}).get(arm, {})
        if curve.get("ok") and cells:
            clipped |= _fitted(fig, curve, cells[0]["size"], cells[-1]["size"], end, colour, arm, bounds=bounds)
    _log_x(fig, summary)
    title = (f"Dev {metric} vs training size<br><sup>bands: 95% t-interval over seeds · thin lines: fitted "
             f"a − b·n^(−c), dashed where extrapolated{_clip_note(clipped, bounds)}</sup>")
    return side_legend(layout(fig, title, "training examples (log scale)", metric))


def scale_gap(summary: Mapping[str, Any], metric: str = "accuracy") -> go.Figure:
    """Transformer minus each other arm per size, the fitted gap (dashed beyond the data) and the break-even."""
    fig = go.Figure()
    curves, end = summary.get("curves", {}), extrapolation_end(summary)
    bounds, clipped = metric_range(metric), False
    sizes = sorted({c["size"] for c in summary.get("cells", [])})
    for arm in [a for a in _arms(summary) if a != "transformer"]:
        colour = arm_colour(arm)
        gaps = sorted((g for g in summary.get("gaps", []) if g["arm"] == arm), key=lambda g: g["size"])
        fig.add_trace(go.Scatter(x=[g["size"] for g in gaps], y=[g["gap"] for g in gaps], mode="lines+markers",
                                 name=f"transformer − {arm}", legendgroup=arm, line=dict(color=colour, width=2),
                                 marker=dict(size=7)))
        ct, ca = curves.get("transformer", {}), curves.get(arm, {})
        if ct.get("ok") and ca.get("ok") and sizes:
            def gap_fn(xs: np.ndarray, bounds: Any, ct: Mapping = ct, ca: Mapping = ca) -> np.ndarray:
                return (_clip(power_law(xs, ct["a"], ct["b"], ct["c"]), bounds)
                        - _clip(power_law(xs, ca["a"], ca["b"], ca["c"]), bounds))

            clipped |= _fitted(fig, ca, sizes[0], sizes[-1], end, colour, arm, transform=gap_fn, bounds=bounds)
        _break_even_marker(fig, summary.get("break_even", {}).get(arm, {}), colour, arm, sizes, x_range(summary))
    threshold = next((b["threshold"] for b in summary.get("break_even", {}).values() if b.get("ok")), 0.01)
    fig.add_hline(y=threshold, line_dash="dot", line_color="#444444", line_width=1,
                  annotation_text=f"break-even threshold ({threshold:g})", annotation_position="top right")
    fig.add_hline(y=0, line_color="#999999", line_width=1)
    _log_x(fig, summary)
    note = " · fitted curves" + _clip_note(clipped, bounds).removeprefix(" ·") if clipped else ""
    title = ("Gap to the transformer per training size<br><sup>dashed: extrapolated fit · ◆ break-even size with "
             f"its 95% bootstrap interval{note}</sup>")
    return side_legend(layout(fig, title, "training examples (log scale)", f"{metric} gap (transformer − arm)"))


def _break_even_marker(fig: go.Figure, be: Mapping[str, Any], colour: str, arm: str, sizes: list[int],
                       span: Sequence[float] = (0.0, 1.0)) -> None:
    if not be.get("ok"):
        return
    if not _finite(be.get("n")):
        share = be.get("share_of_draws_with_a_crossing", 0.0)
        # a legend entry, not a note on the plot: notes ran over the axis labels; the legend is laid out by plotly
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", legendgroup=arm,
                                 marker=dict(symbol="x-thin-open", size=10, color=colour, line=dict(width=2)),
                                 name=f"{arm}: no break-even (fit above {be['threshold']:g} to 10^12; "
                                      f"{share:.0%} of draws cross)"))
        return
    n, low, high = float(be["n"]), be.get("ci_low"), be.get("ci_high")
    error = dict(type="data", symmetric=False, array=[float(high) - n if _finite(high) else 0],
                 arrayminus=[n - float(low) if _finite(low) else 0], color=colour, thickness=2, width=8)
    tag = "EXTRAPOLATED" if be.get("extrapolation") else "within measured sizes"
    if sizes and n < sizes[0]:
        tag = "below the threshold from the smallest size"
    fig.add_trace(go.Scatter(x=[n], y=[be["threshold"]], mode="markers", error_x=error, legendgroup=arm,
                             marker=dict(symbol="diamond", size=12, color=colour, line=dict(color="black", width=1)),
                             name=f"{arm} break-even" + (" (extrapolated)" if be.get("extrapolation") else ""),
                             hovertemplate=f"{arm} break-even n≈%{{x:,.0f}} ({be.get('label', '')})<extra></extra>"))
    text = f"{arm}: n≈{n:,.0f} [{_num(low)} – {_num(high)}] ({tag.lower()})"
    right = (math.log10(n) - span[0]) > 0.6 * (span[1] - span[0])  # near the right edge: the label goes left
    fig.add_annotation(x=math.log10(n), y=be["threshold"], text=text,
                       showarrow=True, arrowhead=2, ax=-30 if right else 30, ay=-40 - 22 * len(fig.layout.annotations),
                       xanchor="right" if right else "left", font=dict(color=colour))


def _num(x: Any) -> str:
    return f"{float(x):,.0f}" if _finite(x) else "?"


def scale_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Mean ± std and the 95% interval per (arm, size), with the gap to the transformer."""
    gaps = {(g["arm"], g["size"]): g["gap"] for g in summary.get("gaps", [])}
    rows = [{"arm": c["arm"], "size": c["size"], "seeds": c["n"], "mean": c["mean"], "std": c["std"],
             "ci_low": c["ci_low"], "ci_high": c["ci_high"], "gap_to_transformer": gaps.get((c["arm"], c["size"]))}
            for c in summary.get("cells", [])]
    columns = ["arm", "size", "seeds", "mean", "std", "ci_low", "ci_high", "gap_to_transformer"]
    return pd.DataFrame(rows, columns=columns)


def curve_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The fitted acc(n) = a − b·n^(−c) per arm with standard errors, and the break-even per arm."""
    rows = []
    for arm, curve in summary.get("curves", {}).items():
        be = summary.get("break_even", {}).get(arm, {})
        row: dict[str, Any] = {"arm": arm, "fitted": bool(curve.get("ok")), "note": curve.get("reason", "")}
        if curve.get("ok"):
            se = np.sqrt(np.clip(np.diag(np.asarray(curve["cov"], float)), 0, None))
            row.update({"a": curve["a"], "a_se": se[0], "b": curve["b"], "b_se": se[1], "c": curve["c"],
                        "c_se": se[2], "rmse": curve["rmse"]})
        if be:
            row.update({"break_even_n": be.get("n"), "break_even_ci_low": be.get("ci_low"),
                        "break_even_ci_high": be.get("ci_high"), "break_even": be.get("label") or be.get("reason")})
        rows.append(row)
    return pd.DataFrame(rows)


def scale_metric(rows: Sequence[Mapping[str, Any]]) -> str:
    """The metric name of a study's per-run rows."""
    return next((r["metric"] for r in rows if r.get("metric")), "metric")


def _study(store: Any, run_ids: Sequence[str]) -> tuple[str, list[dict[str, Any]], dict[str, Any], bool]:
    from analysis.figures.registry import NotApplicable

    for run_id in run_ids:
        if store.require(run_id).kind == "study-scale":
            rows, summary, complete = study_inputs(store, run_id)
            if rows:
                return run_id, rows, summary, complete
    raise NotApplicable("none of these runs is a data-scale study with finished points",
                        fix="run one with `python -m analysis scale --dataset sst2 --sizes 100,300,1000 --seeds 0,1,2`")


def _study_figure(name: str, description: str, figure: Any, table: Any) -> None:
    """Register `name`: `figure(summary, metric)` of the first data-scale study given, with `table(summary)`."""

    @register_figure(name, kinds=("study-scale",), description=description, width="double")
    def build(store: Any, run_ids: Sequence[str]) -> FigureResult:
        study, rows, summary, complete = _study(store, run_ids)
        return FigureResult(figure(summary, scale_metric(rows)), table(summary),
                            [study, *(r["run_id"] for r in rows)], figure.__name__,
                            {"study": study, "complete": complete, "points": len(rows)})


for _name, _description, _figure, _table in (
        ("scale-curves", "Metric vs training size per arm, fitted curves", scale_curves, scale_table),
        ("scale-gap", "Gap to the transformer per size and the break-even", scale_gap, curve_table)):
    _study_figure(_name, _description, _figure, _table)
