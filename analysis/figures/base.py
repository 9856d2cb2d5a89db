"""Shared look of every figure: the Okabe-Ito palette (colour-blind safe), one colour per method, one layout,
and axis helpers (readable log ticks, a padded axis around a single value, metric ranges)."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go

from analysis.methods.pruning.base import PRUNING_METHODS

# Okabe-Ito, reordered so that yellow comes last: #F0E442 is unreadable as a line or marker on white, so lines
# and markers cycle through the first seven (LINE_COLOURS); yellow is left to fills and colour scales.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
LINE_COLOURS = OKABE_ITO[:7]
LINE_DASHES = ("solid", "dash", "dot")  # a colour's second and third use get another dash
FONT = dict(family="Arial, Helvetica, sans-serif", size=12)
METRIC_RANGES = {"accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "matthews": (-1.0, 1.0), "pearson": (-1.0, 1.0),
                 "spearman": (-1.0, 1.0)}


def series_colour(i: int) -> str:
    """The i-th line colour (Okabe-Ito without yellow)."""
    return LINE_COLOURS[i % len(LINE_COLOURS)]


def series_dash(i: int) -> str:
    """The i-th line's dash: solid for the first round of colours, then dashed, then dotted."""
    return LINE_DASHES[(i // len(LINE_COLOURS)) % len(LINE_DASHES)]


def method_order() -> tuple[str, ...]:
    """'dense', then the registered pruning methods by their class's `order`: a method's place and colour."""
    return ("dense",) + tuple(sorted(PRUNING_METHODS.names(), key=lambda m: (PRUNING_METHODS.get(m).order, m)))


def _method_index(method: str) -> int:
    order = method_order()
    return order.index(method) if method in order else len(order) + sum(map(ord, method)) % 3


def method_colour(method: str) -> str:
    """One fixed colour per pruning method (never yellow)."""
    return series_colour(_method_index(method))


def method_dash(method: str) -> str:
    """The method's dash: methods that share a colour (the palette has seven) differ by dash."""
    return series_dash(_method_index(method))


def metric_range(metric: str) -> tuple[float, float] | None:
    """The values a task metric can take (accuracy and F1 in [0, 1]; correlations in [-1, 1]), None if unknown."""
    return METRIC_RANGES.get(metric)


def layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="simple_white", font=FONT, showlegend=True,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), margin=dict(t=70, l=60, r=20, b=50))
    return pad_single_values(fig)


def side_legend(fig: go.Figure) -> go.Figure:
    """The legend to the right of the plot, for figures whose legend or subplot titles would crowd the top."""
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02),
                      margin=dict(t=70, l=60, r=20, b=50))
    return fig


