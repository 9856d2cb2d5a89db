"""A user's own CSV/TSV/JSONL files as a dataset: the card is built from the column mapping and the data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from analysis.core.config import DataConfig
from analysis.core.errors import DataError
from analysis.data.cards import DatasetCard, TextDataset, file_fingerprint, label_value, rows_to_dataset
from analysis.data.files import delimiter_hint, read_rows


def load_user_split(cfg: DataConfig, split: str) -> TextDataset:
    train_path = Path(cfg.dataset).expanduser()
    if split == "train":
        path = train_path
    elif cfg.eval_file:
        path = Path(cfg.eval_file).expanduser()
    else:
        raise DataError(
            f"no evaluation file for {train_path.name}",
            fix="pass --eval-file PATH (same columns as the training file)",
        )
    card = user_card(cfg, read_rows(train_path))
    rows = read_rows(path)
    return rows_to_dataset(rows, card, split, str(path), file_fingerprint(path))


def user_card(cfg: DataConfig, train_rows: list[dict[str, Any]]) -> DatasetCard:
    """Infer the task and label set from the training file, honouring the user's mapping."""
    if not train_rows:
        raise DataError(f"{cfg.dataset} has no data rows", fix="give a file with a header and data rows")
    columns = [c for c in train_rows[0] if c != "__line__"]
    text_columns = cfg.text_columns or _guess_text(columns, cfg.dataset)
    label_column = cfg.label_column or _guess_label(columns, cfg.dataset)
    if label_column not in columns:
        raise DataError(
            f"label column {label_column!r} not found in {cfg.dataset}; the file has {columns}"
            f"{delimiter_hint(columns)}",
            fix="name the label column with --label-column",
        )
    values = [label_value(row, label_column, cfg.dataset, i + 1) for i, row in enumerate(train_rows)]
    task = cfg.task or _infer_task(values)
    labels = None
    if task == "classification":
        kinds = {type(v).__name__ for v in values}
        if len(kinds) > 1 and not kinds <= {"int", "str"}:
            raise DataError(f"labels in {cfg.dataset} mix types {sorted(kinds)}", fix="use one type of label")
        labels = tuple(sorted({str(v).strip() for v in values}, key=_label_sort_key))
        if len(labels) < 2:
            raise DataError(f"{cfg.dataset} has a single label {labels}", fix="a classifier needs two or more")
    metrics = ("accuracy",) if task == "classification" else ("pearson", "spearman")
    return DatasetCard(
        name=Path(cfg.dataset).stem, title=f"user file {cfg.dataset}", task=task,
        text_columns=tuple(text_columns),
        label_column=label_column, labels=labels, metrics=metrics,
        splits={"train": {"file": cfg.dataset}, "validation": {"file": cfg.eval_file}},
        default_eval_split="validation", source=str(cfg.dataset), licence="the user's own",
    )


def _guess_text(columns: list[str], path: str) -> tuple[str, ...]:
    if "sentence1" in columns and "sentence2" in columns:
        return ("sentence1", "sentence2")
    for name in ("text", "sentence"):
        if name in columns:
            return (name,)
    raise DataError(f"cannot tell which text column of {path} to use among {columns}{delimiter_hint(columns)}",
                    fix="name it with --text-columns (text, sentence or sentence1,sentence2 are found by themselves)")


def _guess_label(columns: list[str], path: str) -> str:
    for name in ("label", "labels", "score", "target"):
        if name in columns:
            return name
    raise DataError(f"cannot tell which label column of {path} to use among {columns}{delimiter_hint(columns)}",
                    fix="name it with --label-column (label, labels, score or target are found by themselves)")


def _infer_task(values: list[Any]) -> str:
    def is_float(v: Any) -> bool:  # a finite non-integer number: 'nan' or 'inf' is a class name, not a target
        try:
            number = float(v)
        except (TypeError, ValueError, OverflowError):
            return False
        return math.isfinite(number) and not number.is_integer()

    return "regression" if any(is_float(v) for v in values) else "classification"


def _label_sort_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)
