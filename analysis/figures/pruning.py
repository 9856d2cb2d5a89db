"""Pruning figures: achieved sparsity, kept/masked/removed weights, metric vs sparsity and vs non-zero parameters,
training curves, and the metric vs measured latency."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.base import (
    LINE_DASHES,
    OKABE_ITO,
    band_lines,
    distinct_labels,
    layout,
    log_y_axis,
    method_colour,
    method_dash,
    method_order,
    series_colour,
    side_legend,
)
from analysis.models.arch import MODULE_TYPES


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


REFERENCE_LINE = "#444444"  # the dense and floor reference lines
WINDOW_FILL = "rgba(240,228,66,0.25)"  # Okabe-Ito yellow, left to fills: the knowledge window's band
WINDOW_LABEL = "knowledge window"
RANGE_PAD = 0.06  # of the y span, kept above the highest and below the lowest of the curves and reference lines


def metric_vs_sparsity(rows: Sequence[dict[str, Any]], dense: float | None = None,
                       floor: float | None = None) -> go.Figure:
    """Task metric against measured encoder sparsity, one line per method (bands over seeds), with the dense
    fine-tuned metric as a reference line and, when a floor is known (the best `embedding-bag` run: no contextual
    knowledge), the floor too and the band between them shaded as the knowledge window. The reference lines and
    the window are named in the legend, never on the plot, where a label would sit on the curves; the names are
    short ("dense (0.812)", "floor (0.123)", "knowledge window") so a one-column figure keeps two legend columns, and
    the figure's table and provenance say which runs they are."""
    df = pd.DataFrame(rows)
    fig = band_lines(go.Figure(), df, "encoder_sparsity")
    # the reference shapes at full opacity: the template's shape default (0.3) would fade the lines to a light grey
    # unlike their legend entries and the band to nearly nothing; their colours carry their own alpha
    if dense is not None:
        fig.add_hline(y=dense, line_dash="dash", line_color=REFERENCE_LINE, line_width=1.5, opacity=1)
        _legend_entry(fig, f"dense ({dense:.3f})", dash="dash")
    if floor is not None:
        _draw_floor(fig, floor, dense, [float(v) for v in df["value"].dropna()] if len(df) else [])
    metric = df["metric"].iloc[0] if len(df) else "metric"
    return layout(fig, f"Dev {metric} vs encoder sparsity", "encoder sparsity (measured)", metric)


def _draw_floor(fig: go.Figure, floor: float, dense: float | None, values: list[float]) -> None:
    """The floor line, the knowledge window between floor and dense (no band when the floor is not below the dense
    metric), their legend entries, and a y range that holds the curves and both lines."""
    fig.add_hline(y=floor, line_dash="dot", line_color=REFERENCE_LINE, line_width=1.5, opacity=1)
    _legend_entry(fig, f"floor ({floor:.3f})", dash="dot")
    if dense is not None and dense > floor:
        fig.add_hrect(y0=floor, y1=dense, fillcolor=WINDOW_FILL, line_width=0, layer="below", opacity=1)
        _legend_entry(fig, WINDOW_LABEL, fill=WINDOW_FILL)
    lines = [floor] + ([dense] if dense is not None else [])
    low, high = min(values + lines), max(values + lines)
    pad = RANGE_PAD * max(high - low, 0.05)
    fig.update_yaxes(range=[low - pad, high + pad])


def _legend_entry(fig: go.Figure, name: str, dash: str | None = None, fill: str | None = None) -> None:
    """A legend entry, without data, for a reference line (its dash) or band (a square of its fill). Marked as a
    reference (meta), so the greyscale export keeps its style instead of giving it the next series' dash."""
    if fill is not None:
        style: dict[str, Any] = {"mode": "markers", "marker": dict(symbol="square", size=12, color=fill,
                                                                    line=dict(color=REFERENCE_LINE, width=0.5))}
    else:
        style = {"mode": "lines", "line": dict(color=REFERENCE_LINE, dash=dash, width=1.5)}
    fig.add_trace(go.Scatter(x=[None], y=[None], name=name, hoverinfo="skip", meta={"reference": True}, **style))


def metric_vs_nonzero(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """The sparse-vs-small-dense figure: metric against non-zero encoder parameters (log axis)."""
    df = pd.DataFrame(rows)
    fig = band_lines(go.Figure(), df, "encoder_nonzero_params", log_x=True)
    metric = df["metric"].iloc[0] if len(df) else "metric"
    return layout(fig, f"Dev {metric} vs non-zero encoder parameters", "non-zero encoder parameters", metric)


def _run_styles(labels: Sequence[str]) -> list[tuple[str, str]]:
    """(colour, dash) per run label: its method's colour when the label starts with a known method (as in the
    other accuracy figures), else the next colour; runs sharing a colour (seeds) differ by dash."""
    styles, used = [], Counter()
    for i, label in enumerate(labels):
        method = label.split(" ")[0]
        colour = method_colour(method) if method in method_order() else series_colour(i)
        styles.append((colour, LINE_DASHES[used[colour] % len(LINE_DASHES)]))
        used[colour] += 1
    return styles


def _run_panel(fig: go.Figure, points: Sequence[tuple[float, float]], label: str, style: tuple[str, str], col: int,
               mode: str, shown: bool, hover: str) -> None:
    fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode=mode, name=label,
                             legendgroup=label, showlegend=not shown, marker=dict(size=6),
                             line=dict(color=style[0], dash=style[1], width=1.5),
                             hovertemplate=f"{label}<br>{hover}<extra></extra>"), row=1, col=col)


