"""Figures of the what-if explorer: one-shot edits beside retrained runs, and the edit's sparsity per layer."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from analysis.figures.base import OKABE_ITO, layout, method_colour, method_order


def whatif_vs_retrained(edits: Sequence[Mapping[str, Any]], retrained: Sequence[Mapping[str, Any]],
                        unedited: float | None, metric: str) -> go.Figure:
    """The metric against encoder sparsity: each evaluated edit ("one-shot, no retraining", a numbered point), the
    finished prune runs of the same model and task ("retrained", one colour per method), the unedited model."""
    fig = go.Figure()
    known = method_order()
    for method in sorted({r["method"] for r in retrained}, key=lambda m: (known.index(m) if m in known else 99, m)):
        rows = sorted((r for r in retrained if r["method"] == method), key=lambda r: r["encoder_sparsity"] or 0)
        fig.add_trace(go.Scatter(
            x=[r["encoder_sparsity"] for r in rows], y=[r["value"] for r in rows], mode="markers",
            name=f"{method} (retrained)", marker=dict(color=method_colour(method), size=9, symbol="circle"),
            hovertext=[f"{r['run_id']} seed={r['seed']}" for r in rows]))
    if edits:
        fig.add_trace(go.Scatter(
            x=[e["encoder_sparsity"] for e in edits], y=[e["value"] for e in edits], mode="markers+text",
            name="one-shot edit (no retraining)", text=[str(i + 1) for i in range(len(edits))],
            textposition="top center", marker=dict(color=OKABE_ITO[3], size=11, symbol="diamond"),
            error_y=dict(type="data", symmetric=False, array=[e["ci_high"] - e["value"] for e in edits],
                         arrayminus=[e["value"] - e["ci_low"] for e in edits], thickness=1),
            hovertext=[e["edit_text"] for e in edits]))
    if unedited is not None:
        fig.add_hline(y=unedited, line=dict(color="#555555", dash="dash", width=1),
                      annotation_text="unedited", annotation_position="bottom right")
    fig = layout(fig, "One-shot edits vs retrained runs", "encoder sparsity (share of encoder weights removed)", metric)
    return fig.update_xaxes(range=[-0.02, 1.0])


def layer_sparsity_bars(values: Sequence[float], title: str = "Sparsity of the edit per layer") -> go.Figure:
    """Share of each layer's weights the edit removes (1 for a dropped layer)."""
    fig = go.Figure(go.Bar(x=[f"layer {i}" for i in range(len(values))], y=list(values),
                           marker_color=OKABE_ITO[0], text=[f"{v:.0%}" for v in values], textposition="outside"))
    fig = layout(fig, title, "", "share of weights removed")
    fig.update_layout(showlegend=False)
    return fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
