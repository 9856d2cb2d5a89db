"""Compare figures: each run's metrics side by side with bootstrap intervals, and the paired differences
between runs with their paired bootstrap intervals (a forest plot around zero)."""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.base import distinct_labels, layout, series_colour, side_legend
from analysis.figures.registry import FigureResult, NotApplicable, register_figure


def metrics_side_by_side(metrics: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """One panel per metric, one bar per run with its 95% bootstrap interval (the same resamples for every run)."""
    runs = list(dict.fromkeys(metrics["run"]))
    labels, common = _short(runs, labels)
    names = list(dict.fromkeys(metrics["metric"]))
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names or None, horizontal_spacing=0.08)
    for col, metric in enumerate(names, 1):
        part = metrics[metrics["metric"] == metric].set_index("run").reindex(runs)
        for i, run in enumerate(runs):
            row = part.loc[run]
            fig.add_trace(go.Bar(x=[labels.get(run, run)], y=[row["value"]], name=labels.get(run, run), legendgroup=run,
                                 showlegend=col == 1, marker_color=series_colour(i),
                                 error_y=dict(type="data", symmetric=False, array=[row["ci_high"] - row["value"]],
                                              arrayminus=[row["value"] - row["ci_low"]], color="#333333"),
                                 hovertemplate=f"{metric} %{{y:.4f}} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
                                               "<extra>%{fullData.name}</extra>"), row=1, col=col)
    fig.update_xaxes(showticklabels=False)
    return side_legend(layout(fig, "Dev metrics with 95% bootstrap intervals" + _sub(common), "", ""))


def _short(runs: Sequence[str], labels: dict[str, str] | None) -> tuple[dict[str, str], str]:
    """Run labels without the words they all share (said once in the subtitle instead)."""
    full = [(labels or {}).get(r, r) for r in runs]
    short, common = distinct_labels(full)
    return dict(zip(runs, short)), common


def _sub(common: str) -> str:
    return f"<br><sup>all runs: {common}</sup>" if common else ""


def paired_differences(pairs: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """Metric(A) − metric(B) per pair of runs with its paired bootstrap interval; zero marks no difference."""
    labels, common = _short(list(dict.fromkeys([*pairs["a"], *pairs["b"]])), labels)
    fig = go.Figure()
    for i, metric in enumerate(dict.fromkeys(pairs["metric"])):
        part = pairs[pairs["metric"] == metric]
        names = [f"{labels.get(a, a)}<br>− {labels.get(b, b)}" for a, b in zip(part["a"], part["b"])]
        fig.add_trace(go.Scatter(x=part["diff"], y=names, mode="markers", orientation="h", name=metric,
                                 marker=dict(size=10, color=series_colour(i)),
                                 error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["diff"],
                                              arrayminus=part["diff"] - part["ci_low"]),
                                 hovertemplate="%{y}: %{x:.4f}<extra>" + metric + "</extra>"))
    fig.add_vline(x=0, line_color="#444444", line_dash="dash")
    fig.update_layout(scattermode="group")
    fig.update_yaxes(autorange="reversed")
    common = f" · all runs: {common}" if common else ""
    return side_legend(layout(fig, f"Paired differences on the same dev examples<br><sup>95% paired bootstrap "
                              f"interval{common}</sup>",
                              "difference (A − B)", ""))


def _comparison(store: Any, run_ids: Sequence[str]) -> tuple[Any, dict[str, str]]:
    from analysis.reports.compare import comparable_runs, compare_runs
    from analysis.store.labels import run_labels

    order = {r: i for i, r in enumerate(run_ids)}
    picked = sorted((r["run_id"] for r in comparable_runs(store, run_ids)), key=order.__getitem__)
    if not 2 <= len(picked) <= 4:
        raise NotApplicable(f"{len(picked)} of these runs have dev predictions; a comparison takes 2 to 4",
                            fix="pick 2-4 fine-tune or prune runs of the same dataset")
    return compare_runs(store, picked), run_labels([store.require(r).row for r in picked])


def _comparison_figure(name: str, description: str, figure: Any, table: str) -> None:
    """Register `name`: `figure(comparison.<table>, labels)` of 2-4 runs, with that table behind it."""

    @register_figure(name, kinds=("finetune", "prune"), description=description, width="double")
    def build(store: Any, run_ids: Sequence[str]) -> FigureResult:
        comp, labels = _comparison(store, run_ids)
        return FigureResult(figure(getattr(comp, table), labels), getattr(comp, table), list(labels),
                            figure.__name__, {"n_resamples": comp.n_resamples, "seed": comp.seed})


for _name, _description, _figure, _table in (
        ("compare-metrics", "2-4 runs' metrics with bootstrap intervals", metrics_side_by_side, "metrics"),
        ("compare-differences", "Paired differences with McNemar", paired_differences, "pairs")):
    _comparison_figure(_name, _description, _figure, _table)