def training_curves(losses: dict[str, list[dict[str, Any]]], epochs: dict[str, list[dict[str, Any]]] | None = None,
                    metric: str = "metric") -> go.Figure:
    """Training loss per logged step and the dev metric after each epoch, one colour per run (a panel is left
    out when no run has its values)."""
    epochs = epochs or {}
    labels = list(dict.fromkeys([*losses, *epochs]))
    curves = {"loss": {label: [(h["step"], h["loss"]) for h in losses.get(label, []) if "loss" in h] for label in labels},
              "dev": {label: [(e["epoch"], e[metric]) for e in epochs.get(label, []) if e.get(metric) is not None]
                      for label in labels}}
    names, common = distinct_labels(labels)  # e.g. "seed 0" said once in the subtitle, not in every entry
    panels = [p for p in ("loss", "dev") if any(curves[p].values())]
    titles = {"loss": "training loss per step", "dev": f"dev {metric} after each epoch"}
    fig = make_subplots(rows=1, cols=max(1, len(panels)), horizontal_spacing=0.12,
                        subplot_titles=[titles[p] for p in panels] or None)
    styles = _run_styles(labels)
    for i, label in enumerate(labels):
        shown = False
        for col, panel in enumerate(panels, 1):
            if curves[panel][label]:
                mode, hover = (("lines", "step %{x}: loss %{y:.4f}") if panel == "loss"
                               else ("lines+markers", f"epoch %{{x}}: {metric} %{{y:.4f}}"))
                _run_panel(fig, curves[panel][label], names[i], styles[i], col, mode, shown, hover)
                shown = True
    title = ("Training curves<br><sup>" + (f"all runs: {common} · " if common else "") + "loss as each run "
             "optimises it (a distillation loss is not on the cross-entropy scale) · dev metric after each epoch</sup>")
    fig = side_legend(layout(fig, title, "", ""))  # axis titles after layout(), which sets the first axis'
    for col, panel in enumerate(panels, 1):
        fig.update_xaxes(title_text="step" if panel == "loss" else "epoch", row=1, col=col)
        if panel == "dev":
            fig.update_xaxes(dtick=1, row=1, col=col)
        elif all(y > 0 for points in curves["loss"].values() for _, y in points):
            log_y_axis(fig, f"y{col if col > 1 else ''}", row=1, col=col)  # distillation and CE losses both readable
    return fig


def latency_vs_metric(rows: Sequence[dict[str, Any]], not_measured: Sequence[str] = (),
                      metric: str = "metric") -> go.Figure:
    """Task metric against measured CPU latency per batch (stored `latency.json` only), one line per method;
    the runs without a measurement are named in the subtitle, never estimated."""
    fig = go.Figure()
    by_method: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    known = method_order()
    order = sorted(by_method, key=lambda m: (known.index(m) if m in known else 99, m))
    for method in order:
        points = sorted(by_method[method], key=lambda r: r["latency"]["latency_ms_per_batch"])
        custom = [[r.get("label", r["run_id"]), r["latency"]["execution"], r["latency"]["examples_per_second"],
                   r["latency"]["threads"], r["latency"]["batch_size"]] for r in points]
        fig.add_trace(go.Scatter(
            x=[r["latency"]["latency_ms_per_batch"] for r in points], y=[r["value"] for r in points],
            mode="lines+markers", name=method, customdata=custom, marker=dict(size=7),
            line=dict(color=method_colour(method), dash=method_dash(method), width=2),
            hovertemplate="%{customdata[0]}<br>%{x:.1f} ms per batch of %{customdata[4]} (%{customdata[2]:.0f} ex/s)"
                          "<br>" + metric + " %{y:.4f}<br>%{customdata[1]}, %{customdata[3]} thread(s)<extra></extra>"))
    settings = sorted({(r["latency"]["batch_size"], r["latency"]["threads"]) for r in rows})
    how = (f"batch {settings[0][0]}, {settings[0][1]} thread(s)" if len(settings) == 1
           else "mixed batch sizes/threads: see the hover")
    missing = f" · not measured: {len(not_measured)} run(s)" if not_measured else ""
    title = f"Dev {metric} vs measured CPU latency<br><sup>{how}, fp32{missing}</sup>"
    return side_legend(layout(fig, title, "latency per batch (ms, measured)", metric))
