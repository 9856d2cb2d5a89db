"""Pure transforms of a built figure for print: paper size and fonts, the Okabe-Ito colourway, greyscale.

Each takes a figure and returns a new one; the input is never changed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import plotly.graph_objects as go
from plotly.colors import get_colorscale

from analysis.figures.base import LINE_COLOURS

PX_PER_INCH = 96  # CSS pixels: plotly's width/height and font sizes are in these (12 px prints as 9 pt)
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star")
PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")
LEGEND_SYMBOL_PX = 45  # the line sample and the gaps around it, per legend entry
TEXT_EM = 0.5  # average Arial character width in em (measured ~0.49 for legend labels)
NO_LEGEND_TYPES = {"heatmap", "histogram2d", "contour"}
COLORSCALE_KEYS = {"colorscale", "sequential", "sequentialminus", "diverging"}
_RGB = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)", re.I)


def paper_figure(fig: go.Figure, width_in: float, height_in: float, keep_title: bool = False,
                 font_px: float | None = None) -> go.Figure:
    """A copy sized for print (inches), Okabe-Ito line colours, title dropped (the caption says it) unless kept;
    the legend outside the plot (above it, in columns, unless a side legend fits) and long notes wrapped."""
    out = go.Figure(fig)
    font = font_px or (10 if width_in < 4 else 12)  # 7.5 pt in one column, 9 pt across two
    width_px = width_in * PX_PER_INCH
    out.update_layout(width=round(width_px, 2), height=round(height_in * PX_PER_INCH, 2),
                      autosize=False, colorway=list(LINE_COLOURS), font=dict(size=font))
    if not keep_title:
        out.update_layout(title=None)
    else:  # pinned to the top: the legend is placed below the title's measured height, not plotly's centring
        out.update_layout(title=dict(yref="container", y=1, yanchor="top", pad=dict(t=font + 8)))
    out.update_layout(margin=dict(l=55, r=15, b=45, t=15))
    out.update_annotations(font_size=font - 1)  # subplot titles and notes a step below the axis text
    _wrap_annotations(out, width_px, font - 1)
    out.update_traces(colorbar=dict(thickness=8 if width_in < 4 else 15, xpad=3), selector=lambda t: "colorbar" in t)
    top = _title_height(out, font) if keep_title else 0.0
    top += _place_legend(out, width_px, font - 1, top)
    out.update_layout(margin=dict(t=round(top + _panel_title_height(out, font - 1) + 10)))
    _wrap_axis_titles(out, width_px, height_in * PX_PER_INCH, font)  # after the legend: it takes plot height
    return out


def _legend_names(fig: go.Figure) -> list[str]:
    if fig.layout.showlegend is False:
        return []
    names = []
    for trace in fig.data:
        shown = trace.showlegend if trace.showlegend is not None else trace.type not in NO_LEGEND_TYPES
        if shown and trace.name and trace.type not in NO_LEGEND_TYPES:
            names.append(str(trace.name))
    return names


def _text_px(text: str, font: float) -> float:
    """Rough rendered width of the longest line of a label (Arial averages ~0.55 em per character)."""
    lines = re.sub(r"<(?!br)[^>]+>", "", text).split("<br>")
    return max(len(line) for line in lines) * font * TEXT_EM


def _has_colorbar(fig: go.Figure) -> bool:
    return any(getattr(t, "showscale", None) is not False and "colorbar" in t for t in fig.data
               if t.type in NO_LEGEND_TYPES)


def _place_legend(fig: go.Figure, width_px: float, font: float, top: float) -> float:
    """Put the legend where it covers no data: to the right when that leaves the plot at least 70% of a double-
    column figure (and no colour bar is there), else above the plot, in as many columns as the plot's width
    takes. Returns the height it takes above the plot."""
    names = _legend_names(fig)
    if not names:
        return 0.0
    entry = LEGEND_SYMBOL_PX + max(_text_px(n, font) for n in names)
    if width_px >= 500 and entry + 20 <= 0.3 * width_px and not _has_colorbar(fig):
        fig.update_layout(legend=dict(orientation="v", xref="paper", yref="paper", x=1.02, xanchor="left", y=1,
                                      yanchor="top", font=dict(size=font), itemwidth=30))
        return 0.0
    plot_px = width_px - fig.layout.margin.l - fig.layout.margin.r  # plotly wraps a legend at the plot's width
    columns = max(1, min(len(names), int(plot_px // entry)))
    rows = math.ceil(len(names) / columns)
    # entrywidth 0: plotly sizes every column to the widest entry and wraps at the plot width, as estimated here
    fig.update_layout(legend=dict(
        orientation="h", xref="container", yref="container", x=0.01, xanchor="left",
        y=1 - (top + 2) / fig.layout.height, yanchor="top", font=dict(size=font), itemwidth=30, entrywidth=0,
        entrywidthmode="pixels", tracegroupgap=0))
    return rows * (font + 10) + 6


def _title_height(fig: go.Figure, font: float) -> float:
    text = fig.layout.title.text or ""
    return 0.0 if not text else (text.count("<br>") + 1) * (font + 6) + 8


def _panel_title_height(fig: go.Figure, font: float) -> float:
    """Room for the subplot titles that sit on top of the panels (two or more lines after wrapping)."""
    lines = [a.text.count("<br>") + 1 for a in fig.layout.annotations
             if a.yref == "paper" and a.y is not None and a.y >= 0.99 and a.yanchor == "bottom" and a.text]
    return max(lines, default=0) * (font + 3) + (8 if lines else 0)


def _wrap(text: str, max_px: float, font: float) -> str:
    """The text broken at spaces into lines no wider than max_px (existing <br>s kept)."""
    limit = max(8, int(max_px / (font * TEXT_EM)))
    out = []
    for line in text.split("<br>"):
        current = ""
        for word in re.sub(r"(?<=\w)-(?=\w{4,})", "- ", line).split(" "):  # long-word hyphens may break too
            if current and len(re.sub(r"<[^>]+>", "", current + " " + word)) > limit:
                out.append(current)
                current = word
            else:
                current = f"{current} {word}" if current and not current.endswith("-") else current + word
        out.append(current)
    return "<br>".join(out)


def _wrap_annotations(fig: go.Figure, width_px: float, font: float) -> None:
    """Subplot titles wrapped to their panel's width, other notes to the plot's width."""
    plot_px = width_px - 70
    domains = [fig.layout[k].domain for k in fig.layout if k.startswith("xaxis") and fig.layout[k].domain]
    for ann in fig.layout.annotations:
        if not ann.text:
            continue
        panel = next((d for d in domains if ann.xref == "paper" and ann.x is not None and d[0] <= ann.x <= d[1]),
                     None)
        is_panel_title = ann.yref == "paper" and ann.y is not None and ann.y >= 0.99 and panel is not None
        room = (panel[1] - panel[0]) * plot_px if is_panel_title else 0.8 * plot_px
        ann.text = _wrap(ann.text, room, font)


def _wrap_axis_titles(fig: go.Figure, width_px: float, height_px: float, font: float) -> None:
    """Axis titles longer than their axis broken into lines (a y title longer than the plot runs into the legend)."""
    margin = fig.layout.margin
    plot_w, plot_h = width_px - margin.l - margin.r, height_px - margin.t - margin.b - 10
    for key in fig.layout:
        axis = fig.layout[key]
        if not (key.startswith(("xaxis", "yaxis")) and axis.title and axis.title.text):
            continue
        domain = axis.domain or (0, 1)
        room = (domain[1] - domain[0]) * (plot_w if key.startswith("x") else plot_h)
        axis.title.text = _wrap(axis.title.text, room, font)


def parse_colour(value: str) -> tuple[int, int, int, float] | None:
    """A CSS colour (#rgb, #rrggbb, rgb(), rgba(), a name) as (r, g, b, alpha); None if it is not one."""
    text = value.strip()
    match = _RGB.fullmatch(text)
    if match:
        r, g, b, a = match.groups()
        return round(float(r)), round(float(g)), round(float(b)), float(a) if a is not None else 1.0
    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        return None
    return rgb[0], rgb[1], rgb[2], (rgb[3] / 255 if len(rgb) == 4 else 1.0)


def grey_level(r: int, g: int, b: int) -> int:
    """The sRGB grey of the same relative luminance (Rec. 709 weights on linear light)."""
    def linear(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    y = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    encoded = 12.92 * y if y <= 0.0031308 else 1.055 * y ** (1 / 2.4) - 0.055
    return max(0, min(255, round(encoded * 255)))


def grey_colour(value: str) -> str:
    """A colour string turned into the grey of the same luminance (alpha kept); non-colours unchanged."""
    parsed = parse_colour(value)
    if parsed is None:
        return value
    r, g, b, alpha = parsed
    v = grey_level(r, g, b)
    return f"rgba({v},{v},{v},{alpha:g})" if alpha < 1 else f"rgb({v},{v},{v})"


def _grey_scale(scale: Any) -> Any:
    stops = get_colorscale(scale) if isinstance(scale, str) else scale
    return [[pos, grey_colour(c) if isinstance(c, str) else c] for pos, c in stops]


def _grey(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _grey(v, k) for k, v in node.items()}
    if key in COLORSCALE_KEYS and isinstance(node, (str, list, tuple)) and node:
        return _grey_scale(node)
    if key.endswith("color") or key == "colorway":
        if isinstance(node, str):
            return grey_colour(node)
        if isinstance(node, (list, tuple)):
            return [grey_colour(c) if isinstance(c, str) else c for c in node]
        return node
    if isinstance(node, (list, tuple)):
        return [_grey(v, key) for v in node]
    return node


def _distinguish(traces: list[dict[str, Any]]) -> None:
    """Give each legend entry its own dash, marker symbol or bar pattern, so greys stay apart (a reference line's
    entry, marked in its meta, keeps the style of its line, and no series takes a reference line's dash)."""
    def is_reference(trace: dict[str, Any]) -> bool:
        return isinstance(trace.get("meta"), dict) and bool(trace["meta"].get("reference"))

    taken = {(t.get("line") or {}).get("dash") for t in traces if is_reference(t)}
    dashes = [d for d in DASHES if d not in taken] or list(DASHES)
    i = 0
    for trace in traces:
        if trace.get("showlegend") is False or trace.get("fill") in ("toself", "tonexty", "tozeroy") \
                or is_reference(trace):
            continue
        kind = trace.get("type", "scatter")
        if kind in ("scatter", "scattergl"):
            trace.setdefault("line", {})["dash"] = dashes[i % len(dashes)]
            trace.setdefault("marker", {})["symbol"] = SYMBOLS[i % len(SYMBOLS)]
        elif kind == "bar":
            trace.setdefault("marker", {})["pattern"] = {"shape": PATTERNS[i % len(PATTERNS)], "fgcolor": "black",
                                                         "solidity": 0.3}
        else:
            continue
        i += 1


def to_greyscale(fig: go.Figure) -> go.Figure:
    """A copy with every colour (traces, layout, template, colour scales) in luminance grey and per-trace
    dash styles, marker symbols and bar patterns."""
    spec = _grey(fig.to_dict())
    _distinguish(spec.get("data", []))
    return go.Figure(spec)
