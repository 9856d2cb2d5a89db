"""Shared look of every figure: the Okabe-Ito palette (colour-blind safe), one colour per method, one layout."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
METHOD_ORDER = ("dense", "sparsebert", "gradual-magnitude", "magnitude", "movement", "random", "small-dense",
                "heads", "ffn", "layers")
FONT = dict(family="Arial, Helvetica, sans-serif", size=12)


def method_colour(method: str) -> str:
    index = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER) + hash(method) % 3
    return OKABE_ITO[index % len(OKABE_ITO)]


def layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="simple_white", font=FONT, showlegend=True,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), margin=dict(t=70, l=60, r=20, b=50))
    return fig


def side_legend(fig: go.Figure) -> go.Figure:
    """The legend to the right of the plot, for figures whose legend or subplot titles would crowd the top."""
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02),
                      margin=dict(t=70, l=60, r=20, b=50))
    return fig


def band_lines(fig: go.Figure, df: pd.DataFrame, x: str, log_x: bool = False) -> go.Figure:
    """One line per method with a mean +- std band over seeds."""
    for method in sorted(df["method"].unique(), key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99):
        grp = df[df["method"] == method].groupby(x)["value"].agg(["mean", "std", "count"]).reset_index()
        grp["std"] = grp["std"].fillna(0.0)
        colour = method_colour(method)
        if (grp["count"] > 1).any():
            fig.add_trace(go.Scatter(x=list(grp[x]) + list(grp[x])[::-1],
                                     y=list(grp["mean"] + grp["std"]) + list(grp["mean"] - grp["std"])[::-1],
                                     fill="toself", fillcolor=colour, opacity=0.2, line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, name=f"{method} band"))
        fig.add_trace(go.Scatter(x=grp[x], y=grp["mean"], mode="lines+markers", name=method,
                                 line=dict(color=colour, width=2), marker=dict(size=7)))
    if log_x:
        fig.update_xaxes(type="log")
    return fig
