"""What each finished study in the store found, in one sentence computed from its stored table or summary (never
written by hand), with the page that shows it and the registered figure that draws it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from analysis.reports.tables import lr_label
from analysis.store.index import RunStore


@dataclass(frozen=True)
class Headline:
    run_id: str
    kind: str
    runs: int  # member runs: the larger study is the stronger evidence
    title: str
    finding: str
    page: str  # the dashboard page (file stem) that shows the study
    figure: str  # a registered figure of it
    tuned: bool = False  # its settings were chosen on held-out data: stronger evidence than size alone


def _pruning(store: RunStore, row: dict[str, Any]) -> Headline | None:
    table = [r for r in store.load_artifact_json(row["run_id"], "table") if r.get("value") is not None]
    if not table:
        return None
    cells: dict[tuple[str, float], list[float]] = {}
    for r in table:
        cells.setdefault((r["method"], r["sparsity"]), []).append(r["value"])
    mean = {key: sum(v) / len(v) for key, v in cells.items()}
    metric = table[0].get("metric") or "metric"
    seeds = max(len(v) for v in cells.values())
    top = max(s for _, s in cells)
    best = max((value, method) for (method, s), value in mean.items() if s == top)
    methods = {m for m, _ in cells}
    at_top = f"at {top:g} {best[1]} keeps the most: {best[0]:.3f}; {len(methods)} methods compared."
    shared = sorted(s for m, s in cells if m == "sparsebert" and ("small-dense", s) in cells)
    if shared:  # the SparseBERT paper's claim: sparse beats small-dense at equal non-zero parameters
        gaps = ", ".join(f"{mean[('sparsebert', s)] - mean[('small-dense', s)]:+.3f} at {s:g}" for s in shared)
        finding = (f"On {row['dataset']} ({metric}, mean of up to {seeds} seed{'s' if seeds > 1 else ''}), sparsebert "
                   f"minus small-dense at equal non-zero encoder weights: {gaps}; {at_top}")
    else:
        finding = f"On {row['dataset']} ({metric}, mean of up to {seeds} seed{'s' if seeds > 1 else ''}), {at_top}"
    return Headline(row["run_id"], row["kind"], len(table), row["label"] or "pruning sweep", finding, "accuracy",
                    "metric-vs-sparsity")


def _scale(store: RunStore, row: dict[str, Any]) -> Headline | None:
    summary = store.load_artifact_json(row["run_id"], "summary")
    gaps = summary.get("gaps") or []
    if not gaps:
        return None
    largest = max(g["size"] for g in gaps)
    parts = []
    for g in sorted((g for g in gaps if g["size"] == largest), key=lambda g: g["arm"]):
        even = (summary.get("break_even") or {}).get(g["arm"], {})
        where = ("no break-even within the sizes measured" if not even or even.get("extrapolation")
                 or not isinstance(even.get("n"), (int, float)) or math.isnan(even.get("n", math.nan))
                 else f"break-even near n={even['n']:,.0f}")
        side = "behind" if g["gap"] >= 0 else "ahead"
        parts.append(f"{g['arm']} {100 * abs(g['gap']):.1f} points {side} ({where})")
    finding = f"With {largest:,} training examples, against the pretrained transformer: " + "; ".join(parts) + "."
    return Headline(row["run_id"], row["kind"], len(summary.get("cells") or gaps), row["label"] or "data-scale study",
                    finding, "scale", "scale-gap")


def _child_tuning(store: RunStore, row: dict[str, Any]) -> Headline | None:
    cells = [c for c in store.load_artifact_json(row["run_id"], "summary").get("cells", [])
             if c.get("method") != "vanilla" and c.get("diff_mean") is not None]
    if not cells:
        return None
    better = [c for c in cells if c["diff_ci_low"] is not None and c["diff_ci_low"] > 0]
    worse = [c for c in cells if c["diff_ci_high"] is not None and c["diff_ci_high"] < 0]
    tasks = sorted({c["task"] for c in cells})
    finding = (f"Child-Tuning vs vanilla on {len(tasks)} task(s) ({', '.join(tasks)}): {len(better)} of {len(cells)} "
               f"method-task cells better with a 95% interval above zero, {len(worse)} worse, the rest not "
               f"distinguishable from vanilla.{_selection_clause(store, row['run_id'])}")
    tuned = "selection.json" in store.artefacts(row["run_id"])
    return Headline(row["run_id"], row["kind"], sum(c.get("n", 0) for c in cells), row["label"] or "Child-Tuning study",
                    finding, "child_tuning", "child-differences", tuned=tuned)


def _selection_clause(store: RunStore, run_id: str) -> str:
    """How a study set each arm's lr and p: chosen on a held-out share (with the choices), or one fixed lr; "" when
    its stored selection cannot be read (the rest of the headline still shows)."""
    if "selection.json" not in store.artefacts(run_id):
        return " One fixed learning rate for every arm, not tuned on held-out data."
    try:
        held = store.require(run_id).config.get("select_holdout")
        chosen = store.load_artifact_json(run_id, "selection")["chosen"]
        picks = "; ".join(f"{c['task']} {c['method']} lr {lr_label(c['lr'])}"
                          + ("" if c.get("p") is None else f" p {c['p']:g}")
                          + (f", at the {c['at_edge']} lr it tried" if c.get("at_edge") else "") for c in chosen)
    except (AttributeError, KeyError, TypeError, ValueError):
        return ""
    share = f"a held-out {100 * held:g}%" if held else "a held-out share"
    return f" Each arm's lr and p were chosen per task on {share} of the training set ({picks})."


HEADLINES: dict[str, Callable[[RunStore, dict[str, Any]], Headline | None]] = {
    "sweep-pruning": _pruning, "study-scale": _scale, "study-child-tuning": _child_tuning,
}


def headlines(store: RunStore) -> list[Headline]:
    """One headline per finished study in the store; within a kind the studies tuned on held-out data first, then the
    largest, then the newest (Home draws the first of each kind)."""
    out = []
    for row in store.list(status="done"):
        summarise = HEADLINES.get(row["kind"])
        if summarise is None:
            continue
        try:
            found = summarise(store, row)
        except (KeyError, TypeError, ValueError, FileNotFoundError):  # an older artefact layout: skip, don't crash
            continue
        if found is not None:
            out.append(found)
    kinds = list(HEADLINES)
    return sorted(out, key=lambda h: (kinds.index(h.kind), not h.tuned, -h.runs))  # stable: newest first among equals
