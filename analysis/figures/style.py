"""Pure transforms of a built figure for print: paper size and fonts, the Okabe-Ito colourway, greyscale.

Each takes a figure and returns a new one; the input is never changed.
"""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
from plotly.colors import get_colorscale

from .base import OKABE_ITO

PX_PER_INCH = 96  # CSS pixels: plotly's width/height and font sizes are in these (12 px prints as 9 pt)
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star")
PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")
COLORSCALE_KEYS = {"colorscale", "sequential", "sequentialminus", "diverging"}
_RGB = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)", re.I)


def paper_figure(fig: go.Figure, width_in: float, height_in: float, keep_title: bool = False,
                 font_px: float | None = None) -> go.Figure:
    """A copy sized for print (inches), Okabe-Ito colourway, title dropped (the caption says it) unless kept."""
    out = go.Figure(fig)
    font = font_px or (10 if width_in < 4 else 12)  # 7.5 pt in one column, 9 pt across two
    out.update_layout(width=round(width_in * PX_PER_INCH, 2), height=round(height_in * PX_PER_INCH, 2),
                      autosize=False, colorway=list(OKABE_ITO), font=dict(size=font))
    if not keep_title:
        out.update_layout(title=None, margin=dict(t=40 if out.layout.showlegend is not False else 15))
    out.update_layout(margin=dict(l=55, r=15, b=45))
    out.update_annotations(font_size=font - 1)  # subplot titles and notes a step below the axis text
    _legend_columns(out, width_in * PX_PER_INCH, font)
    return out


def _legend_columns(fig: go.Figure, width_px: float, font: float) -> None:
    """A horizontal legend with many entries laid out in equal columns across the whole figure width, so it
    takes as few rows as the longest label allows (plotly would otherwise give long labels a row each)."""
    names = [t.name for t in fig.data if t.showlegend is not False and t.name]
    if len(names) <= 3 or (fig.layout.legend.orientation or "v") != "h":
        return
    entry = 30 + 12 + max(len(n) for n in names) * font * 0.55  # symbol, gap, text at ~0.55 em per character
    fig.update_layout(legend=dict(itemwidth=30, entrywidth=round(entry), entrywidthmode="pixels"))


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
    """Give each legend entry its own dash, marker symbol or bar pattern, so greys stay apart."""
    i = 0
    for trace in traces:
        if trace.get("showlegend") is False or trace.get("fill") in ("toself", "tonexty", "tozeroy"):
            continue
        kind = trace.get("type", "scatter")
        if kind in ("scatter", "scattergl"):
            trace.setdefault("line", {})["dash"] = DASHES[i % len(DASHES)]
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
