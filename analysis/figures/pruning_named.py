"""The pruning figures as named figures of the registry: each reads its runs from the store and builds the
same figure object the Sparsity and Accuracy pages show."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import pandas as pd

from analysis.figures.pruning import (
    latency_vs_metric,
    metric_vs_nonzero,
    metric_vs_sparsity,
    parameter_bars,
    sparsity_heatmap,
    training_curves,
)
from analysis.figures.registry import FigureResult, NotApplicable, register_figure
from analysis.models.arch import MODULE_TYPES
from analysis.reports.tables import floor_run, prune_rows, teacher_metric
from analysis.store.index import RunStore
from analysis.store.labels import run_labels

MAX_HEATMAP_PANELS = 4


def _rows(store: RunStore, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    wanted = set(run_ids)
    return [r for r in store.list() if r["run_id"] in wanted]


def _pruned(store: RunStore, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    pruned = prune_rows(_rows(store, run_ids))
    if not pruned:
        raise NotApplicable("none of these runs is a finished pruning run",
                            fix="pick prune runs or a pruning sweep (`python -m analysis runs`)")
    order = {run_id: i for i, run_id in enumerate(run_ids)}
    return sorted(pruned, key=lambda r: order[r["run_id"]])


def _label(row: dict[str, Any], taken: Any = (), sep: str = "<br>") -> str:
    """A short panel/legend label (two lines in a subplot title); the run id is added only to tell twins apart."""
    sparsity = f" s={row['sparsity']:g}" if row.get("sparsity") is not None else ""
    label = f"{row.get('method') or row.get('kind')}{sparsity}{sep}seed {row['seed']}"
    return label if label not in taken else f"{label} ({row['run_id'][:6]})"


def _flat(label: str) -> str:
    return label.replace("<br>", " ")


def _reports(store: RunStore, pruned: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for row in pruned:
        if "sparsity.json" in store.artefacts(row["run_id"]):
            out[_label(row, out)] = (row["run_id"], store.load_artifact_json(row["run_id"], "sparsity"))
    if not out:
        raise NotApplicable("none of these prune runs has a sparsity report (artefacts/sparsity.json)",
                            fix="re-run them with `python -m analysis reproduce RUN_ID`")
    return out


@register_figure("sparsity-heatmap", kinds=("prune",), description="Achieved sparsity per layer x module (up to 4 runs)",
                 width="double")
def _sparsity_heatmap(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """Achieved sparsity per layer and module of the first (up to four) prune runs, one colour scale."""
    # lowest seed first, so a sweep shows its (method, sparsity) cells before their repeats
    pruned = sorted(_pruned(store, run_ids), key=lambda r: (r["seed"] if r["seed"] is not None else 0))
    reports = dict(list(_reports(store, pruned).items())[:MAX_HEATMAP_PANELS])
    table = pd.DataFrame([{"run": _flat(label), "run_id": run_id, "layer": layer, "module": module, "sparsity": value}
                          for label, (run_id, rep) in reports.items()
                          for layer, values in enumerate(rep["by_layer_module"])
                          for module, value in zip(MODULE_TYPES, values)])
    used = [run_id for run_id, _ in reports.values()]
    return FigureResult(sparsity_heatmap({label: rep for label, (_, rep) in reports.items()}), table, used,
                        "sparsity_heatmap", {"reports": {_flat(label): run_id for label, (run_id, _) in reports.items()}})


@register_figure("parameter-bars", kinds=("prune",), description="Kept, masked and removed weights per layer (one run)")
def _parameter_bars(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """Non-zero, masked and removed encoder weights per layer of the first prune run given."""
    label, (run_id, report) = next(iter(_reports(store, _pruned(store, run_ids)).items()))
    fig = parameter_bars(report)
    table = pd.DataFrame({"layer": list(fig.data[0].x),
                          **{trace.name: [float(v) for v in trace.y] for trace in fig.data}})
    return FigureResult(fig, table, [run_id], "parameter_bars", {"report": run_id, "label": _flat(label)})


def _one_dataset(store: RunStore, run_ids: Sequence[str]) -> tuple[list[dict[str, Any]], str, float | None]:
    pruned = _pruned(store, run_ids)
    dataset = Counter(r["dataset"] for r in pruned).most_common(1)[0][0]
    chosen = [r for r in pruned if r["dataset"] == dataset]
    teachers = {r["teacher"] for r in chosen if r["teacher"]}
    dense = teacher_metric(_rows(store, sorted(teachers)), teachers) if teachers else None
    return chosen, dataset, dense


def _floor(store: RunStore, dataset: str, chosen: list[dict[str, Any]]) -> tuple[str, float] | None:
    """The dataset's floor run in the whole store (not only the runs picked), trained on as many examples as most
    of the prune runs: see `tables.floor_run`."""
    budget = Counter(r.get("train_examples") for r in chosen).most_common(1)[0][0]
    return floor_run(store.list(kind="finetune", status="done"), dataset, budget)


def _metric_table(chosen: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["run_id", "method", "dataset", "seed", "sparsity", "encoder_sparsity", "encoder_nonzero_params",
               "metric", "value", "teacher"]
    return pd.DataFrame(chosen)[columns].sort_values(["method", "sparsity", "seed"]).reset_index(drop=True)


@register_figure("metric-vs-sparsity", kinds=("prune",), description="Task metric vs measured sparsity, one line per method")
def _metric_vs_sparsity(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """Metric vs encoder sparsity for the prune runs of the most common dataset among them."""
    chosen, dataset, dense = _one_dataset(store, run_ids)
    floor = _floor(store, dataset, chosen)
    floor_id, floor_value = floor if floor else (None, None)
    return FigureResult(metric_vs_sparsity(chosen, dense, floor_value), _metric_table(chosen),
                        [r["run_id"] for r in chosen] + ([floor_id] if floor_id else []), "metric_vs_sparsity",
                        {"rows": len(chosen), "dataset": dataset, "dense": dense, "floor": floor_value,
                         "floor_run": floor_id})


@register_figure("metric-vs-nonzero", kinds=("prune",), description="Task metric vs non-zero parameters (sparse vs small-dense)")
def _metric_vs_nonzero(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """Metric vs non-zero encoder parameters for the prune runs of the most common dataset among them."""
    chosen, dataset, _ = _one_dataset(store, run_ids)
    return FigureResult(metric_vs_nonzero(chosen), _metric_table(chosen), [r["run_id"] for r in chosen],
                        "metric_vs_nonzero", {"rows": len(chosen), "dataset": dataset})


def training_inputs(store: RunStore, rows: Sequence[dict[str, Any]]
                    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], str, list[str]]:
    """(loss history per run label, dev metric per epoch per run label, the metric, run ids used) of the rows
    that logged a training loss (metrics.jsonl) or per-epoch dev metrics (summary `epoch_metrics`)."""
    losses: dict[str, list[dict[str, Any]]] = {}
    epochs: dict[str, list[dict[str, Any]]] = {}
    metric, used = "metric", []
    labels = run_labels(rows)
    for row in rows:
        history = [h for h in store.read_metrics(row["run_id"]) if "loss" in h and "step" in h]
        per_epoch = list((row.get("summary") or {}).get("epoch_metrics") or [])
        if not history and not per_epoch:
            continue
        label = labels[row["run_id"]]
        losses[label], epochs[label] = history, per_epoch
        metric = (row.get("summary") or {}).get("metric") or metric
        used.append(row["run_id"])
    return losses, epochs, metric, used


@register_figure("training-curves", kinds=("finetune", "prune"),
                 description="Training loss per step and dev metric per epoch, one line per run", width="double")
def _training_curves(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """Training loss per step and the dev metric after each epoch of every given run that logged them."""
    rows = [r for r in _rows(store, run_ids) if r["kind"] in ("finetune", "prune")]
    losses, epochs, metric, used = training_inputs(store, rows)
    if not used:
        raise NotApplicable("none of these runs logged a training loss or per-epoch dev metrics",
                            fix="pick fine-tune or prune runs")
    table = pd.DataFrame([{"run": label, "step": h["step"], "epoch": None, "loss": h["loss"], metric: None}
                          for label, history in losses.items() for h in history]
                         + [{"run": label, "step": e.get("step"), "epoch": e["epoch"], "loss": None,
                             metric: e.get(metric)} for label, points in epochs.items() for e in points])
    return FigureResult(training_curves(losses, epochs, metric), table, used, "training_curves",
                        {"runs": dict(zip(list(dict.fromkeys([*losses, *epochs])), used)), "metric": metric})


def latency_inputs(store: RunStore, rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(finished fine-tune/prune runs with a stored latency.json as figure rows, ids of those without one)."""
    from analysis.reports.latency import latency_rows

    candidates = [r for r in rows if r["kind"] in ("finetune", "prune") and r["status"] == "done"]
    measured, missing = latency_rows(store, candidates)
    out, labels = [], run_labels(measured)
    for row in measured:
        metric = row["summary"].get("metric")
        method = "dense" if row["kind"] == "finetune" and row["method"] == "vanilla" else row["method"]
        out.append({"run_id": row["run_id"], "method": method, "seed": row["seed"], "dataset": row["dataset"],
                    "sparsity": row["summary"].get("requested_sparsity"), "metric": metric,
                    "value": row["metrics"].get(metric), "label": labels[row["run_id"]], "latency": row["latency"]})
    return out, missing


@register_figure("latency-vs-metric", kinds=("finetune", "prune"),
                 description="Task metric vs measured CPU latency (stored latency.json only)")
def _latency_vs_metric(store: RunStore, run_ids: Sequence[str]) -> FigureResult:
    """Metric vs measured latency of the given runs that have a stored measurement; the others are listed."""
    measured, missing = latency_inputs(store, _rows(store, run_ids))
    if not measured:
        raise NotApplicable(f"none of these runs has a latency measurement ({len(missing)} not measured)",
                            fix="measure them with `python -m analysis latency RUN_ID,RUN_ID`")
    metric = measured[0]["metric"] or "metric"
    table = pd.DataFrame([{k: r[k] for k in ("run_id", "method", "dataset", "seed", "sparsity", "metric", "value")}
                          | {k: r["latency"][k] for k in ("latency_ms_per_batch", "examples_per_second", "batch_size",
                                                           "threads", "execution", "torch")} for r in measured])
    return FigureResult(latency_vs_metric(measured, missing, metric), table, [r["run_id"] for r in measured],
                        "latency_vs_metric", {"metric": metric, "not_measured": missing})
