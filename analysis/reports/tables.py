"""Tables of stored results, shared by the dashboard and exports."""

from __future__ import annotations

from typing import Any

import pandas as pd


def lr_label(lr: float) -> str:
    """A learning rate as people write it: 2e-5, 1e-4, 0.001."""
    if 1e-3 <= lr < 10 or not 0 < lr < float("inf"):  # also 0, nan and inf, as Python writes them
        return f"{lr:g}"
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def runs_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: identity, status, the task metric, duration."""
    records = []
    for r in rows:
        metric_name = r["summary"].get("metric") or next(iter(r["metrics"]), None)
        records.append({
            "run_id": r["run_id"], "kind": r["kind"], "status": r["status"], "method": r["method"],
            "dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
            "metric": metric_name, "value": r["metrics"].get(metric_name) if metric_name else None,
            "precision": r.get("precision"), "train_examples": r["summary"].get("train_examples"),
            "duration_s": round(r["duration"], 1) if r["duration"] else None,
            "progress": r["progress"], "created": pd.to_datetime(r["created"], unit="s"),
        })
    return pd.DataFrame.from_records(records)


def prune_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished prune runs as table rows (requested and measured sparsity, non-zero counts, the metric)."""
    out = []
    for r in rows:
        if r["kind"] != "prune" or r["status"] != "done":
            continue
        s = r["summary"]
        metric = s.get("metric")
        out.append({"run_id": r["run_id"], "method": r["method"], "dataset": r["dataset"], "seed": r["seed"],
                    "sparsity": s.get("requested_sparsity"), "encoder_sparsity": s.get("encoder_sparsity"),
                    "model_sparsity": s.get("model_sparsity"), "encoder_nonzero_params": s.get("encoder_nonzero_params"),
                    "removed_params": s.get("removed_params"), "metric": metric, "value": r["metrics"].get(metric),
                    "precision": r.get("precision"), "train_examples": s.get("train_examples"),
                    "teacher": s.get("teacher")})
    return out


def floor_run(rows: list[dict[str, Any]], dataset: str | None,
              train_examples: int | None = None) -> tuple[str, float] | None:
    """(run id, metric) of the best finished `embedding-bag` fine-tune of `dataset`: the floor of the knowledge
    window (a classifier on mean-pooled token embeddings, no contextual knowledge). With `train_examples`, only
    floors trained on that many examples count: a floor on another budget is not the same study's floor.
    None when there is none."""
    floors = [(r["metrics"].get(r["summary"].get("metric")), r["run_id"]) for r in rows
              if r["kind"] == "finetune" and r["status"] == "done" and r["model"] == "embedding-bag"
              and r["dataset"] == dataset
              and (train_examples is None or r["summary"].get("train_examples") == train_examples)]
    floors = [(value, run_id) for value, run_id in floors if value is not None]
    if not floors:
        return None
    value, run_id = max(floors)
    return run_id, value


def teacher_metric(rows: list[dict[str, Any]], teacher_ids: set[str]) -> float | None:
    """The mean metric of the dense fine-tuned teachers behind a set of prune runs."""
    values = [r["metrics"].get(r["summary"].get("metric")) for r in rows if r["run_id"] in teacher_ids]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
