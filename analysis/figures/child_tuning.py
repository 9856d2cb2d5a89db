"""Child-Tuning figures: Fisher scores and the child network's share per layer, D-mask overlap across seeds
(and tasks), weight change per layer against vanilla, and the study's paired differences."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.core.config import BASELINE_MODELS
from analysis.figures.base import distinct_labels, layout, log_y_axis, series_colour, side_legend
from analysis.figures.registry import FigureResult, register_figure
from analysis.reports.tables import lr_label
from analysis.studies.child_tuning_study import selection_inputs, study_inputs

METHOD_ORDER = ("vanilla", "child-f", "child-d")


def method_colour(method: str) -> str:
    """One colour per fine-tuning method (vanilla, child-f, child-d), whatever its p."""
    base = method.split(" ")[0]
    index = METHOD_ORDER.index(base) if base in METHOD_ORDER else 3 + sum(map(ord, method)) % 4
    return series_colour(index)


def _per_layer(table: Sequence[Mapping[str, Any]], key: str) -> dict[int, float]:
    """Parameter-weighted mean of `key` over the module types of each layer."""
    acc: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in table:
        acc[int(row["layer"])][0] += row[key] * row["params"]
        acc[int(row["layer"])][1] += row["params"]
    return {layer: s / max(n, 1) for layer, (s, n) in sorted(acc.items())}


def fisher_per_layer(networks: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Mean diagonal Fisher per encoder layer (log scale), one line per Child-D run."""
    fig = go.Figure()
    names, common = distinct_labels(list(networks))
    for i, (label, net) in enumerate(zip(names, networks.values())):
        per_layer = _per_layer(net["by_layer_module"], "fisher_mean")
        if not any(v > 0 for v in per_layer.values()):
            continue  # a mask reused from another run (--mask-from) carries no Fisher scores
        fig.add_trace(go.Scatter(x=list(per_layer), y=list(per_layer.values()), mode="lines+markers", name=label,
                                 line=dict(color=series_colour(i), width=2)))
    log_y_axis(fig)
    fig.update_xaxes(dtick=1)
    return side_legend(layout(fig, "Diagonal empirical Fisher per layer<br><sup>mean over the layer's parameters"
                              + (f" · all runs: {common}" if common else "") + "</sup>",
                              "encoder layer", "mean Fisher score (log scale)"))