def si_label(value: float) -> str:
    """A tick label for counts: 5, 300, 1k, 1.5k, 67k, 1M, 2.5M."""
    for unit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= unit:
            x = value / unit
            return (f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")) + suffix
    if value and abs(value) < 1e-3:
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{value:.0e}").replace("e+", "e")  # 2e-9, not 2e-09
    return f"{value:.3g}"


def log_ticks(low: float, high: float, marks: Iterable[float] = ()) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis from `low` to `high`: 1-2-5 steps over a short span, decades over a
    longer one (every other decade past six); `marks` (e.g. the largest size measured) are labelled too and
    push out a regular tick closer than 0.2 decades."""
    low, high = max(low, 1e-12), max(high, low * 1.0001)
    span = math.log10(high / low)
    steps = (1, 2, 5) if span <= 2.5 else (1,)
    stride = 1 if span <= 6 else 2
    first = math.floor(math.log10(low))
    values = [m * 10.0 ** e for e in range(first, math.ceil(math.log10(high)) + 1) if (e - first) % stride == 0
              for m in steps]
    values = [v for v in values if low <= v <= high]
    kept = [float(m) for m in marks if low <= m <= high]
    values = [v for v in values if all(abs(math.log10(v / m)) >= 0.2 for m in kept)] + kept
    values = sorted(set(values)) or [float(f"{math.sqrt(low * high):.2g}")]  # a narrow span: one tick inside
    return values, [si_label(v) for v in values]


def log_axis(fig: go.Figure, low: float, high: float, marks: Iterable[float] = (), **selector: Any) -> go.Figure:
    """A log x axis over [low, high] with `log_ticks` (selector: e.g. row=1, col=2)."""
    values, labels = log_ticks(low, high, marks)
    fig.update_xaxes(type="log", range=[math.log10(low), math.log10(high)], tickmode="array", tickvals=values,
                     ticktext=labels, minor=dict(ticks="", showgrid=False), **selector)
    return fig


def log_y_axis(fig: go.Figure, axis: str = "y", **selector: Any) -> go.Figure:
    """The y axis `axis` ("y", "y2", ...) on a log scale with `log_ticks` over its traces' positive values
    (selector: which axis to update, e.g. row=1, col=2)."""
    values = [v for t in fig.data if (t.yaxis or "y") == axis for v in (_numbers(t.y) or []) if v > 0]
    if not values:
        return fig.update_yaxes(type="log", **selector)
    low, high = min(values) / 1.3, max(values) * 1.3
    ticks, labels = log_ticks(low, high)
    return fig.update_yaxes(type="log", range=[math.log10(low), math.log10(high)], tickmode="array", tickvals=ticks,
                            ticktext=labels, **selector)


def _numbers(values: Any) -> list[float] | None:
    if values is None:
        return []
    out = []
    for v in values:
        if v is None:
            continue  # a gap in a line, or a legend-only trace: no value, not a category
        if isinstance(v, (str, bool)):
            return None  # a categorical axis
        out.append(float(v))
    return out


def pad_single_values(fig: go.Figure) -> go.Figure:
    """An axis whose scatter traces all sit at one value gets a range padded around it and that value as its only
    tick (plotly would otherwise span an arbitrary interval such as -0.5 to 1.5)."""
    for letter in ("x", "y"):
        by_axis: dict[str, set[float]] = {}
        categorical: set[str] = set()
        for trace in fig.data:
            if trace.type not in ("scatter", "scattergl"):
                continue
            axis = getattr(trace, f"{letter}axis") or letter
            values = _numbers(getattr(trace, letter))
            if values is None:
                categorical.add(axis)
            else:
                by_axis.setdefault(axis, set()).update(v for v in values if math.isfinite(v))
        for axis, values in by_axis.items():
            if axis not in categorical and len(values) == 1:
                _pad_axis(fig.layout[f"{letter}axis{axis[1:]}"], next(iter(values)))
    return fig


def _pad_axis(axis: Any, v: float) -> None:
    if axis.range is not None or axis.tickvals is not None:
        return  # the figure set its own
    if axis.type == "log" and v > 0:
        axis.update(range=[math.log10(v) - 0.5, math.log10(v) + 0.5], tickvals=[v], ticktext=[si_label(v)])
    else:
        pad = 0.5 if float(v).is_integer() else max(abs(v) * 0.1, 0.05)
        axis.update(range=[v - pad, v + pad], tickvals=[v], ticktext=[f"{v:.4g}"])


def distinct_labels(labels: Sequence[str]) -> tuple[list[str], str]:
    """(labels without the words they all share, the shared words): 'magnitude sst2 s=0.9 seed=0 (94b7)' and
    'magnitude sst2 s=0.8 seed=0 (d825)' become 's=0.9 (94b7)', 's=0.8 (d825)' and 'magnitude sst2 seed=0'."""
    words = [str(label).split() for label in labels]
    if len(words) < 2:
        return [str(label) for label in labels], ""
    common = [w for w in words[0] if all(w in other for other in words[1:])]
    short = [" ".join(w for w in ws if w not in common) or str(label) for ws, label in zip(words, labels)]
    if len(set(short)) < len(short):
        return [str(label) for label in labels], ""
    return short, " ".join(common)


def band_lines(fig: go.Figure, df: pd.DataFrame, x: str, log_x: bool = False) -> go.Figure:
    """One line per method with a mean +- std band over seeds."""
    for method in sorted(df["method"].unique(), key=_method_index):
        grp = df[df["method"] == method].groupby(x)["value"].agg(["mean", "std", "count"]).reset_index()
        grp["std"] = grp["std"].fillna(0.0)
        colour = method_colour(method)
        if (grp["count"] > 1).any():
            fig.add_trace(go.Scatter(x=list(grp[x]) + list(grp[x])[::-1],
                                     y=list(grp["mean"] + grp["std"]) + list(grp["mean"] - grp["std"])[::-1],
                                     fill="toself", fillcolor=colour, opacity=0.2, line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, name=f"{method} band"))
        fig.add_trace(go.Scatter(x=grp[x], y=grp["mean"], mode="lines+markers", name=method,
                                 line=dict(color=colour, width=2, dash=method_dash(method)), marker=dict(size=7)))
    if log_x and len(df):
        low, high = float(df[x].min()), float(df[x].max())
        log_axis(fig, low / 1.25, high * 1.25)
    return fig
