"""Head figures: importance heatmaps (layers x heads, removed heads marked), attention maps with token
labels, token-attribution bars and heat strips; each with a side-by-side variant (e.g. dense vs pruned)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.base import OKABE_ITO, layout
from analysis.figures.registry import FigureResult, NotApplicable, register_figure
from analysis.store.index import RunStore

DIVERGING = [[0.0, OKABE_ITO[3]], [0.5, "#f7f7f7"], [1.0, OKABE_ITO[0]]]  # vermillion - white - blue
REMOVED = "#bdbdbd"


def _grid(values: Any) -> np.ndarray:
    """A float array with JSON nulls (removed heads) as NaN."""
    return np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)


def _importance_traces(grid: np.ndarray, layer_labels: Sequence[str], zmax: float | None, show_scale: bool,
                       label: str, show_legend: bool = True) -> list[go.BaseTraceType]:
    heads = [f"h{h}" for h in range(grid.shape[1])]
    removed = np.argwhere(np.isnan(grid))
    traces: list[go.BaseTraceType] = [go.Heatmap(
        z=grid, x=heads, y=list(layer_labels), zmin=0, zmax=zmax, colorscale="Viridis", showscale=show_scale,
        colorbar=dict(title=dict(text=label, side="right")), hoverongaps=False, hovertemplate="%{y} %{x}: %{z:.4f}<extra></extra>")]
    if len(removed):
        traces.append(go.Scatter(x=[heads[h] for _, h in removed], y=[layer_labels[l] for l, _ in removed],
                                 mode="markers", name="removed head", showlegend=show_legend,
                                 marker=dict(symbol="x-thin", size=14, line=dict(width=2, color="#000000")),
                                 hovertemplate="%{y} %{x}: removed<extra></extra>"))
    return traces


def head_importance_heatmap(importance: Any, title: str = "Head importance", label: str = "importance",
                            layer_labels: Sequence[str] | None = None) -> go.Figure:
    """Layers x heads importance; removed (pruned) heads are NaN/None in `importance` and drawn as crosses."""
    grid = _grid(importance)
    labels = list(layer_labels or [f"layer {i}" for i in range(grid.shape[0])])
    fig = go.Figure(_importance_traces(grid, labels, None, True, label))
    fig.update_yaxes(autorange="reversed")
    return _removed_look(layout(fig, title, "head", ""))


def head_importance_panels(panels: dict[str, Any], label: str = "importance", same_scale: bool = True,
                           layer_labels: Sequence[str] | None = None) -> go.Figure:
    """Importance heatmaps side by side (e.g. dense vs pruned), on one colour scale unless `same_scale=False`."""
    grids = {name: _grid(v) for name, v in panels.items()}
    finite = [g[np.isfinite(g)] for g in grids.values()]
    zmax = max((float(f.max()) for f in finite if f.size), default=1.0) if same_scale else None
    fig = make_subplots(rows=1, cols=len(grids), subplot_titles=list(grids), shared_yaxes=True,
                        horizontal_spacing=0.05 if same_scale else 0.22)  # room for a colour bar per panel
    removed_shown = False
    for col, grid in enumerate(grids.values(), 1):
        labels = list(layer_labels or [f"layer {i}" for i in range(grid.shape[0])])
        show_legend = not removed_shown and bool(np.isnan(grid).any())  # one "removed head" entry in all
        removed_shown |= show_legend
        for trace in _importance_traces(grid, labels, zmax, col == len(grids) if same_scale else True, label,
                                        show_legend):
            if isinstance(trace, go.Heatmap) and not same_scale:
                domain = fig.layout["xaxis" + ("" if col == 1 else str(col))].domain
                trace.colorbar.update(x=domain[1] + 0.01, xanchor="left")
                if col < len(grids):  # the scale's name once, on the last bar: between panels it crowds the next
                    trace.colorbar.title.text = None
            fig.add_trace(trace, row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    return _removed_look(layout(fig, "Head importance side by side", "head", ""))


def _removed_look(fig: go.Figure) -> go.Figure:
    """Removed heads show the grey background behind a cross; the legend sits under the plot."""
    fig.update_layout(plot_bgcolor=REMOVED, legend=dict(orientation="h", yanchor="top", y=-0.15, x=0))
    return _lift_titles(fig)


def _lift_titles(fig: go.Figure) -> go.Figure:
    """Panel titles a little above the panels (they otherwise touch the plot frame)."""
    fig.update_annotations(yshift=6, selector=dict(yref="paper", xref="paper"))
    return fig


def _token_axis(tokens: Sequence[str], angle: int = -60) -> dict[str, Any]:
    """Positions as the axis (repeated tokens stay apart), tokens as the tick labels."""
    return dict(tickmode="array", tickvals=list(range(len(tokens))), ticktext=list(tokens), tickangle=angle)


def attention_heatmap(tokens: Sequence[str], matrix: Any, title: str = "Attention") -> go.Figure:
    """One head's attention: rows are the attending (query) tokens, columns the attended (key) tokens.

    The colour scale runs from 0 to the largest weight shown (1 would wash out a head that spreads its attention)."""
    z = np.asarray(matrix, dtype=float)
    fig = go.Figure(go.Heatmap(z=z, zmin=0, zmax=float(z.max()), colorscale="Blues",
                               colorbar=dict(title="weight"), customdata=_pairs(tokens),
                               hovertemplate="%{customdata[0]} -> %{customdata[1]}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(**_token_axis(tokens), side="bottom")
    fig.update_yaxes(**_token_axis(tokens, 0), autorange="reversed")
    fig = layout(fig, title, "attended token (key)", "attending token (query)")
    fig.update_layout(showlegend=False)
    return fig


def _pairs(tokens: Sequence[str]) -> list[list[list[str]]]:
    return [[[q, k] for k in tokens] for q in tokens]


def attention_side_by_side(maps: dict[str, tuple[Sequence[str], Any]], title: str = "Attention") -> go.Figure:
    """Attention maps of several models on the same text (one colour scale); a None matrix: the head was removed."""
    zmax = max((float(np.max(m)) for _, m in maps.values() if m is not None), default=1.0)
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(maps), horizontal_spacing=0.12)
    for col, (name, (tokens, matrix)) in enumerate(maps.items(), 1):
        if matrix is None:
            axis = "" if col == 1 else str(col)
            x0, x1 = fig.layout[f"xaxis{axis}"].domain
            fig.add_annotation(text="head removed (pruned)", showarrow=False, x=(x0 + x1) / 2, y=0.5,
                               xref="paper", yref="paper", font=dict(size=14))
            fig.update_xaxes(visible=False, row=1, col=col)
            fig.update_yaxes(visible=False, row=1, col=col)
            continue
        fig.add_trace(go.Heatmap(z=np.asarray(matrix, dtype=float), zmin=0, zmax=zmax, colorscale="Blues",
                                 showscale=col == len(maps), colorbar=dict(title="weight"),
                                 customdata=_pairs(tokens), name=name,
                                 hovertemplate="%{customdata[0]} -> %{customdata[1]}: %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(**_token_axis(tokens), row=1, col=col)
        fig.update_yaxes(**_token_axis(tokens, 0), autorange="reversed", row=1, col=col)
    fig = layout(fig, title, "", "")
    fig.update_layout(showlegend=False)
    return _lift_titles(fig)


def attribution_bars(tokens: Sequence[str], attributions: Sequence[float], title: str = "Token attributions",
                     delta: float | None = None) -> go.Figure:
    """One bar per token (blue: towards the explained class, vermillion: against it)."""
    values = np.asarray(attributions, dtype=float)
    fig = go.Figure(go.Bar(x=list(range(len(tokens))), y=values, customdata=list(tokens), name="attribution",
                           marker_color=[OKABE_ITO[0] if v >= 0 else OKABE_ITO[3] for v in values],
                           hovertemplate="%{customdata}: %{y:.4f}<extra></extra>"))
    fig.update_xaxes(**_token_axis(tokens))
    if delta is not None:
        title = f"{title} (sum {values.sum():.4f}, convergence delta {delta:.1e})"
    fig = layout(fig, title, "", "attribution")
    fig.update_layout(showlegend=False)
    return fig


def attribution_strip(panels: dict[str, tuple[Sequence[str], Sequence[float]]],
                      title: str = "Token attributions") -> go.Figure:
    """One heat strip per model (rows), one symmetric colour scale across all of them."""
    zmax = max((float(np.abs(np.asarray(a, dtype=float)).max(initial=0)) for _, a in panels.values()), default=1.0)
    zmax = zmax or 1.0
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=list(panels), vertical_spacing=0.35 / len(panels))
    for row, (name, (tokens, attr)) in enumerate(panels.items(), 1):
        fig.add_trace(go.Heatmap(z=[list(map(float, attr))], x=list(range(len(tokens))), y=[name],
                                 zmin=-zmax, zmax=zmax, zmid=0, colorscale=DIVERGING, showscale=row == 1,
                                 colorbar=dict(title="attribution"), text=[list(tokens)], texttemplate="%{text}",
                                 hovertemplate="%{text}: %{z:.4f}<extra></extra>", name=name), row=row, col=1)
        fig.update_xaxes(showticklabels=False, ticks="", row=row, col=1)  # the tokens are written in the cells
        fig.update_yaxes(showticklabels=False, ticks="", row=row, col=1)
    fig = layout(fig, title, "", "")
    fig.update_layout(showlegend=False, height=160 + 110 * len(panels))
    return _lift_titles(fig)


@register_figure("head-importance", kinds=("heads",), description="Head importance (Michel and IG), layers x heads")
def _head_importance_figure(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """The stored head importance of the first `heads` run given: Michel and integrated gradients side by side."""
    for run_id in run_ids:
        run = store.get(run_id)
        if run is not None and run.kind == "heads" and "heads.json" in store.artefacts(run_id):
            stored = store.load_artifact_json(run_id, "heads")
            fig = head_importance_panels({"Michel et al. (normalised per layer)": stored["michel"],
                                          "integrated gradients E|IG|": stored["ig"]}, same_scale=False)
            rows = [{"layer": l, "head": h, "michel": m, "ig": i} for l, (mr, ir) in
                    enumerate(zip(stored["michel"], stored["ig"])) for h, (m, i) in enumerate(zip(mr, ir))]
            return FigureResult(fig, pd.DataFrame(rows), [run_id], "head_importance_panels",
                                {"target": stored["target"]})
    raise NotApplicable("none of these runs is a finished head-importance run",
                        fix="run `python -m analysis heads RUN_ID` first")
