"""Data-scale figures: metric vs training size per arm (95% bands, fitted curves, extrapolation dashed),
the gap to the transformer per size, and the break-even size with its bootstrap interval."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..studies.curves import power_law
from .base import OKABE_ITO, layout, side_legend
from .registry import FigureResult, register_figure

ARM_ORDER = ("transformer", "lstm", "lstm-pretrained")
EXTRAPOLATE_FACTOR = 30.0  # fitted curves continue (dashed) to 30x the largest size measured
MAX_X = 1e8


def arm_colour(arm: str) -> str:
    """One Okabe-Ito colour per study arm, the same in every data-scale figure."""
    index = ARM_ORDER.index(arm) if arm in ARM_ORDER else len(ARM_ORDER) + sum(map(ord, arm)) % 3
    return OKABE_ITO[index % len(OKABE_ITO)]


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


def _band(fig: go.Figure, cells: list[dict[str, Any]], colour: str, name: str) -> None:
    ok = [c for c in cells if _finite(c.get("ci_low")) and _finite(c.get("ci_high"))]
    if len(ok) < 2:
        return
    xs = [c["size"] for c in ok]
    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[c["ci_high"] for c in ok] + [c["ci_low"] for c in ok][::-1],
                             mode="lines", fill="toself", fillcolor=colour, opacity=0.18, line=dict(width=0),
                             hoverinfo="skip",
                             showlegend=False, name=f"{name} 95% interval"))


def _fitted(fig: go.Figure, curve: Mapping[str, Any], lo: float, hi: float, end: float, colour: str, arm: str,
            transform: Any = None) -> None:
    """A fitted curve, solid over the measured sizes and dashed beyond them (extrapolation)."""
    for xs, dash, label in ((_curve_xs(lo, hi), "solid", "fit"), (_curve_xs(hi, end), "dash", "fit, extrapolated")):
        ys = transform(xs) if transform else power_law(xs, curve["a"], curve["b"], curve["c"])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{arm} {label}", legendgroup=arm, showlegend=False,
                                 line=dict(color=colour, width=1.5, dash=dash), opacity=0.9,
                                 hovertemplate=f"{arm} {label}<br>n=%{{x:,.0f}}<br>%{{y:.3f}}<extra></extra>"))


def scale_curves(summary: Mapping[str, Any], metric: str = "accuracy") -> go.Figure:
    """Mean metric vs training size (log x) per arm with 95% t-interval bands and the fitted curves."""
    fig = go.Figure()
    end = extrapolation_end(summary)
    for arm in _arms(summary):
        colour = arm_colour(arm)
        cells = sorted((c for c in summary["cells"] if c["arm"] == arm and c["n"] > 0), key=lambda c: c["size"])
        _band(fig, cells, colour, arm)
        fig.add_trace(go.Scatter(x=[c["size"] for c in cells], y=[c["mean"] for c in cells], mode="lines+markers",
                                 name=arm, legendgroup=arm, line=dict(color=colour, width=2), marker=dict(size=7),
                                 customdata=[[c["n"], c["std"]] for c in cells],
                                 hovertemplate=f"{arm}<br>n=%{{x:,}}<br>mean %{{y:.3f}} ± %{{customdata[1]:.3f}}"
                                               " (%{customdata[0]} seeds)<extra></extra>"))
        curve = summary.get("curves", {}).get(arm, {})
        if curve.get("ok") and cells:
            _fitted(fig, curve, cells[0]["size"], cells[-1]["size"], end, colour, arm)
    fig.update_xaxes(type="log", range=x_range(summary))
    title = (f"Dev {metric} vs training size<br><sup>bands: 95% t-interval over seeds · thin lines: fitted "
             "a − b·n^(−c), dashed where extrapolated</sup>")
    return side_legend(layout(fig, title, "training examples (log scale)", metric))


def scale_gap(summary: Mapping[str, Any], metric: str = "accuracy") -> go.Figure:
    """Transformer minus each other arm per size, the fitted gap (dashed beyond the data) and the break-even."""
    fig = go.Figure()
    curves, end = summary.get("curves", {}), extrapolation_end(summary)
    sizes = sorted({c["size"] for c in summary.get("cells", [])})
    for arm in [a for a in _arms(summary) if a != "transformer"]:
        colour = arm_colour(arm)
        gaps = sorted((g for g in summary.get("gaps", []) if g["arm"] == arm), key=lambda g: g["size"])
        fig.add_trace(go.Scatter(x=[g["size"] for g in gaps], y=[g["gap"] for g in gaps], mode="lines+markers",
                                 name=f"transformer − {arm}", legendgroup=arm, line=dict(color=colour, width=2),
                                 marker=dict(size=7)))
        ct, ca = curves.get("transformer", {}), curves.get(arm, {})
        if ct.get("ok") and ca.get("ok") and sizes:
            def gap_fn(xs: np.ndarray, ct: Mapping = ct, ca: Mapping = ca) -> np.ndarray:
                return power_law(xs, ct["a"], ct["b"], ct["c"]) - power_law(xs, ca["a"], ca["b"], ca["c"])

            _fitted(fig, ca, sizes[0], sizes[-1], end, colour, arm, transform=gap_fn)
        _break_even_marker(fig, summary.get("break_even", {}).get(arm, {}), colour, arm, sizes)
    threshold = next((b["threshold"] for b in summary.get("break_even", {}).values() if b.get("ok")), 0.01)
    fig.add_hline(y=threshold, line_dash="dot", line_color="#444444", line_width=1,
                  annotation_text=f"break-even threshold ({threshold:g})", annotation_position="top right")
    fig.add_hline(y=0, line_color="#999999", line_width=1)
    fig.update_xaxes(type="log", range=x_range(summary))
    title = ("Gap to the transformer per training size<br><sup>dashed: extrapolated fit · ◆ break-even size with "
             "its 95% bootstrap interval</sup>")
    return side_legend(layout(fig, title, "training examples (log scale)", f"{metric} gap (transformer − arm)"))


def _break_even_marker(fig: go.Figure, be: Mapping[str, Any], colour: str, arm: str, sizes: list[int]) -> None:
    if not be.get("ok"):
        return
    if not _finite(be.get("n")):
        share = be.get("share_of_draws_with_a_crossing", 0.0)
        fig.add_annotation(xref="paper", yref="paper", x=0.98, y=0.95 - 0.08 * len(fig.layout.annotations),
                           xanchor="right", showarrow=False, font=dict(color=colour),
                           text=f"{arm}: no break-even — the fitted gap stays above {be['threshold']:g} up to 10^12 "
                                f"examples ({share:.0%} of bootstrap draws cross)")
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
    fig.add_annotation(x=math.log10(n), y=be["threshold"], text=text,
                       showarrow=True, arrowhead=2, ax=30, ay=-40 - 22 * len(fig.layout.annotations),
                       xanchor="left", font=dict(color=colour))


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


def study_inputs(store: Any, run_id: str) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """(per-run rows, summary, complete) of a data-scale study; a running or stopped study is summarised
    from the points it has finished so far (its run_done log events)."""
    from ..studies.data_scale import summarise

    record = store.require(run_id)
    if record.status == "done":
        return store.load_artifact_json(run_id, "table"), store.load_artifact_json(run_id, "summary"), True
    rows = [{k: v for k, v in e.items() if k not in ("event", "time")} for e in store.read_metrics(run_id)
            if e.get("event") == "run_done"]
    arms = tuple(record.config.get("arms") or sorted({r["arm"] for r in rows}))
    arms = tuple(a for a in arms if any(r["arm"] == a for r in rows))
    return rows, (summarise(rows, arms) if rows else {"cells": [], "gaps": [], "curves": {}, "break_even": {}}), False


def _study(store: Any, run_ids: Sequence[str]) -> tuple[str, list[dict[str, Any]], dict[str, Any], bool]:
    from .registry import NotApplicable

    for run_id in run_ids:
        if store.require(run_id).kind == "study-scale":
            rows, summary, complete = study_inputs(store, run_id)
            if rows:
                return run_id, rows, summary, complete
    raise NotApplicable("none of these runs is a data-scale study with finished points",
                        fix="run one with `python -m analysis scale --dataset sst2 --sizes 100,300,1000 --seeds 0,1,2`")


@register_figure("scale-curves", kinds=("study-scale",),
                 description="Metric vs training size per arm, fitted curves", width="double")
def _scale_curves(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Metric vs training size per arm with 95% bands and fitted curves (extrapolation dashed)."""
    study, rows, summary, complete = _study(store, run_ids)
    return FigureResult(scale_curves(summary, scale_metric(rows)), scale_table(summary),
                        [study, *(r["run_id"] for r in rows)], "scale_curves",
                        {"study": study, "complete": complete, "points": len(rows)})


@register_figure("scale-gap", kinds=("study-scale",),
                 description="Gap to the transformer per size and the break-even", width="double")
def _scale_gap(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """The gap to the transformer per size, its fitted curve and the (extrapolated) break-even size."""
    study, rows, summary, complete = _study(store, run_ids)
    return FigureResult(scale_gap(summary, scale_metric(rows)), curve_table(summary),
                        [study, *(r["run_id"] for r in rows)], "scale_gap",
                        {"study": study, "complete": complete, "points": len(rows)})
