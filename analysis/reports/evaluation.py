"""Any stored model on any data: a registered dataset's split or a user's file, with paired tests between models.

Each model's outputs are kept as an artefact of its run, named by a fingerprint of the data (file contents, split,
examples, columns, max length) and the precision, so the same evaluation asked again is read from the store."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from analysis.core.config import ConfigBase, DataConfig, check
from analysis.core.errors import ConfigError
from analysis.core.precision import resolve
from analysis.data.cards import DatasetCard, TextDataset, file_fingerprint, rows_to_dataset
from analysis.data.files import read_rows
from analysis.data.tasks import load_task, subsample
from analysis.data.tokens import encode
from analysis.reports.compare import Predictions, compare_predictions
from analysis.store.index import RunStore
from analysis.training.evaluate import load_run_model
from analysis.training.loop import TaskSpec, predict
from analysis.training.metrics import compute as compute_metrics


@dataclass(frozen=True)
class EvalData(ConfigBase):
    """The data to evaluate on: a registered dataset (and split), or a file with the model's label set."""

    dataset: str | None = None  # a registered dataset
    split: str | None = None  # its split (default: the card's evaluation split)
    eval_file: str | None = None  # or a CSV/TSV/JSONL file
    text_columns: tuple[str, ...] | None = None  # the file's text column(s) (default: the run's)
    label_column: str | None = None  # the file's label column (default: the run's)
    eval_size: int | None = None  # a seeded sample of this many examples (default: all)

    def validate(self) -> None:
        check((self.dataset is None) != (self.eval_file is None), "dataset",
              "give exactly one of --dataset and --eval-file", "e.g. --dataset mr, or --eval-file test.csv")
        check(self.split is None or self.dataset is not None, "split", "--split goes with --dataset",
              "a file is evaluated whole")
        check(self.eval_size is None or self.eval_size >= 1, "eval_size", f"got {self.eval_size}", "omit it for all")
        check(self.eval_file is not None or (self.text_columns is None and self.label_column is None), "text_columns",
              "--text-columns and --label-column name a file's columns", "use them with --eval-file, or drop them")

    def describe(self) -> str:
        return self.eval_file or f"{self.dataset}/{self.split or 'default split'}"


def run_card(store: RunStore, run_id: str) -> tuple[DatasetCard, DataConfig]:
    """The label set and data settings a stored run was trained with."""
    record = store.require(run_id)
    cfg = DataConfig.from_dict(record.config.get("data", {}), where=f"data config of run {run_id}")
    return load_task(cfg, int(record.config.get("seed", 0)), need_train=False).card, cfg


def _check_labels(card: DatasetCard, model_card: DatasetCard, what: str, run_id: str) -> None:
    if card.task != model_card.task or (card.labels or ()) != (model_card.labels or ()):
        theirs = card.task if card.task == "regression" else list(card.labels or ())
        mine = model_card.task if model_card.task == "regression" else list(model_card.labels or ())
        raise ConfigError(f"{what} has labels {theirs}; the model of run {run_id} predicts {mine}",
                          fix="evaluate on data with the model's label set (or map the labels in the file)")


def eval_dataset(data: EvalData, model_card: DatasetCard, run_cfg: DataConfig, run_id: str, seed: int) -> TextDataset:
    """The evaluation examples, read with the run's label set (a file's labels must belong to it)."""
    if data.eval_file is not None:
        path = Path(data.eval_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"evaluation file {data.eval_file} does not exist", fix="give the path of a CSV/TSV/JSONL file")
        card = dataclasses.replace(model_card, name=path.name)
        text_columns = data.text_columns or model_card.text_columns
        ds = rows_to_dataset(read_rows(path), card, "file", str(path), file_fingerprint(path), text_columns,
                             data.label_column or model_card.label_column)
    else:
        task = load_task(DataConfig(dataset=data.dataset, eval_split=data.split, max_length=run_cfg.max_length),
                         seed, need_train=False)
        _check_labels(task.card, model_card, f"{data.dataset}/{task.eval_split}", run_id)
        ds = task.eval
    return subsample(ds, data.eval_size, seed, "eval_size")


def _key(ds: TextDataset, data: EvalData, max_length: int, precision: str) -> str:
    parts = [ds.fingerprint, ds.split, hashlib.sha256(ds.indices.tobytes()).hexdigest(), str(max_length), precision,
             ",".join(data.text_columns or ()), data.label_column or ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def evaluate_run(store: RunStore, run_id: str, data: EvalData, precision: str = "auto", seed: int = 0,
                 device: str = "cpu") -> tuple[Predictions, dict[str, Any]]:
    """One stored model's predictions and metrics on `data`; read from the run's artefacts when already made."""
    data.validate()
    model_card, run_cfg = run_card(store, run_id)
    ds = eval_dataset(data, model_card, run_cfg, run_id, seed)
    precision = resolve(precision, device)
    name = f"eval-{_key(ds, data, run_cfg.max_length, precision)}"
    cached = f"{name}.safetensors" in store.artefacts(run_id)
    if cached:
        arrays = store.load_arrays(run_id, name)
        outputs, labels, indices = arrays["outputs"], arrays["labels"], arrays["indices"]
    else:
        model, tokenizer, _ = load_run_model(store, run_id)
        enc = encode(ds, tokenizer, run_cfg.max_length)
        task = TaskSpec(model_card.num_labels, model_card.metrics, tokenizer.pad_token_id or 0)
        outputs = predict(model.to(device), enc, task, 128, precision, torch.device(device))
        labels, indices = np.asarray(ds.labels), np.asarray(ds.indices)
        store.save_arrays(run_id, name, {"outputs": outputs, "labels": labels, "indices": indices})
    metrics = compute_metrics(model_card.metrics, outputs, labels)
    flat = outputs[:, 0] if outputs.ndim == 2 and outputs.shape[1] == 1 else outputs
    order = np.argsort(indices, kind="stable")
    preds = Predictions(run_id, indices[order], flat[order].astype(np.float64), labels[order], model_card.metrics)
    return preds, {"run_id": run_id, "data": data.describe(), "split": ds.split, "examples": len(labels),
                   "precision": precision, "artefact": name, "cached": cached, "metrics": metrics}


def evaluate_runs(store: RunStore, run_ids: Sequence[str], data: EvalData, precision: str = "auto", seed: int = 0,
                  n_resamples: int = 1000) -> dict[str, Any]:
    """Each model's metrics on `data` and, for two or more, the paired bootstrap and McNemar of every pair."""
    if len(set(run_ids)) != len(run_ids) or not run_ids:
        raise ConfigError(f"got run ids {list(run_ids)}", fix="give one or more different run ids, comma-separated")
    results = [evaluate_run(store, rid, data, precision, seed) for rid in run_ids]
    out: dict[str, Any] = {"data": data.describe(), "runs": [r for _, r in results]}
    if len(results) >= 2:
        comparison = compare_predictions([p for p, _ in results], n_resamples, seed)
        out["pairs"] = comparison.pairs.replace({np.nan: None}).to_dict("records")
        out["intervals"] = comparison.metrics.to_dict("records")
    return out
