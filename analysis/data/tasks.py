"""Datasets: the card registry, the three sources (user file, local data root, HF hub), subsampling.

Sources are tried in order: an explicit file path the user gives; the local data root
(`PRUNESCOPE_DATA`, default ../shared/data); the Hugging Face hub through `datasets` when online.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.core import settings
from analysis.core.config import DataConfig
from analysis.data.files import delimiter_hint, read_rows  # noqa: F401 (read_rows is re-exported)
from analysis.core.errors import DataError

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


def is_user_file(dataset: str) -> bool:
    return Path(dataset).suffix.lower() in {".csv", ".tsv", ".jsonl", ".json", ".txt"}


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


# ----------------------------------------------------------------------------------------------
# Sources


def load_split(cfg: DataConfig, split: str) -> TextDataset:
    """Load one split of the configured dataset from the first source that has it."""
    if is_user_file(cfg.dataset):
        from analysis.data.userdata import load_user_split

        return load_user_split(cfg, split)
    card = get_card(cfg.dataset)
    if split not in card.splits and not (card.hub and split in card.hub.get("splits", {})):
        raise DataError(
            f"dataset {card.name!r} has no {split!r} split",
            fix=f"use one of: {', '.join(card.splits) or 'none'}",
        )
    spec = card.splits.get(split)
    if spec is not None:
        path = settings.data_root() / spec["file"]
        if path.is_file():
            rows = read_rows(path, card.columns, spec.get("format"))
            return rows_to_dataset(rows, card, split, str(path), file_fingerprint(path))
    return _load_from_hub(card, split)


def _load_from_hub(card: DatasetCard, split: str) -> TextDataset:
    hub = card.hub or {}
    hub_split = hub.get("splits", {}).get(split)
    spec = card.splits.get(split)
    where = (f"not in the local data root ({settings.data_root() / spec['file']})" if spec
             else f"not mirrored locally (local splits: {', '.join(card.splits) or 'none'})")
    if not hub_split:
        raise DataError(f"{card.name}/{split} is {where} and has no hub source",
                        fix="set PRUNESCOPE_DATA to the folder that holds the data")
    if not settings.hub_online():
        raise DataError(f"{card.name}/{split} is {where} and the hub is offline",
                        fix="set PRUNESCOPE_DATA to the data folder, or go online to fetch it from the hub")
    try:
        import datasets

        ds = datasets.load_dataset(hub["path"], hub.get("name"), split=hub_split)
    except Exception as exc:  # network, missing dataset: the hub's own message is the useful part
        raise DataError(f"cannot load {card.name}/{split} from the hub: {exc}", fix="check the network") from None
    rows = [dict(r) for r in ds]
    origin = f"hub:{hub['path']}/{hub.get('name') or ''}:{hub_split}"
    fingerprint = str(getattr(ds, "_fingerprint", "")) or hashlib.sha256(origin.encode()).hexdigest()[:16]
    return rows_to_dataset(
        rows, card, split, origin, fingerprint[:16], hub.get("text_columns"), hub.get("label_column")
    )


# ----------------------------------------------------------------------------------------------
# Subsampling


def subsample(ds: TextDataset, size: int | None, seed: int, what: str = "train_size") -> TextDataset:
    """A seeded, stratified subsample of `size` rows; the same seed gives nested samples for growing sizes."""
    if size is None or size == len(ds):
        return ds
    if size > len(ds):
        raise DataError(
            f"{what}={size} is larger than the {ds.card.name}/{ds.split} split ({len(ds)} rows)",
            fix=f"use a {what} of at most {len(ds)}, or omit it to use every row",
        )
    return ds.take(stratified_indices(ds.labels, size, seed, ds.card.task == "classification"))


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of `n` row indices (all of them when size >= n) drawn under `seed`, in ascending order."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def stratified_indices(labels: np.ndarray | None, size: int, seed: int, stratify: bool) -> np.ndarray:
    if labels is None:  # an unlabeled set has no strata and no length here: the caller must say how many rows
        raise ValueError("stratified_indices needs the labels; use sample_indices(n, size, seed) for unlabeled rows")
    if not stratify:
        return sample_indices(len(labels), size, seed)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts / counts.sum() * size
    take = np.floor(exact).astype(int)
    # Largest remainder: hand out the rows lost to flooring, biggest fractional part first.
    for k in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[k] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


@dataclass
class TaskData:
    """The training and evaluation data of one run, and what the task is."""

    card: DatasetCard
    train: TextDataset | None
    eval: TextDataset
    eval_split: str


def load_task(cfg: DataConfig, seed: int, need_train: bool = True) -> TaskData:
    """Load train (subsampled to cfg.train_size under seed) and the evaluation split."""
    card = get_card(cfg.dataset) if not is_user_file(cfg.dataset) else None
    eval_split = cfg.eval_split or (card.default_eval_split if card else "validation")
    train = None
    if need_train:
        if card is not None and "train" not in card.splits and not (card.hub or {}).get("splits", {}).get("train"):
            raise DataError(f"dataset {card.name!r} has no training split", fix="pick a dataset with one")
        train = subsample(load_split(cfg, "train"), cfg.train_size, seed)
    evaluation = subsample(load_split(cfg, eval_split), cfg.eval_size, seed, "eval_size")
    if evaluation.card.task == "unlabeled":
        raise DataError(f"dataset {evaluation.card.name!r} has no labels", fix="use a labelled dataset to train")
    return TaskData(evaluation.card, train, evaluation, eval_split)


def fingerprint(cfg: DataConfig) -> str:
    """Content hash of the files a data config reads (training and evaluation splits)."""
    if is_user_file(cfg.dataset):
        paths = [Path(cfg.dataset).expanduser()] + ([Path(cfg.eval_file).expanduser()] if cfg.eval_file else [])
        for path in paths:
            if not path.is_file():
                raise DataError(f"file {str(path)!r} does not exist", fix="check the path")
        return "+".join(file_fingerprint(p) for p in paths)
    card = get_card(cfg.dataset)
    parts = []
    for split in ("train", cfg.eval_split or card.default_eval_split):
        spec = card.splits.get(split)
        path = settings.data_root() / spec["file"] if spec else None
        if path is not None and path.is_file():
            parts.append(file_fingerprint(path))
        elif card.hub and split in card.hub.get("splits", {}):
            parts.append(f"hub:{card.hub['path']}/{card.hub.get('name') or ''}:{card.hub['splits'][split]}")
    return "+".join(parts)
