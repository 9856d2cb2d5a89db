"""Pruning figures: achieved sparsity, kept/masked/removed weights, metric vs sparsity and vs non-zero parameters."""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..arch import MODULE_TYPES
from .base import OKABE_ITO, band_lines, layout


def sparsity_heatmap(reports: dict[str, dict[str, Any]]) -> go.Figure:
    """Layers x module types of achieved sparsity, one panel per run, all on one colour scale [0, 1]."""
    fig = make_subplots(rows=1, cols=len(reports), subplot_titles=list(reports), shared_yaxes=True,
                        horizontal_spacing=0.04)
    for col, report in enumerate(reports.values(), 1):
        grid = report["by_layer_module"]
        fig.add_trace(go.Heatmap(
            z=grid, x=list(MODULE_TYPES), y=[f"layer {i}" for i in range(len(grid))], zmin=0, zmax=1,
            colorscale="Viridis", showscale=col == len(reports), colorbar=dict(title="sparsity"),
            hovertemplate="%{y} %{x}: %{z:.3f}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    return layout(fig, "Achieved sparsity per layer and module (measured from the weights)", "", "")


def parameter_bars(report: dict[str, Any]) -> go.Figure:
    """Per layer: non-zero, masked-zero and physically removed encoder weights."""
    original_per_layer = report["encoder_params_original"] / max(1, report["num_layers"])
    layers: dict[int, dict[str, float]] = {}
    for t in report["tensors"].values():
        row = layers.setdefault(t["layer"], {"numel": 0, "zeros": 0})
        row["numel"] += t["numel"]
        row["zeros"] += t["zeros"]
    names = [f"layer {i}" for i in sorted(layers)]
    nonzero = [layers[i]["numel"] - layers[i]["zeros"] for i in sorted(layers)]
    masked = [layers[i]["zeros"] for i in sorted(layers)]
    removed = [max(0.0, original_per_layer - layers[i]["numel"]) for i in sorted(layers)]
    fig = go.Figure([go.Bar(name="non-zero", x=names, y=nonzero, marker_color=OKABE_ITO[0]),
                     go.Bar(name="masked zeros", x=names, y=masked, marker_color=OKABE_ITO[1]),
                     go.Bar(name="removed", x=names, y=removed, marker_color=OKABE_ITO[3])])
    fig.update_layout(barmode="stack")
    return layout(fig, "Encoder weights per layer: kept, masked, removed", "", "weights")


def metric_vs_sparsity(rows: Sequence[dict[str, Any]], dense: float | None = None) -> go.Figure:
    """Task metric against measured encoder sparsity, one line per method (bands over seeds)."""
    df = pd.DataFrame(rows)
    fig = band_lines(go.Figure(), df, "encoder_sparsity")
    if dense is not None:
        fig.add_hline(y=dense, line_dash="dash", line_color="#444444", line_width=1.5,
                      annotation_text=f"dense fine-tuned ({dense:.3f})", annotation_position="bottom left")
    metric = df["metric"].iloc[0] if len(df) else "metric"
    return layout(fig, f"Dev {metric} vs encoder sparsity", "encoder sparsity (measured)", metric)


def metric_vs_nonzero(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """The sparse-vs-small-dense figure: metric against non-zero encoder parameters (log axis)."""
    df = pd.DataFrame(rows)
    fig = band_lines(go.Figure(), df, "encoder_nonzero_params", log_x=True)
    metric = df["metric"].iloc[0] if len(df) else "metric"
    return layout(fig, f"Dev {metric} vs non-zero encoder parameters", "non-zero encoder parameters", metric)


def training_curves(histories: dict[str, list[dict[str, Any]]]) -> go.Figure:
    """Training loss per step, one line per run."""
    fig = go.Figure()
    for i, (label, history) in enumerate(histories.items()):
        steps = [h for h in history if "loss" in h]
        fig.add_trace(go.Scatter(x=[h["step"] for h in steps], y=[h["loss"] for h in steps], mode="lines+markers",
                                 name=label, line=dict(color=OKABE_ITO[i % len(OKABE_ITO)])))
    return layout(fig, "Training loss", "step", "loss")
