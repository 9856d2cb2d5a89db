"""Named figures built from the run store: what the exporter, the `figure` CLI and the Export page offer.

Registering a figure is one decorator. In your topic module (e.g. `analysis/figures/scale.py`)::

    from analysis.figures.registry import FigureResult, NotApplicable, register_figure

    @register_figure("metric-vs-size", kinds=("study-scale",), description="Metric vs training size per arm")
    def _metric_vs_size(store, run_ids):
        rows = [...]                                  # read what you need from the store for these runs
        if not rows:
            raise NotApplicable("none of these runs is a finished data-scale study")
        fig = metric_vs_size(rows)                    # the pure figure function of this topic
        return FigureResult(fig, table=pd.DataFrame(rows), run_ids=[r["run_id"] for r in rows],
                            function="metric_vs_size", arguments={"rows": len(rows)})

and import the module from `analysis/figures/__init__.py` (already the rule for topic modules), so the
decorator runs. The builder gets the store and the run ids the user picked (a study id is expanded to its
member runs as well, see `expand_runs`) and returns a `FigureResult`: the plotly figure, the table behind
it (or None), the run ids it actually used and the figure function's name and arguments (for provenance).
`kinds` lists the run kinds a figure can use; it only narrows what the Export page offers. `width="double"`
makes a wide figure (many panels) export at 6.9 in unless the user asks for another width. When the runs
given cannot make the figure, raise `NotApplicable` with the reason: a study bundle skips such figures and
lists why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd
import plotly.graph_objects as go

from analysis.core.errors import PruneScopeError
from analysis.core.registry import Registry
from analysis.store.index import RunStore


class NotApplicable(PruneScopeError):
    """The runs given cannot make this figure (wrong kind, missing artefact)."""


@dataclass(frozen=True)
class FigureResult:
    """A built figure with the table behind it and the inputs that go into its provenance."""

    figure: go.Figure
    table: pd.DataFrame | None
    run_ids: Sequence[str]
    function: str
    arguments: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[RunStore, Sequence[str]], FigureResult]


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its name, builder, the run kinds it uses and a one-line description."""

    name: str
    build: Builder
    kinds: tuple[str, ...]
    description: str
    width: str = "single"  # the paper width it reads best at, when the user does not choose one


FIGURES: Registry[FigureSpec] = Registry("figure")


def register_figure(name: str, kinds: Sequence[str] = (), description: str = "",
                    width: str = "single") -> Callable[[Builder], Builder]:
    """Decorator: register `build(store, run_ids) -> FigureResult` under `name` (width: its default paper width)."""

    def add(build: Builder) -> Builder:
        doc = (build.__doc__ or "").strip().splitlines()
        spec = FigureSpec(name, build, tuple(kinds), description or (doc[0] if doc else name), width)
        FIGURES.register(name)(spec)
        return build

    return add


def expand_runs(store: RunStore, run_ids: Sequence[str]) -> list[str]:
    """The given run ids followed by the member runs of any study among them (order kept, no repeats)."""
    out: list[str] = []
    pending = list(run_ids)
    while pending:
        run_id = pending.pop(0)
        if run_id in out:
            continue
        record = store.require(run_id)
        out.append(run_id)
        pending.extend(record.summary.get("run_ids", []) or [])
    return out


def build_figure(store: RunStore, name: str, run_ids: Sequence[str]) -> FigureResult:
    """Build the figure registered as `name` from the given runs (studies expanded to their members)."""
    return FIGURES.get(name).build(store, expand_runs(store, run_ids))


def figures_for(kinds: Sequence[str]) -> list[str]:
    """Names of the figures that use at least one of these run kinds (all of them when a figure names none)."""
    wanted = set(kinds)
    return [n for n in FIGURES.names() if not FIGURES.get(n).kinds or wanted & set(FIGURES.get(n).kinds)]
