"""The one run label: model family, method, sparsity or p, dataset, training examples, seed.

`run_label(row)` names one run in full ('MiniLM sparsebert s=0.9 sst2 n=8000 seed=0'); `run_labels(rows)` names
runs shown together with only the parts that differ among them (a legend of one model on one dataset says
'sparsebert s=0.9 seed=0'), and tells twins apart by their run id. Rows are the store's index rows or records."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from analysis.core.config import BASELINE_MODELS

DEFAULT_MODEL = "MiniLM"  # the embedded default, all-MiniLM-L6-v2
PARTS = ("model", "method", "amount", "dataset", "n", "seed")


def _mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        return json.loads(value or "{}")
    return value or {}


def short_name(value: Any) -> str:
    """A path by its last part ('train.csv', 'my-checkpoint'), anything else as it is."""
    return str(value).replace("\\", "/").rstrip("/").split("/")[-1] if value is not None else ""


def model_family(model: Any) -> str:
    """'MiniLM' for the embedded default, 'lstm'/'embedding-bag' for the baselines, else the checkpoint's name."""
    if model in (None, "", "default"):
        return DEFAULT_MODEL
    return str(model) if model in BASELINE_MODELS else short_name(model)


def label_parts(row: Mapping[str, Any]) -> dict[str, str]:
    summary, config = _mapping(row.get("summary")), _mapping(row.get("config"))
    options = _mapping(config.get("options")) if config else {}
    sparsity = summary.get("requested_sparsity", config.get("sparsity") if row.get("kind") == "prune" else None)
    amount = f"s={sparsity:g}" if sparsity is not None else (f"p={options['p']:g}" if "p" in options else "")
    n = summary.get("train_examples")
    return {"model": model_family(row.get("model")), "method": str(row.get("method") or row.get("kind") or ""),
            "amount": amount, "dataset": short_name(row.get("dataset")), "n": f"n={n}" if n is not None else "",
            "seed": f"seed={row.get('seed')}" if row.get("seed") is not None else ""}


def _join(parts: Mapping[str, str], keep: Iterable[str]) -> str:
    return " ".join(parts[k] for k in PARTS if k in keep and parts[k])


def run_label(row: Mapping[str, Any]) -> str:
    """The run in full: every part it has."""
    return _join(label_parts(row), PARTS)


def run_labels(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{run_id: label} for runs shown together: the parts that differ among them (method, sparsity or p, and seed always), then the
    run id's first characters for runs that would still read alike."""
    rows = list(rows)
    parts = {str(r["run_id"]): label_parts(r) for r in rows}
    keep = {k for k in PARTS if len({p[k] for p in parts.values()}) > 1} | {"method", "amount", "seed"}
    labels = {rid: _join(p, keep) for rid, p in parts.items()}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {rid: label if counts[label] == 1 else f"{label} ({rid[:6]})" for rid, label in labels.items()}
