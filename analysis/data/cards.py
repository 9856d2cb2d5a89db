"""Dataset cards (name, columns, splits, labels) and their registry, and rows turned into a TextDataset."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.core import settings
from analysis.core.errors import DataError
from analysis.core.paths import is_user_file  # noqa: F401 (re-exported)
from analysis.data.files import delimiter_hint, read_rows  # noqa: F401 (read_rows is re-exported)

TASKS = ("classification", "regression", "unlabeled")


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is: splits, text columns, label set and metrics. Read from data/<name>.yaml."""

    name: str
    title: str
    task: str
    text_columns: tuple[str, ...]
    label_column: str | None
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    splits: dict[str, dict[str, Any]]
    default_eval_split: str
    label_names: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None  # for files without a header row
    hub: dict[str, Any] | None = None
    source: str = ""
    licence: str = ""
    skip_empty: bool = False  # drop rows with an empty text (known defects of a shipped file)

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 1

    @property
    def metric(self) -> str:
        return self.metrics[0] if self.metrics else "none"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DatasetCard":
        def tup(key: str) -> tuple[str, ...] | None:
            value = raw.get(key)
            return None if value is None else tuple(str(v) for v in value)

        return cls(
            name=raw["name"], title=raw.get("title", raw["name"]), task=raw["task"],
            text_columns=tup("text_columns") or (), label_column=raw.get("label_column"),
            labels=tup("labels"), metrics=tup("metrics") or (), splits=dict(raw.get("splits", {})),
            default_eval_split=raw.get("default_eval_split", "validation"),
            label_names=tup("label_names"), columns=tup("columns"), hub=raw.get("hub"),
            source=raw.get("source", ""), licence=raw.get("licence", ""),
            skip_empty=bool(raw.get("skip_empty", False)),
        )


@dataclass
class TextDataset:
    """One split: texts (one or two columns) and labels (int class ids or float targets)."""

    card: DatasetCard
    split: str
    texts: list[list[str]]  # one list per text column
    labels: np.ndarray | None
    origin: str  # where the rows came from (path or hub id), for provenance
    fingerprint: str  # content hash of the source
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.indices.size == 0:
            self.indices = np.arange(len(self.texts[0]), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts[0])

    def take(self, idx: Sequence[int] | np.ndarray) -> "TextDataset":
        idx = np.asarray(idx, dtype=np.int64)
        return TextDataset(
            self.card, self.split, [[col[i] for i in idx] for col in self.texts],
            None if self.labels is None else self.labels[idx], self.origin, self.fingerprint,
            self.indices[idx],
        )


# ----------------------------------------------------------------------------------------------
# The card registry


@lru_cache(maxsize=1)
def _cards() -> dict[str, DatasetCard]:
    import yaml

    cards = {}
    for path in sorted(settings.cards_dir().glob("*.yaml")):
        card = DatasetCard.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))
        cards[card.name] = card
    return cards


def dataset_names() -> list[str]:
    return sorted(_cards())


def get_card(name: str) -> DatasetCard:
    cards = _cards()
    if name not in cards:
        raise DataError(
            f"unknown dataset {name!r}",
            fix=f"use one of: {', '.join(sorted(cards))}; or give a path to a CSV/TSV/JSONL file",
        )
    return cards[name]


# ----------------------------------------------------------------------------------------------
# Turning rows into a TextDataset (rows come from datafiles.read_rows: size, encoding and line checks)


def rows_to_dataset(
    rows: list[dict[str, Any]], card: DatasetCard, split: str, origin: str, fingerprint: str,
    text_columns: Sequence[str] | None = None, label_column: str | None = None,
) -> TextDataset:
    text_columns = tuple(text_columns or card.text_columns)
    label_column = label_column if label_column is not None else card.label_column
    if not rows:
        raise DataError(f"{origin} has no data rows", where=f"{card.name}/{split}", fix="give a non-empty file")
    present = set(rows[0])
    wanted = list(text_columns) + ([label_column] if label_column and card.task != "unlabeled" else [])
    missing = [c for c in wanted if c not in present]
    if missing:
        shown = sorted(c for c in present if c != "__line__")
        raise DataError(
            f"column(s) {missing} not found in {origin}; the file has {shown}{delimiter_hint(shown)}",
            where=f"{card.name}/{split}",
            fix="map the columns with --text-columns and --label-column",
        )
    if card.skip_empty:
        rows = [r for r in rows if all(isinstance(r.get(c), str) and r[c].strip() for c in text_columns)]
    texts = [[_text(row, c, origin) for row in rows] for c in text_columns]
    labels = None if card.task == "unlabeled" else _labels(rows, label_column, card, origin)  # type: ignore[arg-type]
    return TextDataset(card, split, texts, labels, origin, fingerprint)


def _line(row: dict[str, Any], fallback: int) -> int:
    return int(row.get("__line__", fallback))


def _text(row: dict[str, Any], column: str, origin: str) -> str:
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        raise DataError(
            f"empty or non-text value in column {column!r} at line {_line(row, 0)} of {origin}",
            fix="remove or fill that row",
        )
    return value.strip()


def label_value(row: dict[str, Any], column: str, origin: str, fallback: int) -> Any:
    """The row's label cell; a missing or empty one is an error naming the line (JSONL rows may lack keys)."""
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"no {column!r} value at line {_line(row, fallback)} of {origin}",
                        fix="fill in the label of that row, or remove the row")
    return value


def _labels(rows: list[dict[str, Any]], column: str, card: DatasetCard, origin: str) -> np.ndarray:
    if card.task == "regression":
        out = np.empty(len(rows), dtype=np.float32)
        for i, row in enumerate(rows):
            value = label_value(row, column, origin, i + 1)
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                number = math.nan
            if isinstance(value, bool) or not math.isfinite(number) or abs(number) > 1e38:  # float32 range
                raise DataError(
                    f"label {value!r} at line {_line(row, i + 1)} of {origin} is not a finite number",
                    fix="regression labels must be finite numbers",
                )
            out[i] = number
        return out
    assert card.labels is not None
    index = {label: i for i, label in enumerate(card.labels)}
    numeric_ids = not all(lab.lstrip("-").isdigit() for lab in card.labels)
    out = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        value = label_value(row, column, origin, i + 1)
        if numeric_ids and isinstance(value, int) and 0 <= value < len(card.labels):
            value = card.labels[value]  # hub datasets store class ids, our cards store names
        key = str(value).strip()
        if key not in index:
            raise DataError(
                f"label {value!r} at line {_line(row, i + 1)} of {origin} is outside the label set {list(card.labels)}",
                fix="fix the row, or declare the label set (user files infer it from the training file)",
            )
        out[i] = index[key]
    return out


def file_fingerprint(path: Path) -> str:
    return _hash_file(str(path), path.stat().st_size, path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