def fisher_heatmap(network: Mapping[str, Any], title: str = "") -> go.Figure:
    """Layers x module types of the mean Fisher score (log10), for one Child-D run."""
    table = pd.DataFrame(network["by_layer_module"])
    grid = table.pivot(index="layer", columns="module", values="fisher_mean")
    z = np.log10(grid.to_numpy(dtype=float).clip(min=1e-30))
    fig = go.Figure(go.Heatmap(z=z, x=list(grid.columns), y=[f"layer {i}" for i in grid.index], colorscale="Viridis",
                               colorbar=dict(title="log10 Fisher"),
                               hovertemplate="%{y} %{x}: 10^%{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return layout(fig, title or "Mean Fisher score per layer and module type", "", "")


def child_share_per_layer(networks: Mapping[str, Mapping[str, Any]], p: float | None = None) -> go.Figure:
    """The share of each encoder layer's parameters in the child network, one bar group per run."""
    fig = go.Figure()
    names, common = distinct_labels(list(networks))
    for i, (label, net) in enumerate(zip(names, networks.values())):
        shares = net["child_share_per_layer"]
        fig.add_trace(go.Bar(x=[f"layer {k}" for k in shares], y=list(shares.values()), name=label,
                             marker_color=series_colour(i)))
    if p is not None:
        fig.add_hline(y=p, line_dash="dash", line_color="#444444", annotation_text=f"p_D = {p:g} (overall share)",
                      annotation_position="top left")
    fig.update_layout(barmode="group")
    title = "Child network's share of each layer (Child-D)" + (f"<br><sup>all runs: {common}</sup>" if common else "")
    return side_legend(layout(fig, title, "",
                              "share of parameters in the child"))


def _overlap_groups(pairs: Sequence[Mapping[str, Any]], which: str) -> dict[str, tuple[list[Any], np.ndarray]]:
    """{group title: (labels, symmetric Jaccard matrix with 1 on the diagonal)}."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for pair in pairs:
        head = short(pair["task"]) if which == "seeds" else f"seed {pair['seed']}"
        title = f"{head} p={pair['p']:g}"
        groups[title].append(pair)
    out = {}
    for title, items in groups.items():
        labels = sorted({x for it in items for x in it[which]}, key=str)
        m = np.eye(len(labels))
        for it in items:
            a, b = (labels.index(x) for x in it[which])
            m[a, b] = m[b, a] = it["jaccard"]
        out[title] = (labels, m)
    return out


def mask_overlap_heatmap(overlap: Mapping[str, Sequence[Mapping[str, Any]]], which: str = "seeds") -> go.Figure:
    """Jaccard overlap of the Child-D masks across seeds (one panel per task and p), or across tasks."""
    groups = _overlap_groups(overlap.get("across_seeds" if which == "seeds" else "across_tasks", []), which)
    fig = make_subplots(rows=1, cols=max(1, len(groups)), subplot_titles=list(groups) or None, horizontal_spacing=0.15)
    for col, (labels, m) in enumerate(groups.values(), 1):
        names = [f"seed {x}" if which == "seeds" else short(x) for x in labels]
        fig.add_trace(go.Heatmap(z=m.tolist(), x=names, y=names, zmin=0, zmax=1, colorscale="Viridis",
                                 showscale=col == len(groups),
                                 colorbar=dict(title="Jaccard"), text=np.round(m, 2).tolist(), texttemplate="%{text}",
                                 hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    what = "seeds" if which == "seeds" else "tasks"
    ps = sorted({float(t.split("p=")[-1]) for t in groups})
    chance = " · two random masks would give " + ", ".join(f"{p / (2 - p):.2f} at p={p:g}" for p in ps) if ps else ""
    return layout(fig, f"Child-D mask overlap across {what}<br><sup>Jaccard{chance}</sup>", "", "")


def _layer_key(row: Mapping[str, Any]) -> str:
    return f"L{row['layer']}" if row["layer"] is not None else str(row["module"])


def mean_change_per_layer(changes: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, float]:
    """Relative weight change ‖w − w₀‖/‖w₀‖ per layer: mean over module types, then over runs (seeds)."""
    per_run = []
    for change in changes:
        acc: dict[str, list[float]] = defaultdict(list)
        for row in change:
            acc[_layer_key(row)].append(row["relative_change"])
        per_run.append({k: float(np.mean(v)) for k, v in acc.items()})
    keys = [k for k in _order(per_run[0])] if per_run else []
    return {k: float(np.mean([r[k] for r in per_run if k in r])) for k in keys}


def _order(layers: Mapping[str, float]) -> list[str]:
    inner = sorted((k for k in layers if k.startswith("L") and k[1:].isdigit()), key=lambda k: int(k[1:]))
    return [k for k in ("embeddings",) if k in layers] + inner + sorted(k for k in layers if k != "embeddings"
                                                                       and k not in inner)


def weight_change_per_layer(changes: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
                            reference: str = "vanilla") -> go.Figure:
    """Relative weight change per layer per method (mean over seeds), and its ratio to the reference method."""
    means = {label: mean_change_per_layer(runs) for label, runs in changes.items() if runs}
    ref = means.get(reference)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("‖w − w₀‖ / ‖w₀‖ (mean over module types)",
                                        f"ratio to {reference}"))
    for label, values in means.items():
        colour = method_colour(label)
        fig.add_trace(go.Scatter(x=list(values), y=list(values.values()), mode="lines+markers", name=label,
                                 legendgroup=label, line=dict(color=colour, width=2)), row=1, col=1)
        if ref is not None and label != reference:
            keys = [k for k in values if ref.get(k)]
            fig.add_trace(go.Scatter(x=keys, y=[values[k] / ref[k] for k in keys], mode="lines+markers",
                                     name=f"{label} / {reference}", legendgroup=label, showlegend=False,
                                     line=dict(color=colour, width=2, dash="dot")), row=1, col=2)
    log_y_axis(fig, "y", row=1, col=1)
    if ref is not None:
        fig.add_hline(y=1.0, line_dash="dash", line_color="#444444", row=1, col=2)
    return side_legend(layout(fig, "Weight change per layer after fine-tuning", "", ""))


def short(task: Any) -> str:
    """A task name, or a user file's name without its folder."""
    return str(task).replace("\\", "/").split("/")[-1]


def study_table(cells: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean ± std per (task, method, p) and the paired difference to vanilla (same seeds) with its 95% CI."""
    rows = []
    for c in cells:
        method = c["method"] if c.get("p") is None else f"{c['method']} p={c['p']:g}"
        rows.append({"task": short(c["task"]), "method": method, "seeds": c["n"], "mean": c["mean"], "std": c["std"],
                     "diff_vs_vanilla": c.get("diff_mean"), "diff_ci_low": c.get("diff_ci_low"),
                     "diff_ci_high": c.get("diff_ci_high"), "paired_t_p": c.get("diff_p_value"),
                     "mean ± std": _pm(c["mean"], c["std"])})
    return pd.DataFrame(rows, columns=["task", "method", "seeds", "mean ± std", "mean", "std", "diff_vs_vanilla",
                                       "diff_ci_low", "diff_ci_high", "paired_t_p"])


def _pm(mean: float, std: float) -> str:
    if mean is None or not math.isfinite(mean):
        return ""
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if std is not None and math.isfinite(std) else f"{100 * mean:.1f}"


def study_differences(cells: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Forest plot: each method's paired difference to vanilla per task, with its 95% t-interval."""
    fig = go.Figure()
    methods = sorted({(c["method"], c.get("p")) for c in cells if c["method"] != "vanilla"}, key=str)
    for method, p in methods:
        mine = [c for c in cells if c["method"] == method and c.get("p") == p and c.get("diff_mean") is not None]
        label = method if p is None else f"{method} p={p:g}"
        low = [c["diff_mean"] - c["diff_ci_low"] if _ok(c.get("diff_ci_low")) else 0 for c in mine]
        high = [c["diff_ci_high"] - c["diff_mean"] if _ok(c.get("diff_ci_high")) else 0 for c in mine]
        fig.add_trace(go.Scatter(x=[c["diff_mean"] for c in mine], y=[short(c["task"]) for c in mine], mode="markers",
                                 orientation="h", name=label, marker=dict(size=10, color=method_colour(method)),
                                 error_x=dict(type="data", symmetric=False, array=high, arrayminus=low)))
    fig.add_vline(x=0, line_color="#444444", line_dash="dash")
    fig.update_layout(scattermode="group")
    return side_legend(layout(fig, "Paired difference to vanilla<br><sup>same seeds, 95% t-interval</sup>",
                              "metric difference",
                              "task"))


def _ok(x: Any) -> bool:
    return x is not None and math.isfinite(x)


def selection_table(selection: Mapping[str, Any]) -> pd.DataFrame:
    """Every (lr, p) candidate of each arm and task with its best held-out score (and its dev score, for reference
    only: the choice never sees it), the chosen one marked; arms in the order vanilla, child-f, child-d."""
    chosen = {(c["task"], c["method"], c["lr"], c["p"]) for c in selection.get("chosen", [])}
    rows = [{"task": short(c["task"]), "method": c["method"], "p": c["p"], "lr": c["lr"], "metric": c.get("metric"),
             "held_out": c.get("holdout"), "dev": c.get("dev"),
             "chosen": (c["task"], c["method"], c["lr"], c["p"]) in chosen, "run_id": c.get("run_id")}
            for c in selection.get("candidates", [])]
    columns = ["task", "method", "p", "lr", "metric", "held_out", "dev", "chosen", "run_id"]
    if not rows:
        return pd.DataFrame(columns=columns)
    df = pd.DataFrame(rows, columns=columns)
    df["order"] = [METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER) for m in df["method"]]
    df = df.sort_values(["task", "order", "p", "lr"], na_position="first")
    return df.drop(columns="order").reset_index(drop=True)


DASHES_BY_P = ("dot", "dash", "longdash")  # a Child-Tuning arm's p values, smallest first
SELECTION_FOCUS = 0.15  # a selection panel spans its best score minus this; a candidate further below (a learning rate
# that diverged) sits on the panel's lower edge as a labelled ▼, so one collapse does not flatten the choice itself


def selection_lines(selection: Mapping[str, Any]) -> go.Figure:
    """Held-out score against learning rate (log axis), one line per arm and p, one panel per task (titled with its
    metric); the chosen candidate of each arm ringed; candidates more than SELECTION_FOCUS below the panel's best on
    its lower edge, labelled with their score."""
    table = selection_table(selection)
    tasks = list(dict.fromkeys(table["task"])) or [""]
    metrics = {task: ", ".join(sorted({str(m) for m in table.loc[table["task"] == task, "metric"].dropna()}))
               for task in tasks}
    fig = make_subplots(rows=1, cols=len(tasks), shared_yaxes=False,
                        subplot_titles=[f"{task} ({metrics[task]})" if metrics[task] else task for task in tasks])
    shown: set[str] = set()
    for col, task in enumerate(tasks, 1):
        mine = table[table["task"] == task]
        top = mine["held_out"].max()
        edge = top - SELECTION_FOCUS if (mine["held_out"] < top - SELECTION_FOCUS).any() else None
        off_scale: dict[float, list[tuple[float, str]]] = {}  # lr: (score, colour) of the candidates on the edge
        mine = mine.assign(drawn=mine["held_out"] if edge is None else mine["held_out"].clip(lower=edge))
        for (method, p), arm in mine.groupby(["method", "p"], dropna=False, sort=False):
            label = method_label({"method": method, "p": p})
            dash = DASHES_BY_P[sorted(set(mine.loc[mine["method"] == method, "p"].dropna())).index(p)
                               % len(DASHES_BY_P)] if method != "vanilla" else "solid"
            fig.add_trace(go.Scatter(x=arm["lr"], y=arm["drawn"], customdata=arm["held_out"], mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=label not in shown,
                                     line=dict(color=method_colour(method), dash=dash),
                                     hovertemplate=f"{label}<br>lr %{{x:.0e}}<br>held-out %{{customdata:.3f}}"
                                                   "<extra></extra>"), row=1, col=col)
            shown.add(label)
            below = arm[arm["held_out"] < edge] if edge is not None else arm.iloc[:0]
            if len(below):
                fig.add_trace(go.Scatter(x=below["lr"], y=[edge] * len(below), mode="markers", showlegend=False,
                                         legendgroup=label, hoverinfo="skip",
                                         marker=dict(symbol="triangle-down", size=11, color=method_colour(method))),
                              row=1, col=col)
                for lr, score in zip(below["lr"], below["held_out"]):
                    off_scale.setdefault(lr, []).append((score, method_colour(method)))
            best = arm[arm["chosen"]]
            if len(best):
                fig.add_trace(go.Scatter(x=best["lr"], y=best["drawn"], mode="markers", name="chosen",
                                         legendgroup="chosen", showlegend="chosen" not in shown, legendrank=2000,
                                         marker=dict(symbol="circle-open", size=14, color="#000000",
                                                     line=dict(width=2)), hoverinfo="skip",
                                         meta={"reference": True}), row=1, col=col)  # greyscale keeps the ring
                shown.add("chosen")
        if edge is not None:
            fig.update_yaxes(range=[edge - 0.04 * SELECTION_FOCUS, top + 0.08 * SELECTION_FOCUS], row=1, col=col)
        for lr, scores in off_scale.items():  # their scores stacked above the edge, highest lowest, in arm colours
            for k, (score, colour) in enumerate(sorted(scores, reverse=True)):
                fig.add_annotation(x=math.log10(lr), y=edge, text=f"{score:.2f}", showarrow=False, yshift=14 + 14 * k,
                                   font=dict(color=colour, size=11), row=1, col=col)  # a log axis takes log10(x)
        lrs = sorted(set(mine["lr"]))
        fig.update_xaxes(type="log", tickvals=lrs, ticktext=[lr_label(lr) for lr in lrs], row=1, col=col)
    seed = selection.get("seed")
    return side_legend(layout(fig, "Held-out score per learning rate and p" + ("" if seed is None else f" (seed {seed})"),
                              "learning rate", "held-out score"))


def transfer_table(transfer: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Domain transfer: mean ± std accuracy per (method, p, target) over seeds."""
    if not transfer:
        return pd.DataFrame(columns=["method", "target", "seeds", "mean", "std"])
    df = pd.DataFrame(transfer)
    df["method"] = [method_label({"method": m, "p": p}) for m, p in zip(df["method"], df["p"])]
    out = df.groupby(["method", "target"])["value"].agg(seeds="count", mean="mean", std="std").reset_index()
    return out


def run_artefacts(store: Any, rows: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """{run id: artefact JSON} for the rows whose run stored it (e.g. child_network, weight_change)."""
    out = {}
    for row in rows:
        if f"{name}.json" in store.artefacts(row["run_id"]):
            out[row["run_id"]] = store.load_artifact_json(row["run_id"], name)
    return out


def method_label(row: Mapping[str, Any]) -> str:
    """'vanilla', 'child-d p=0.3', ... (a missing p is None, or NaN in a DataFrame)"""
    p = row.get("p")
    return row["method"] if p is None or (isinstance(p, float) and math.isnan(p)) else f"{row['method']} p={p:g}"


def child_networks(store: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{'task seed=s (p=...)': child_network artefact} for the Child-D rows that stored one."""
    d_rows = [r for r in rows if r["method"] == "child-d"]
    stored = run_artefacts(store, d_rows, "child_network")
    return {f"{short(r['task'])} {method_label(r)} seed={r['seed']}": stored[r["run_id"]] for r in d_rows
            if r["run_id"] in stored}


def weight_changes(store: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """{method label: [weight_change artefact per seed]} for the rows that stored one."""
    stored = run_artefacts(store, rows, "weight_change")
    out: dict[str, list[Any]] = {}
    for r in sorted(rows, key=lambda r: (METHOD_ORDER.index(r["method"]) if r["method"] in METHOD_ORDER else 9,
                                         str(r.get("p")))):
        if r["run_id"] in stored:
            out.setdefault(method_label(r), []).append(stored[r["run_id"]])
    return out


def _inputs(store: Any, run_ids: Sequence[str]) -> tuple[str | None, list[dict[str, Any]], dict[str, Any] | None]:
    """(study id, rows of its first task, summary) from a Child-Tuning study among `run_ids`, else the
    fine-tune runs among them as rows (no summary)."""
    for run_id in run_ids:
        if store.require(run_id).kind == "study-child-tuning":
            rows, summary, _ = study_inputs(store, run_id)
            first = rows[0]["task"] if rows else None
            return run_id, [r for r in rows if r["task"] == first], summary
    rows = finetune_rows(store, run_ids)
    task = next((r["task"] for r in rows if r["method"] != "vanilla"), None)  # the first Child-Tuning run's task
    return None, [r for r in rows if r["task"] == task], None


def finetune_rows(store: Any, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Study-shaped rows (run_id, method, p, seed, task) of the finished vanilla / Child-Tuning transformer runs."""
    rows = []
    for run_id in run_ids:
        rec = store.require(run_id)
        if (rec.kind == "finetune" and rec.status == "done" and rec.row.get("method") in METHOD_ORDER
                and rec.row.get("model") not in BASELINE_MODELS):
            rows.append({"run_id": run_id, "method": rec.row["method"], "p": rec.config.get("options", {}).get("p"),
                         "seed": rec.row.get("seed"), "task": rec.row.get("dataset")})
    return rows


def _need(condition: bool, problem: str) -> None:
    from analysis.figures.registry import NotApplicable

    if not condition:
        raise NotApplicable(problem, fix="run the study with `python -m analysis sweep child-tuning --seeds 0,1,2`"
                                         " or fine-tune with `--method child-d --p 0.3`")


@register_figure("child-differences", kinds=("study-child-tuning",), description="Child-Tuning vs vanilla, paired")
def _child_differences(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Each Child-Tuning arm's paired difference to vanilla per task, with 95% intervals."""
    study, _, summary = _inputs(store, run_ids)
    _need(summary is not None and bool(summary["cells"]), "none of these runs is a Child-Tuning study with results")
    cells = summary["cells"]  # type: ignore[index]
    return FigureResult(study_differences(cells), study_table(cells), [study], "study_differences",
                        {"study": study})


@register_figure("child-selection", kinds=("study-child-tuning",),
                 description="Child-Tuning's lr and p chosen per arm on a held-out share", width="double")
def _child_selection(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """The held-out score of every (lr, p) candidate, per task, and the one each arm chose."""
    study = next((r for r in run_ids if store.require(r).kind == "study-child-tuning"), None)
    selection = selection_inputs(store, study) if study else None
    _need(bool(selection and selection["candidates"]), "no Child-Tuning study here chose its lr and p on a held-out "
                                                       "share (run it with --select-lrs)")
    return FigureResult(selection_lines(selection), selection_table(selection), [study], "selection_lines",  # type: ignore[arg-type]
                        {"study": study, "complete": selection["complete"]})  # type: ignore[index]


@register_figure("child-mask-overlap", kinds=("study-child-tuning",),
                 description="Child-D mask overlap across seeds", width="double")
def _child_overlap(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Jaccard overlap of the Child-D masks across seeds, one panel per task and p."""
    study, _, summary = _inputs(store, run_ids)
    pairs = (summary or {}).get("mask_overlap", {}).get("across_seeds", [])
    _need(bool(pairs), "no Child-Tuning study here has two Child-D seeds to overlap")
    fig = mask_overlap_heatmap(summary["mask_overlap"])  # type: ignore[index]
    return FigureResult(fig, pd.DataFrame(pairs), [study],
                        "mask_overlap_heatmap", {"study": study})


@register_figure("child-fisher", kinds=("study-child-tuning", "finetune"),
                 description="Fisher score per layer (Child-D)")
def _child_fisher(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Mean Fisher score per layer of the Child-D runs (the study's first task)."""
    _, rows, _ = _inputs(store, run_ids)
    nets = child_networks(store, rows)
    _need(bool(nets), "none of these runs is a Child-D run with a stored child network")
    table = pd.DataFrame([{"run": k, **row} for k, n in nets.items() for row in n["by_layer_module"]])
    return FigureResult(fisher_per_layer(nets), table, [r["run_id"] for r in rows if r["method"] == "child-d"],
                        "fisher_per_layer", {"runs": list(nets)})


@register_figure("child-share", kinds=("study-child-tuning", "finetune"), description="Child network's share per layer")
def _child_share(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """The child network's share of each layer for the Child-D runs (the study's first task)."""
    _, rows, _ = _inputs(store, run_ids)
    nets = child_networks(store, rows)
    _need(bool(nets), "none of these runs is a Child-D run with a stored child network")
    table = pd.DataFrame([{"run": k, "layer": int(layer), "child_share": v} for k, n in nets.items()
                          for layer, v in n["child_share_per_layer"].items()])
    ps = {r["p"] for r in rows if r["method"] == "child-d"}
    return FigureResult(child_share_per_layer(nets, ps.pop() if len(ps) == 1 else None), table,
                        [r["run_id"] for r in rows if r["method"] == "child-d"], "child_share_per_layer",
                        {"runs": list(nets)})


@register_figure("child-weight-change", kinds=("study-child-tuning", "finetune"),
                 description="Weight change per layer vs vanilla", width="double")
def _child_weight_change(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Relative weight change per layer per method (mean over seeds) and its ratio to vanilla."""
    _, rows, _ = _inputs(store, run_ids)
    changes = weight_changes(store, rows)
    _need(bool(changes), "none of these runs is a vanilla or Child-Tuning run with a stored weight change")
    means = {label: mean_change_per_layer(runs) for label, runs in changes.items()}
    table = pd.DataFrame([{"method": m, "layer": k, "relative_change": v}
                          for m, d in means.items() for k, v in d.items()])
    return FigureResult(weight_change_per_layer(changes), table, [r["run_id"] for r in rows], "weight_change_per_layer",
                        {"methods": {m: len(v) for m, v in changes.items()}})
