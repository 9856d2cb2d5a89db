"""Tables of stored results, shared by the dashboard and exports."""

from __future__ import annotations

from typing import Any

import pandas as pd


def runs_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: identity, status, the task metric, duration."""
    records = []
    for r in rows:
        metric_name = r["summary"].get("metric") or next(iter(r["metrics"]), None)
        records.append({
            "run_id": r["run_id"], "kind": r["kind"], "status": r["status"], "method": r["method"],
            "dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
            "metric": metric_name, "value": r["metrics"].get(metric_name) if metric_name else None,
            "train_examples": r["summary"].get("train_examples"),
            "duration_s": round(r["duration"], 1) if r["duration"] else None,
            "progress": r["progress"], "created": pd.to_datetime(r["created"], unit="s"),
        })
    return pd.DataFrame.from_records(records)
