"""Datasets: the card registry, the three sources (user file, local data root, HF hub), subsampling.

Sources are tried in order: an explicit file path the user gives; the local data root
(`PRUNESCOPE_DATA`, default ../shared/data); the Hugging Face hub through `datasets` when online.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.core import settings
from analysis.core.config import DataConfig
from analysis.core.errors import DataError
from analysis.core.paths import is_user_file  # noqa: F401 (re-exported)
from analysis.data.cards import (  # noqa: F401
    TASKS,
    DatasetCard,
    TextDataset,
    dataset_names,
    file_fingerprint,
    get_card,
    label_value,
    rows_to_dataset,
)
from analysis.data.files import delimiter_hint, read_rows  # noqa: F401 (read_rows is re-exported)
from analysis.data.userdata import load_user_split

# ----------------------------------------------------------------------------------------------
# Sources


def load_split(cfg: DataConfig, split: str) -> TextDataset:
    """Load one split of the configured dataset from the first source that has it."""
    if is_user_file(cfg.dataset):
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
    if card is not None and cfg.eval_file:  # a registered dataset evaluated on the user's file, read with its card
        check_eval_file_split(cfg)
        evaluation = subsample(eval_file_dataset(cfg, card), cfg.eval_size, seed, "eval_size")
        eval_split = "file"
    else:
        evaluation = subsample(load_split(cfg, eval_split), cfg.eval_size, seed, "eval_size")
    if evaluation.card.task == "unlabeled":
        raise DataError(f"dataset {evaluation.card.name!r} has no labels", fix="use a labelled dataset to train")
    return TaskData(evaluation.card, train, evaluation, eval_split)


def check_eval_file_split(cfg: DataConfig) -> None:
    if cfg.eval_split is not None:
        raise DataError(f"both --eval-split {cfg.eval_split} and --eval-file {cfg.eval_file} were given",
                        fix="give one: --eval-file replaces the dataset's evaluation split")


def eval_file_dataset(cfg: DataConfig, card: DatasetCard) -> TextDataset:
    """The user's evaluation file for a registered dataset: its columns and label set are the card's (or the ones
    --text-columns and --label-column name); a label outside the card's set is an error naming the line."""
    path = Path(cfg.eval_file).expanduser()
    if not path.is_file():
        raise DataError(f"evaluation file {cfg.eval_file!r} does not exist", fix="check the path of --eval-file")
    return rows_to_dataset(read_rows(path), card, "file", str(path), file_fingerprint(path), cfg.text_columns,
                           cfg.label_column)


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
    if cfg.eval_file:  # the user's evaluation file replaces the card's evaluation split
        parts.append(file_fingerprint(Path(cfg.eval_file).expanduser()) if Path(cfg.eval_file).expanduser().is_file()
                     else f"missing:{cfg.eval_file}")
    for split in ("train",) if cfg.eval_file else ("train", cfg.eval_split or card.default_eval_split):
        spec = card.splits.get(split)
        path = settings.data_root() / spec["file"] if spec else None
        if path is not None and path.is_file():
            parts.append(file_fingerprint(path))
        elif card.hub and split in card.hub.get("splits", {}):
            parts.append(f"hub:{card.hub['path']}/{card.hub.get('name') or ''}:{card.hub['splits'][split]}")
    return "+".join(parts)
